//! The audit log: who did what, from which address, when. One JSON object per line in
//! `<state>/audit.jsonl`, appended and never rewritten; the page shows the newest entries.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Entry {
    pub time: DateTime<Utc>,
    /// The user, or the name tried at a failed login.
    pub user: String,
    pub addr: String,
    /// login, login-failed, logout, run, run-refused, ...
    pub action: String,
    /// The job or run the action was about.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

pub struct Audit {
    path: PathBuf,
    write: Mutex<()>,
}

impl Audit {
    pub fn new(path: PathBuf) -> Audit {
        Audit {
            path,
            write: Mutex::new(()),
        }
    }

    /// Appends an entry (and logs it): a failure to write is logged, never fatal to the request.
    pub fn record(&self, user: &str, addr: IpAddr, action: &str, target: &str, detail: &str) {
        let e = Entry {
            time: Utc::now(),
            user: user.into(),
            addr: addr.to_string(),
            action: action.into(),
            target: target.into(),
            detail: crate::base::redact::redact(detail),
        };
        tracing::info!(user = %e.user, addr = %e.addr, action = %e.action, target = %e.target, "audit: {}", e.detail);
        let Ok(mut line) = serde_json::to_vec(&e) else {
            return;
        };
        line.push(b'\n');
        let _g = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(&line));
        if let Err(err) = res {
            tracing::error!("cannot write the audit log {}: {err}", self.path.display());
        }
    }

    /// The newest `n` entries, newest first.
    pub fn newest(&self, n: usize) -> Vec<Entry> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut out: Vec<Entry> = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str(l).ok())
            .take(n)
            .collect();
        out.truncate(n);
        out
    }
}
