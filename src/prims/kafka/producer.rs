//! `kafka.producer{}`: single sends awaiting delivery, flush, and `send_lines` (see `lines/`).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mlua::{Table, UserData, UserDataMethods, Value};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use tokio::sync::oneshot;

use super::Ctx;
use crate::base::errors::IntoLua;

/// Producer defaults; every one can be overridden in `config`.
///
/// `enable.sparse.connections=false`: connect to every broker the cluster names at once, not on first
/// need; a producer writes to every partition leader anyway. Measured on the mock cluster: a 1,000-event
/// send_lines took 60 ms with lazy connections, 7-14 ms without (see also `warm_up`).
pub const DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("enable.sparse.connections", "false"),
];

pub struct Producer {
    pub config: ClientConfig,
    pub ctx: Ctx,
    single: RefCell<Option<Arc<Single>>>,
    /// Made with a `transactional_id` (or `transactional.id` in config): see `txn.rs`.
    pub transactional: bool,
    pub txn: RefCell<Option<super::txn::Txn>>,
}

type Delivered = Result<(i32, i64), KafkaError>;

/// The client behind `p:send`: each message carries a channel its delivery report answers.
struct SendCtx(Ctx);

impl ClientContext for SendCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        self.0.log(level, fac, msg)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(error, reason)
    }
}

impl ProducerContext for SendCtx {
    type DeliveryOpaque = Box<oneshot::Sender<Delivered>>;
    fn delivery(&self, r: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let _ = tx.send(match r {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        });
    }
}

/// A `BaseProducer` polled by its own thread in 10 ms steps. rdkafka's FutureProducer polls in 100 ms
/// steps and joins that thread when dropped, which added ~95 ms to the end of every script that sent.
struct Single {
    producer: Arc<BaseProducer<SendCtx>>,
    stop: Arc<AtomicBool>,
    poller: Option<std::thread::JoinHandle<()>>,
}

impl Single {
    fn new(config: &ClientConfig, ctx: Ctx) -> anyhow::Result<Single> {
        let producer: Arc<BaseProducer<SendCtx>> =
            Arc::new(config.create_with_context(SendCtx(ctx))?);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (producer.clone(), stop.clone());
        let poller = std::thread::Builder::new()
            .name("kafka-send-poll".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    p.poll(Duration::from_millis(10));
                }
            })?;
        Ok(Single {
            producer,
            stop,
            poller: Some(poller),
        })
    }
}

impl Drop for Single {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.poller.take() {
            let _ = t.join();
        }
    }
}

impl Producer {
    pub fn new(opts: &Table) -> mlua::Result<Producer> {
        let mut config = super::client_config(opts, DEFAULTS)?;
        if let Some(id) = opts.get::<Option<String>>("transactional_id")? {
            config.set("transactional.id", id);
        }
        let transactional = config
            .get("transactional.id")
            .is_some_and(|s| !s.is_empty());
        let p = Producer {
            ctx: Ctx::new(&config),
            config,
            single: RefCell::new(None),
            transactional,
            txn: RefCell::new(None),
        };
        // Check the settings now so a bad one is reported where the producer is made. The client itself
        // is made on first `send`: scripts that only use `send_lines` (its own client) never start one.
        p.config
            .create_native_config()
            .map_err(|e| super::usage(format!("kafka producer: {e}")))?;
        Ok(p)
    }

    /// The client for single sends, made (and warmed up for `topic`) on first use.
    async fn single(&self, topic: Option<&str>) -> mlua::Result<Arc<Single>> {
        if let Some(p) = self.single.borrow().as_ref() {
            return Ok(p.clone());
        }
        let p = Arc::new(
            Single::new(&self.config, self.ctx.clone())
                .map_err(|e| super::usage(format!("kafka producer: {e}")))?,
        );
        *self.single.borrow_mut() = Some(p.clone());
        if let Some(topic) = topic {
            let (client, topic) = (p.producer.clone(), topic.to_string());
            crate::base::blocking::spawn_blocking(move || warm_up(client.client(), &topic))
                .await
                .lua_err()?;
        }
        Ok(p)
    }
}

/// Ask for `topic`'s metadata twice before the first message. An idempotent producer asks for its
/// producer id when a metadata answer arrives; if no broker it may use is connected yet (the answer came
/// through the bootstrap connection), it retries only after librdkafka's fixed 500 ms. The second request
/// goes out once the cluster's own brokers are connected, so the id is asked for at once. Measured on the
/// mock cluster: a 1,000-event send_lines took 0.5 s in 4 runs of 20 without this, in none of 20 with it
/// (about 1.5 ms spent here). Errors are left to the sends, which report them with more context.
pub fn warm_up<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
) {
    // No longer than the wait it saves: past 500 ms librdkafka's own retry has run anyway.
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || client.fetch_metadata(Some(topic), left).is_err() {
            return;
        }
    }
}

