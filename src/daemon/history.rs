//! Run history in the state directory: `runs/<id>.json` (the record) and `runs/<id>.log` (the log lines
//! emitted while the run's tracing span was current, captured by [`RunLogLayer`]). Bounded per job by count
//! and by age.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::base::files::write_atomic;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Done,
    Failed,
    Cancelled,
    Skipped,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub job: String,
    /// schedule, manual, missed
    pub trigger: String,
    /// When the schedule wanted it to start (None for manual runs).
    pub scheduled: Option<DateTime<Utc>>,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub status: Status,
    pub duration_ms: Option<u64>,
    /// The script's result, shortened.
    pub result: Option<Json>,
    /// `file:line: message` for failures; the reason for skips.
    pub error: Option<String>,
    pub notify_error: Option<String>,
    /// Params given to this run on top of the job's (`key=value`, secret values masked): a manual run's
    /// overrides, a restore's snapshot id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
    /// The cluster member that ran it (`rewind daemon --cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

impl RunRecord {
    /// Seconds between the scheduled and the actual start.
    pub fn lateness(&self) -> Option<f64> {
        self.scheduled
            .map(|s| (self.started - s).num_milliseconds() as f64 / 1000.0)
    }
}

pub fn new_run_id(job: &str) -> String {
    let now = Utc::now();
    let safe: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}-{safe}-{:04x}",
        now.format("%Y%m%dT%H%M%S%3fZ"),
        rand::random::<u16>()
    )
}

/// Whether a run id is safe to use as a file name.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() < 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub struct History {
    pub dir: PathBuf,
    /// Oldest first.
    pub runs: Vec<RunRecord>,
    pub keep_per_job: usize,
    pub max_age: chrono::Duration,
}

impl History {
    /// Loads every record under `<state>/runs`; records left `running` by a crash become `failed`.
    pub fn open(
        state: &Path,
        keep_per_job: usize,
        max_age: chrono::Duration,
    ) -> anyhow::Result<History> {
        let dir = state.join("runs");
        std::fs::create_dir_all(&dir)?;
        set_runs_dir(&dir);
        let mut runs = Vec::new();
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Ok(text) = std::fs::read_to_string(&p)
                && let Ok(mut r) = serde_json::from_str::<RunRecord>(&text)
            {
                if r.status == Status::Running {
                    r.status = Status::Failed;
                    r.error = Some("the daemon stopped during this run".into());
                    let _ = write_atomic(&p, &serde_json::to_vec_pretty(&r)?);
                }
                runs.push(r);
            }
        }
        runs.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
        Ok(History {
            dir,
            runs,
            keep_per_job,
            max_age,
        })
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    /// Keeps a record in memory only (a run waiting for its start; saved when it starts).
    pub fn remember(&mut self, r: &RunRecord) {
        self.runs.push(r.clone());
    }

    /// Saves a record (new or updated) and prunes the job's history.
    pub fn save(&mut self, r: &RunRecord) {
        let path = self.dir.join(format!("{}.json", r.id));
        if let Ok(bytes) = serde_json::to_vec_pretty(r)
            && let Err(e) = write_atomic(&path, &bytes)
        {
            tracing::error!("cannot write run record {}: {e}", path.display());
        }
        match self.runs.iter_mut().rev().find(|x| x.id == r.id) {
            Some(x) => *x = r.clone(),
            None => self.runs.push(r.clone()),
        }
        if r.status != Status::Running {
            self.prune(&r.job);
        }
    }

    fn prune(&mut self, job: &str) {
        let cutoff = Utc::now() - self.max_age;
        let count = self.runs.iter().filter(|r| r.job == job).count();
        let mut excess = count.saturating_sub(self.keep_per_job);
        let dir = self.dir.clone();
        self.runs.retain(|r| {
            if r.job != job || r.status == Status::Running {
                return true;
            }
            let drop = excess > 0 || r.started < cutoff;
            excess = excess.saturating_sub(1);
            if drop {
                let _ = std::fs::remove_file(dir.join(format!("{}.json", r.id)));
                let _ = std::fs::remove_file(dir.join(format!("{}.log", r.id)));
            }
            !drop
        });
    }

    pub fn last_for(&self, job: &str) -> Option<&RunRecord> {
        self.runs
            .iter()
            .rev()
            .find(|r| r.job == job && r.status != Status::Skipped && r.status != Status::Running)
    }

    pub fn get(&self, id: &str) -> Option<&RunRecord> {
        self.runs.iter().rev().find(|r| r.id == id)
    }
}

static RUNS_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Where [`RunLogLayer`] writes run logs (`<dir>/<run_id>.log`); set once by the daemon.
pub fn set_runs_dir(dir: &Path) {
    let _ = RUNS_DIR.set(dir.to_path_buf());
}

/// Files open for runs in progress, by span.
struct RunLog(Arc<Mutex<File>>);

/// A tracing layer that appends the events emitted inside a `run` span (one with a `run_id` field) to
/// `<runs dir>/<run_id>.log`, redacted.
pub struct RunLogLayer;

struct FieldText {
    message: String,
    fields: String,
    run_id: Option<String>,
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "run_id" => self.run_id = Some(value.to_string()),
            n => self.fields.push_str(&format!(" {n}={value:?}")),
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "run_id" => self.run_id = Some(format!("{value:?}").trim_matches('"').to_string()),
            n => self.fields.push_str(&format!(" {n}={value:?}")),
        }
    }
}

impl<S> Layer<S> for RunLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "run" {
            return;
        }
        let mut v = FieldText {
            message: String::new(),
            fields: String::new(),
            run_id: None,
        };
        attrs.record(&mut v);
        let (Some(run_id), Some(dir)) = (v.run_id, RUNS_DIR.get()) else {
            return;
        };
        if !valid_id(&run_id) {
            return;
        }
        let path = dir.join(format!("{run_id}.log"));
        let Ok(f) = OpenOptions::new().create(true).append(true).open(&path) else {
            return;
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut()
                .insert(RunLog(Arc::new(Mutex::new(f))));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let mut file = None;
        for span in scope {
            if let Some(RunLog(f)) = span.extensions().get::<RunLog>() {
                file = Some(f.clone());
                break;
            }
        }
        let Some(file) = file else { return };
        let mut v = FieldText {
            message: String::new(),
            fields: String::new(),
            run_id: None,
        };
        event.record(&mut v);
        let line = format!(
            "{} {:>5} {}: {}{}\n",
            Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            event.metadata().level(),
            event.metadata().target(),
            v.message,
            v.fields
        );
        let line = crate::base::redact::redact(&line);
        if let Ok(mut f) = file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// The last record per job, for `rewind jobs` after a restart.
pub fn last_by_job(h: &History) -> HashMap<String, RunRecord> {
    let mut m = HashMap::new();
    for r in &h.runs {
        if r.status != Status::Skipped && r.status != Status::Running {
            m.insert(r.job.clone(), r.clone());
        }
    }
    m
}
