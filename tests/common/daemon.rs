//! Helpers for tests/daemon.rs: start real `rewind daemon` processes, call `rewind jobs`, read the state dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::{BIN, wait_for};
use super::process::{Killed, python_fake, spawn_announcing, unique};

pub struct Daemon {
    pub child: Child,
    pub jobs: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `rewind daemon --jobs JOBS --state STATE ARGS...` with stderr in `STATE/../daemon-N.log`.
    pub fn start(jobs: &Path, state: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = state.with_extension(format!("log{}", unique()));
        let mut cmd = Command::new(BIN);
        cmd.arg("daemon")
            .arg("--jobs")
            .arg(jobs)
            .arg("--state")
            .arg(state)
            .args(args)
            .env_remove("REWIND_PATH")
            .env_remove("REWIND_DAEMON_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start daemon");
        let d = Daemon {
            child,
            jobs: jobs.to_path_buf(),
            state: state.to_path_buf(),
            log,
        };
        let sock = state.join("daemon.sock");
        wait_for("the daemon socket", Duration::from_secs(20), || {
            sock.exists()
        });
        d
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM and wait for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the daemon did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn rewind(args: &[&str]) -> Output {
    super::process::rewind()
        .args(args)
        .output()
        .expect("run rewind")
}

/// Every run record in the state dir, oldest first.
pub fn runs(state: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = std::fs::read_dir(state.join("runs"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .filter_map(|b| serde_json::from_slice(&b).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a: &Value, b: &Value| {
        a["started"]
            .as_str()
            .unwrap_or("")
            .cmp(b["started"].as_str().unwrap_or(""))
    });
    out
}

pub fn runs_of(state: &Path, job: &str, status: &str) -> Vec<Value> {
    runs(state)
        .into_iter()
        .filter(|r| r["job"] == job && r["status"] == status)
        .collect()
}

pub fn status(state: &Path) -> Value {
    std::fs::read(state.join("jobs.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// The Slack fake (tests/fakes/slack_fake.py): its base URL and the file it records messages in.
pub struct SlackFake {
    _child: Killed,
    pub url: String,
    pub record: PathBuf,
}

impl SlackFake {
    pub fn start(dir: &Path) -> SlackFake {
        let record = dir.join("slack.jsonl");
        let (child, port) =
            spawn_announcing(python_fake("slack_fake.py").arg(&record), "the Slack fake");
        SlackFake {
            _child: Killed(child),
            url: format!("http://127.0.0.1:{port}"),
            record,
        }
    }

    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
