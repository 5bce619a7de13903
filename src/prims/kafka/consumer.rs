//! `kafka.consumer{brokers, group, topics, config, start}`: polls batches; offsets are committed only by
//! `c:commit()` (enable.auto.commit and enable.auto.offset.store are off). This file holds the consumer
//! userdata: creation (subscribe, or assign from a time), `poll`, `commit`, `seek` and `close`.
//!
//! `c:archive_batch{}` and `c:take_open()`, the fast path of `topic-archive`, are in `archive_batch.rs`;
//! their open buffers live in the consumer (`Consumer::archive`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlua::{Lua, Table, UserData, UserDataMethods, Value};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::Ctx;
use super::archive_batch::{self, Archive};
use crate::base::errors::IntoLua;

/// A topic partition.
pub(super) type Tp = (String, i32);

struct Msg {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: Option<i64>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Msg {
    fn from(m: &BorrowedMessage<'_>) -> Msg {
        let mut headers = Vec::new();
        if let Some(h) = m.headers() {
            for x in h.iter() {
                headers.push((x.key.to_string(), x.value.map(|v| v.to_vec())));
            }
        }
        Msg {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| k.to_vec()),
            value: m.payload().map(|v| v.to_vec()),
            timestamp: m.timestamp().to_millis(),
            headers,
        }
    }
}

pub struct Consumer {
    pub(super) inner: Arc<BaseConsumer<Ctx>>,
    pub(super) ctx: Ctx,
    pub(super) topics: Vec<String>,
    group: String,
    /// Next offset per partition of what `poll` returned: what `commit()` commits.
    polled: Arc<Mutex<HashMap<Tp, i64>>>,
    /// Open archive buffers and drain state (`archive_batch.rs`).
    pub(super) archive: Arc<Mutex<Archive>>,
}

fn topics_of(opts: &Table) -> mlua::Result<Vec<String>> {
    let v: Vec<String> = match opts.get::<Value>("topics")? {
        Value::String(s) => s
            .to_str()?
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Value::Table(t) => t.sequence_values::<String>().collect::<mlua::Result<_>>()?,
        Value::Nil => Vec::new(),
        other => {
            return Err(super::usage(format!(
                "kafka consumer: topics must be a string or a list, got {}",
                other.type_name()
            )));
        }
    };
    if v.is_empty() {
        return Err(super::usage("kafka consumer: topics is required"));
    }
    Ok(v)
}

/// Partitions of the topics, from the cluster's metadata.
pub(super) fn partitions(
    c: &BaseConsumer<Ctx>,
    topics: &[String],
    timeout: Duration,
) -> anyhow::Result<Vec<Tp>> {
    let mut out = Vec::new();
    for t in topics {
        let md = c
            .fetch_metadata(Some(t), timeout)
            .map_err(|e| anyhow::anyhow!("kafka: metadata of topic {t}: {e}"))?;
        for mt in md.topics() {
            if let Some(err) = mt.error() {
                anyhow::bail!("kafka: topic {t}: {:?}", err);
            }
            for p in mt.partitions() {
                out.push((mt.name().to_string(), p.id()));
            }
        }
    }
    Ok(out)
}

