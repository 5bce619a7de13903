//! `rewind.task`: concurrency inside one Lua state. Every I/O primitive is async, so coroutines started
//! with `spawn` or `map` interleave on one VM while the I/O runs in Rust.

use std::cell::RefCell;
use std::time::Duration;

use futures::StreamExt;
use mlua::{Function, Lua, MultiValue, Table, UserData, UserDataMethods, Value};
use tokio::task::JoinHandle;

/// A spawned coroutine; `join()` waits for it and returns its results or raises its error.
pub struct Task {
    handle: RefCell<Option<JoinHandle<mlua::Result<MultiValue>>>>,
}

impl UserData for Task {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("join", |_, this, ()| async move {
            let h = this
                .handle
                .borrow_mut()
                .take()
                .ok_or_else(|| mlua::Error::runtime("task was already joined"))?;
            match h.await {
                Ok(res) => res,
                Err(e) if e.is_cancelled() => Err(mlua::Error::runtime("task was aborted")),
                Err(e) => Err(mlua::Error::runtime(format!("task panicked: {e}"))),
            }
        });
        m.add_method("abort", |_, this, ()| {
            if let Some(h) = this.handle.borrow().as_ref() {
                h.abort();
            }
            Ok(())
        });
        m.add_method("done", |_, this, ()| {
            Ok(this
                .handle
                .borrow()
                .as_ref()
                .is_none_or(|h| h.is_finished()))
        })
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // A task nobody holds anymore keeps running (fire and forget), like a detached thread.
    }
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    // spawn(fn, ...): runs fn concurrently; must be called from a running script.
    t.set(
        "spawn",
        lua.create_function(|lua, (f, args): (Function, MultiValue)| {
            let thread = lua.create_thread(f)?;
            let fut = thread.into_async::<MultiValue>(args)?;
            // In the caller's span, so a daemon run's log keeps what its tasks log.
            let handle = tokio::task::spawn_local(tracing::Instrument::in_current_span(fut));
            crate::base::state::state_info(lua)
                .borrow_mut()
                .tasks
                .push(handle.abort_handle());
            Ok(Task {
                handle: RefCell::new(Some(handle)),
            })
        })?,
    )?;
    // abort(reason): stops the whole run now (its coroutines too) and fails it with `reason`; the
    // `on_exit` handlers still run. For a condition found off the main path, such as a lost lease.
    t.set(
        "abort",
        lua.create_function(|lua, reason: String| -> mlua::Result<()> {
            let reason = crate::base::redact::redact(&reason);
            crate::base::state::state_info(lua)
                .borrow_mut()
                .abort(reason.clone());
            Err(mlua::Error::runtime(reason))
        })?,
    )?;
    t.set(
        "sleep",
        lua.create_async_function(|_, secs: f64| async move {
            tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
            Ok(())
        })?,
    )?;
    // map(items, concurrency, fn(item, index)): results in the order of items. The first error is raised
    // once the calls already running have finished; no new calls start after it.
    t.set(
        "map",
        lua.create_async_function(
            |lua, (items, concurrency, f): (Table, usize, Function)| async move {
                let n = items.raw_len();
                let mut values = Vec::with_capacity(n);
                for i in 1..=n {
                    values.push(items.raw_get::<Value>(i)?);
                }
                let failed = std::rc::Rc::new(std::cell::Cell::new(false));
                let mut results =
                    futures::stream::iter(values.into_iter().enumerate().map(|(i, v)| {
                        let f = f.clone();
                        let failed = failed.clone();
                        async move {
                            if failed.get() {
                                return Ok(Value::Nil);
                            }
                            let r = f.call_async::<Value>((v, i + 1)).await;
                            if r.is_err() {
                                failed.set(true);
                            }
                            r
                        }
                    }))
                    .buffered(concurrency.max(1));
                let out = lua.create_table_with_capacity(n, 0)?;
                let mut first_err = None;
                let mut i = 0;
                while let Some(r) = results.next().await {
                    i += 1;
                    match r {
                        Ok(v) => out.raw_set(i, v)?,
                        Err(e) if first_err.is_none() => first_err = Some(e),
                        Err(_) => {}
                    }
                }
                match first_err {
                    Some(e) => Err(e),
                    None => Ok(out),
                }
            },
        )?,
    )?;
    // on_exit(fn): runs when the script ends, fails or is cancelled (locks use it to release).
    t.set(
        "on_exit",
        lua.create_function(|lua, f: Function| {
            let key = lua.create_registry_value(f)?;
            crate::base::state::state_info(lua)
                .borrow_mut()
                .on_exit
                .push(key);
            Ok(())
        })?,
    )?;
    // channel(capacity): a bounded queue between coroutines (see channel.rs).
    t.set(
        "channel",
        lua.create_function(|_, capacity: Option<usize>| {
            Ok(super::channel::Channel::new(capacity.unwrap_or(1)))
        })?,
    )?;
    // stopping(): true once a signal asked a `drain_on_stop` script to stop.
    t.set(
        "stopping",
        lua.create_function(|lua, ()| {
            Ok(crate::base::state::state_info(lua)
                .borrow()
                .stop
                .is_cancelled())
        })?,
    )?;
    // stop(): asks the run to stop as a signal would (the script's own ordered shutdown).
    t.set(
        "stop",
        lua.create_function(|lua, ()| {
            crate::base::state::state_info(lua).borrow().stop.cancel();
            Ok(())
        })?,
    )?;
    // wait_stop(secs): sleeps up to secs, waking early on a stop request; returns stopping().
    t.set(
        "wait_stop",
        lua.create_async_function(|lua, secs: f64| async move {
            let stop = crate::base::state::state_info(&lua).borrow().stop.clone();
            let wait = Duration::from_secs_f64(secs.max(0.0));
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            Ok(stop.is_cancelled())
        })?,
    )?;
    // timeout(secs, fn, ...): runs fn; raises if it takes longer.
    t.set(
        "timeout",
        lua.create_async_function(
            |_, (secs, f, args): (f64, Function, MultiValue)| async move {
                match tokio::time::timeout(
                    Duration::from_secs_f64(secs.max(0.0)),
                    f.call_async::<MultiValue>(args),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(mlua::Error::runtime(format!(
                        "timed out after {}",
                        humantime::format_duration(Duration::from_secs_f64(secs.max(0.0)))
                    ))),
                }
            },
        )?,
    )?;
    Ok(t)
}
