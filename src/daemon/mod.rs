//! `rewind daemon`: runs jobs on schedules, reloads them when their files change, records every run, and
//! serves a control API (a unix socket in the state directory, and HTTP with `--listen`).
//!
//! Threads: the main thread runs a tokio `LocalSet` with the scheduler loop and every run (Lua is !Send;
//! runs are `spawn_local`ed, so the scheduler stays responsive while they await I/O). The HTTP server, the
//! file watcher and signal handling feed the scheduler through channels; shared state sits behind a mutex.

pub mod api;
pub mod cli;
pub mod history;
pub mod jobs;
pub mod metrics;
pub mod schedule;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::host::Host;
use crate::host::errors::Report;
use crate::host::runner::{self, Outcome, RunRequest};
use history::{History, RunRecord, Status};
use jobs::{JobDef, Notify, OnMissed};
use metrics::Metrics;

pub use cli::{DaemonArgs, JobsArgs, daemon_main, jobs_main};

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
}

impl Shared {
    pub fn views(&self) -> (Vec<JobView>, Vec<LoadError>) {
        let jobs = self
            .jobs
            .values()
            .map(|j| JobView {
                name: j.def.name.clone(),
                file: j.def.file.clone(),
                script: j.def.script.clone(),
                schedule: j.def.schedule_text.clone(),
                timezone: j.def.timezone.clone(),
                next_run: j.next,
                running: j.running.clone(),
                last_fire: j.last_fire,
                last_run: j.last.clone(),
                error: j.error.clone(),
            })
            .collect();
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

fn first_next(def: &JobDef, now: DateTime<Utc>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let base = def.schedule.next_after(now);
    (base, base.map(|b| b + schedule::jitter(def.jitter)))
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
        };
        if let Ok(bytes) = serde_json::to_vec_pretty(&st)
            && let Err(e) = history::write_atomic(&self.state_dir.join("jobs.json"), &bytes)
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

    fn job_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(&self.jobs_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| self.jobs_dir.join(e.file_name())))
                    .filter(|p| jobs::is_job_file(p) && p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Loads every job file; on start-up, also decides about missed runs.
    pub fn reload_all(self: &Rc<Self>, startup: Option<&BTreeMap<String, DateTime<Utc>>>) {
        let files = self.job_files();
        let present: BTreeSet<PathBuf> = files.iter().cloned().collect();
        {
            let mut s = self.lock();
            let gone: Vec<String> = s
                .jobs
                .values()
                .filter(|j| !present.contains(&j.def.file))
                .map(|j| j.def.name.clone())
                .collect();
            for name in gone {
                tracing::info!("job {name}: its file is gone; unscheduled");
                s.jobs.remove(&name);
            }
            s.file_errors.retain(|f, _| present.contains(f));
        }
        for f in files {
            self.reload_file(&f);
        }
        if let Some(last) = startup {
            self.missed_runs(last);
        }
        // Reloads are rare: the job table shows them at once.
        self.write_status(false);
    }

    fn missed_runs(self: &Rc<Self>, last: &BTreeMap<String, DateTime<Utc>>) {
        let now = Utc::now();
        let mut to_run = Vec::new();
        {
            let mut s = self.lock();
            let mut skipped = Vec::new();
            for j in s.jobs.values_mut() {
                let Some(l) = last.get(&j.def.name) else {
                    continue;
                };
                j.last_fire = Some(*l);
                let Some(due) = j.def.schedule.next_after(*l) else {
                    continue;
                };
                if due >= now - chrono::Duration::seconds(2) {
                    continue;
                }
                match j.def.on_missed {
                    OnMissed::RunOnce => {
                        tracing::info!(
                            "job {}: missed its run at {due} while the daemon was down; running it once now",
                            j.def.name
                        );
                        to_run.push((j.def.name.clone(), due));
                    }
                    OnMissed::Skip => {
                        tracing::info!(
                            "job {}: missed its run at {due} while the daemon was down; skipped (on_missed: skip)",
                            j.def.name
                        );
                        skipped.push(skip_record(
                            &j.def.name,
                            "missed",
                            Some(due),
                            format!(
                                "missed the run at {} while the daemon was down (on_missed: skip)",
                                due.to_rfc3339()
                            ),
                        ));
                    }
                }
            }
            for r in skipped {
                s.metrics.record_run(&r.job, "skipped", None, 0.0);
                s.history.save(&r);
            }
        }
        for (name, due) in to_run {
            let _ = self.fire(&name, Some(due), "missed", None);
        }
    }

    /// Loads one job file (or unschedules it when it is gone); a bad version keeps the last good one.
    pub fn reload_file(self: &Rc<Self>, file: &Path) {
        let name = jobs::job_name(file);
        if !file.exists() {
            let mut s = self.lock();
            s.file_errors.remove(file);
            if s.jobs.get(&name).is_some_and(|j| j.def.file == file) {
                s.jobs.remove(&name);
                tracing::info!("job {name}: {} was deleted; unscheduled", file.display());
            }
            return;
        }
        let loaded = jobs::load(&self.host, file).map(|mut d| {
            d.file = file.to_path_buf();
            d.deps = d.deps.iter().map(|p| norm(p)).collect();
            d
        });
        let mut s = self.lock();
        match loaded {
            Ok(def) => {
                s.file_errors.remove(file);
                let now = Utc::now();
                match s.jobs.get_mut(&name) {
                    Some(j) if j.def.file != def.file => {
                        let e = format!(
                            "{}:1: a job named {name} is already defined by {}",
                            file.display(),
                            j.def.file.display()
                        );
                        tracing::error!("{e}");
                        s.metrics.reload_errors_total += 1;
                        s.file_errors.insert(file.to_path_buf(), e);
                    }
                    Some(j) => {
                        let changed = j.def.schedule_text != def.schedule_text
                            || j.def.timezone != def.timezone
                            || j.def.jitter != def.jitter;
                        if changed || j.next.is_none() {
                            (j.next_base, j.next) = first_next(&def, now);
                        }
                        if j.error.take().is_some() {
                            tracing::info!("job {name}: {} loads again", file.display());
                        }
                        tracing::info!(
                            "job {name}: reloaded ({}), next run {}",
                            def.schedule_text,
                            fmt_time(j.next)
                        );
                        j.def = def;
                    }
                    None => {
                        let (next_base, next) = first_next(&def, now);
                        tracing::info!(
                            "job {name}: scheduled ({}), next run {}",
                            def.schedule_text,
                            fmt_time(next)
                        );
                        let last = s.history.last_for(&name).cloned();
                        s.jobs.insert(
                            name,
                            JobState {
                                def,
                                next_base,
                                next,
                                running: None,
                                error: None,
                                last,
                                last_fire: None,
                            },
                        );
                    }
                }
            }
            Err(e) => {
                s.metrics.reload_errors_total += 1;
                match s.jobs.get_mut(&name) {
                    Some(j) if j.def.file == file => {
                        tracing::error!("job {name}: {e} (keeping the last good version)");
                        j.error = Some(e);
                    }
                    _ => {
                        tracing::error!("job {name}: {e} (not scheduled)");
                        s.file_errors.insert(file.to_path_buf(), e);
                    }
                }
            }
        }
    }

    /// Handles changed paths from the watcher: job files reload themselves; a script or module reloads the
    /// jobs that loaded it, and an unknown one (maybe a new file shadowing a bundled one) reloads all.
    pub fn reload_paths(self: &Rc<Self>, paths: BTreeSet<PathBuf>) {
        let mut files = BTreeSet::new();
        let mut all = false;
        for p in paths {
            let p = norm(&p);
            if p.parent() == Some(self.jobs_dir.as_path()) {
                if jobs::is_job_file(&p) {
                    files.insert(p);
                }
                continue;
            }
            if p.extension().is_none_or(|e| e != "lua") {
                continue;
            }
            let s = self.lock();
            let users: Vec<PathBuf> = s
                .jobs
                .values()
                .filter(|j| j.def.deps.contains(&p))
                .map(|j| j.def.file.clone())
                .collect();
            if users.is_empty() {
                all = true;
            }
            files.extend(users);
        }
        if all {
            self.reload_all(None);
            return;
        }
        for f in &files {
            self.reload_file(f);
        }
        if !files.is_empty() {
            self.write_status(false);
        }
    }

    /// Starts a run of `name` now unless one is already going (then records a skip).
    pub fn fire(
        self: &Rc<Self>,
        name: &str,
        scheduled: Option<DateTime<Utc>>,
        trigger: &str,
        extra: Option<Extra>,
    ) -> Result<String, (u16, String)> {
        let mut s = self.lock();
        if s.stopping {
            return Err((503, "the daemon is stopping".into()));
        }
        let Some(j) = s.jobs.get_mut(name) else {
            return Err((404, format!("no job named '{name}'")));
        };
        if scheduled.is_some() {
            j.last_fire = scheduled;
        }
        if let Some(prev) = j.running.clone() {
            let msg = format!("the previous run {prev} is still going; this run is skipped");
            tracing::warn!("job {name}: {msg}");
            let r = skip_record(name, trigger, scheduled, msg.clone());
            s.metrics.record_run(name, "skipped", None, 0.0);
            s.history.save(&r);
            return Err((409, msg));
        }
        let id = history::new_run_id(name);
        j.running = Some(id.clone());
        let def = j.def.clone();
        let rec = RunRecord {
            id: id.clone(),
            job: name.to_string(),
            trigger: trigger.to_string(),
            scheduled,
            started: Utc::now(),
            finished: None,
            status: Status::Running,
            duration_ms: None,
            result: None,
            error: None,
            notify_error: None,
        };
        s.history.remember(&rec);
        s.metrics.running += 1;
        drop(s);
        tokio::task::spawn_local(self.clone().execute(def, rec, extra));
        Ok(id)
    }

    async fn execute(self: Rc<Self>, def: JobDef, mut rec: RunRecord, extra: Option<Extra>) {
        let span = tracing::info_span!("run", run_id = %rec.id, job = %def.name);
        let this = self.clone();
        async move {
            let _permit = this.sem.clone().acquire_owned().await;
            rec.started = Utc::now();
            tracing::info!(
                "run {} of job {} started ({}{})",
                rec.id,
                def.name,
                rec.trigger,
                rec.lateness()
                    .map(|l| format!(", {l:.3}s after its time"))
                    .unwrap_or_default()
            );
            this.lock().history.save(&rec);
            let (mut params, args) = extra.unwrap_or_default();
            let mut file_params = def.params.clone();
            file_params.append(&mut params);
            let req = RunRequest {
                source: def.source.clone(),
                cli_params: args,
                file_params: Some(file_params),
            };
            let outcome = runner::run(&this.host, req, this.cancel.clone().cancelled_owned()).await;
            let finished = Utc::now();
            rec.finished = Some(finished);
            rec.duration_ms = Some((finished - rec.started).num_milliseconds().max(0) as u64);
            match outcome {
                Outcome::Done(result) => {
                    rec.status = Status::Done;
                    rec.result = Some(summarize(result));
                    tracing::info!("run {} done in {} ms", rec.id, rec.duration_ms.unwrap_or(0));
                }
                Outcome::Usage(msg) => {
                    rec.status = Status::Failed;
                    tracing::error!("run {} failed: {msg}", rec.id);
                    rec.error = Some(msg);
                }
                Outcome::Failed(report) => {
                    rec.status = Status::Failed;
                    tracing::error!("run {} failed: {}", rec.id, report.render(true));
                    rec.error = Some(report.message);
                }
                Outcome::Cancelled => {
                    rec.status = Status::Cancelled;
                    rec.error = Some("cancelled at shutdown; on_exit handlers ran".into());
                    tracing::warn!("run {} cancelled at shutdown; on_exit handlers ran", rec.id);
                }
            }
            let action = match rec.status {
                Status::Failed => def.on_failure.clone(),
                Status::Done => def.on_success.clone(),
                _ => None,
            };
            if let Some(action) = action
                && let Err(e) = notify(&this.host, &def, &rec, &action).await
            {
                tracing::error!("run {}: notification failed: {e}", rec.id);
                rec.notify_error = Some(e);
            }
            {
                let mut s = this.lock();
                s.metrics.running = s.metrics.running.saturating_sub(1);
                s.metrics.record_run(
                    &def.name,
                    rec.status.as_str(),
                    Some(rec.duration_ms.unwrap_or(0) as f64 / 1000.0),
                    finished.timestamp_millis() as f64 / 1000.0,
                );
                s.history.save(&rec);
                if let Some(j) = s.jobs.get_mut(&def.name) {
                    if j.running.as_deref() == Some(rec.id.as_str()) {
                        j.running = None;
                    }
                    j.last = Some(rec.clone());
                }
            }
            this.write_status_soon();
        }
        .instrument(span)
        .await
    }

    /// Fires every job whose time has come and computes its next time.
    fn fire_due(self: &Rc<Self>) {
        let now = Utc::now();
        let due: Vec<(String, DateTime<Utc>)> = {
            let mut s = self.lock();
            let mut due = Vec::new();
            for j in s.jobs.values_mut() {
                let Some(t) = j.next else { continue };
                if t > now {
                    continue;
                }
                due.push((j.def.name.clone(), t));
                let base = j.next_base.unwrap_or(t);
                let mut nb = j.def.schedule.next_after(base);
                if nb.is_some_and(|n| n <= now) {
                    nb = j.def.schedule.next_after(now);
                }
                j.next_base = nb;
                j.next = nb.map(|b| b + schedule::jitter(j.def.jitter));
            }
            due
        };
        for (name, t) in &due {
            let _ = self.fire(name, Some(*t), "schedule", None);
        }
        if !due.is_empty() {
            self.write_status_soon();
        }
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.lock().jobs.values().filter_map(|j| j.next).min()
    }

    fn running(&self) -> u64 {
        self.lock().metrics.running
    }
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| "never".into())
}

