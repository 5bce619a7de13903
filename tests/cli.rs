//! The `rewind` command line, run as a user runs it: exit codes, params, errors, secrets, the search
//! path (shadowing bundled scripts and modules with no rebuild), logs and signals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rewind");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn from_output(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_remove("REWIND_PATH")
        .env_remove("REWIND_LOG")
        .env_remove("P_TOKEN")
        .env_remove("P_LEVEL");
    c
}

fn rewind(dir: &Path, args: &[&str]) -> Run {
    from_output(cmd(dir, args).output().expect("run rewind"))
}

fn rewind_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = cmd(dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    from_output(c.output().expect("run rewind"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// A script declaring one param of each type, plus a secret and a dotted name from a nested file.
const PARAMS_SCRIPT: &str = r#"
local log = require("rewind.log")
return {
  description = "Declares one param of each type\nSecond line of the description.",
  params = {
    name = { type = "string", required = true, doc = "who to greet" },
    ratio = { type = "number", default = 1.5, doc = "a number" },
    count = { type = "integer", default = 2, doc = "an integer" },
    flag = { type = "boolean", default = false, doc = "a flag" },
    wait = { type = "duration", default = "10m", doc = "how long to wait" },
    day = { type = "date", doc = "a day" },
    tables = { type = "list", doc = "table names" },
    opts = { type = "table", doc = "free-form options" },
    level = { type = "string", default = "default-level", env = "P_LEVEL", doc = "from env or default" },
    ["s3.bucket"] = { type = "string", doc = "bucket (s3: {bucket:} in a params file)" },
    token = { type = "string", secret = true, env = "P_TOKEN", doc = "an API token" },
  },
  run = function(p, ctx)
    log.info("starting with token " .. tostring(p.token), { token = p.token })
    log.debug("debug line", { token = p.token })
    if p.name == "fail" then error("remote refused token " .. tostring(p.token)) end
    return { p = p, public = ctx.public_params }
  end,
}
"#;

fn json_of(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

#[test]
fn exit_codes_and_unknown_scripts() {
    let d = tempfile::tempdir().unwrap();
    let ok = rewind(d.path(), &["run", "hello", "name=tester", "--json"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(json_of(&ok)["greetings"][0], "hello, tester");

    write(
        d.path(),
        "boom.lua",
        "return { description = 'x', params = {}, run = function()\n  error('it broke')\nend }",
    );
    let fail = rewind(d.path(), &["run", "boom.lua"]);
    assert_eq!(fail.code, 1, "{fail:?}");

    let unknown = rewind(d.path(), &["run", "helo"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown.stderr.contains("no script named 'helo'"),
        "{unknown:?}"
    );
    assert!(
        unknown.stderr.contains("did you mean: hello?"),
        "{unknown:?}"
    );

    let bad_flag = rewind(d.path(), &["run", "hello", "--no-such-flag"]);
    assert_eq!(bad_flag.code, 2, "{bad_flag:?}");
    let not_kv = rewind(d.path(), &["run", "hello", "name"]);
    assert_eq!(not_kv.code, 2, "{not_kv:?}");
    assert!(not_kv.stderr.contains("'name' has no '='"), "{not_kv:?}");
    let usage = write(
        d.path(),
        "usage.lua",
        "return { run = function() require('rewind.errors').usage('path x is not a directory') end }",
    );
    let u = rewind(d.path(), &["run", usage.to_str().unwrap()]);
    assert_eq!(u.code, 2, "{u:?}");
    assert!(u.stderr.contains("path x is not a directory"), "{u:?}");
}

#[test]
fn param_errors_name_the_param() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "p.lua", PARAMS_SCRIPT);
    let missing = rewind(d.path(), &["run", "p.lua"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("missing required param 'name' (string, who to greet): pass name=..."),
        "{missing:?}"
    );

    let unknown = rewind(d.path(), &["run", "p.lua", "name=x", "nmae=y"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown.stderr.contains("unknown param 'nmae'"),
        "{unknown:?}"
    );
    assert!(
        unknown.stderr.contains("did you mean 'name'"),
        "{unknown:?}"
    );

    for (arg, want) in [
        (
            "ratio=abc",
            "param 'ratio' (from the command line): expected a number, got 'abc'",
        ),
        (
            "count=1.5",
            "param 'count' (from the command line): expected an integer, got '1.5'",
        ),
        (
            "flag=maybe",
            "param 'flag' (from the command line): expected true or false, got 'maybe'",
        ),
        (
            "wait=10x",
            "param 'wait' (from the command line): expected a duration like 90s, 10m",
        ),
        (
            "day=2019-13-01",
            "param 'day' (from the command line): expected a date like 2019-12-01, got '2019-13-01'",
        ),
        (
            "opts=[1, 2",
            "param 'opts' (from the command line): expected a JSON or YAML table",
        ),
        (
            "opts=3",
            "param 'opts' (from the command line): expected a table, got '3'",
        ),
    ] {
        let r = rewind(d.path(), &["run", "p.lua", "name=x", arg]);
        assert_eq!(r.code, 2, "{arg}: {r:?}");
        assert!(r.stderr.contains(want), "{arg}: want {want:?} in {r:?}");
        assert!(r.stdout.is_empty(), "{arg}: {r:?}");
    }
    // every problem at once
    let many = rewind(d.path(), &["run", "p.lua", "count=x", "flag=2"]);
    assert_eq!(many.code, 2);
    for want in ["'name'", "'count'", "'flag'"] {
        assert!(many.stderr.contains(want), "{many:?}");
    }
    // rewind check validates params too, and runs nothing
    let check = rewind(d.path(), &["check", "p.lua", "name=x", "count=zz"]);
    assert_eq!(check.code, 2, "{check:?}");
    assert!(check.stderr.contains("'count'"), "{check:?}");
    let check_ok = rewind(d.path(), &["check", "p.lua"]);
    assert_eq!(check_ok.code, 0, "{check_ok:?}");
    assert!(
        check_ok.stdout.contains("ok: p (11 params)"),
        "{check_ok:?}"
    );
    assert!(
        !check_ok.stderr.contains("starting with"),
        "check ran the script: {check_ok:?}"
    );
}

#[test]
fn values_convert_and_params_files_and_precedence() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "p.lua", PARAMS_SCRIPT);
    let r = rewind(
        d.path(),
        &[
            "run",
            "p.lua",
            "name=x",
            "ratio=2.5",
            "count=7",
            "flag=yes",
            "wait=1h30m",
            "day=2019-12-01",
            "tables=a, b,c",
            "opts={a: 1}",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let p = &json_of(&r)["p"];
    assert_eq!(p["ratio"], 2.5);
    assert_eq!(p["count"], 7);
    assert_eq!(p["flag"], true);
    assert_eq!(p["wait"], 5400);
    assert_eq!(p["day"], "2019-12-01");
    assert_eq!(p["tables"], serde_json::json!(["a", "b", "c"]));
    assert_eq!(p["opts"], serde_json::json!({"a": 1}));
    // defaults convert like given values
    let r = rewind(d.path(), &["run", "p.lua", "name=x", "--json"]);
    assert_eq!(json_of(&r)["p"]["wait"], 600);

    let yaml = write(
        d.path(),
        "params.yaml",
        "name: from-yaml\ncount: 3\nlevel: file-level\ns3:\n  bucket: my-bucket\ntables: [t1, t2]\n",
    );
    let json = write(
        d.path(),
        "params.json",
        r#"{"name": "from-json", "level": "file-level", "s3": {"bucket": "json-bucket"}, "opts": {"deep": {"x": [1, 2]}}}"#,
    );
    let r = rewind(
        d.path(),
        &[
            "run",
            "p.lua",
            "--params-file",
            yaml.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let p = &json_of(&r)["p"];
    assert_eq!(p["name"], "from-yaml");
    assert_eq!(p["count"], 3);
    assert_eq!(p["s3.bucket"], "my-bucket");
    assert_eq!(p["tables"], serde_json::json!(["t1", "t2"]));
    let r = rewind(
        d.path(),
        &[
            "run",
            "p.lua",
            "--params-file",
            json.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let p = &json_of(&r)["p"];
    assert_eq!(p["name"], "from-json");
    assert_eq!(p["s3.bucket"], "json-bucket");
    assert_eq!(p["opts"], serde_json::json!({"deep": {"x": [1, 2]}}));

    // precedence: command line > params file > environment > default
    let level = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["run", "p.lua", "name=x", "--json"];
        all.extend_from_slice(args);
        let r = rewind_env(d.path(), &all, env);
        assert_eq!(r.code, 0, "{r:?}");
        json_of(&r)["p"]["level"].as_str().unwrap().to_string()
    };
    let yaml_arg = yaml.to_str().unwrap();
    assert_eq!(level(&[], &[]), "default-level");
    assert_eq!(level(&[], &[("P_LEVEL", "env-level")]), "env-level");
    assert_eq!(
        level(&["--params-file", yaml_arg], &[("P_LEVEL", "env-level")]),
        "file-level"
    );
    assert_eq!(
        level(
            &["--params-file", yaml_arg, "level=cli-level"],
            &[("P_LEVEL", "env-level")]
        ),
        "cli-level"
    );
    // name=x on the command line beat the file's name
    let r = rewind(
        d.path(),
        &[
            "run",
            "p.lua",
            "--params-file",
            yaml_arg,
            "name=cli",
            "--json",
        ],
    );
    assert_eq!(json_of(&r)["p"]["name"], "cli");

    let bad_file = write(d.path(), "bad.yaml", "name: [unclosed\n");
    let r = rewind(
        d.path(),
        &["run", "p.lua", "--params-file", bad_file.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("bad.yaml"), "{r:?}");
    let r = rewind(d.path(), &["run", "p.lua", "--params-file", "nope.yaml"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = rewind(
        d.path(),
        &[
            "run",
            "p.lua",
            "--params-file",
            json.to_str().unwrap(),
            "count=zz",
        ],
    );
    assert_eq!(r.code, 2, "{r:?}");
    let bad_type = write(d.path(), "bt.json", r#"{"name": "x", "count": "many"}"#);
    let r = rewind(
        d.path(),
        &["run", "p.lua", "--params-file", bad_type.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("param 'count' (from the params file): expected an integer"),
        "{r:?}"
    );
}

#[test]
fn secrets_never_appear() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "p.lua", PARAMS_SCRIPT);
    let secret = "tok-SECRET-5e1f9a";
    let env = [("P_TOKEN", secret)];
    let cases: Vec<Vec<&str>> = vec![
        vec!["-vv", "run", "p.lua", "name=x", "--json"],
        vec!["-vv", "run", "p.lua", "name=x"],
        vec![
            "-vv",
            "--log-format",
            "json",
            "run",
            "p.lua",
            "name=fail",
            "--json",
        ],
        vec!["-vv", "run", "p.lua", "name=fail"],
        vec!["run", "p.lua", "name=x", "count=bad"],
    ];
    for args in &cases {
        let r = rewind_env(d.path(), args, &env);
        assert!(
            !r.all().contains(secret),
            "{args:?} leaked the secret: {r:?}"
        );
        assert!(
            !r.all().contains("5e1f9a"),
            "{args:?} leaked part of the secret: {r:?}"
        );
    }
    // the secret did reach the script, and was masked on the way out
    let r = rewind_env(d.path(), &["-vv", "run", "p.lua", "name=x", "--json"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(json_of(&r)["p"]["token"], "***");
    assert!(
        json_of(&r)["public"].get("token").is_none(),
        "public params hold the secret: {r:?}"
    );
    assert!(r.stderr.contains("starting with token ***"), "{r:?}");
    let fail = rewind_env(d.path(), &["run", "p.lua", "name=fail"], &env);
    assert_eq!(fail.code, 1);
    assert!(fail.stderr.contains("remote refused token ***"), "{fail:?}");
    // a secret given on the command line is masked too, even in a type error
    let r = rewind(
        d.path(),
        &[
            "run",
            "p.lua",
            "name=x",
            &format!("token={secret}"),
            "--json",
        ],
    );
    assert!(!r.all().contains(secret), "{r:?}");
    // a secret with characters that JSON and debug formatting escape
    let odd = r#"pa"ss\w0rd-77 x"#;
    for args in [
        &["-vv", "--log-format", "json", "run", "p.lua", "name=fail"][..],
        &["-vv", "run", "p.lua", "name=x", "--json"],
        &["-vv", "run", "p.lua", "name=x"],
    ] {
        let r = rewind_env(d.path(), args, &[("P_TOKEN", odd)]);
        assert!(
            !r.all().contains("w0rd-77"),
            "{args:?} leaked an escaped secret: {r:?}"
        );
    }
    // a secrets file
    let sf = write(d.path(), "secrets.env", &format!("P_TOKEN={secret}\n"));
    let r = rewind(
        d.path(),
        &[
            "-vv",
            "run",
            "p.lua",
            "name=fail",
            "--secrets",
            sf.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.all().contains(secret), "{r:?}");
    assert!(r.stderr.contains("refused token ***"), "{r:?}");
}

#[test]
fn lua_errors_show_file_line_and_traceback() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "err.lua",
        "local function deeper()\n  error('something went wrong')\nend\nreturn { description = 'x', params = {}, run = function()\n  deeper()\n  return 1\nend }\n",
    );
    let r = rewind(d.path(), &["run", "err.lua"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("err.lua:2: something went wrong"),
        "{r:?}"
    );
    assert!(r.stderr.contains("stack traceback:"), "{r:?}");
    assert!(r.stderr.contains("err.lua:5:"), "{r:?}");

    // a primitive's error keeps its cause chain and points at the script line
    write(
        d.path(),
        "prim.lua",
        "local fs = require('rewind.fs')\nreturn { description = 'x', params = {}, run = function()\n  local data = fs.read('/no/such/dir/file.txt')\n  return data\nend }\n",
    );
    let r = rewind(d.path(), &["run", "prim.lua"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("prim.lua:3: reading /no/such/dir/file.txt: No such file or directory"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("__mlua"), "{r:?}");

    write(
        d.path(),
        "syntax.lua",
        "return {\n  run = function()\n    local x = = 1\n  end,\n}\n",
    );
    let r = rewind(d.path(), &["check", "syntax.lua"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("syntax.lua:3:"), "{r:?}");
    let r = rewind(d.path(), &["run", "syntax.lua"]);
    assert_eq!(r.code, 2, "{r:?}");
    // top-level code that spawns a task does not crash help/check/list
    write(
        d.path(),
        "spawns.lua",
        "local task = require('rewind.task')\ntask.spawn(function() end)\nreturn { description = 'spawns at load', run = function() end }\n",
    );
    for args in [
        &["check", "spawns.lua"][..],
        &["help", "spawns.lua"],
        &["--path", ".", "list"],
    ] {
        let r = rewind(d.path(), args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
    }
    write(d.path(), "noreturn.lua", "local x = 1\n");
    let r = rewind(d.path(), &["check", "noreturn.lua"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("a script must return a table"), "{r:?}");
}

#[test]
fn help_and_list() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "p.lua", PARAMS_SCRIPT);
    let r = rewind(d.path(), &["help", "p.lua"]);
    assert_eq!(r.code, 0, "{r:?}");
    for want in [
        "Declares one param of each type",
        "Second line of the description.",
        "name ",
        "string, required",
        "who to greet",
        "duration, default: \"10m\"",
        "integer, default: 2",
        "secret, env: P_TOKEN",
        "Example: rewind run p name=...",
    ] {
        assert!(r.stdout.contains(want), "help lacks {want:?}: {r:?}");
    }
    let r = rewind(d.path(), &["help", "hello"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("hello [bundled]"), "{r:?}");
    assert!(r.stdout.contains("default: \"world\""), "{r:?}");
    let r = rewind(d.path(), &["help", "helo"]);
    assert_eq!(r.code, 2, "{r:?}");

    let r = rewind(d.path(), &["list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("hello ") && l.contains("[bundled]")),
        "{r:?}"
    );
    let r = rewind(d.path(), &["list", "--modules"]);
    assert!(r.stdout.contains("rewind.fs"), "{r:?}");
    assert!(r.stdout.contains("rewind.testing"), "{r:?}");
}

/// Export, edit a bundled script and a bundled module, and the next run uses the edits: no rebuild.
#[test]
fn exported_stdlib_shadows_the_bundled_copy() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    let r = rewind(d.path(), &["stdlib", "export", lib.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let hello = lib.join("scripts/hello.lua");
    let testing = lib.join("stdlib/rewind/testing.lua");
    assert!(
        hello.is_file() && testing.is_file() && lib.join("stdlib/types/rewind.fs.lua").is_file()
    );
    // exporting again refuses to overwrite edits
    let again = rewind(d.path(), &["stdlib", "export", lib.to_str().unwrap()]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("--force"), "{again:?}");

    // edit the bundled script
    let text = std::fs::read_to_string(&hello).unwrap();
    assert!(text.contains("\"hello, \""));
    std::fs::write(&hello, text.replace("\"hello, \"", "\"howdy, \"")).unwrap();
    // edit the bundled module, and use it from a script that is not in the path
    let text = std::fs::read_to_string(&testing).unwrap();
    std::fs::write(
        &testing,
        text.replace("return M\n", "M.edited = \"edited copy\"\nreturn M\n"),
    )
    .unwrap();
    let user = write(
        d.path(),
        "uses_module.lua",
        "local t = require('rewind.testing')\nreturn { description = 'x', params = {}, run = function() return t.edited or 'bundled copy' end }\n",
    );
    let user = user.to_str().unwrap();

    let bundled = rewind(d.path(), &["run", "hello", "--json"]);
    assert_eq!(json_of(&bundled)["greetings"][0], "hello, world");
    assert_eq!(
        rewind(d.path(), &["run", user]).stdout.trim(),
        "bundled copy"
    );

    let lib_s = lib.to_str().unwrap();
    let via_flag = rewind(d.path(), &["--path", lib_s, "run", "hello", "--json"]);
    assert_eq!(
        json_of(&via_flag)["greetings"][0],
        "howdy, world",
        "{via_flag:?}"
    );
    let via_flag = rewind(d.path(), &["--path", lib_s, "run", user]);
    assert_eq!(via_flag.stdout.trim(), "edited copy", "{via_flag:?}");

    let env = [("REWIND_PATH", lib_s)];
    let via_env = rewind_env(d.path(), &["run", "hello", "--json"], &env);
    assert_eq!(
        json_of(&via_env)["greetings"][0],
        "howdy, world",
        "{via_env:?}"
    );
    let via_env = rewind_env(d.path(), &["run", user], &env);
    assert_eq!(via_env.stdout.trim(), "edited copy", "{via_env:?}");

    // list shows where each comes from
    let r = rewind(d.path(), &["--path", lib_s, "list"]);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("hello "))
        .unwrap_or("");
    assert!(
        line.contains("(shadows bundled)") && line.contains("hello.lua"),
        "{r:?}"
    );
    let r = rewind(d.path(), &["--path", lib_s, "list", "--modules"]);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("rewind.testing"))
        .unwrap_or("");
    assert!(line.contains("(shadows bundled)"), "{r:?}");
    let r = rewind(d.path(), &["--path", lib_s, "help", "hello"]);
    assert!(r.stdout.contains("scripts/hello.lua"), "{r:?}");
}

#[test]
fn json_log_format() {
    let d = tempfile::tempdir().unwrap();
    let r = rewind(
        d.path(),
        &["--log-format", "json", "run", "hello", "name=logs"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{r:?}");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{l}"
        );
    }
    assert!(r.stderr.contains("greeted"), "{r:?}");
    let quiet = rewind(d.path(), &["-q", "run", "hello"]);
    assert!(!quiet.stderr.contains("greeted"), "{quiet:?}");
}

#[test]
fn sigterm_runs_on_exit_handlers_and_exits_1() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("cleaned");
    let started = d.path().join("started");
    let script = write(
        d.path(),
        "long.lua",
        &format!(
            r#"local task = require("rewind.task")
local fs = require("rewind.fs")
return {{ description = "runs until stopped", params = {{}}, run = function()
  task.on_exit(function() fs.write({marker:?}, "cleanup ran") end)
  fs.write({started:?}, "yes")
  task.sleep(60)
end }}
"#
        ),
    );
    for signal in ["TERM", "INT"] {
        let _ = std::fs::remove_file(&marker);
        let _ = std::fs::remove_file(&started);
        let child = cmd(d.path(), &["run", script.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !started.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the script never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let signum = if signal == "TERM" {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        // SAFETY: sending a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signum) }, 0);
        let r = from_output(child.wait_with_output().unwrap());
        assert_eq!(r.code, 1, "SIG{signal}: {r:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "SIG{signal} did not stop the run"
        );
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap_or_default(),
            "cleanup ran",
            "SIG{signal}: on_exit did not run: {r:?}"
        );
        assert!(r.stderr.contains("cancelled"), "{r:?}");
    }
}
