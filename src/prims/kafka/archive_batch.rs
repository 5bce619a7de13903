//! `c:archive_batch{max, wait, drain, level, format}`, the fast path of `topic-archive`: messages are gathered
//! per partition into JSONL buffers in Rust; a buffer closes at `max` records or `wait` after its first
//! record, closed buffers are gzipped in parallel and come back to Lua as strings with their offsets, so
//! Lua only writes them and commits. Open buffers live in the consumer, not in the call, so an
//! interrupted script can still take them (`c:take_open()`) and write them before it exits.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use mlua::{Lua, Table};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::Ctx;
use super::consumer::{Consumer, Tp, benign, partitions};
use crate::base::errors::IntoLua;

struct Open {
    first_offset: i64,
    last_offset: i64,
    count: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    opened: Instant,
    bytes: u64,
    /// The batch's JSONL, uncompressed: gzip runs when the batch closes, on another thread, so 128 open
    /// partitions do not each hold a compressor's state (~400 KB) and polling does not wait for it.
    raw: Vec<u8>,
}

/// A closed batch. Its JSONL stays shared with the consumer's `retained` list until its offsets are
/// committed, so that a run stopped between handing a batch out and committing it writes it again.
#[derive(Clone)]
struct Batch {
    topic: String,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
    count: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    bytes: u64,
    raw: Arc<Vec<u8>>,
}

impl Batch {
    fn tp_is(&self, tp: &Tp) -> bool {
        self.partition == tp.1 && self.topic == tp.0
    }

    fn gzip(self, level: u32) -> (Batch, anyhow::Result<Vec<u8>>) {
        let mut enc = GzEncoder::new(
            Vec::with_capacity(self.raw.len() / 4 + 64),
            Compression::new(level),
        );
        let data = enc
            .write_all(&self.raw)
            .and_then(|_| enc.finish())
            .map_err(Into::into);
        (self, data)
    }
}

/// Compresses closed batches in parallel, one thread per core (few threads: fewer malloc arenas
/// holding freed buffers, so memory stays flat).
async fn gzip_all(
    batches: Vec<Batch>,
    level: u32,
) -> mlua::Result<Vec<(Batch, anyhow::Result<Vec<u8>>)>> {
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    crate::base::blocking::spawn_blocking(move || {
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(batches.len());
        let per = batches.len().div_ceil(workers);
        let mut parts: Vec<Vec<Batch>> = Vec::new();
        let mut it = batches.into_iter();
        loop {
            let part: Vec<Batch> = it.by_ref().take(per).collect();
            if part.is_empty() {
                break;
            }
            parts.push(part);
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    s.spawn(move || part.into_iter().map(|b| b.gzip(level)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("gzip thread panicked"))
                .collect()
        })
    })
    .await
    .lua_err()
}

fn close(tp: Tp, o: Open) -> Batch {
    Batch {
        topic: tp.0,
        partition: tp.1,
        first_offset: o.first_offset,
        last_offset: o.last_offset,
        count: o.count,
        first_ts: o.first_ts,
        last_ts: o.last_ts,
        bytes: o.bytes,
        raw: Arc::new(o.raw),
    }
}

/// Archiving state of one consumer: open buffers, and for drain mode its targets.
#[derive(Default)]
pub(super) struct Archive {
    open: HashMap<Tp, Open>,
    /// Next offset per partition, of what this consumer has read.
    consumed: HashMap<Tp, i64>,
    /// For drain mode: the high watermark each partition must reach.
    targets: Option<HashMap<Tp, i64>>,
    /// For drain mode: partitions found at their end with nothing to read.
    at_end: HashSet<Tp>,
    /// gzip level of the last archive_batch call (for take_open).
    level: u32,
    /// Closed batches whose offsets are not committed yet (handed to the script, or closed by a call
    /// that was cancelled): `take_open` hands them out again. `c:commit` forgets them.
    retained: Vec<Batch>,
    /// A commit was refused by an eager rebalance (`fence`): set until the revocation is served.
    fenced: bool,
}

impl Archive {
    /// Forgets the retained batches that a commit of `offsets` (next offset per partition) covers.
    pub(super) fn committed(&mut self, offsets: &[(Tp, i64)]) {
        self.retained.retain(|b| {
            !offsets
                .iter()
                .any(|(tp, next)| b.tp_is(tp) && b.last_offset < *next)
        });
    }