fn skip_record(
    job: &str,
    trigger: &str,
    scheduled: Option<DateTime<Utc>>,
    why: String,
) -> RunRecord {
    let now = Utc::now();
    RunRecord {
        id: history::new_run_id(job),
        job: job.to_string(),
        trigger: trigger.to_string(),
        scheduled,
        started: now,
        finished: Some(now),
        status: Status::Skipped,
        duration_ms: Some(0),
        result: None,
        error: Some(why),
        notify_error: None,
    }
}

/// A result as kept in the history: small results whole, large ones shortened.
fn summarize(result: Json) -> Json {
    let text = serde_json::to_string(&result).unwrap_or_default();
    if text.len() <= 4096 {
        result
    } else {
        let cut: String = text.chars().take(4000).collect();
        Json::String(format!("{cut}… ({} bytes)", text.len()))
    }
}

/// Runs a job's on_failure / on_success action on a fresh Lua state; errors come back as text.
async fn notify(host: &Host, def: &JobDef, rec: &RunRecord, action: &Notify) -> Result<(), String> {
    let lua = host.new_state().map_err(|e| e.to_string())?;
    let info = serde_json::json!({
        "job": def.name,
        "run_id": rec.id,
        "status": rec.status.as_str(),
        "error": rec.error,
        "result": rec.result,
        "started": rec.started.to_rfc3339(),
        "duration_ms": rec.duration_ms,
    });
    let res: mlua::Result<()> = async {
        let info_v = crate::json::to_lua(&lua, &info)?;
        match action {
            Notify::Slack {
                webhook_env,
                message,
            } => {
                let text = match message {
                    Some(m) => m
                        .replace("{job}", &def.name)
                        .replace("{status}", rec.status.as_str())
                        .replace("{run_id}", &rec.id)
                        .replace("{error}", rec.error.as_deref().unwrap_or("")),
                    None => format!(
                        "rewind: job {} {} (run {}){}",
                        def.name,
                        rec.status.as_str(),
                        rec.id,
                        rec.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                    ),
                };
                lua.globals().set("__webhook_env", webhook_env.as_str())?;
                lua.globals().set("__text", text)?;
                lua.load(
                    r#"local env = require("rewind.env")
local url = env.get(__webhook_env)
if url == nil or url == "" then error("the environment variable " .. __webhook_env .. " (the Slack webhook) is not set", 0) end
require("rewind.notify").slack(url, __text)"#,
                )
                .set_name("=notify")
                .exec_async()
                .await
            }
            Notify::Lua(fname) => {
                let s = crate::host::script::load(&lua, &def.source)?;
                let f: mlua::Function = s.table.get(*fname)?;
                f.call_async::<()>(info_v).await
            }
        }
    }
    .await;
    runner::run_on_exit(&lua).await;
    res.map_err(|e| Report::from_lua(&e).message)
}

