//! Configuration: the config file (`$XDG_CONFIG_HOME/rewind/config.yaml`), the REWIND_* variables of the
//! flags, their precedence (flag > variable > file > default), `rewind config`, and bad config files.

use super::*;

/// A user's home: HOME and the XDG directories inside it, no caller settings.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let h = Home {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(h.path().join("src")).unwrap();
        std::fs::write(h.path().join("src/notes.txt"), "the data to keep\n").unwrap();
        h
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config_path(&self) -> PathBuf {
        self.path().join("xdg/rewind/config.yaml")
    }

    /// Writes the default config file.
    fn config(&self, text: &str) -> PathBuf {
        write(self.path(), "xdg/rewind/config.yaml", text)
    }

    fn s(&self, rel: &str) -> String {
        self.path().join(rel).display().to_string()
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = cmd(self.path(), args);
        c.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("xdg"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env_remove("REWIND_CONFIG")
            .env_remove("REWIND_STORE")
            .env_remove("REWIND_DAEMON_JOBS")
            .env_remove("REWIND_DAEMON_STATE")
            .env_remove("REWIND_DAEMON_TOKEN");
        for (k, v) in env {
            c.env(k, v);
        }
        from_output(c.output().expect("run rewind"))
    }

    /// `rewind config --json`'s settings by name: (value, source).
    fn settings(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Vec<(String, serde_json::Value, String)> {
        let mut all = args.to_vec();
        all.extend(["config", "--json"]);
        let r = self.run(&all, env);
        assert_eq!(r.code, 0, "{r:?}");
        json_of(&r)["settings"]
            .as_array()
            .unwrap_or_else(|| panic!("no settings: {r:?}"))
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["value"].clone(),
                    s["source"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn setting(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        name: &str,
    ) -> (serde_json::Value, String) {
        let all = self.settings(args, env);
        all.into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, s)| (v, s))
            .unwrap_or_else(|| panic!("no setting {name}"))
    }
}

/// The manifests of the snapshots of `prefix` in a local store directory.
fn manifests(store: &Path, prefix: &str) -> Vec<PathBuf> {
    let dir = store.join(prefix);
    let Ok(days) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for day in days.flatten() {
        for f in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.file_name().to_string_lossy().starts_with("manifest_") {
                out.push(f.path());
            }
        }
    }
    out
}

/// Every non-empty stderr line is a JSON log record (the JSON log format).
fn logs_are_json(r: &Run) -> bool {
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    !lines.is_empty()
        && lines.iter().all(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.get("level").is_some())
        })
}

