//! `p:send_lines(reader, opts)`: newline-delimited records from a Reader into a topic, in Rust.
//!
//! With `format = "jsonl"` every line must be one JSON value; malformed lines are counted (with the first
//! line numbers), not sent, and stop the stream only when there are more than `max_errors` of them.
//! `format = "lines"` sends every non-empty line as is. `format = "envelope"` lines carry a whole record
//! (key, headers, timestamp, partition, value; see `../envelope.rs`). On a transactional producer the
//! messages go into the open transaction (`../txn.rs`). This file parses the options, runs the fast path
//! (`pump`) and reports; the stages live beside it:
//!
//! - `input.rs`: decompression (gzip or zstd by magic bytes, or forced) and the lines of the input.
//! - `route.rs`: what a line becomes: malformed, filtered out, or sent with its key (`key_field`, `filter`).
//! - `send.rs`: enqueueing on a `BaseProducer` polled by the sending thread, and delivery counting.
//! - `transform.rs`: the slow path through a Lua `transform` function.

mod input;
mod route;
mod send;
mod transform;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mlua::{Function, Lua, Table, Value};
use rdkafka::producer::Producer as _;

use super::envelope;
use super::producer::Producer;
use crate::base::errors::IntoLua;
use input::{Compression, LineSource, decoder};
use route::route;
pub(super) use send::{Counters, LinesCtx, Prod, flush};
use send::{Out, enqueue_blocking};

const FIRST_MALFORMED: usize = 10;

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Jsonl,
    Lines,
    Envelope,
}

/// Which partition a message goes to.
#[derive(Clone, Copy, PartialEq)]
enum Partitioning {
    /// librdkafka's partitioner: by key hash, keyless messages spread.
    Key,
    /// The partition an envelope line names (keyed when it names none).
    Preserve,
    /// Round robin over the topic's partitions, whatever the key.
    Any,
}

/// The options table of `send_lines`.
struct Opts {
    topic: String,
    format: Format,
    compression: Compression,
    key_field: Option<String>,
    filter: Vec<(String, String)>,
    max_errors: Option<u64>,
    max_failures: u64,
    partitioning: Partitioning,
    /// The topic's partition count, looked up before sending when `partitioning` is `Any`.
    partitions: i32,
}

