//! Running a script end to end: fresh state, params, `run(params, ctx)`, `on_exit` handlers, and
//! cancellation on Ctrl-C or SIGTERM. The CLI and the daemon both run scripts through here.

use std::future::Future;

use mlua::{Lua, Value};
use serde_json::{Map, Value as Json};

use super::params;
use super::script::{self, Script};
use super::search::ScriptSource;
use super::{Host, state_info};
use crate::base::errors::Report;

/// How a run ended.
pub enum Outcome {
    Done(Json),
    /// Bad usage or params: exit code 2.
    Usage(String),
    /// The script failed: exit code 1.
    Failed(Report),
    Cancelled,
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Done(_) => 0,
            Outcome::Usage(_) => 2,
            Outcome::Failed(_) | Outcome::Cancelled => 1,
        }
    }
}

pub struct RunRequest {
    pub source: ScriptSource,
    /// The modules to run with (a daemon job's unit); `None` reads them from the search path.
    pub modules: Option<super::ModuleSet>,
    pub cli_params: Vec<(String, String)>,
    pub file_params: Option<Map<String, Json>>,
}

/// Loads, checks and runs a script on a fresh Lua state. Must be called inside a `LocalSet`.
/// `cancel` resolves when the run should stop (a signal); the script's future is then dropped, which
/// aborts its uncommitted writers, and its `on_exit` handlers still run.
pub async fn run(host: &Host, req: RunRequest, cancel: impl Future<Output = ()>) -> Outcome {
    let lua = match host.new_state_with(req.modules.clone()) {
        Ok(l) => l,
        Err(e) => return Outcome::Failed(Report::from_lua(&e)),
    };
    let script = match script::load(&lua, &req.source) {
        Ok(s) => s,
        // A script that does not compile is bad input, as `rewind check` reports it.
        Err(e @ mlua::Error::SyntaxError { .. }) => {
            return Outcome::Usage(Report::from_lua(&e).message);
        }
        Err(e) => return failure(&e),
    };
    let values = match params::resolve(
        &script.params,
        &req.cli_params,
        req.file_params.as_ref(),
        &|k| std::env::var(k).ok(),
    ) {
        Ok(v) => v,
        Err(errors) => return Outcome::Usage(params_message(&script, &errors)),
    };
    let outcome = call(&lua, &script, &values, cancel).await;
    // Coroutines started with task.spawn belong to the run: nothing of it goes on after it ended.
    for t in std::mem::take(&mut state_info(&lua).borrow_mut().tasks) {
        t.abort();
    }
    let outcome = match outcome {
        Outcome::Cancelled if script.graceful_stop => stop_gracefully(&lua, &script).await,
        other => other,
    };
    if matches!(outcome, Outcome::Cancelled) {
        // A second Ctrl-C or SIGTERM while cleaning up stops waiting for the handlers.
        tokio::select! {
            _ = run_on_exit(&lua) => {}
            _ = shutdown_signal() => tracing::warn!("second signal: on_exit handlers were interrupted"),
        }
    } else {
        run_on_exit(&lua).await;
    }
    outcome
}

pub fn params_message(script: &Script, errors: &[String]) -> String {
    let mut msg = format!("{}: bad params:", script.source.name);
    for e in errors {
        msg.push_str("\n  - ");
        msg.push_str(e);
    }
    msg.push_str(&format!("\nsee `rewind help {}`", script.source.name));
    crate::base::redact::redact(&msg)
}