fn headers_from(t: Option<Table>) -> mlua::Result<Option<OwnedHeaders>> {
    let Some(t) = t else { return Ok(None) };
    let mut h = OwnedHeaders::new();
    for pair in t.pairs::<String, mlua::LuaString>() {
        let (k, v) = pair?;
        let v = v.as_bytes().to_vec();
        h = h.insert(Header {
            key: &k,
            value: Some(&v),
        });
    }
    Ok(Some(h))
}

impl UserData for Producer {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // send(topic, value, {key, headers, partition, timestamp}) -> {partition, offset}
        m.add_async_method(
            "send",
            |lua, this, (topic, value, opts): (String, mlua::LuaString, Option<Table>)| async move {
                if this.transactional {
                    return Err(super::usage(
                        "kafka: p:send is not transactional; on a transactional producer use p:send_lines between begin_transaction and commit_transaction",
                    ));
                }
                let single = this.single(Some(&topic)).await?;
                let value = value.as_bytes().to_vec();
                let (key, headers, partition) = match &opts {
                    Some(o) => (
                        o.get::<Option<mlua::LuaString>>("key")?
                            .map(|k| k.as_bytes().to_vec()),
                        headers_from(o.get("headers")?)?,
                        o.get::<Option<i32>>("partition")?,
                    ),
                    None => (None, None, None),
                };
                let failed = |e: KafkaError| {
                    crate::base::errors::lua_error(anyhow::anyhow!(
                        "kafka: delivery to topic {topic} partition {} failed: {e}{}",
                        partition.map_or("any".to_string(), |p| p.to_string()),
                        this.ctx.hint()
                    ))
                };
                let (tx, rx) = oneshot::channel::<Delivered>();
                let mut rec: BaseRecord<'_, Vec<u8>, Vec<u8>, _> =
                    BaseRecord::with_opaque_to(&topic, Box::new(tx)).payload(&value);
                if let Some(k) = &key {
                    rec = rec.key(k);
                }
                if let Some(h) = headers {
                    rec = rec.headers(h);
                }
                if let Some(p) = partition {
                    rec = rec.partition(p);
                }
                loop {
                    match single.producer.send(rec) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            rec = r;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err((e, _)) => return Err(failed(e)),
                    }
                }
                // message.timeout.ms bounds the wait: librdkafka fails the delivery when it passes.
                match rx.await {
                    Ok(Ok((partition, offset))) => {
                        let t = lua.create_table()?;
                        t.set("partition", partition)?;
                        t.set("offset", offset)?;
                        Ok(t)
                    }
                    Ok(Err(e)) => Err(failed(e)),
                    Err(_) => Err(failed(KafkaError::Canceled)),
                }
            },
        );
        // flush(timeout): waits until every queued message is delivered (default 30 s).
        m.add_async_method("flush", |_, this, timeout: Value| async move {
            let producer = this.single(None).await?.producer.clone();
            let timeout = super::duration(&timeout, "flush timeout", Duration::from_secs(30))?;
            let hint = this.ctx.hint();
            crate::base::blocking::spawn_blocking(move || producer.flush(timeout))
                .await
                .lua_err()?
                .map_err(|e| {
                    crate::base::errors::lua_error(anyhow::anyhow!(
                        "kafka: flush did not finish within {timeout:?}: {e}{hint}"
                    ))
                })
        });
        m.add_async_method(
            "send_lines",
            |lua, this, (reader, opts): (Value, Table)| async move {
                super::lines::send_lines(&lua, &this, reader, opts).await
            },
        );
        // Transactions (`txn.rs`); the timeout defaults to 60 s.
        m.add_async_method("begin_transaction", |_, this, timeout: Value| async move {
            let t = super::duration(
                &timeout,
                "begin_transaction timeout",
                Duration::from_secs(60),
            )?;
            super::txn::begin(&this, t).await
        });
        m.add_async_method("commit_transaction", |_, this, timeout: Value| async move {
            let t = super::duration(
                &timeout,
                "commit_transaction timeout",
                Duration::from_secs(60),
            )?;
            super::txn::commit(&this, t).await
        });
        m.add_async_method("abort_transaction", |_, this, timeout: Value| async move {
            let t = super::duration(
                &timeout,
                "abort_transaction timeout",
                Duration::from_secs(60),
            )?;
            super::txn::abort(&this, t).await
        });
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!(
                "kafka.producer({})",
                this.config.get("bootstrap.servers").unwrap_or("")
            ))
        });
    }
}
