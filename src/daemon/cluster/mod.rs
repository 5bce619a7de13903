//! `rewind daemon --cluster URL`: daemons with the same jobs share a store folder and run each scheduled
//! occurrence of a job once among them.
//!
//! - `claims/<job>/<scheduled time>`: created with a conditional create (S3 `If-None-Match: *`, Azure
//!   `If-None-Match: *`, local exclusive create) by the member that runs the occurrence. The others lose
//!   the race and do nothing. Manual runs are not claimed: they run where they were asked for.
//! - `members/<name>.json`: each member's announcement, renewed every `--member-every`; a member not
//!   renewed for three periods is shown as gone.
//! - `runs/<YYYY-MM-DDTHH>/<run id>.json`: every member's run records (the hour of the start), copied into
//!   each member's own history, so `rewind jobs`, the API and the admin page show every run.
//!
//! Claims and run records older than `--keep-for` are pruned by every member (deletes are idempotent).
//! What keeps a paused or cut-off member from committing after another took over is not the claim but the
//! lease each procedure holds on its target (a lost lease stops the run).

mod claims;
mod members;
mod runs;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::prims::storage::{self, Backend};

pub use members::Member;
pub(in crate::daemon) use members::keep_membership;

/// How a cluster member was configured on the command line.
pub struct Settings {
    pub url: String,
    pub member: String,
    pub every: Duration,
    pub keep_for: chrono::Duration,
}

pub struct Cluster {
    pub store: Arc<dyn Backend>,
    /// The store URL, without secrets.
    pub url: String,
    pub member: String,
    /// Tells two daemons that were given the same member name apart (and a claim of ours whose answer
    /// was lost from one of another's).
    pub instance: String,
    pub every: Duration,
    pub keep_for: chrono::Duration,
    pub started: DateTime<Utc>,
    /// What the last renewal saw.
    pub view: Mutex<ClusterView>,
    /// Run-record keys already copied from the store, with their ETag, so unchanged ones are not read.
    seen: Mutex<std::collections::HashMap<String, String>>,
}

/// What `rewind jobs` and `GET /api/jobs` show of the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ClusterView {
    pub url: String,
    pub member: String,
    pub members: Vec<Member>,
}

impl ClusterView {
    pub fn live(&self) -> usize {
        self.members.iter().filter(|m| m.live).count()
    }
}

impl Cluster {
    /// Opens the cluster's store and checks that it can be listed (a wrong URL or missing credentials
    /// fail at start-up, not at the first tick).
    pub async fn open(s: Settings) -> anyhow::Result<Cluster> {
        let store = storage::open(&s.url, &Default::default()).await?;
        let probe = store.list("members/");
        futures::pin_mut!(probe);
        if let Some(Err(e)) = futures::StreamExt::next(&mut probe).await {
            anyhow::bail!("cannot list {}members/: {e:#}", store.url());
        }
        let url = store.url();
        Ok(Cluster {
            view: Mutex::new(ClusterView {
                url: url.clone(),
                member: s.member.clone(),
                members: Vec::new(),
            }),
            store,
            url,
            member: s.member,
            instance: format!("{:016x}", rand::random::<u64>()),
            every: s.every,
            keep_for: s.keep_for,
            started: Utc::now(),
            seen: Default::default(),
        })
    }

    pub fn view(&self) -> ClusterView {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every object under `prefix`, all pages.
    async fn keys_under(&self, prefix: &str) -> anyhow::Result<Vec<storage::ObjectMeta>> {
        within(60, &format!("listing {prefix}"), async {
            let mut out = Vec::new();
            let mut pages = self.store.list(prefix);
            while let Some(page) = futures::StreamExt::next(&mut pages).await {
                out.extend(page?);
            }
            Ok(out)
        })
        .await
    }
}

/// A store call with a deadline: a store that hangs must not hold up the scheduler's decisions.
async fn within<T>(
    secs: u64,
    what: &str,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!("{what}: no answer from the cluster store within {secs}s"),
    }
}

/// Member names become keys: letters, digits, `-`, `_` and `.` only.
pub fn check_member_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--member '{name}': use letters, digits, '-', '_' and '.' (at most 100, not starting with '.')"
        ))
    }
}