impl Consumer {
    pub async fn new(opts: Table) -> mlua::Result<Consumer> {
        let group: String = opts
            .get::<Option<String>>("group")?
            .ok_or_else(|| super::usage("kafka consumer: group is required"))?;
        let topics = topics_of(&opts)?;
        let start: Value = opts.get("start")?;
        let (reset, start_ms) = match &start {
            Value::Nil => ("earliest", None),
            Value::String(s) if s.to_str()?.as_ref() == "earliest" => ("earliest", None),
            Value::String(s) if s.to_str()?.as_ref() == "latest" => ("latest", None),
            v => (
                "earliest",
                Some(super::timestamp_ms(v, "kafka consumer start")?),
            ),
        };
        let defaults = [
            ("group.id", group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", reset),
            // archive_batch{drain = true} learns that a partition has nothing left from these events.
            ("enable.partition.eof", "true"),
            // librdkafka >= 2.1 waits this long before fetching again once the local queue was full
            // (default 1 s): a fast reader then idles most of the time. Refill quickly instead.
            ("fetch.queue.backoff.ms", "20"),
            // Prefetched messages held locally (librdkafka's default is 64 MB); with the quick refill
            // above, 16 MB keeps a reader busy and the process well under 200 MB.
            ("queued.max.messages.kbytes", "16384"),
        ];
        let config = super::client_config(&opts, &defaults)?;
        let ctx = Ctx::new(&config);
        let inner: BaseConsumer<Ctx> = config
            .create_with_context(ctx.clone())
            .map_err(|e| super::usage(format!("kafka consumer: {e}")))?;
        let inner = Arc::new(inner);
        let c = inner.clone();
        let ts = topics.clone();
        let hint = ctx.clone();
        crate::base::blocking::spawn_blocking(move || -> anyhow::Result<()> {
            match start_ms {
                None => {
                    let refs: Vec<&str> = ts.iter().map(|s| s.as_str()).collect();
                    c.subscribe(&refs)?;
                }
                Some(ms) => {
                    // From a time: assign every partition at the first offset at or after it.
                    let timeout = Duration::from_secs(10);
                    let mut tpl = TopicPartitionList::new();
                    for (t, p) in partitions(&c, &ts, timeout)? {
                        tpl.add_partition_offset(&t, p, Offset::Offset(ms))?;
                    }
                    let found = c.offsets_for_times(tpl, timeout)?;
                    let mut assign = TopicPartitionList::new();
                    for e in found.elements() {
                        let off = match e.offset() {
                            Offset::Offset(o) => Offset::Offset(o),
                            _ => Offset::End,
                        };
                        assign.add_partition_offset(e.topic(), e.partition(), off)?;
                    }
                    c.assign(&assign)?;
                }
            }
            Ok(())
        })
        .await
        .lua_err()?
        .map_err(|e| {
            crate::base::errors::lua_error(e.context(format!("kafka consumer{}", hint.hint())))
        })?;
        Ok(Consumer {
            inner,
            ctx,
            topics,
            group,
            polled: Default::default(),
            archive: Default::default(),
        })
    }
}

fn bytes_value(lua: &Lua, b: &Option<Vec<u8>>) -> mlua::Result<Value> {
    Ok(match b {
        Some(b) => Value::String(lua.create_string(b)?),
        None => Value::Nil,
    })
}

fn msg_table(lua: &Lua, m: &Msg) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 7)?;
    t.set("topic", m.topic.as_str())?;
    t.set("partition", m.partition)?;
    t.set("offset", m.offset)?;
    t.set("key", bytes_value(lua, &m.key)?)?;
    t.set("value", bytes_value(lua, &m.value)?)?;
    t.set("timestamp", m.timestamp.map(|ms| ms as f64 / 1000.0))?;
    let h = lua.create_table()?;
    for (k, v) in &m.headers {
        h.set(k.as_str(), bytes_value(lua, v)?)?;
    }
    t.set("headers", h)?;
    Ok(t)
}

/// A synchronous commit; `Ok(false)` when the group refused it because it is rebalancing and this member,
/// on the eager protocol, must give its partitions back before the group can go on.
///
/// Cooperative (`partition.assignment.strategy=cooperative-sticky`): librdkafka rejoins in the background,
/// so a commit can carry the generation that just ended; it is sent again for up to 20 s, once librdkafka
/// knows the new generation: the offsets are still this member's to commit (its partitions move only
/// after it has served their revocation in `poll`).
///
/// Eager (librdkafka's default): the member rejoins only after it has served the revocation of every
/// partition in `poll`, so sending the commit again here would hold the whole group up until the
/// coordinator expels this member (librdkafka's mock cluster refuses commits while the members rejoin).
/// The commit is given up instead: nothing of it is committed, and each partition's next owner reads from
/// the last committed offset.
fn commit_through_rebalance(
    c: &BaseConsumer<Ctx>,
    tpl: &TopicPartitionList,
) -> rdkafka::error::KafkaResult<bool> {
    use rdkafka::consumer::RebalanceProtocol;
    use rdkafka::types::RDKafkaErrorCode::{IllegalGeneration, RebalanceInProgress};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.commit(tpl, CommitMode::Sync) {
            Err(KafkaError::ConsumerCommit(code @ (IllegalGeneration | RebalanceInProgress)))
                if Instant::now() < deadline =>
            {
                if !matches!(c.rebalance_protocol(), RebalanceProtocol::Cooperative) {
                    tracing::info!(target: "kafka", "kafka: commit refused ({code}) during a rebalance: not committed (the partitions go back to the group)");
                    return Ok(false);
                }
                tracing::debug!(target: "kafka", "kafka: commit refused ({code}) during a rebalance, sending it again");
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other.map(|()| true),
        }
    }
}

