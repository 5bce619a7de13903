//! The audit log: who did what, from which address, when. One JSON object per line in
//! `<state>/audit.jsonl`, appended and never rewritten; the page shows the newest entries.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
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
        // Names and addresses: readable by the daemon's user only, like its socket.
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .and_then(|mut f| f.write_all(&line));
        if let Err(err) = res {
            tracing::error!("cannot write the audit log {}: {err}", self.path.display());
        }
    }

    /// The newest `n` entries, newest first, from the file's last 1 MiB (the page shows a few hundred;
    /// the file itself grows without bound and is never read whole).
    pub fn newest(&self, n: usize) -> Vec<Entry> {
        use std::io::{Read, Seek, SeekFrom};
        const TAIL: u64 = 1024 * 1024;
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let start = len.saturating_sub(TAIL);
        let mut bytes = Vec::new();
        if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        let text = String::from_utf8_lossy(&bytes);
        // A tail that starts mid-line drops that partial line.
        let text = if start > 0 {
            text.split_once('\n').map(|(_, rest)| rest).unwrap_or("")
        } else {
            &text
        };
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str(l).ok())
            .take(n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_entries_come_from_the_tail_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::new(dir.path().join("audit.jsonl"));
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        // Well over the 1 MiB tail, so the first line read is a partial one.
        for i in 0..12_000 {
            audit.record("olivia", ip, "run", &format!("job-{i}"), &"x".repeat(80));
        }
        let got = audit.newest(3);
        let targets: Vec<&str> = got.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(targets, ["job-11999", "job-11998", "job-11997"]);
        assert_eq!(got[0].addr, "10.1.2.3");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("audit.jsonl"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the audit log is the daemon user's only"
        );
        assert!(
            audit.newest(100_000).len() < 12_000,
            "only the tail is read"
        );
    }
}
