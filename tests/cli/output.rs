//! What a user sees: secrets never shown, Lua errors with file:line, JSON logs.

use super::*;
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
    // The traceback is for whoever debugs the script: only with -v.
    assert!(!r.stderr.contains("stack traceback:"), "{r:?}");
    let r = rewind(d.path(), &["-v", "run", "err.lua"]);
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