/// Is this poll error only informational?
pub(super) fn benign(e: &KafkaError) -> bool {
    matches!(e, KafkaError::PartitionEOF(_))
}

impl UserData for Consumer {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // poll(max = 500, timeout = 1s) -> array of {topic, partition, offset, key, value, timestamp, headers}
        m.add_async_method(
            "poll",
            |lua, this, (max, timeout): (Option<usize>, Value)| async move {
                let max = max.unwrap_or(500).max(1);
                let timeout = super::duration(&timeout, "poll timeout", Duration::from_secs(1))?;
                let c = this.inner.clone();
                let polled = this.polled.clone();
                let polled_offsets = this.polled.clone();
                let msgs = crate::base::blocking::spawn_blocking(move || {
                    let deadline = Instant::now() + timeout;
                    let mut out: Vec<Msg> = Vec::new();
                    loop {
                        let now = Instant::now();
                        // Wait for the first message; then gather what arrives within a few ms.
                        let left = deadline.saturating_duration_since(now);
                        let wait = if out.is_empty() {
                            left
                        } else {
                            left.min(Duration::from_millis(10))
                        };
                        let polled = c.poll(wait);
                        // Messages of partitions the group took away meanwhile are not handed out (their
                        // next owner reads them again from the committed offset), nor committed later.
                        let revoked = c.context().rebalances.take_revoked();
                        if !revoked.is_empty() {
                            out.retain(|m| !revoked.contains(&(m.topic.clone(), m.partition)));
                            let mut p = polled_offsets.lock().unwrap_or_else(|e| e.into_inner());
                            p.retain(|tp, _| !revoked.contains(tp));
                        }
                        match polled {
                            Some(Ok(m)) => {
                                out.push(Msg::from(&m));
                                if out.len() >= max {
                                    break;
                                }
                            }
                            Some(Err(e)) => {
                                if !benign(&e) {
                                    tracing::warn!(
                                        "kafka consumer: {}",
                                        crate::base::redact::redact(&e.to_string())
                                    );
                                }
                                if Instant::now() >= deadline {
                                    break;
                                }
                            }
                            None => {
                                if !out.is_empty() || Instant::now() >= deadline {
                                    break;
                                }
                            }
                        }
                    }
                    let mut p = polled.lock().unwrap_or_else(|e| e.into_inner());
                    for m in &out {
                        p.insert((m.topic.clone(), m.partition), m.offset + 1);
                    }
                    out
                })
                .await
                .lua_err()?;
                let arr = lua.create_table_with_capacity(msgs.len(), 0)?;
                for (i, m) in msgs.iter().enumerate() {
                    arr.raw_set(i + 1, msg_table(&lua, m)?)?;
                }
                Ok(arr)
            },
        );
        // commit([ {topic, partition, offset} ... ]): synchronous. Without an argument, commits what poll
        // returned. `offset` is the next offset to read (last processed + 1). Returns partitions committed.
        m.add_async_method("commit", |_, this, list: Option<Table>| async move {
            let mut offsets: Vec<(Tp, i64)> = Vec::new();
            match list {
                Some(l) => {
                    for e in l.sequence_values::<Table>() {
                        let e = e?;
                        offsets.push(((e.get("topic")?, e.get("partition")?), e.get("offset")?));
                    }
                }
                None => {
                    let p = this.polled.lock().unwrap_or_else(|e| e.into_inner());
                    offsets.extend(p.iter().map(|(k, v)| (k.clone(), *v)));
                }
            }
            if offsets.is_empty() {
                return Ok(0);
            }
            let mut tpl = TopicPartitionList::new();
            for ((t, p), o) in &offsets {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                    .lua_err()?;
            }
            let c = this.inner.clone();
            let hint = this.ctx.hint();
            let committed =
                crate::base::blocking::spawn_blocking(move || commit_through_rebalance(&c, &tpl))
                    .await
                    .lua_err()?
                    .map_err(|e| {
                        crate::base::errors::lua_error(anyhow::anyhow!(
                            "kafka: commit failed: {e}{hint}"
                        ))
                    })?;
            let mut archive = this.archive.lock().unwrap_or_else(|e| e.into_inner());
            if !committed {
                // Every partition is about to be revoked: archive nothing more until then.
                archive.fence();
                return Ok(0);
            }
            // Archive batches these offsets cover need not be handed out again.
            archive.committed(&offsets);
            Ok(offsets.len())
        });
        // seek(topic, partition, offset | "earliest" | "latest" | {time = t}) on an assigned partition.
        m.add_async_method(
            "seek",
            |_, this, (topic, partition, to): (String, i32, Value)| async move {
                let c = this.inner.clone();
                let timeout = Duration::from_secs(10);
                let target = match &to {
                    Value::Integer(o) => Ok(Offset::Offset(*o)),
                    Value::String(s) if s.to_str()?.as_ref() == "earliest" => Ok(Offset::Beginning),
                    Value::String(s) if s.to_str()?.as_ref() == "latest" => Ok(Offset::End),
                    Value::String(_) => Err(super::timestamp_ms(&to, "seek")?),
                    Value::Table(t) => Err(super::timestamp_ms(&t.get("time")?, "seek time")?),
                    other => {
                        return Err(super::usage(format!(
                            "seek: expected an offset, \"earliest\", \"latest\" or {{time = t}}, got {}",
                            other.type_name()
                        )));
                    }
                };
                let t2 = topic.clone();
                crate::base::blocking::spawn_blocking(move || -> anyhow::Result<()> {
                    let off = match target {
                        Ok(o) => o,
                        Err(ms) => {
                            let mut tpl = TopicPartitionList::new();
                            tpl.add_partition_offset(&t2, partition, Offset::Offset(ms))?;
                            let r = c.offsets_for_times(tpl, timeout)?;
                            r.find_partition(&t2, partition)
                                .map(|e| e.offset())
                                .filter(|o| matches!(o, Offset::Offset(_)))
                                .unwrap_or(Offset::End)
                        }
                    };
                    c.seek(&t2, partition, off, timeout)?;
                    Ok(())
                })
                .await
                .lua_err()?
                .map_err(|e| {
                    crate::base::errors::lua_error(e.context(format!(
                        "kafka: seek on {topic} partition {partition} (is it assigned yet? poll first)"
                    )))
                })?;
                this.polled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(topic, partition));
                Ok(())
            },
        );
        // archive_batch{max = 1000, wait = "10m", drain = false, level = 1}
        //   -> {batches = { {topic, partition, first_offset, last_offset, count, first_timestamp, data} }, done}
        m.add_async_method(
            "archive_batch",
            |lua, this, opts: Option<Table>| async move {
                archive_batch::archive_batch(&lua, &this, opts).await
            },
        );
        // take_open() -> batches: closes every open buffer now (for a clean stop).
        m.add_async_method("take_open", |lua, this, ()| async move {
            archive_batch::take_open(&lua, &this).await
        });
        // close(): leaves the group. Uncommitted offsets are not committed.
        m.add_async_method("close", |_, this, ()| async move {
            // Leave the group now (the process may exit without dropping the consumer), so the next
            // member of the group does not wait for this one's session to time out.
            let c = this.inner.clone();
            crate::base::blocking::spawn_blocking(move || {
                if c.close_queue().is_ok() {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !c.closed() && Instant::now() < deadline {
                        c.poll(Duration::from_millis(100));
                    }
                }
            })
            .await
            .lua_err()?;
            Ok(())
        });
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!(
                "kafka.consumer(group {}, topics {})",
                this.group,
                this.topics.join(",")
            ))
        });
    }
}
