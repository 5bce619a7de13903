//! The slow path of `send_lines`, taken when a `transform` function is given.

use std::sync::Arc;

use mlua::{Function, Lua, Value};
use serde_json::Value as Json;

use super::input::LineSource;
use super::route::route;
use super::send::{Counters, Out, Prod, enqueue_blocking};
use super::{Format, Opts, Tally};
use crate::base::errors::IntoLua;

/// The explicit slow path: a blocking thread reads and decompresses lines in chunks; each record is
/// decoded into a Lua table, passed to `transform`, and what it returns is sent (a table is encoded as
/// JSON, a string is sent as is, nil skips the record).
pub(super) async fn with_transform(
    lua: &Lua,
    f: &Function,
    make_source: impl FnOnce() -> anyhow::Result<LineSource> + Send + 'static,
    producer: &Arc<Prod>,
    counters: &Arc<Counters>,
    opts: &Opts,
) -> mlua::Result<Tally> {
    type Chunk = Vec<(u64, Vec<u8>)>;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<Chunk>>(4);
    let reader = crate::base::blocking::spawn_blocking(move || {
        let mut src = match make_source() {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut chunk = Vec::with_capacity(1024);
        let mut line = Vec::new();
        loop {
            match src.next(&mut line) {
                Ok(Some(n)) => {
                    chunk.push((n, std::mem::take(&mut line)));
                    if chunk.len() == 1024
                        && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
                    {
                        return;
                    }
                }
                Ok(None) => {
                    if !chunk.is_empty() {
                        let _ = tx.blocking_send(Ok(chunk));
                    }
                    return;
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let names = opts.fields();
    let mut fields = Vec::new();
    let mut t = Tally::default();
    while let Some(chunk) = rx.recv().await {
        for (n, line) in chunk.lua_err()? {
            t.read += 1;
            let key = match route(&line, opts, &names, &mut fields) {
                None => {
                    t.malformed(n, opts.max_errors).lua_err()?;
                    continue;
                }
                Some(None) => {
                    t.skipped += 1;
                    continue;
                }
                Some(Some(key)) => key,
            };
            let arg = if opts.format == Format::Jsonl {
                let j: Json = serde_json::from_slice(&line).lua_err()?;
                crate::base::values::to_lua(lua, &j)?
            } else {
                Value::String(lua.create_string(&line)?)
            };
            let payload: Vec<u8> = match f.call::<Value>(arg)? {
                Value::Nil | Value::Boolean(false) => {
                    t.skipped += 1;
                    continue;
                }
                Value::String(s) => s.as_bytes().to_vec(),
                v @ Value::Table(_) => {
                    serde_json::to_vec(&crate::base::values::from_lua(lua, &v)?).lua_err()?
                }
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "send_lines: transform returned a {} for line {n} (expected a table, a string or nil)",
                        other.type_name()
                    )));
                }
            };
            let out = Out {
                payload: Some(&payload),
                key: key.as_deref(),
                ..Default::default()
            };
            enqueue_blocking(producer, counters, &opts.topic, out, &mut t);
        }
    }
    reader.await.lua_err()?;
    Ok(t)
}