    /// A commit was refused because the group is rebalancing and, on the eager protocol, takes every
    /// partition back at the next `poll`. Drops everything not committed, as that revocation will, and
    /// archives nothing until it comes: a batch written meanwhile would be a second uncommitted object of
    /// its partition, which the next owner (cutting its batches elsewhere) would not overwrite.
    pub(super) fn fence(&mut self) {
        let records: u64 = self.open.values().map(|o| o.count).sum::<u64>()
            + self.retained.iter().map(|b| b.count).sum::<u64>();
        self.open.clear();
        self.retained.clear();
        self.consumed.clear();
        self.at_end.clear();
        self.fenced = true;
        tracing::info!(
            target: "kafka",
            records,
            "kafka: dropped the uncommitted records until the rebalance revokes the partitions (their next owner reads them again)"
        );
    }

    /// Drops everything not yet committed of the partitions the group took away (see `rebalance.rs`):
    /// their next owner reads it again from the committed offset. Returns the records dropped.
    fn drop_revoked(&mut self, revoked: &[Tp], closed: &mut Vec<Batch>) -> u64 {
        let mut records = 0;
        for tp in revoked {
            if let Some(o) = self.open.remove(tp) {
                records += o.count;
            }
            self.consumed.remove(tp);
            self.at_end.remove(tp);
        }
        for list in [&mut self.retained, closed] {
            list.retain(|b| {
                let lost = revoked.iter().any(|tp| b.tp_is(tp));
                if lost {
                    records += b.count;
                }
                !lost
            });
        }
        records
    }
}

/// Applies the revocations librdkafka reported during the last `poll` (before the message it returned is
/// looked at).
fn apply_revocations(c: &BaseConsumer<Ctx>, st: &mut Archive, closed: &mut Vec<Batch>) -> bool {
    let revoked = c.context().rebalances.take_revoked();
    if revoked.is_empty() {
        return false;
    }
    let records = st.drop_revoked(&revoked, closed);
    st.fenced = false;
    tracing::info!(
        target: "kafka",
        partitions = %super::rebalance::names(&revoked),
        records,
        "kafka: dropped the unwritten records of revoked partitions (their next owner reads them again)"
    );
    true
}

/// PartitionEOF names only the partition number: check the committed offsets of the target partitions
/// with that number.
fn eof(c: &BaseConsumer<Ctx>, st: &mut Archive, p: i32) {
    let Some(targets) = &st.targets else { return };
    let mut tpl = TopicPartitionList::new();
    for (tp, high) in targets {
        if tp.1 == p
            && !st.at_end.contains(tp)
            && st.consumed.get(tp).copied().unwrap_or(-1) < *high
        {
            tpl.add_partition(&tp.0, tp.1);
        }
    }
    if tpl.count() == 0 {
        return;
    }
    let Ok(committed) = c.committed_offsets(tpl, Duration::from_secs(30)) else {
        return;
    };
    for e in committed.elements() {
        let tp = (e.topic().to_string(), e.partition());
        if let (Offset::Offset(o), Some(high)) = (e.offset(), targets.get(&tp))
            && o >= *high
        {
            st.at_end.insert(tp);
        }
    }
}

fn batch_table(lua: &Lua, b: Batch, data: anyhow::Result<Vec<u8>>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("topic", b.topic.as_str())?;
    t.set("partition", b.partition)?;
    t.set("first_offset", b.first_offset)?;
    t.set("last_offset", b.last_offset)?;
    t.set("count", b.count)?;
    t.set("first_timestamp", b.first_ts.map(|ms| ms as f64 / 1000.0))?;
    t.set("last_timestamp", b.last_ts.map(|ms| ms as f64 / 1000.0))?;
    t.set("bytes", b.bytes)?;
    t.set("data", lua.create_string(&data.lua_err()?)?)?;
    Ok(t)
}

fn batches_table(lua: &Lua, batches: Vec<(Batch, anyhow::Result<Vec<u8>>)>) -> mlua::Result<Table> {
    let arr = lua.create_table_with_capacity(batches.len(), 0)?;
    for (b, data) in batches {
        arr.push(batch_table(lua, b, data)?)?;
    }
    Ok(arr)
}

struct ArchiveOpts {
    max: u64,
    wait: Duration,
    drain: bool,
    level: u32,
    /// Envelope lines (key, headers, timestamp, partition, offset, value; `envelope.rs`) instead of
    /// value-only JSONL.
    envelope: bool,
}

