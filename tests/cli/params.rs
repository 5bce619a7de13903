//! Params: exit codes, unknown scripts and params, type conversion, params files and precedence.

use super::*;
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
