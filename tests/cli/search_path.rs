//! `help`, `list` and the search path: an exported stdlib shadows the bundled copy with no rebuild.

use super::*;
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
