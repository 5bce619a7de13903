//! `rewind daemon` and `rewind jobs`, driven as real processes: schedules, hot reload, no overlap,
//! SIGTERM cancellation, history across restarts, the HTTP API and Slack notifications.

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::*;
use common::process::{free_port, text, wait_for};
use serde_json::Value;

fn write(p: &Path, text: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    // Write then rename, as editors do, so the daemon never sees half a file.
    let tmp = p.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, p).unwrap();
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&jobs).unwrap();
    (dir, jobs, state)
}

fn greetings(r: &Value) -> String {
    r["result"]["greetings"][0]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let body = body.map(|b| serde_json::to_vec(&b).unwrap());
    let r = common::http::request(method, url, &headers, body);
    (r.status, r.body)
}

mod api;
mod cluster;
mod runs;
mod schedules;
