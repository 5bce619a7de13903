//! `--json` on every command that answers with data (list, list --modules, help, check, test, stdlib
//! export), in the shapes the README documents; `rewind test --junit FILE` validated against the JUnit
//! schema CI systems read (tests/fixtures/junit.xsd, with xmllint).

use super::*;

#[test]
fn list_help_check_and_export_answer_in_json() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "lib/scripts/greet.lua", PARAMS_SCRIPT);
    write(d.path(), "lib/scripts/broken.lua", "return {");
    let lib = d.path().join("lib");
    let lib = lib.to_str().unwrap();

    let r = rewind(d.path(), &["--path", lib, "list", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let scripts = json_of(&r)["scripts"].as_array().cloned().unwrap();
    let by = |n: &str| {
        scripts
            .iter()
            .find(|s| s["name"] == n)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by("backup-dir")["origin"], "bundled", "{r:?}");
    assert_eq!(by("backup-dir")["loads"], true);
    assert!(
        by("greet")["origin"]
            .as_str()
            .unwrap()
            .ends_with("greet.lua"),
        "{r:?}"
    );
    assert_eq!(
        by("greet")["description"],
        "Declares one param of each type"
    );
    assert_eq!(by("broken")["loads"], false, "{r:?}");

    let r = rewind(d.path(), &["list", "--modules", "--json"]);
    let modules = json_of(&r)["modules"].as_array().cloned().unwrap();
    let store = modules
        .iter()
        .find(|m| m["name"] == "rewind.store")
        .unwrap();
    assert_eq!(store["kind"], "rust", "{r:?}");
    assert!(
        modules
            .iter()
            .any(|m| m["kind"] == "lua" && m["origin"] == "bundled"),
        "{r:?}"
    );

    let r = rewind(d.path(), &["--path", lib, "help", "greet", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let h = json_of(&r);
    let params = h["params"].as_array().unwrap();
    let p = |n: &str| params.iter().find(|p| p["name"] == n).cloned().unwrap();
    assert_eq!(p("name")["required"], true);
    assert_eq!(p("count")["type"], "integer");
    assert_eq!(p("count")["default"], 2);
    assert_eq!(p("level")["env"], "P_LEVEL");
    assert_eq!(p("token")["secret"], true);
    assert_eq!(
        h["description"],
        "Declares one param of each type\nSecond line of the description."
    );
    let r = rewind(d.path(), &["help", "--json"]);
    let commands = json_of(&r)["commands"].as_array().cloned().unwrap();
    assert!(commands.iter().any(|c| c["name"] == "run"), "{r:?}");

    let r = rewind(
        d.path(),
        &["--path", lib, "check", "greet", "name=x", "--json"],
    );
    assert_eq!(
        (r.code, json_of(&r)["ok"].clone()),
        (0, true.into()),
        "{r:?}"
    );
    // A failure is a JSON answer too, with the usual exit code and message on stderr.
    let r = rewind(
        d.path(),
        &["--path", lib, "check", "greet", "count=many", "--json"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    let j = json_of(&r);
    assert_eq!(j["ok"], false);
    assert!(j["error"].as_str().unwrap().contains("'count'"), "{r:?}");
    assert!(r.stderr.contains("'count'"), "{r:?}");
    let r = rewind(d.path(), &["check", "nope", "--json"]);
    assert_eq!(
        (r.code, json_of(&r)["ok"].clone()),
        (2, false.into()),
        "{r:?}"
    );

    let out = d.path().join("exported");
    let r = rewind(
        d.path(),
        &["stdlib", "export", out.to_str().unwrap(), "--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let j = json_of(&r);
    let files = j["files"].as_array().unwrap();
    assert_eq!(j["exported"].as_u64().unwrap() as usize, files.len());
    assert!(out.join("scripts/backup-dir.lua").is_file());
}

const CASES: &str = r#"local t = require("rewind.testing")
t.test("adds", function() t.eq(1 + 1, 2) end)
t.test("compares <tags> & \"quotes\"", function() t.eq("a", "b") end)
return t
"#;

#[test]
fn test_results_as_json_and_as_junit_that_validates() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "t/a_test.lua", CASES);
    write(d.path(), "t/b_test.lua", "error('does not load')");
    let dir = a.parent().unwrap().to_str().unwrap().to_string();

    let r = rewind(d.path(), &["test", &dir, "--json"]);
    assert_eq!(r.code, 1, "a failed case fails the run: {r:?}");
    let j = json_of(&r);
    assert_eq!(
        (j["passed"].clone(), j["failed"].clone()),
        (1.into(), 2.into()),
        "{r:?}"
    );
    let cases = j["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3, "{r:?}");
    assert_eq!(cases[0]["name"], "adds");
    assert_eq!(cases[0]["ok"], true);
    assert!(
        cases[1]["error"].as_str().unwrap().contains("a_test.lua:3"),
        "{r:?}"
    );
    assert_eq!(cases[2]["name"], "(load)");
    assert!(
        r.stderr.contains("PASS") && r.stderr.contains("FAIL"),
        "lines go to stderr: {r:?}"
    );

    let report = d.path().join("reports/junit.xml");
    let r = rewind(
        d.path(),
        &["test", &dir, "--junit", report.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "a missing report directory is bad input: {r:?}");
    assert!(r.stderr.contains("does not exist"), "{r:?}");
    assert!(!r.stdout.contains("PASS"), "no test ran: {r:?}");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    let r = rewind(
        d.path(),
        &["test", &dir, "--junit", report.to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("1 passed, 2 failed"), "{r:?}");
    let xml = std::fs::read_to_string(&report).unwrap();
    let check = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit.xsd"))
        .arg(&report)
        .output()
        .expect("xmllint (Debian libxml2-utils; tests/run.sh installs it)");
    assert!(
        check.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        xml.matches("<testsuite ").count(),
        2,
        "one suite per file: {xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
    assert!(
        xml.contains("compares &lt;tags&gt; &amp; &quot;quotes&quot;"),
        "escaped: {xml}"
    );
    assert!(xml.contains("does not load"), "{xml}");
}
