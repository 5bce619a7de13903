//! `rewind daemon`: runs jobs on schedules, reloads them when their files change, records every run, and
//! serves a control API (a unix socket in the state directory, and HTTP with `--listen`).
//!
//! Threads: the main thread runs a tokio `LocalSet` with the scheduler loop and every run (Lua is !Send;
//! runs are `spawn_local`ed, so the scheduler stays responsive while they await I/O). The HTTP server, the
//! file watcher and signal handling feed the scheduler through channels; shared state sits behind a mutex.

pub mod admin;
pub mod api;
pub mod calls;
pub mod cluster;
pub mod history;
pub mod jobs;
pub mod metrics;
mod reload;
mod runs;
pub mod schedule;
mod scheduler;
pub mod tls;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::base::errors::UsageError;
use crate::host::Host;
use history::{History, RunRecord};
use jobs::JobDef;
use metrics::Metrics;

/// The default state directory: `$XDG_STATE_HOME/rewind/daemon` or `~/.local/state/rewind/daemon`.
pub fn default_state_dir() -> PathBuf {
    if let Ok(x) = std::env::var("XDG_STATE_HOME")
        && !x.is_empty()
    {
        return PathBuf::from(x).join("rewind/daemon");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".local/state/rewind/daemon")
}

pub struct JobState {
    pub def: JobDef,
    /// The schedule's time before jitter, and the time the run is due (with jitter).
    pub next_base: Option<DateTime<Utc>>,
    pub next: Option<DateTime<Utc>>,
    pub running: Option<String>,
    /// The latest load error; the last good version keeps running.
    pub error: Option<String>,
    pub last: Option<RunRecord>,
    pub last_fire: Option<DateTime<Utc>>,
}

impl JobState {
    /// What `rewind jobs`, the API and the admin page show of a job.
    pub fn view(&self) -> JobView {
        JobView {
            name: self.def.name.clone(),
            file: self.def.file.clone(),
            script: self.def.script.clone(),
            schedule: self.def.schedule_text.clone(),
            timezone: self.def.timezone.clone(),
            next_run: self.next,
            running: self.running.clone(),
            last_fire: self.last_fire,
            last_run: self.last.clone(),
            error: self.error.clone(),
        }
    }
}

pub struct Shared {
    pub jobs: BTreeMap<String, JobState>,
    /// Job files that have no good version yet, with their error.
    pub file_errors: BTreeMap<PathBuf, String>,
    pub history: History,
    pub metrics: Metrics,
    pub stopping: bool,
}

