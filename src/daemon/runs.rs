//! Starting a run and carrying it out: the concurrency limit, the run record, its log, notifications.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::history::{self, RunRecord, Status};
use super::jobs::{JobDef, Notify};
use super::{Daemon, Extra};
use crate::base::errors::Report;
use crate::host::Host;
use crate::host::runner::{self, Outcome, RunRequest};
use tracing::Instrument;

impl Daemon {
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
        drop(s);
        self.start(def, id.clone(), scheduled, trigger, extra);
        Ok(id)
    }

    /// Starts a run of a job that is not in the jobs directory (a bundled script the admin page runs,
    /// like verify). `adhoc` runs may overlap; a job's may not.
    pub fn fire_def(
        self: &Rc<Self>,
        def: JobDef,
        adhoc: bool,
        trigger: &str,
        extra: Option<Extra>,
    ) -> Result<String, (u16, String)> {
        if !adhoc {
            return self.fire(&def.name, None, trigger, extra);
        }
        if self.lock().stopping {
            return Err((503, "the daemon is stopping".into()));
        }
        let id = history::new_run_id(&def.name);
        self.start(def, id.clone(), None, trigger, extra);
        Ok(id)
    }

    fn start(
        self: &Rc<Self>,
        def: JobDef,
        id: String,
        scheduled: Option<DateTime<Utc>>,
        trigger: &str,
        extra: Option<Extra>,
    ) {
        let given = extra
            .as_ref()
            .map(|e| given_params(&def, e))
            .unwrap_or_default();
        let rec = RunRecord {
            given,
            id,
            job: def.name.clone(),
            trigger: trigger.to_string(),
            scheduled,
            started: Utc::now(),
            finished: None,
            status: Status::Running,
            duration_ms: None,
            result: None,
            error: None,
            notify_error: None,
            member: self.cluster.as_ref().map(|c| c.member.clone()),
        };
        let mut s = self.lock();
        s.history.remember(&rec);
        s.metrics.running += 1;
        drop(s);
        tokio::task::spawn_local(self.clone().execute(def, rec, extra));
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
            if let Some(c) = &this.cluster {
                c.publish(&rec).await;
            }
            let (mut params, args) = extra.unwrap_or_default();
            let mut file_params = def.params.clone();
            file_params.append(&mut params);
            let req = RunRequest {
                source: def.source.clone(),
                modules: Some(def.modules.clone()),
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
            if let Some(c) = &this.cluster {
                c.publish(&rec).await;
            }
            this.write_status_soon();
        }
        .instrument(span)
        .await
    }
}

/// A run's own params as `key=value`, the job's secret params (and any registered secret) masked.
fn given_params(def: &JobDef, extra: &Extra) -> Vec<String> {
    let (params, args) = extra;
    let params = params
        .iter()
        .map(|(k, v)| format!("{k}={}", def.shown(k, v)));
    let args = args
        .iter()
        .map(|(k, v)| format!("{k}={}", def.shown(k, &Json::String(v.clone()))));
    params.chain(args).collect()
}

pub(super) fn skip_record(
    job: &str,
    trigger: &str,
    scheduled: Option<DateTime<Utc>>,
    why: String,
) -> RunRecord {
    let now = Utc::now();
    RunRecord {
        given: Vec::new(),
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
        member: None,
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
    let lua = host
        .new_state_with(Some(def.modules.clone()))
        .map_err(|e| e.to_string())?;
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
        let info_v = crate::base::values::to_lua(&lua, &info)?;
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
