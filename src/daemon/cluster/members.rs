//! Membership: each member renews `members/<name>.json`, reads the others', copies their run records and
//! prunes old claims and records.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Cluster, within};
use crate::daemon::Daemon;

/// One member's announcement.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Member {
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub instance: String,
    pub started: DateTime<Utc>,
    pub renewed: DateTime<Utc>,
    /// How often it renews; it counts as gone after three periods without a renewal.
    pub every_ms: u64,
    pub jobs: Vec<String>,
    /// Its runs in progress.
    pub running: Vec<String>,
    /// Set by the reader: renewed within three periods.
    #[serde(default)]
    pub live: bool,
}

fn member_key(name: &str) -> String {
    format!("members/{name}.json")
}

impl Cluster {
    /// Renews our announcement. Returns the announcement it replaces when another daemon with our name
    /// wrote it since our start (two daemons given the same --member): read before writing, because
    /// after the write each would mostly read back its own.
    async fn announce(&self, me: &Member) -> anyhow::Result<Option<Member>> {
        let key = member_key(&self.member);
        let current = within(
            10,
            "reading our announcement",
            self.store.get_versioned(&key),
        )
        .await?;
        let twin = current
            .and_then(|v| serde_json::from_slice::<Member>(&v.body).ok())
            .filter(|m| m.instance != self.instance && m.renewed > self.started);
        let body = serde_json::to_vec_pretty(me)?;
        let reader = Box::pin(std::io::Cursor::new(body));
        within(10, "renewing the membership", async {
            self.store.put(&key, reader).await?;
            Ok(())
        })
        .await?;
        Ok(twin)
    }

    /// Every member's announcement, each marked live or not.
    async fn members(&self) -> anyhow::Result<Vec<Member>> {
        let keys: Vec<String> = self
            .keys_under("members/")
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect();
        let now = Utc::now();
        let mut out = Vec::new();
        for k in keys.iter().filter(|k| k.ends_with(".json")) {
            let Some(v) = within(10, "reading a member", self.store.get_versioned(k)).await? else {
                continue;
            };
            if let Ok(mut m) = serde_json::from_slice::<Member>(&v.body) {
                let period = chrono::Duration::milliseconds(3 * m.every_ms.max(1) as i64);
                m.live = now - m.renewed <= period;
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Removes our announcement at a clean stop, so the others count one member less at once.
    async fn leave(&self) {
        let key = member_key(&self.member);
        if let Ok(Some(v)) = within(5, "leaving", self.store.get_versioned(&key)).await
            && serde_json::from_slice::<Member>(&v.body).is_ok_and(|m| m.instance == self.instance)
        {
            let _ = within(5, "leaving", self.store.delete_if(&key, &v.version)).await;
        }
    }
}

impl Daemon {
    fn announcement(&self, c: &Cluster) -> Member {
        let s = self.lock();
        Member {
            name: c.member.clone(),
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
            instance: c.instance.clone(),
            started: c.started,
            renewed: Utc::now(),
            every_ms: c.every.as_millis() as u64,
            jobs: s.jobs.keys().cloned().collect(),
            running: s.jobs.values().filter_map(|j| j.running.clone()).collect(),
            live: true,
        }
    }

    /// One round: renew, read the members, copy the others' runs, prune when due.
    async fn cluster_round(self: &Rc<Self>, c: &Cluster, hours: i64, prune: bool) {
        match c.announce(&self.announcement(c)).await {
            Ok(Some(m)) => tracing::warn!(
                "cluster {}: another daemon (pid {} on {}) also calls itself {}; give each its own --member",
                c.url,
                m.pid,
                m.host,
                m.name
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!("cluster {}: {e:#}", c.url),
        }
        match c.members().await {
            Ok(members) => {
                let live = members.iter().filter(|m| m.live).count();
                self.lock().metrics.set_members(live);
                c.view.lock().unwrap_or_else(|e| e.into_inner()).members = members;
            }
            Err(e) => tracing::warn!("cluster {}: {e:#}", c.url),
        }
        match c.others_runs(hours).await {
            Ok(recs) if !recs.is_empty() => self.merge_remote(recs),
            Ok(_) => {}
            Err(e) => tracing::warn!("cluster {}: copying run records: {e:#}", c.url),
        }
        if prune {
            match c.prune().await {
                Ok((0, 0)) => {}
                Ok((claims, runs)) => tracing::info!(
                    "cluster {}: pruned {claims} claims and {runs} run records older than the keep-for period",
                    c.url
                ),
                Err(e) => tracing::warn!("cluster {}: pruning: {e:#}", c.url),
            }
        }
        self.write_status_soon();
    }
}

/// Renews this member every period until `stop`, then leaves the cluster.
pub(in crate::daemon) async fn keep_membership(
    d: Rc<Daemon>,
    c: Arc<Cluster>,
    stop: tokio_util::sync::CancellationToken,
) {
    // Prune about four times per keep-for period, between once a period and once an hour.
    let prune_every = (c.keep_for.to_std().unwrap_or(Duration::from_secs(3600)) / 4)
        .clamp(c.every, Duration::from_secs(3600).max(c.every));
    let mut last_prune: Option<tokio::time::Instant> = None;
    // The first round copies a day of run records; later ones the last two hours.
    let mut hours = 24;
    loop {
        let prune = last_prune.is_none_or(|t| t.elapsed() >= prune_every);
        if prune {
            last_prune = Some(tokio::time::Instant::now());
        }
        d.cluster_round(&c, hours, prune).await;
        hours = 2;
        tokio::select! {
            _ = tokio::time::sleep(c.every) => {}
            _ = stop.cancelled() => break,
        }
    }
    c.leave().await;
}
