//! `rewind completions SHELL`: each script is loaded into the real shell, which calls back into the
//! rewind under test (first on PATH, as an installed rewind is found): command names, flags, script
//! names from the search path and a script's params.

use super::*;

/// The completion script for `shell`, written where a user would install it.
fn script(shell: &str, dir: &Path) -> PathBuf {
    let r = rewind(dir, &["completions", shell]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("error"), "{r:?}");
    write(dir, &format!("installed/rewind.{shell}"), &r.stdout)
}

/// PATH with the binary under test first: the completion scripts call `rewind` from PATH.
fn path_env() -> String {
    let bin = Path::new(common::process::BIN).parent().unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What bash does on TAB at the end of `line`: the function `complete -p rewind` names is called with
/// COMP_LINE, COMP_POINT, COMP_WORDS and COMP_CWORD set; its COMPREPLY, one a line.
const BASH_TAB: &str = r#"
source "$1" || exit 3
spec=$(complete -p rewind) || exit 4
fn=${spec#*-F }; fn=${fn%% *}
COMP_LINE=$2
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
"$fn" rewind "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;

fn bash_tab(dir: &Path, installed: &Path, line: &str, env: &[(&str, &str)]) -> Vec<String> {
    let mut c = Command::new("bash");
    c.args(["--norc", "--noprofile", "-c", BASH_TAB, "bash"])
        .arg(installed)
        .arg(line)
        .current_dir(dir)
        .env("PATH", path_env())
        .env_remove("REWIND_PATH");
    for (k, v) in env {
        c.env(k, v);
    }
    let r = from_output(c.output().expect("run bash"));
    assert_eq!(r.code, 0, "bash completing {line:?}: {r:?}");
    assert!(r.stderr.is_empty(), "bash completing {line:?}: {r:?}");
    r.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// A procedure in a user directory: its top-level code prints, and its `run` leaves a marker file.
pub(super) fn user_lib(dir: &Path) -> (PathBuf, PathBuf) {
    let marker = dir.join("run-was-called");
    let lib = dir.join("lib");
    write(
        &lib,
        "scripts/mirror-site.lua",
        &format!(
            r#"print("top-level output")
return {{
  description = "Mirror a site into a directory\nSecond line.",
  params = {{
    target = {{ type = "string", required = true, doc = "where the copy goes" }},
    mode = {{ type = "string", default = "fast", choices = {{ "fast", "slow" }}, doc = "how hard to try" }},
    api_key = {{ type = "string", secret = true, env = "MIRROR_KEY", doc = "the site's API key" }},
  }},
  run = function(p) require("rewind.fs").write({marker:?}, "ran") end,
}}
"#
        ),
    );
    (lib, marker)
}

#[test]
fn bash_completes_commands_flags_scripts_and_params() {
    let d = tempfile::tempdir().unwrap();
    let sh = script("bash", d.path());
    let tab = |line: &str| bash_tab(d.path(), &sh, line, &[]);

    assert_eq!(tab("rewind ru"), ["run"]);
    let commands = tab("rewind ");
    for want in ["run", "list", "help", "check", "completions", "man"] {
        assert!(commands.iter().any(|c| c == want), "{want}: {commands:?}");
    }
    assert!(!commands.iter().any(|c| c.starts_with('-')), "{commands:?}");
    assert_eq!(tab("rewind --log"), ["--log-format"]);
    assert_eq!(tab("rewind --log-format j"), ["json"]);
    assert_eq!(tab("rewind completions z"), ["zsh"]);

    assert_eq!(tab("rewind run back"), ["backup-dir"]);
    assert_eq!(tab("rewind help restore-"), ["restore-dir"]);
    assert_eq!(tab("rewind check backup-"), ["backup-dir"]);
    assert_eq!(tab("rewind man backup-"), ["backup-dir"]);
    assert_eq!(tab("rewind man stdlib"), ["stdlib", "stdlib-export"]);

    // The params of the script named before, as NAME=, and no flags until the word starts with `-`.
    let params = tab("rewind run backup-dir ");
    for want in ["from=", "store=", "prefix=", "compression=", "lock_ttl="] {
        assert!(params.iter().any(|p| p == want), "{want}: {params:?}");
    }
    assert!(params.iter().all(|p| p.ends_with('=')), "{params:?}");
    assert_eq!(tab("rewind run backup-dir st"), ["store="]);
    assert_eq!(tab("rewind check backup-dir st"), ["store="]);
    // A param already given is not offered again.
    let rest = tab("rewind run backup-dir from=/tmp/a f");
    assert_eq!(rest, ["full="], "{rest:?}");
    // A value after `=`: bash replaces only the part after it.
    assert_eq!(tab("rewind run backup-dir compression=g"), ["gzip"]);
    assert_eq!(tab("rewind run backup-dir each="), ["true", "false"]);
    let flags = tab("rewind run backup-dir --");
    assert!(flags.iter().any(|f| f == "--json"), "{flags:?}");
    assert!(flags.iter().any(|f| f == "--params-file"), "{flags:?}");

    // A path instead of a name: directories and .lua files.
    write(d.path(), "mine/job.lua", "return {}");
    write(d.path(), "mine/notes.txt", "");
    assert_eq!(tab("rewind run ./mine/"), ["./mine/job.lua"]);
}

#[test]
fn bash_completes_scripts_and_params_from_the_search_path() {
    let d = tempfile::tempdir().unwrap();
    let sh = script("bash", d.path());
    let (lib, marker) = user_lib(d.path());
    let lib_s = lib.to_str().unwrap();

    assert_eq!(
        bash_tab(d.path(), &sh, "rewind run mirror", &[]),
        Vec::<String>::new(),
        "not on the search path"
    );
    let line = format!("rewind --path {lib_s} run mirror");
    assert_eq!(bash_tab(d.path(), &sh, &line, &[]), ["mirror-site"]);
    let env = [("REWIND_PATH", lib_s)];
    assert_eq!(
        bash_tab(d.path(), &sh, "rewind run mirror", &env),
        ["mirror-site"]
    );
    let line = format!("REWIND_PATH={lib_s} rewind run mirror");
    assert_eq!(bash_tab(d.path(), &sh, &line, &[]), ["mirror-site"]);
    // The config file's `path` is part of the search path too.
    let cfg = d.path().join("config.yaml");
    std::fs::write(&cfg, format!("path: [{lib_s}]\n")).unwrap();
    let env = [("REWIND_CONFIG", cfg.to_str().unwrap())];
    assert_eq!(
        bash_tab(d.path(), &sh, "rewind run mirror", &env),
        ["mirror-site"]
    );
    // As typed, before the shell expands it.
    let home = [("HOME", d.path().to_str().unwrap())];
    let line = "rewind --path ~/lib run mirror";
    assert_eq!(bash_tab(d.path(), &sh, line, &home), ["mirror-site"]);

    let line = format!("rewind --path {lib_s} run mirror-site ");
    assert_eq!(
        bash_tab(d.path(), &sh, &line, &[]),
        ["api_key=", "mode=", "target="]
    );
    let line = format!("rewind --path {lib_s} run mirror-site mode=");
    assert_eq!(bash_tab(d.path(), &sh, &line, &[]), ["fast", "slow"]);
    // `help` takes no params: nothing to offer (bash then completes file names).
    assert_eq!(
        bash_tab(d.path(), &sh, "rewind help mirror-site ", &env),
        Vec::<String>::new()
    );
    assert!(
        !marker.exists(),
        "completing the params called the script's run"
    );
    // The marker works: running the script leaves it.
    let r = rewind(
        d.path(),
        &["--path", lib_s, "run", "mirror-site", "target=x"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(marker.exists(), "{r:?}");
}

/// The zsh script, sourced with zsh's completion builtins replaced by ones that print what they are given.
const ZSH_TAB: &str = r#"
compdef() { :; }
_describe() { local a; for a in "$@"; do [[ $a == (dirs|open|other) ]] && print -rl -- "${(@P)a}"; done; }
source "$1" || exit 3
words=(${(z)2})
[[ $2 == *" " ]] && words+=("")
CURRENT=${#words}
_rewind
"#;

#[test]
fn zsh_and_fish_scripts_complete_scripts_and_params() {
    let d = tempfile::tempdir().unwrap();
    let zsh = script("zsh", d.path());
    let text = std::fs::read_to_string(&zsh).unwrap();
    assert!(text.starts_with("#compdef rewind\n"), "{text}");
    let fish = script("fish", d.path());
    let text = std::fs::read_to_string(&fish).unwrap();
    assert!(text.contains("--command rewind"), "{text}");
    let (lib, _) = user_lib(d.path());
    let lib_s = lib.to_str().unwrap();

    if has("zsh") {
        let r = from_output(Command::new("zsh").arg("-n").arg(&zsh).output().unwrap());
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "zsh -n: {r:?}");
        let tab = |line: &str| {
            let out = Command::new("zsh")
                .args(["-f", "-c", ZSH_TAB, "zsh"])
                .arg(&zsh)
                .arg(line)
                .current_dir(d.path())
                .env("PATH", path_env())
                .env("REWIND_PATH", lib_s)
                .output()
                .unwrap();
            let r = from_output(out);
            assert_eq!(r.code, 0, "zsh completing {line:?}: {r:?}");
            r.stdout
        };
        let out = tab("rewind run back");
        assert!(out.starts_with("backup-dir:Back up directories"), "{out}");
        let out = tab("rewind run backup-dir ");
        assert!(out.contains("\nfrom=:list, required: directories"), "{out}");
        assert!(out.contains("\nstore=:string: store URL"), "{out}");
        assert!(!out.lines().any(|l| l.starts_with('-')), "{out}");
        assert_eq!(tab("rewind run mirror-site mode=s"), "mode=slow\n");
    } else {
        eprintln!("zsh is not installed (tests/run.sh installs it): only the script was checked");
    }

    if has("fish") {
        let r = from_output(Command::new("fish").arg("-n").arg(&fish).output().unwrap());
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "fish -n: {r:?}");
        let tab = |line: &str| {
            let cmd = format!("source {}; complete -C {}", fish.display(), quote(line));
            let out = Command::new("fish")
                .args(["--no-config", "-c", &cmd])
                .current_dir(d.path())
                .env("HOME", d.path())
                .env("PATH", path_env())
                .env("REWIND_PATH", lib_s)
                .output()
                .unwrap();
            let r = from_output(out);
            assert_eq!(r.code, 0, "fish completing {line:?}: {r:?}");
            r.stdout
        };
        let out = tab("rewind run back");
        assert!(out.starts_with("backup-dir\tBack up directories"), "{out}");
        let out = tab("rewind run backup-dir ");
        assert!(out.contains("from=\tlist, required"), "{out}");
        assert!(out.contains("store=\tstring"), "{out}");
        assert_eq!(tab("rewind run mirror-site mode=f"), "mode=fast\n");
    } else {
        eprintln!("fish is not installed (tests/run.sh installs it): only the script was checked");
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Every TAB starts rewind: the answer for a script's params must come at once.
#[test]
fn completing_params_is_quick() {
    let d = tempfile::tempdir().unwrap();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let out = common::process::rewind()
            .args(["--", "rewind run backup-dir "])
            .env("_REWIND_COMPLETE", "bash")
            .current_dir(d.path())
            .output()
            .unwrap();
        best = best.min(t.elapsed());
        let r = from_output(out);
        assert!(r.stdout.contains("from="), "{r:?}");
    }
    assert!(
        best < Duration::from_millis(200),
        "completing took {best:?}"
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let r = rewind(d.path(), &["completions", "tcsh"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'tcsh'"), "{r:?}");
    assert!(r.stderr.contains("bash, zsh, fish"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
}
