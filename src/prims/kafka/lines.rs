//! `p:send_lines(reader, opts)`: newline-delimited records from a Reader into a topic, in Rust.
//!
//! Why a `BaseProducer` polled by the sending thread (as kcat does) and not a `FutureProducer` or a
//! `ThreadedProducer`: the fast path enqueues from one blocking thread that checks each line; a delivery
//! callback counts results in atomics. There is no future, oneshot channel or allocation per message, and
//! librdkafka's queue (queue.buffering.max.messages) bounds the messages in flight: when it is full,
//! `send` returns QueueFull and the sender polls for delivery reports until there is room, so memory stays
//! bounded however large the input. A second polling thread would take the delivery reports that `flush`
//! waits for, leaving flush (and the thread's join on drop) to sleep out 100 ms polls: ~0.3 s per run.
//!
//! Input: gzip or zstd are recognised by their magic bytes (`compression = "auto"`), or forced with
//! `compression = "gzip" | "zstd" | "none"`. With `format = "jsonl"` every line must be one JSON value;
//! malformed lines are counted (with the first line numbers), not sent, and stop the stream only when
//! there are more than `max_errors` of them. `format = "lines"` sends every non-empty line as is.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::{Function, Lua, Table, Value};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;

use super::Ctx;
use super::producer::Producer;
use crate::base::errors::IntoLua;

const FIRST_MALFORMED: usize = 10;

/// Delivery results, counted by librdkafka's poll thread.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    first_error: Mutex<Option<String>>,
}

struct LinesCtx {
    base: Ctx,
    counters: Arc<Counters>,
}

impl rdkafka::client::ClientContext for LinesCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        self.base.log(level, fac, msg)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.base.error(error, reason)
    }
}

impl ProducerContext for LinesCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.counters.first_error.lock()
                    && first.is_none()
                {
                    *first = Some(format!(
                        "delivery to topic {} partition {} failed: {e}",
                        m.topic(),
                        m.partition()
                    ));
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Jsonl,
    Lines,
}

#[derive(Clone, Copy, PartialEq)]
enum Compression {
    Auto,
    Gzip,
    Zstd,
    None,
}

struct Opts {
    topic: String,
    format: Format,
    compression: Compression,
    key_field: Option<String>,
    filter: Vec<(String, String)>,
    max_errors: Option<u64>,
    max_failures: u64,
}

