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
    assert!(
        out.status.success() && summary.ends_with(" 0 failed"),
        "rewind test tests/lua failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
}
