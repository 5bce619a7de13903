//! Runs the Lua test suite (`tests/lua/*_test.lua`) with the real binary.

use std::process::Command;

#[test]
fn lua_tests_pass() {
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["test", "tests/lua"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run rewind test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.lines().last().unwrap_or("");
    // "N passed, 0 failed" with N > 0: a run that found no test is a failure, not a pass.
    let passed: usize = summary
        .split(" passed")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        out.status.success() && summary.ends_with(" 0 failed") && passed > 0,
        "rewind test tests/lua failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
}