/// What `rewind jobs` reads (`<state>/jobs.json`) and `GET /api/jobs` returns.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JobView {
    pub name: String,
    pub file: PathBuf,
    pub script: String,
    pub schedule: String,
    pub timezone: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    pub running: Option<String>,
    pub last_fire: Option<DateTime<Utc>>,
    pub last_run: Option<RunRecord>,
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LoadError {
    pub file: PathBuf,
    pub error: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StatusFile {
    pub pid: u32,
    pub updated: DateTime<Utc>,
    pub socket: PathBuf,
    pub listen: Option<String>,
    pub stopped: bool,
    pub jobs: Vec<JobView>,
    pub load_errors: Vec<LoadError>,
    /// With `--cluster`: the store and the members seen at the last renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<cluster::ClusterView>,
}

impl Shared {
    pub fn views(&self) -> (Vec<JobView>, Vec<LoadError>) {
        let jobs = self.jobs.values().map(JobState::view).collect();
        let errors = self
            .file_errors
            .iter()
            .map(|(f, e)| LoadError {
                file: f.clone(),
                error: e.clone(),
            })
            .collect();
        (jobs, errors)
    }
}

/// Params given to a manual run: JSON values and key=value strings.
pub type Extra = (Map<String, Json>, Vec<(String, String)>);

/// A request to run a job now (from the API).
pub struct Trigger {
    pub job: String,
    pub params: Map<String, Json>,
    pub args: Vec<(String, String)>,
    pub reply: oneshot::Sender<Result<String, (u16, String)>>,
}

pub struct Daemon {
    pub host: Host,
    pub jobs_dir: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub listen: Option<String>,
    pub shared: Arc<Mutex<Shared>>,
    pub sem: Arc<Semaphore>,
    pub cancel: CancellationToken,
    pub search_dirs: Vec<PathBuf>,
    /// A status write is scheduled (writes are coalesced: at most one per 250 ms).
    pub status_pending: std::cell::Cell<bool>,
    /// With `--cluster`: scheduled runs are claimed there first.
    pub cluster: Option<Arc<cluster::Cluster>>,
}

/// What `rewind daemon` was asked to do, checked by the command line.
pub struct Config {
    pub host: Host,
    pub jobs_dir: PathBuf,
    pub state_dir: PathBuf,
    pub listen: Option<String>,
    pub max_concurrent: usize,
    /// How long running jobs may take to finish after SIGTERM before they are cancelled.
    pub grace: Duration,
    pub token: Option<String>,
    pub allow: Vec<ipnet::IpNet>,
    pub keep_runs: usize,
    pub keep_for: chrono::Duration,
    /// The admin page on the HTTP listener (`--users` / `--trust-proxy`).
    pub admin: Option<admin::Config>,
    /// TLS for the HTTP listener.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// `--cluster`: share the jobs with the other daemons of this store.
    pub cluster: Option<cluster::Settings>,
}

/// Runs the daemon until SIGTERM or Ctrl-C. A state directory that cannot be used is a `UsageError`.
pub fn run(config: Config) -> anyhow::Result<()> {
    let bad_state = |e: String| UsageError(format!("--state {}: {e}", config.state_dir.display()));
    std::fs::create_dir_all(&config.state_dir).map_err(|e| bad_state(e.to_string()))?;
    let state = norm(&config.state_dir);
    let history = History::open(&state, config.keep_runs.max(1), config.keep_for)
        .map_err(|e| bad_state(format!("{e:#}")))?;
    let search_dirs: Vec<PathBuf> = config
        .host
        .search
        .dirs
        .iter()
        .filter(|d| d.is_dir())
        .map(|d| norm(d))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cluster = match config.cluster {
        Some(settings) => {
            let url = crate::base::redact::redact_url(&settings.url);
            let c = rt
                .block_on(cluster::Cluster::open(settings))
                .map_err(|e| UsageError(format!("--cluster {url}: {e:#}")))?;
            Some(Arc::new(c))
        }
        None => None,
    };
    let d = Rc::new(Daemon {
        host: config.host,
        jobs_dir: norm(&config.jobs_dir),
        socket: state.join("daemon.sock"),
        state_dir: state,
        listen: config.listen,
        shared: Arc::new(Mutex::new(Shared {
            jobs: Default::default(),
            file_errors: Default::default(),
            history,
            metrics: Metrics::default(),
            stopping: false,
        })),
        sem: Arc::new(Semaphore::new(config.max_concurrent)),
        cancel: Default::default(),
        search_dirs,
        status_pending: Default::default(),
        cluster,
    });
    let local = tokio::task::LocalSet::new();
    let res = local.block_on(
        &rt,
        scheduler::serve(
            d,
            config.grace,
            config.token,
            config.allow,
            config.admin,
            config.tls,
        ),
    );
    rt.shutdown_timeout(Duration::from_secs(2));
    res
}

/// Canonical form of a path whose file may not exist any more.
pub fn norm(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| p.to_path_buf()),
        _ => p.to_path_buf(),
    }
}

impl Daemon {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `<state>/jobs.json` for `rewind jobs`.
    pub fn write_status(&self, stopped: bool) {
        let (jobs, load_errors) = self.lock().views();
        let st = StatusFile {
            pid: std::process::id(),
            updated: Utc::now(),
            socket: self.socket.clone(),
            listen: self.listen.clone(),
            stopped,
            jobs,
            load_errors,
            cluster: self.cluster.as_ref().map(|c| c.view()),
        };
        if let Ok(bytes) = serde_json::to_vec_pretty(&st)
            && let Err(e) =
                crate::base::files::write_atomic(&self.state_dir.join("jobs.json"), &bytes)
        {
            tracing::error!(
                "cannot write {}: {e}",
                self.state_dir.join("jobs.json").display()
            );
        }
    }

    /// Schedules a `jobs.json` write within 250 ms, coalescing bursts (1,000 jobs make a large file).
    pub fn write_status_soon(self: &Rc<Self>) {
        if self.status_pending.replace(true) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            this.status_pending.set(false);
            this.write_status(false);
        });
    }
}