/// The store in the config file is where a procedure writes when no store= is given, and restores from.
#[test]
fn the_config_file_store_is_the_default_store() {
    let h = Home::new();
    h.config(&format!(
        "# the team's backups\nstore: {}\n",
        h.s("configured-store")
    ));
    let r = h.run(
        &[
            "run",
            "backup-dir",
            &format!("from={}", h.s("src")),
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        manifests(&h.path().join("configured-store"), "dirs/src").len(),
        1,
        "{r:?}"
    );
    assert!(
        !h.path().join("data/rewind/store").exists(),
        "the built-in default store was written too: {r:?}"
    );
    let r = h.run(
        &[
            "run",
            "restore-dir",
            "prefix=dirs/src",
            &format!("to={}", h.s("back")),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(h.path().join("back/notes.txt")).unwrap(),
        "the data to keep\n"
    );

    // REWIND_STORE beats the file.
    let env = [("REWIND_STORE", h.s("env-store"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = h.run(
        &["run", "backup-dir", &format!("from={}", h.s("src"))],
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        manifests(&h.path().join("env-store"), "dirs/src").len(),
        1,
        "{r:?}"
    );
    assert_eq!(
        manifests(&h.path().join("configured-store"), "dirs/src").len(),
        1
    );

    // A relative store in the file is beside the file, not in the working directory.
    h.config("store: rel-store\n");
    let r = h.run(&["run", "backup-dir", &format!("from={}", h.s("src"))], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        manifests(&h.path().join("xdg/rewind/rel-store"), "dirs/src").len(),
        1,
        "{r:?}"
    );
}

/// log_format, verbose and quiet: the file sets them, the variable beats the file, the flag beats both.
#[test]
fn flag_beats_env_beats_file() {
    let h = Home::new();
    let file = h.config("log_format: json\nquiet: true\n");
    let cfg = format!("config {}", file.display());

    let r = h.run(&["run", "hello"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    // quiet: true in the file hides the info line; -v on the command line brings it back.
    assert!(
        !r.stderr.contains("greeted"),
        "quiet from the file was ignored: {r:?}"
    );
    let r = h.run(&["run", "hello", "-v"], &[]);
    assert!(
        r.stderr.contains("greeted"),
        "-v did not beat quiet in the file: {r:?}"
    );
    assert!(
        logs_are_json(&r),
        "log_format: json in the file was ignored: {r:?}"
    );
    assert_eq!(
        h.setting(&[], &[], "log_format"),
        (serde_json::json!("json"), cfg.clone())
    );
    assert_eq!(
        h.setting(&[], &[], "quiet"),
        (serde_json::json!(true), cfg.clone())
    );

    // The variables beat the file.
    let env = [("REWIND_LOG_FORMAT", "human"), ("REWIND_QUIET", "0")];
    let r = h.run(&["run", "hello"], &env);
    assert!(
        r.stderr.contains("greeted"),
        "REWIND_QUIET=0 did not beat the file: {r:?}"
    );
    assert!(!logs_are_json(&r) && r.stderr.contains("INFO"), "{r:?}");
    assert_eq!(
        h.setting(&[], &env, "log_format"),
        (serde_json::json!("human"), "env REWIND_LOG_FORMAT".into())
    );
    assert_eq!(
        h.setting(&[], &env, "quiet"),
        (serde_json::json!(false), "env REWIND_QUIET".into())
    );

    // The flags beat the variables.
    let env = [("REWIND_LOG_FORMAT", "human"), ("REWIND_QUIET", "1")];
    let r = h.run(&["--log-format", "json", "run", "hello", "-v"], &env);
    assert!(logs_are_json(&r) && r.stderr.contains("greeted"), "{r:?}");
    assert_eq!(
        h.setting(&["--log-format", "json", "-v"], &env, "log_format"),
        (serde_json::json!("json"), "flag --log-format".into())
    );
    let (quiet, source) = h.setting(&["-v"], &env, "quiet");
    assert_eq!(
        quiet,
        serde_json::json!(false),
        "-v on the command line beats REWIND_QUIET"
    );
    assert_eq!(source, "env REWIND_QUIET");
    assert_eq!(
        h.setting(&["-v"], &env, "verbose"),
        (serde_json::json!(1), "flag -v".into())
    );

    // REWIND_VERBOSE takes a count or true/false, and beats quiet in the file.
    write(h.path(), "dbg.lua", DEBUG_SCRIPT);
    let r = h.run(&["run", "dbg.lua"], &[("REWIND_QUIET", "")]);
    assert!(r.code == 0 && !r.stderr.contains("a debug line"), "{r:?}");
    for v in ["1", "true", "2"] {
        let r = h.run(&["run", "dbg.lua"], &[("REWIND_VERBOSE", v)]);
        assert!(
            r.stderr.contains("a debug line"),
            "REWIND_VERBOSE={v}: {r:?}"
        );
    }
    let r = h.run(&["run", "dbg.lua"], &[("REWIND_VERBOSE", "0")]);
    assert!(!r.stderr.contains("a debug line"), "{r:?}");
}

const DEBUG_SCRIPT: &str = r#"
local log = require("rewind.log")
return {
  description = "logs one debug line",
  params = {},
  run = function() log.debug("a debug line") return {} end,
}
"#;

#[test]
fn rewind_log_format_json_makes_logs_json() {
    let h = Home::new();
    let r = h.run(&["run", "hello"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!logs_are_json(&r) && r.stderr.contains("greeted"), "{r:?}");
    let r = h.run(&["run", "hello"], &[("REWIND_LOG_FORMAT", "json")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(logs_are_json(&r) && r.stderr.contains("greeted"), "{r:?}");
    // A bad value names the variable it came from, and nothing runs.
    let r = h.run(&["run", "hello"], &[("REWIND_LOG_FORMAT", "xml")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("REWIND_LOG_FORMAT") && !r.stderr.contains("greeted"),
        "{r:?}"
    );
    // REWIND_JSON is run --json.
    let r = h.run(&["run", "hello"], &[("REWIND_JSON", "1")]);
    assert_eq!(json_of(&r)["greetings"][0], "hello, world", "{r:?}");
    let r = h.run(&["run", "hello"], &[("REWIND_JSON", "false")]);
    assert!(r.stdout.starts_with("at: "), "{r:?}");
}

/// `rewind config` names each setting's source; the token is never shown.
#[test]
fn rewind_config_names_each_source() {
    let h = Home::new();
    let file = h.config(&format!(
        "store: {}\npath: [lib]\ndaemon:\n  state: daemon-state\n  max_concurrent: 2\n",
        h.s("cfg-store")
    ));
    let cfg = format!("config {}", file.display());
    let env = [
        ("REWIND_LOG_FORMAT", "json".to_string()),
        ("REWIND_PATH", h.s("env-lib")),
        ("REWIND_DAEMON_TOKEN", "tok-7c1d2e".to_string()),
        ("REWIND_DAEMON_GRACE", "1m".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let flag_lib = h.s("flag-lib");
    let args = ["-v", "--path", flag_lib.as_str(), "config", "--json"];
    let r = h.run(&args, &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !r.all().contains("tok-7c1d2e"),
        "the token was shown: {r:?}"
    );
    let doc = json_of(&r);
    assert_eq!(doc["config_file"]["path"], file.display().to_string());
    assert_eq!(doc["config_file"]["source"], "default");
    assert_eq!(doc["config_file"]["found"], true);
    let got = h.settings(&args[..3], &env);
    let find = |name: &str| {
        let (_, v, s) = got
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name}: {r:?}"));
        (v.clone(), s.clone())
    };
    use serde_json::json;
    assert_eq!(find("store"), (json!(h.s("cfg-store")), cfg.clone()));
    assert_eq!(
        find("log_format"),
        (json!("json"), "env REWIND_LOG_FORMAT".into())
    );
    assert_eq!(find("verbose"), (json!(1), "flag -v".into()));
    assert_eq!(find("quiet"), (json!(false), "default".into()));
    assert_eq!(
        find("path"),
        (
            json!([flag_lib, h.s("env-lib"), h.s("xdg/rewind/lib")]),
            format!("flag --path + env REWIND_PATH + {cfg}")
        )
    );
    assert_eq!(
        find("daemon.state"),
        (json!(h.s("xdg/rewind/daemon-state")), cfg.clone())
    );
    assert_eq!(find("daemon.max_concurrent"), (json!("2"), cfg.clone()));
    assert_eq!(
        find("daemon.grace"),
        (json!("1m"), "env REWIND_DAEMON_GRACE".into())
    );
    assert_eq!(find("daemon.keep_for"), (json!("30d"), "default".into()));
    assert_eq!(
        find("daemon.token"),
        (json!("***"), "env REWIND_DAEMON_TOKEN".into())
    );

    // The table says the same, one setting a line.
    let r = h.run(&["config"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let line = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} line: {r:?}"))
            .to_string()
    };
    let store_line = line("store");
    let words: Vec<&str> = store_line.split_whitespace().collect();
    let paren = format!("{})", file.display());
    assert_eq!(
        words,
        ["store", &h.s("cfg-store"), "(config", paren.as_str()],
        "{r:?}"
    );
    let words = line("log_format");
    let words: Vec<&str> = words.split_whitespace().collect();
    assert_eq!(words, ["log_format", "human", "(default)"], "{r:?}");

    // Which file: the default, REWIND_CONFIG, --config; `config path` prints it.
    let other = write(h.path(), "other.yaml", "verbose: 2\n");
    let other_s = other.display().to_string();
    let r = h.run(&["config", "path"], &[]);
    assert_eq!(r.stdout.trim(), file.display().to_string(), "{r:?}");
    let r = h.run(&["config", "path"], &[("REWIND_CONFIG", &other_s)]);
    assert_eq!(r.stdout.trim(), other_s, "{r:?}");
    let r = h.run(&["config", "--json"], &[("REWIND_CONFIG", &other_s)]);
    assert_eq!(json_of(&r)["config_file"]["source"], "env REWIND_CONFIG");
    let from_other = h.setting(&[], &[("REWIND_CONFIG", &other_s)], "verbose");
    assert_eq!(from_other, (json!(2), format!("config {other_s}")));
    let r = h.run(
        &["--config", &other_s, "config", "--json"],
        &[("REWIND_CONFIG", "/nowhere.yaml")],
    );
    assert_eq!(
        json_of(&r)["config_file"]["source"],
        "flag --config",
        "{r:?}"
    );
    // None: the store is the built-in one.
    for (args, env) in [
        (vec!["--config", "none"], vec![]),
        (vec![], vec![("REWIND_CONFIG", "")]),
    ] {
        let r = h.run(&[args.clone(), vec!["config", "--json"]].concat(), &env);
        assert_eq!(json_of(&r)["config_file"], serde_json::Value::Null, "{r:?}");
        assert_eq!(
            h.setting(&args, &env, "store"),
            (json!(h.s("data/rewind/store")), "default".into())
        );
    }
}

/// A bad config file stops every command with exit 2, naming the file, the line and the key.
#[test]
fn a_bad_config_file_is_exit_2_and_nothing_runs() {
    let h = Home::new();
    let cases = [
        (
            "store: /tmp/x\nstroe: /tmp/y\n",
            ":2:",
            "unknown key `stroe`",
        ),
        ("quiet: maybe\n", ":1:", "quiet: invalid type"),
        ("verbose: loud\n", ":1:", "verbose: invalid type"),
        (
            "log_format: xml\n",
            ":1:",
            "log_format: unknown variant `xml`",
        ),
        ("path: /srv/lib\n", ":1:", "path: invalid type"),
        (
            "daemon:\n  state: /tmp\n  grace: soon\n",
            ":3:",
            "daemon.grace: 'soon'",
        ),
        (
            "daemon:\n  lisen: 127.0.0.1:1\n",
            ":2:",
            "daemon: unknown key `lisen`",
        ),
        // YAML syntax errors.
        ("store: /tmp/x\n\tquiet: true\n", ":2:", "tab character"),
        (
            "quiet: true\nstore: 'open\n",
            ":3:",
            "scanning a quoted scalar at line 2",
        ),
        (
            "store: /tmp/x\nquiet: true\n- 1\n",
            ":3:",
            "did not find expected key",
        ),
    ];
    let store = h.path().join("must-stay-absent");
    for (text, line, want) in cases {
        let file = h.config(text);
        let r = h.run(
            &[
                "run",
                "backup-dir",
                &format!("from={}", h.s("src")),
                &format!("store={}", store.display()),
            ],
            &[],
        );
        assert_eq!(r.code, 2, "{text:?}: {r:?}");
        assert!(
            r.stderr
                .contains(&format!("config file {}{line}", file.display())),
            "{text:?}: the error lacks the file and line: {r:?}"
        );
        assert!(
            r.stderr.contains(want),
            "{text:?}: the error lacks {want:?}: {r:?}"
        );
        assert!(!store.exists(), "{text:?}: the backup ran: {r:?}");
        // Every command stops, `rewind config` too; `config path` still answers, to find the file.
        assert_eq!(h.run(&["config"], &[]).code, 2);
        let r = h.run(&["config", "path"], &[]);
        assert_eq!(
            (r.code, r.stdout.trim()),
            (0, file.display().to_string().as_str())
        );
        // --config none leaves the broken file alone.
        assert_eq!(h.run(&["--config", "none", "run", "hello"], &[]).code, 0);
    }

    // A missing default file is no config; a missing file named explicitly is an error.
    std::fs::remove_file(h.config_path()).unwrap();
    assert_eq!(h.run(&["run", "hello"], &[]).code, 0);
    let missing = h.s("missing.yaml");
    for (args, env) in [
        (vec!["--config", missing.as_str(), "run", "hello"], vec![]),
        (
            vec!["run", "hello"],
            vec![("REWIND_CONFIG", missing.as_str())],
        ),
    ] {
        let r = h.run(&args, &env);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stderr.contains(&missing) && !r.stderr.contains("greeted"),
            "{r:?}"
        );
    }
}

/// The daemon's defaults come from the file's `daemon:` section; its variables beat it; `rewind jobs`
/// reads the same state directory.
#[test]
fn daemon_settings_from_the_file_and_the_environment() {
    let h = Home::new();
    h.config("daemon:\n  jobs: no-such-jobs\n  state: the-state\n");
    let r = h.run(&["daemon"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "--jobs {}: not a directory",
            h.s("xdg/rewind/no-such-jobs")
        )),
        "{r:?}"
    );
    let r = h.run(&["daemon"], &[("REWIND_DAEMON_JOBS", "/env/jobs")]);
    assert!(
        r.stderr.contains("--jobs /env/jobs: not a directory"),
        "{r:?}"
    );
    let r = h.run(
        &["daemon", "--jobs", "/flag/jobs"],
        &[("REWIND_DAEMON_JOBS", "/env/jobs")],
    );
    assert!(
        r.stderr.contains("--jobs /flag/jobs: not a directory"),
        "{r:?}"
    );

    let r = h.run(&["jobs"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "no daemon state in {}",
            h.s("xdg/rewind/the-state")
        )),
        "{r:?}"
    );
    let r = h.run(&["jobs"], &[("REWIND_DAEMON_STATE", "/env/state")]);
    assert!(r.stderr.contains("no daemon state in /env/state "), "{r:?}");

    // Without any jobs directory the daemon says where one can come from.
    h.config("daemon:\n  state: the-state\n");
    let r = h.run(&["daemon"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("REWIND_DAEMON_JOBS") && r.stderr.contains("daemon.jobs"),
        "{r:?}"
    );
}
