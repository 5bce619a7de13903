//! Claiming a scheduled occurrence: the member whose conditional create of its claim lands runs it.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Cluster, within};
use crate::daemon::Daemon;
use crate::daemon::runs::skip_record;

/// What a claim object holds: who runs the occurrence.
#[derive(Serialize, Deserialize)]
struct ClaimRecord {
    member: String,
    instance: String,
    host: String,
    pid: u32,
    scheduled: DateTime<Utc>,
    claimed_at: DateTime<Utc>,
}

pub enum Claim {
    Won,
    /// Another member claimed it first (its name).
    Lost(String),
}

/// A job name as a key component: other characters become `_`.
fn key_part(job: &str) -> String {
    job.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `claims/<job>/<scheduled time, ms>`: the schedule's own time (before jitter), the same on every member.
pub fn claim_key(job: &str, at: DateTime<Utc>) -> String {
    format!(
        "claims/{}/{}",
        key_part(job),
        at.format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// When a claim key's occurrence was scheduled.
pub fn claim_time(key: &str) -> Option<DateTime<Utc>> {
    let t = key.rsplit('/').next()?;
    chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%S%.3fZ")
        .ok()
        .map(|n| n.and_utc())
}

impl Cluster {
    /// Claims the occurrence of `job` scheduled at `at`.
    pub async fn claim(&self, job: &str, at: DateTime<Utc>) -> anyhow::Result<Claim> {
        let key = claim_key(job, at);
        let rec = ClaimRecord {
            member: self.member.clone(),
            instance: self.instance.clone(),
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
            scheduled: at,
            claimed_at: Utc::now(),
        };
        let body = bytes::Bytes::from(serde_json::to_vec(&rec)?);
        let created = within(10, "claiming", self.store.create_if_absent(&key, body)).await?;
        if created.is_some() {
            return Ok(Claim::Won);
        }
        let cur = within(10, "reading a claim", self.store.get_versioned(&key)).await?;
        let holder = cur.and_then(|v| serde_json::from_slice::<ClaimRecord>(&v.body).ok());
        Ok(match holder {
            // Our create landed but its answer was lost, and the retry found our own claim.
            Some(h) if h.instance == self.instance => Claim::Won,
            Some(h) => Claim::Lost(h.member),
            None => Claim::Lost("another member".into()),
        })
    }
}

impl Daemon {
    /// Starts the occurrence of `name` scheduled at `base` (due at `at`, its jittered time). Alone, at
    /// once; in a cluster, only after winning its claim. A member still running the job's previous run
    /// does not claim, leaving the occurrence to a free member.
    pub(in crate::daemon) fn fire_scheduled(
        self: &Rc<Self>,
        name: &str,
        base: DateTime<Utc>,
        at: DateTime<Utc>,
        trigger: &'static str,
    ) {
        let Some(cluster) = self.cluster.clone() else {
            let _ = self.fire(name, Some(at), trigger, None);
            return;
        };
        {
            let mut s = self.lock();
            let Some(j) = s.jobs.get_mut(name) else {
                return;
            };
            j.last_fire = Some(at);
            if let Some(prev) = j.running.clone() {
                tracing::info!(
                    "job {name}: the previous run {prev} is still going here; the run at {} is left to another member",
                    base.to_rfc3339()
                );
                s.metrics.claimed("busy");
                return;
            }
        }
        let this = self.clone();
        let name = name.to_string();
        tokio::task::spawn_local(async move {
            match cluster.claim(&name, base).await {
                Ok(Claim::Won) => {
                    this.lock().metrics.claimed("won");
                    let _ = this.fire(&name, Some(at), trigger, None);
                }
                Ok(Claim::Lost(by)) => {
                    this.lock().metrics.claimed("lost");
                    tracing::debug!(
                        "job {name}: the run at {} is claimed by {by}",
                        base.to_rfc3339()
                    );
                }
                Err(e) => {
                    let why = format!(
                        "could not claim the run at {} in {}, so it did not run here: {e:#}",
                        base.to_rfc3339(),
                        cluster.url
                    );
                    tracing::error!("job {name}: {why}");
                    let r = skip_record(&name, trigger, Some(at), why);
                    let mut s = this.lock();
                    s.metrics.claimed("error");
                    s.metrics.record_run(&name, "skipped", None, 0.0);
                    s.history.save(&r);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_keys_carry_their_time_to_the_millisecond() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T17:04:05.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let k = claim_key("nightly db/backup", at);
        assert_eq!(k, "claims/nightly_db_backup/20261203T170405.250Z");
        assert_eq!(claim_time(&k), Some(at));
        assert_eq!(claim_time("claims/x/garbage"), None);
    }
}