/// Closed batches returned by one call at most: the script writes them concurrently and commits them
/// with one request, so per-batch round trips do not bound the rate.
const MAX_CLOSED: usize = 32;

/// One slice of archiving (at most ~200 ms), on a blocking thread. Returns closed batches and whether a
/// drain reached its end.
fn archive_slice(
    c: &BaseConsumer<Ctx>,
    state: &Mutex<Archive>,
    o: &ArchiveOpts,
) -> (Vec<Batch>, bool) {
    let slice_end = Instant::now() + Duration::from_millis(200);
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    st.level = o.level;
    let mut closed = Vec::new();
    // A partition is drained when this consumer has read up to the target, or when librdkafka reports
    // the end of it (PartitionEOF) and the group's committed offset is already there (nothing to read).
    let reached = |st: &Archive| -> bool {
        let Some(t) = &st.targets else { return false };
        t.iter().all(|(tp, high)| {
            st.consumed.get(tp).copied().unwrap_or(-1) >= *high || st.at_end.contains(tp)
        })
    };
    let mut done = false;
    // Per-message work stays O(1): the drain check runs only when a partition may have reached its
    // target, and the expiry scan only when the earliest buffer deadline has passed.
    let mut check_reached = true;
    let mut next_expiry = st.open.values().map(|b| b.opened + o.wait).min();
    loop {
        if o.drain && check_reached {
            check_reached = false;
            if reached(&st) {
                for (tp, open) in std::mem::take(&mut st.open) {
                    closed.push(close(tp, open));
                }
                done = true;
                break;
            }
        }
        let now = Instant::now();
        if now >= slice_end {
            break;
        }
        if next_expiry.is_some_and(|t| now >= t) {
            // Close buffers whose wait is over.
            let expired: Vec<Tp> = st
                .open
                .iter()
                .filter(|(_, b)| now.duration_since(b.opened) >= o.wait)
                .map(|(tp, _)| tp.clone())
                .collect();
            for tp in expired {
                if let Some(b) = st.open.remove(&tp) {
                    closed.push(close(tp, b));
                }
            }
            next_expiry = st.open.values().map(|b| b.opened + o.wait).min();
        }
        if closed.len() >= MAX_CLOSED {
            break;
        }
        let next_wait = next_expiry.map_or(o.wait, |t| t.saturating_duration_since(now));
        let timeout = (slice_end - now)
            .min(next_wait)
            .min(Duration::from_millis(100));
        let polled = c.poll(timeout);
        if apply_revocations(c, &mut st, &mut closed) {
            next_expiry = st.open.values().map(|b| b.opened + o.wait).min();
            check_reached = true;
        }
        match polled {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) if o.drain => {
                eof(c, &mut st, p);
                check_reached = true;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) if benign(&e) => {}
            Some(Err(e)) => {
                tracing::warn!(
                    "kafka consumer: {}",
                    crate::base::redact::redact(&e.to_string())
                )
            }
            // Read again from the committed offset after the revocation (see `fence`).
            Some(Ok(_)) if st.fenced => {}
            Some(Ok(m)) => {
                let tp: Tp = (m.topic().to_string(), m.partition());
                st.consumed.insert(tp.clone(), m.offset() + 1);
                if let Some(high) = st.targets.as_ref().and_then(|t| t.get(&tp))
                    && m.offset() + 1 >= *high
                {
                    check_reached = true;
                }
                let ts = m.timestamp().to_millis();
                let b = st.open.entry(tp.clone()).or_insert_with(|| {
                    let opened = Instant::now();
                    next_expiry =
                        Some(next_expiry.map_or(opened + o.wait, |t| t.min(opened + o.wait)));
                    Open {
                        first_offset: m.offset(),
                        last_offset: m.offset(),
                        count: 0,
                        first_ts: ts,
                        last_ts: ts,
                        opened,
                        bytes: 0,
                        raw: Vec::new(),
                    }
                });
                b.last_offset = m.offset();
                b.last_ts = ts;
                b.count += 1;
                if o.envelope {
                    let before = b.raw.len();
                    super::envelope::encode(&m, &mut b.raw);
                    b.bytes += (b.raw.len() - before) as u64;
                } else if let Some(v) = m.payload() {
                    // Vec writes cannot fail.
                    b.raw.extend_from_slice(v);
                    b.raw.push(b'\n');
                    b.bytes += v.len() as u64 + 1;
                }
                if b.count >= o.max {
                    let b = st.open.remove(&tp).expect("buffer just used");
                    closed.push(close(tp, b));
                    if closed.len() >= MAX_CLOSED {
                        break;
                    }
                }
            }
        }
    }
    // Kept until committed: the call that returns them may be cancelled before the script writes them.
    st.retained.extend(closed.iter().cloned());
    (closed, done)
}

