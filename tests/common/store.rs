//! Running rewind scripts and Lua tests for the store tests.

use std::path::Path;
use std::process::Output;

use super::process::{repo, text};

/// Runs `rewind test <file>` from the repo root with extra env; returns (passed, output).
pub fn lua_test(file: &str, env: &[(&str, String)]) -> (bool, String) {
    let mut cmd = super::process::rewind();
    cmd.arg("test").arg(file).current_dir(repo());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run rewind test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains(" 0 failed"), text)
}

/// Writes `body` as a script in `dir` and runs it with `rewind run <script> --json`.
pub fn run_script(dir: &Path, body: &str, env: &[(&str, String)]) -> Output {
    let script = dir.join("script.lua");
    std::fs::write(&script, body).unwrap();
    let mut cmd = super::process::rewind();
    cmd.arg("run").arg(&script).arg("--json").current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rewind")
}

/// The script's JSON result (the last line of stdout).
pub fn result(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{}", text(out)))
}