impl Opts {
    fn from(t: &Table) -> mlua::Result<Opts> {
        let topic: String = t
            .get::<Option<String>>("topic")?
            .ok_or_else(|| super::usage("send_lines: topic is required"))?;
        let format = match t.get::<Option<String>>("format")?.as_deref() {
            None | Some("jsonl") | Some("json") => Format::Jsonl,
            Some("lines") | Some("raw") => Format::Lines,
            Some("envelope") => Format::Envelope,
            Some(o) => {
                return Err(super::usage(format!(
                    "send_lines: unknown format {o:?} (jsonl, lines or envelope)"
                )));
            }
        };
        let compression = match t.get::<Option<String>>("compression")?.as_deref() {
            None | Some("auto") => Compression::Auto,
            Some("gzip") | Some("gz") => Compression::Gzip,
            Some("zstd") | Some("zst") => Compression::Zstd,
            Some("none") => Compression::None,
            Some(o) => {
                return Err(super::usage(format!(
                    "send_lines: unknown compression {o:?} (auto, gzip, zstd or none)"
                )));
            }
        };
        let mut filter = Vec::new();
        match t.get::<Value>("filter")? {
            Value::Nil => {}
            Value::String(s) => {
                for part in s.to_str()?.split(',') {
                    let (k, v) = part.split_once('=').ok_or_else(|| {
                        super::usage(format!("send_lines: filter {part:?} is not field=value"))
                    })?;
                    filter.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            Value::Table(ft) => {
                for pair in ft.pairs::<String, Value>() {
                    let (k, v) = pair?;
                    filter.push((k, v.to_string()?));
                }
            }
            other => {
                return Err(super::usage(format!(
                    "send_lines: filter must be \"field=value\" or a table, got {}",
                    other.type_name()
                )));
            }
        }
        let key_field: Option<String> = t.get("key_field")?;
        if format != Format::Jsonl && (key_field.is_some() || !filter.is_empty()) {
            return Err(super::usage(
                "send_lines: key_field and filter need format = \"jsonl\"",
            ));
        }
        let partitioning = match t.get::<Option<String>>("partition")?.as_deref() {
            None | Some("key") => Partitioning::Key,
            Some("any") => Partitioning::Any,
            Some("preserve") if format == Format::Envelope => Partitioning::Preserve,
            Some("preserve") => {
                return Err(super::usage(
                    "send_lines: partition = \"preserve\" needs format = \"envelope\" (only envelope lines name their partition)",
                ));
            }
            Some(o) => {
                return Err(super::usage(format!(
                    "send_lines: unknown partition {o:?} (key, preserve or any)"
                )));
            }
        };
        Ok(Opts {
            topic,
            format,
            compression,
            key_field,
            filter,
            max_errors: t.get("max_errors")?,
            max_failures: t.get::<Option<u64>>("max_failures")?.unwrap_or(0),
            partitioning,
            partitions: 0,
        })
    }

    /// The partition of the `n`th message, given the one its envelope names.
    fn partition_for(&self, named: Option<i32>, n: u64) -> Option<i32> {
        match self.partitioning {
            Partitioning::Key => None,
            Partitioning::Preserve => named,
            Partitioning::Any => Some((n % self.partitions.max(1) as u64) as i32),
        }
    }

    /// Top-level fields the fast path extracts: the key field first, then the filter fields.
    fn fields(&self) -> Vec<String> {
        let mut v: Vec<String> = self.key_field.iter().cloned().collect();
        for (k, _) in &self.filter {
            if !v.contains(k) {
                v.push(k.clone());
            }
        }
        v
    }
}

/// What one run read, skipped, found malformed and enqueued (deliveries are counted in `Counters`).
#[derive(Default)]
struct Tally {
    read: u64,
    skipped: u64,
    malformed: u64,
    first_malformed: Vec<u64>,
    enqueue_failed: u64,
    enqueue_error: Option<String>,
    enqueued: u64,
}

impl Tally {
    fn malformed(&mut self, line: u64, max_errors: Option<u64>) -> anyhow::Result<()> {
        self.malformed += 1;
        if self.first_malformed.len() < FIRST_MALFORMED {
            self.first_malformed.push(line);
        }
        if let Some(max) = max_errors
            && self.malformed > max
        {
            anyhow::bail!(
                "send_lines: more than max_errors = {max} malformed lines (first at lines {})",
                lines_list(&self.first_malformed)
            );
        }
        Ok(())
    }
}

fn lines_list(v: &[u64]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fast path, on a blocking thread: read, decompress, check, enqueue.
fn pump(
    src: &mut LineSource,
    p: &Prod,
    counters: &Arc<Counters>,
    opts: &Opts,
) -> anyhow::Result<Tally> {
    let names = opts.fields();
    let mut fields = Vec::new();
    let mut line = Vec::with_capacity(4096);
    let mut t = Tally::default();
    while let Some(n) = src.next(&mut line)? {
        t.read += 1;
        if opts.format == Format::Envelope {
            match envelope::decode(&line) {
                Err(_) => t.malformed(n, opts.max_errors)?,
                Ok(r) => {
                    let out = Out {
                        payload: r.value.as_deref(),
                        key: r.key.as_deref(),
                        headers: r.headers,
                        timestamp: r.timestamp,
                        partition: opts.partition_for(r.partition, t.enqueued),
                    };
                    enqueue_blocking(p, counters, &opts.topic, out, &mut t)
                }
            }
            continue;
        }
        match route(&line, opts, &names, &mut fields) {
            None => t.malformed(n, opts.max_errors)?,
            Some(None) => t.skipped += 1,
            Some(Some(key)) => {
                let out = Out {
                    payload: Some(&line),
                    key: key.as_deref(),
                    partition: opts.partition_for(None, t.enqueued),
                    ..Default::default()
                };
                enqueue_blocking(p, counters, &opts.topic, out, &mut t)
            }
        }
    }
    Ok(t)
}

/// The number of partitions of `topic` (for round-robin partitioning).
fn partition_count(client: &rdkafka::client::Client<LinesCtx>, topic: &str) -> anyhow::Result<i32> {
    let md = client.fetch_metadata(Some(topic), std::time::Duration::from_secs(10))?;
    let n = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    anyhow::ensure!(
        n > 0,
        "send_lines: topic {topic} has no partitions (does it exist?)"
    );
    Ok(n as i32)
}

pub async fn send_lines(
    lua: &Lua,
    p: &Producer,
    reader: Value,
    opts_t: Table,
) -> mlua::Result<Table> {
    let mut opts = Opts::from(&opts_t)?;
    let transform: Option<Function> = opts_t.get("transform")?;
    if transform.is_some() && opts.format == Format::Envelope {
        return Err(super::usage(
            "send_lines: transform works on jsonl or lines, not on envelope lines",
        ));
    }
    let label = match &reader {
        Value::UserData(ud) => ud
            .borrow::<crate::base::stream::Reader>()
            .map(|r| r.label.clone())
            .unwrap_or_else(|_| "input".into()),
        _ => "input".into(),
    };
    let input = crate::base::stream::reader_from_value(&reader, "send_lines")?;
    let counters = Arc::new(Counters::default());
    // A transactional producer sends into its open transaction; any other gets a client per call.
    let producer: Arc<Prod> = match super::txn::producer_in_transaction(p)? {
        Some(prod) => prod,
        None => Arc::new(
            p.config
                .create_with_context(LinesCtx {
                    base: p.ctx.clone(),
                })
                .map_err(|e| super::usage(format!("kafka producer: {e}")))?,
        ),
    };
    let bridge = tokio_util::io::SyncIoBridge::new(input);
    let compression = opts.compression;
    let src_label = label.clone();
    let make_source = move || -> anyhow::Result<LineSource> {
        Ok(LineSource {
            input: decoder(Box::new(bridge), compression)
                .map_err(|e| anyhow::anyhow!("reading {src_label}: {e}"))?,
            number: 0,
            label: src_label,
        })
    };

    let started = std::time::Instant::now();
    let (prod, topic) = (producer.clone(), opts.topic.clone());
    let any = opts.partitioning == Partitioning::Any;
    opts.partitions = crate::base::blocking::spawn_blocking(move || {
        super::producer::warm_up(prod.client(), &topic);
        if any {
            partition_count(prod.client(), &topic)
        } else {
            Ok(0)
        }
    })
    .await
    .lua_err()?
    .map_err(|e| crate::base::errors::lua_error(e.context(p.ctx.hint())))?;
    let (tally, opts) = match transform {
        None => {
            let (prod, c) = (producer.clone(), counters.clone());
            crate::base::blocking::spawn_blocking(move || {
                let mut src = make_source()?;
                let t = pump(&mut src, &prod, &c, &opts);
                flush(&prod);
                t.map(|t| (t, opts))
            })
            .await
            .lua_err()?
            .lua_err()?
        }
        Some(f) => {
            let r =
                transform::with_transform(lua, &f, make_source, &producer, &counters, &opts).await;
            let prod = producer.clone();
            crate::base::blocking::spawn_blocking(move || flush(&prod))
                .await
                .lua_err()?;
            (r?, opts)
        }
    };
    let elapsed = started.elapsed().as_secs_f64();

    let sent = counters.sent.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed) + tally.enqueue_failed;
    if tally.malformed > 0 {
        tracing::warn!(
            "send_lines {label}: {} malformed lines not sent (first at lines {})",
            tally.malformed,
            lines_list(&tally.first_malformed)
        );
    }
    if failed > opts.max_failures {
        let first = counters
            .first_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .or(tally.enqueue_error.clone())
            .unwrap_or_default();
        return Err(crate::base::errors::lua_error(anyhow::anyhow!(
            "kafka send_lines to {}: {failed} of {} messages failed ({sent} sent): {first}{}",
            opts.topic,
            sent + failed,
            p.ctx.hint()
        )));
    }
    let t = lua.create_table()?;
    t.set("read", tally.read)?;
    t.set("sent", sent)?;
    t.set("failed", failed)?;
    t.set("skipped", tally.skipped)?;
    t.set("malformed", tally.malformed)?;
    t.set("bytes", counters.bytes.load(Ordering::Relaxed))?;
    t.set("first_malformed_lines", {
        let a = lua.create_sequence_from(tally.first_malformed.iter().copied())?;
        a.set_metatable(Some(mlua::LuaSerdeExt::array_metatable(lua)))?;
        a
    })?;
    t.set("seconds", elapsed)?;
    Ok(t)
}
