//! Helpers for tests/daemon.rs: start real `rewind daemon` processes, call `rewind jobs`, read the state dir.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_rewind");

pub struct Daemon {
    pub child: Child,
    pub jobs: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `rewind daemon --jobs JOBS --state STATE ARGS...` with stderr in `STATE/../daemon-N.log`.
    pub fn start(jobs: &Path, state: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = state.with_extension(format!("log{}", rand_suffix()));
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

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn rewind(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("REWIND_PATH")
        .output()
        .expect("run rewind")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Slack fake (tests/fakes/slack_fake.py): its base URL and the file it records messages in.
pub struct SlackFake {
    pub child: Child,
    pub url: String,
    pub record: PathBuf,
}

impl SlackFake {
    pub fn start(dir: &Path) -> SlackFake {
        let record = dir.join("slack.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/slack_fake.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&record)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 for the Slack fake");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        SlackFake {
            child,
            url: format!("http://127.0.0.1:{}", line.trim()),
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

impl Drop for SlackFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