async fn call(
    lua: &Lua,
    script: &Script,
    values: &Map<String, Json>,
    cancel: impl Future<Output = ()>,
) -> Outcome {
    let prepared = (|| -> mlua::Result<_> {
        let run = script.run_fn()?;
        let params_v = crate::base::values::to_lua(lua, &Json::Object(values.clone()))?;
        let ctx = lua.create_table()?;
        ctx.set("script", script.source.name.as_str())?;
        ctx.set("origin", script.source.origin.to_string())?;
        ctx.set(
            "public_params",
            crate::base::values::to_lua(
                lua,
                &Json::Object(params::public(&script.params, values)),
            )?,
        )?;
        Ok((run, params_v, ctx))
    })();
    let (run, params_v, ctx) = match prepared {
        Ok(p) => p,
        Err(e) => return failure(&e),
    };
    let fut = run.call_async::<Value>((params_v, ctx));
    let (abort, stop) = {
        let info = state_info(lua);
        let info = info.borrow();
        (info.abort.clone(), info.stop.clone())
    };
    tokio::pin!(fut);
    tokio::pin!(cancel);
    loop {
        tokio::select! {
            biased;
            _ = abort.cancelled() => {
                let reason = state_info(lua).borrow().abort_reason.clone().unwrap_or_default();
                return Outcome::Failed(Report { message: reason, traceback: None, usage: false });
            }
            res = &mut fut => return finished(lua, script, res),
            _ = &mut cancel, if !stop.is_cancelled() => {
                if !script.drain_on_stop {
                    return Outcome::Cancelled;
                }
                tracing::warn!("stopping: {} finishes what it holds first (a second signal stops it at once)", script.source.name);
                stop.cancel();
            }
            _ = shutdown_signal(), if stop.is_cancelled() => return Outcome::Cancelled,
        }
    }
}

fn finished(lua: &Lua, script: &Script, res: mlua::Result<Value>) -> Outcome {
    match res {
        Ok(v) => match crate::base::values::from_lua(lua, &v) {
            Ok(j) => Outcome::Done(j),
            Err(e) => failure(&mlua::ErrorContext::context(
                e,
                format!("{}: the result", where_(script)),
            )),
        },
        Err(e) => match failure(&e) {
            // Tail calls can hide every Lua frame; still name the script.
            Outcome::Failed(mut r) if !crate::base::errors::has_position(&r.message) => {
                r.message = format!("{}: {}", where_(script), r.message);
                Outcome::Failed(r)
            }
            other => other,
        },
    }
}

fn where_(script: &Script) -> &str {
    script.source.chunk_name.trim_start_matches('@')
}

fn failure(e: &mlua::Error) -> Outcome {
    let r = Report::from_lua(e);
    if r.usage {
        Outcome::Usage(r.message)
    } else {
        Outcome::Failed(r)
    }
}

/// A script with `graceful_stop = true` (topic-archive) ends on a signal by design: its `on_exit` handlers
/// finish the work, and when every one of them succeeds the run is done (exit 0), not cancelled.
async fn stop_gracefully(lua: &Lua, script: &Script) -> Outcome {
    let failed = tokio::select! {
        failed = run_on_exit(lua) => failed,
        _ = shutdown_signal() => {
            tracing::warn!("second signal: on_exit handlers were interrupted");
            return Outcome::Cancelled;
        }
    };
    if failed > 0 {
        return Outcome::Failed(Report {
            message: format!(
                "{} was stopped by a signal and {failed} of its exit handlers failed (see the log)",
                script.source.name
            ),
            traceback: None,
            usage: false,
        });
    }
    tracing::info!(
        "{} stopped by a signal after finishing its work",
        script.source.name
    );
    Outcome::Done(Json::Null)
}

/// Runs the `task.on_exit` handlers, newest first; their errors are logged, not raised. Returns how
/// many failed.
pub async fn run_on_exit(lua: &Lua) -> usize {
    let keys: Vec<mlua::RegistryKey> = std::mem::take(&mut state_info(lua).borrow_mut().on_exit);
    let mut failed = 0;
    for key in keys.into_iter().rev() {
        if let Ok(f) = lua.registry_value::<mlua::Function>(&key)
            && let Err(e) = f.call_async::<()>(()).await
        {
            failed += 1;
            tracing::warn!("on_exit handler failed: {}", Report::from_lua(&e).message);
        }
    }
    failed
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
