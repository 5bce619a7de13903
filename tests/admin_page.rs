//! The admin page in a real browser: each case of tests/admin/browser.py (Debian's Chromium driven by
//! Playwright) against the real daemon binary, one test per case so they run and fail separately.
//! Screenshots land in target/admin-screenshots/CASE/. tests/run.sh installs Chromium and Playwright;
//! without them these tests fail (they never pass having run nothing).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::azure::python;

fn case(name: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run tests/run.sh (it installs Debian's chromium)"
    );
    let out = Command::new(python())
        .arg(root.join("tests/admin/browser.py"))
        .args(["--rewind", env!("CARGO_BIN_EXE_rewind"), "--out"])
        .arg(root.join("target/admin-screenshots"))
        .arg(name)
        .output()
        .expect("run tests/admin/browser.py with the tests' Python (tests/run.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("case {name}: passed")),
        "admin page case {name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
}

#[test]
fn login_works_and_logout_ends_the_session() {
    case("login");
}

#[test]
fn a_wrong_password_is_refused_audited_and_rate_limited() {
    case("wrong_password");
}

#[test]
fn an_address_outside_the_allowlist_gets_403() {
    case("allowlist");
}

#[test]
fn a_post_without_the_csrf_token_is_refused() {
    case("csrf");
}

#[test]
fn a_viewer_sees_no_run_button_and_a_forged_post_is_refused() {
    case("viewer");
}

#[test]
fn run_now_follows_the_log_live_until_done() {
    case("run_now_live");
}

#[test]
fn an_idle_session_expires() {
    case("session_expires");
}

#[test]
fn a_trusted_proxy_names_the_user_and_nobody_else_can() {
    case("trust_proxy");
}

#[test]
fn snapshots_are_listed_verified_and_restored_after_the_typed_id() {
    case("snapshots_restore");
}

#[test]
fn tls_serves_the_page_with_secure_cookies_and_a_bad_key_is_named() {
    case("tls");
}

#[test]
fn hash_password_asks_twice_without_echo_on_a_terminal() {
    case("hash_password_tty");
}