impl Opts {
    fn from(t: &Table) -> mlua::Result<Opts> {
        let topic: String = t
            .get::<Option<String>>("topic")?
            .ok_or_else(|| super::usage("send_lines: topic is required"))?;
        let format = match t.get::<Option<String>>("format")?.as_deref() {
            None | Some("jsonl") | Some("json") => Format::Jsonl,
            Some("lines") | Some("raw") => Format::Lines,
            Some(o) => {
                return Err(super::usage(format!(
                    "send_lines: unknown format {o:?} (jsonl or lines)"
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
        if format == Format::Lines && (key_field.is_some() || !filter.is_empty()) {
            return Err(super::usage(
                "send_lines: key_field and filter need format = \"jsonl\"",
            ));
        }
        Ok(Opts {
            topic,
            format,
            compression,
            key_field,
            filter,
            max_errors: t.get("max_errors")?,
            max_failures: t.get::<Option<u64>>("max_failures")?.unwrap_or(0),
        })
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

/// Extracts a few top-level fields of a JSON object without building the rest of it.
struct Fields<'a> {
    names: &'a [String],
    out: &'a mut Vec<Option<Json>>,
}

struct KeyIdx<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for KeyIdx<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIdx<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|n| n == v))
    }
}

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(idx) = map.next_key_seed(KeyIdx(self.names))? {
            match idx {
                Some(i) => self.out[i] = Some(map.next_value::<Json>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Checks one line; with field names, extracts them (the line must then be an object).
fn check_json(line: &[u8], names: &[String], out: &mut Vec<Option<Json>>) -> bool {
    let mut de = serde_json::Deserializer::from_slice(line);
    let ok = if names.is_empty() {
        IgnoredAny::deserialize_any_ok(&mut de)
    } else {
        out.clear();
        out.resize(names.len(), None);
        Fields { names, out }.deserialize(&mut de).is_ok()
    };
    ok && de.end().is_ok()
}

trait AnyOk {
    fn deserialize_any_ok(de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>)
    -> bool;
}

impl AnyOk for IgnoredAny {
    fn deserialize_any_ok(
        de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
    ) -> bool {
        serde::Deserialize::deserialize(de)
            .map(|_: IgnoredAny| ())
            .is_ok()
    }
}

/// A JSON value as message-key or filter text: strings as they are, anything else as JSON.
fn as_text(v: &Json) -> std::borrow::Cow<'_, str> {
    match v {
        Json::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// Wraps the raw input in a decompressor chosen by magic bytes or by `compression`.
fn decoder(raw: Box<dyn Read + Send>, c: Compression) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut buf = BufReader::with_capacity(256 * 1024, raw);
    let c = if c == Compression::Auto {
        let head = buf.fill_buf()?;
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    } else {
        c
    };
    // Decompression runs on its own thread, overlapping with line checks and enqueueing (as `zcat |`).
    const CHUNK: usize = 256 * 1024;
    Ok(match c {
        Compression::Gzip => Box::new(crate::base::stream::read_ahead(
            flate2::bufread::MultiGzDecoder::new(buf),
            CHUNK,
            8,
        )),
        Compression::Zstd => Box::new(crate::base::stream::read_ahead(
            zstd::stream::read::Decoder::with_buffer(buf)?,
            CHUNK,
            8,
        )),
        _ => Box::new(buf),
    })
}

/// Lines of the decompressed input: `next` fills `line` (without the line end) and returns its number.
struct LineSource {
    input: Box<dyn BufRead + Send>,
    number: u64,
    label: String,
}

impl LineSource {
    fn next(&mut self, line: &mut Vec<u8>) -> anyhow::Result<Option<u64>> {
        loop {
            line.clear();
            let n = self
                .input
                .read_until(b'\n', line)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", self.label))?;
            if n == 0 {
                return Ok(None);
            }
            self.number += 1;
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Ok(Some(self.number));
        }
    }
}

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

type Prod = BaseProducer<LinesCtx>;

/// Messages sent between two non-blocking polls for delivery reports.
const POLL_EVERY: u64 = 1024;

/// Enqueues one message; while librdkafka's queue is full, serves delivery reports until there is room.
fn enqueue_blocking(p: &Prod, topic: &str, payload: &[u8], key: Option<&[u8]>, t: &mut Tally) {
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(payload);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    t.enqueued += 1;
    if t.enqueued.is_multiple_of(POLL_EVERY) {
        p.poll(Duration::ZERO);
    }
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                // Serves delivery reports for the whole 5 ms (a full queue empties only as they are).
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => {
                t.enqueue_failed += 1;
                t.enqueue_error
                    .get_or_insert_with(|| format!("enqueue to topic {topic} failed: {e}"));
                return;
            }
        }
    }
}

/// Decides what one line becomes: None = malformed; Some(None) = filtered out; Some(Some(key)) = send.
fn route(
    line: &[u8],
    opts: &Opts,
    names: &[String],
    fields: &mut Vec<Option<Json>>,
) -> Option<Option<Option<Vec<u8>>>> {
    if opts.format == Format::Lines {
        return Some(Some(None));
    }
    if !check_json(line, names, fields) {
        return None;
    }
    for (k, want) in &opts.filter {
        let i = names.iter().position(|n| n == k).unwrap_or(0);
        match fields.get(i).and_then(|v| v.as_ref()) {
            Some(v) if as_text(v) == want.as_str() => {}
            _ => return Some(None),
        }
    }
    let key = opts
        .key_field
        .as_ref()
        .and_then(|_| fields.first().and_then(|v| v.as_ref()))
        .filter(|v| !v.is_null())
        .map(|v| as_text(v).as_bytes().to_vec());
    Some(Some(key))
}

/// Waits until every message is delivered or failed (librdkafka's message.timeout.ms bounds it),
/// serving delivery reports in short polls. (rdkafka's `flush` polls for up to 100 ms between checks.)
fn flush(p: &Prod) {
    while p.in_flight_count() > 0 {
        p.poll(Duration::from_millis(1));
    }
}

/// The fast path, on a blocking thread: read, decompress, check, enqueue.
fn pump(src: &mut LineSource, p: &Prod, opts: &Opts) -> anyhow::Result<Tally> {
    let names = opts.fields();
    let mut fields = Vec::new();
    let mut line = Vec::with_capacity(4096);
    let mut t = Tally::default();
    while let Some(n) = src.next(&mut line)? {
        t.read += 1;
        match route(&line, opts, &names, &mut fields) {
            None => t.malformed(n, opts.max_errors)?,
            Some(None) => t.skipped += 1,
            Some(Some(key)) => enqueue_blocking(p, &opts.topic, &line, key.as_deref(), &mut t),
        }
    }
    Ok(t)
}

pub async fn send_lines(
    lua: &Lua,
    p: &Producer,
    reader: Value,
    opts_t: Table,
) -> mlua::Result<Table> {
    let opts = Opts::from(&opts_t)?;
    let transform: Option<Function> = opts_t.get("transform")?;
    let label = match &reader {
        Value::UserData(ud) => ud
            .borrow::<crate::base::stream::Reader>()
            .map(|r| r.label.clone())
            .unwrap_or_else(|_| "input".into()),
        _ => "input".into(),
    };
    let input = crate::base::stream::reader_from_value(&reader, "send_lines")?;
    let counters = Arc::new(Counters::default());
    let producer: Prod = p
        .config
        .create_with_context(LinesCtx {
            base: p.ctx.clone(),
            counters: counters.clone(),
        })
        .map_err(|e| super::usage(format!("kafka producer: {e}")))?;
    let producer = Arc::new(producer);
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
    crate::base::blocking::spawn_blocking(move || super::producer::warm_up(prod.client(), &topic))
        .await
        .lua_err()?;
    let (tally, opts) = match transform {
        None => {
            let prod = producer.clone();
            crate::base::blocking::spawn_blocking(move || {
                let mut src = make_source()?;
                let t = pump(&mut src, &prod, &opts);
                flush(&prod);
                t.map(|t| (t, opts))
            })
            .await
            .lua_err()?
            .lua_err()?
        }
        Some(f) => {
            let r = with_transform(lua, &f, make_source, &producer, &opts).await;
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

/// The explicit slow path: a blocking thread reads and decompresses lines in chunks; each record is
/// decoded into a Lua table, passed to `transform`, and what it returns is sent (a table is encoded as
/// JSON, a string is sent as is, nil skips the record).
async fn with_transform(
    lua: &Lua,
    f: &Function,
    make_source: impl FnOnce() -> anyhow::Result<LineSource> + Send + 'static,
    producer: &Arc<Prod>,
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
            enqueue_blocking(producer, &opts.topic, &payload, key.as_deref(), &mut t);
        }
    }
    reader.await.lua_err()?;
    Ok(t)
}
