//! Run records in the cluster's store: each member publishes its own and copies the others'.

use chrono::{DateTime, Duration as Span, Utc};

use super::claims::claim_time;
use super::{Cluster, within};
use crate::daemon::Daemon;
use crate::daemon::history::{RunRecord, Status};

const HOUR: &str = "%Y-%m-%dT%H";

fn run_key(hour: DateTime<Utc>, id: &str) -> String {
    format!("runs/{}/{id}.json", hour.format(HOUR))
}

/// The hour a `runs/<hour>/...` key belongs to.
fn run_hour(key: &str) -> Option<DateTime<Utc>> {
    let h = key.strip_prefix("runs/")?.split('/').next()?;
    chrono::NaiveDateTime::parse_from_str(&format!("{h}:00"), "%Y-%m-%dT%H:%M")
        .ok()
        .map(|n| n.and_utc())
}

impl Cluster {
    /// Writes a run record under the hour it started in, and, once finished in a later hour, under that
    /// hour too (members copy only recent hours).
    pub async fn publish(&self, rec: &RunRecord) {
        let mut keys = vec![run_key(rec.started, &rec.id)];
        if let Some(f) = rec.finished
            && f.format(HOUR).to_string() != rec.started.format(HOUR).to_string()
        {
            keys.push(run_key(f, &rec.id));
        }
        for key in keys {
            let body = match serde_json::to_vec_pretty(rec) {
                Ok(b) => b,
                Err(_) => return,
            };
            let reader = Box::pin(std::io::Cursor::new(body));
            let res = within(10, "publishing a run record", async {
                self.store.put(&key, reader).await?;
                Ok(())
            })
            .await;
            if let Err(e) = res {
                tracing::warn!(
                    "cluster {}: run {} is not in the cluster's history: {e:#}",
                    self.url,
                    rec.id
                );
            }
        }
    }

    /// Records of other members from the last `hours` hours that are new or changed since the last call.
    pub async fn others_runs(&self, hours: i64) -> anyhow::Result<Vec<RunRecord>> {
        let now = Utc::now();
        let mut metas = Vec::new();
        for h in (0..hours).rev() {
            metas.extend(
                self.keys_under(&format!("runs/{}/", (now - Span::hours(h)).format(HOUR)))
                    .await?,
            );
        }
        let mut out = Vec::new();
        for m in metas {
            // The ETag, or on the local store (which lists none) the time and size.
            let etag = m
                .etag
                .clone()
                .unwrap_or_else(|| format!("{:?}/{}", m.mtime, m.size));
            let unchanged = self
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&m.key)
                .is_some_and(|e| *e == etag);
            if unchanged {
                continue;
            }
            let Some(v) =
                within(10, "reading a run record", self.store.get_versioned(&m.key)).await?
            else {
                continue;
            };
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(m.key.clone(), etag);
            if let Ok(r) = serde_json::from_slice::<RunRecord>(&v.body)
                && r.member.as_deref() != Some(self.member.as_str())
            {
                out.push(r);
            }
        }
        // Forget keys of hours no longer read.
        let oldest = now - Span::hours(hours.max(2) + 1);
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| run_hour(k).is_none_or(|h| h >= oldest));
        Ok(out)
    }

    /// Deletes claims scheduled, and run records of hours ended, more than keep-for ago.
    pub async fn prune(&self) -> anyhow::Result<(usize, usize)> {
        let cutoff = Utc::now() - self.keep_for;
        let old_claims: Vec<String> = self
            .keys_under("claims/")
            .await?
            .into_iter()
            .filter(|m| claim_time(&m.key).is_some_and(|t| t < cutoff))
            .map(|m| m.key)
            .collect();
        let old_runs: Vec<String> = self
            .keys_under("runs/")
            .await?
            .into_iter()
            .filter(|m| run_hour(&m.key).is_some_and(|h| h + Span::hours(1) < cutoff))
            .map(|m| m.key)
            .collect();
        let (c, r) = (old_claims.len(), old_runs.len());
        for batch in old_claims
            .into_iter()
            .chain(old_runs)
            .collect::<Vec<_>>()
            .chunks(1000)
        {
            within(60, "pruning", self.store.delete(batch.to_vec())).await?;
        }
        Ok((c, r))
    }
}

impl Daemon {
    /// Copies other members' run records into this member's history; a job's last run becomes the
    /// newest finished one, wherever it ran.
    pub(super) fn merge_remote(&self, recs: Vec<RunRecord>) {
        let mut s = self.lock();
        for r in recs {
            let finished = !matches!(r.status, Status::Running | Status::Skipped);
            if finished
                && let Some(j) = s.jobs.get_mut(&r.job)
                && j.last.as_ref().is_none_or(|l| l.started <= r.started)
            {
                j.last = Some(r.clone());
            }
            s.history.save(&r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_keys_are_filed_by_hour() {
        let t = DateTime::parse_from_rfc3339("2026-12-03T17:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        let k = run_key(t, "20261203T175959000Z-job-abcd");
        assert_eq!(k, "runs/2026-12-03T17/20261203T175959000Z-job-abcd.json");
        assert_eq!(
            run_hour(&k),
            Some(
                DateTime::parse_from_rfc3339("2026-12-03T17:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        assert_eq!(run_hour("runs/nonsense/x.json"), None);
    }
}