/// `c:archive_batch{max = 1000, wait = "10m", drain = false, level = 1}`
///   -> {batches = { {topic, partition, first_offset, last_offset, count, first_timestamp, data} }, done}
pub(super) async fn archive_batch(
    lua: &Lua,
    this: &Consumer,
    opts: Option<Table>,
) -> mlua::Result<Table> {
    let o = match &opts {
        Some(t) => ArchiveOpts {
            max: t.get::<Option<u64>>("max")?.unwrap_or(1000).max(1),
            wait: super::duration(&t.get("wait")?, "wait", Duration::from_secs(600))?,
            drain: t.get::<Option<bool>>("drain")?.unwrap_or(false),
            level: t.get::<Option<u32>>("level")?.unwrap_or(1).min(9),
            envelope: match t.get::<Option<String>>("format")?.as_deref() {
                None | Some("values") | Some("jsonl") => false,
                Some("envelope") => true,
                Some(f) => {
                    return Err(super::usage(format!(
                        "archive_batch: unknown format {f:?} (values or envelope)"
                    )));
                }
            },
        },
        None => ArchiveOpts {
            max: 1000,
            wait: Duration::from_secs(600),
            drain: false,
            level: 1,
            envelope: false,
        },
    };
    let o = Arc::new(o);
    if o.drain {
        let need = self_targets_missing(&this.archive);
        if need {
            let c = this.inner.clone();
            let topics = this.topics.clone();
            let hint = this.ctx.hint();
            let targets = crate::base::blocking::spawn_blocking(move || drain_targets(&c, &topics))
                .await
                .lua_err()?
                .map_err(|e| crate::base::errors::lua_error(e.context(hint)))?;
            this.archive
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .targets = Some(targets);
        }
    }
    loop {
        let c = this.inner.clone();
        let st = this.archive.clone();
        let o2 = o.clone();
        let (batches, done) =
            crate::base::blocking::spawn_blocking(move || archive_slice(&c, &st, &o2))
                .await
                .lua_err()?;
        if !batches.is_empty() || done {
            let batches = gzip_all(batches, o.level).await?;
            let t = lua.create_table()?;
            t.set("batches", batches_table(lua, batches)?)?;
            t.set("done", done)?;
            return Ok(t);
        }
    }
}

/// `c:take_open()` -> batches: closes every open buffer now (for a clean stop), together with the closed
/// batches not committed yet (handed out by a call whose run was then stopped: written again, same keys).
pub(super) async fn take_open(lua: &Lua, this: &Consumer) -> mlua::Result<Table> {
    let st = this.archive.clone();
    let c = this.inner.clone();
    let (batches, level) = crate::base::blocking::spawn_blocking(move || {
        let mut st = st.lock().unwrap_or_else(|e| e.into_inner());
        apply_revocations(&c, &mut st, &mut Vec::new());
        let closed: Vec<Batch> = std::mem::take(&mut st.open)
            .into_iter()
            .map(|(tp, o)| close(tp, o))
            .collect();
        st.retained.extend(closed);
        (st.retained.clone(), st.level)
    })
    .await
    .lua_err()?;
    let batches = gzip_all(batches, level).await?;
    batches_table(lua, batches)
}

fn self_targets_missing(a: &Mutex<Archive>) -> bool {
    a.lock()
        .unwrap_or_else(|e| e.into_inner())
        .targets
        .is_none()
}

/// For drain mode: each partition with something to read, and the high watermark it must reach.
fn drain_targets(c: &BaseConsumer<Ctx>, topics: &[String]) -> anyhow::Result<HashMap<Tp, i64>> {
    let timeout = Duration::from_secs(10);
    let parts = partitions(c, topics, timeout)?;
    let mut out = HashMap::new();
    let mut seen = HashSet::new();
    for (t, p) in parts {
        if !seen.insert((t.clone(), p)) {
            continue;
        }
        let (low, high) = c.fetch_watermarks(&t, p, timeout)?;
        if high > low {
            out.insert((t, p), high);
        }
    }
    Ok(out)
}
