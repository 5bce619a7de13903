//! `rewind test`: a run that tests nothing fails and says why.

use super::*;

#[test]
fn a_test_run_that_ran_nothing_fails() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = rewind(d.path(), &["test", empty.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("0 passed, 0 failed"), "{r:?}");
    assert!(r.stderr.contains("no test cases found in"), "{r:?}");

    let file = write(
        d.path(),
        "one_test.lua",
        r#"local t = require("rewind.testing")
t.test("adds", function() t.eq(1 + 1, 2) end)
return t
"#,
    );
    let r = rewind(d.path(), &["test", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("1 passed, 0 failed"), "{r:?}");
    let r = rewind(
        d.path(),
        &["test", file.to_str().unwrap(), "--filter", "nomatch"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("no test case matches --filter 'nomatch'"),
        "{r:?}"
    );
}