/// The daemon's main future, run inside a `LocalSet`.
pub async fn serve(
    d: Rc<Daemon>,
    grace: Duration,
    token: Option<String>,
    allow: Vec<ipnet::IpNet>,
) -> anyhow::Result<()> {
    let (trig_tx, mut trig_rx) = mpsc::unbounded_channel::<Trigger>();
    let (watch_tx, mut watch_rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();

    // Missed runs need the last fire times from the previous daemon.
    let previous: BTreeMap<String, DateTime<Utc>> = std::fs::read(d.state_dir.join("jobs.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<StatusFile>(&b).ok())
        .map(|st| {
            st.jobs
                .into_iter()
                .filter_map(|j| j.last_fire.map(|t| (j.name, t)))
                .collect()
        })
        .unwrap_or_default();
    d.reload_all(Some(&previous));

    let mut watch_dirs = vec![d.jobs_dir.clone()];
    watch_dirs.extend(d.search_dirs.iter().cloned());
    let _watcher = watch::start(&watch_dirs, &d.jobs_dir, watch_tx)?;

    let api_state = api::Api {
        shared: d.shared.clone(),
        triggers: trig_tx,
        token: token.map(Arc::new),
        allow: Arc::new(allow),
    };
    let _ = std::fs::remove_file(&d.socket);
    let unix = tokio::net::UnixListener::bind(&d.socket)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", d.socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o600));
    }
    let unix_app = api::unix_router(api_state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(unix, unix_app).await;
    });
    if let Some(addr) = &d.listen {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        tracing::info!("HTTP API on http://{}", tcp.local_addr()?);
        let app = api::tcp_router(api_state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(
                tcp,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
        });
    }
    tracing::info!(
        "daemon started: {} jobs from {}, state in {}",
        d.lock().jobs.len(),
        d.jobs_dir.display(),
        d.state_dir.display()
    );

    let shutdown = runner::shutdown_signal();
    tokio::pin!(shutdown);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        let sleep = match d.next_due() {
            Some(t) => {
                let wait = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait.min(Duration::from_secs(3600)))
            }
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            _ = sleep => d.fire_due(),
            Some(paths) = watch_rx.recv() => {
                let mut set: BTreeSet<PathBuf> = paths.into_iter().collect();
                while let Ok(more) = watch_rx.try_recv() {
                    set.extend(more);
                }
                d.reload_paths(set);
            }
            Some(t) = trig_rx.recv() => {
                let mut r = d.fire(&t.job, None, "manual", Some((t.params, t.args)));
                if let Err((409, _)) = &r {
                    r = Err((409, format!("job {} is already running", t.job)));
                }
                let _ = t.reply.send(r);
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading every job");
                d.reload_all(None);
            }
            _ = &mut shutdown => break,
        }
    }

    d.lock().stopping = true;
    let n = d.running();
    if n > 0 {
        tracing::info!("stopping: no new runs; waiting up to {grace:?} for {n} running");
        let deadline = tokio::time::Instant::now() + grace;
        while d.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if d.running() > 0 {
            tracing::warn!("grace period over: cancelling {} runs", d.running());
            d.cancel.cancel();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while d.running() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    d.write_status(true);
    let _ = std::fs::remove_file(&d.socket);
    tracing::info!("daemon stopped");
    Ok(())
}
