//! `kafka.producer{}`: single sends awaiting delivery, flush, and `send_lines` (see `lines.rs`).

use std::cell::RefCell;
use std::time::Duration;

use mlua::{Table, UserData, UserDataMethods, Value};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;

use super::Ctx;
use crate::host::errors::IntoLua;

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
    future: RefCell<Option<FutureProducer<Ctx>>>,
}

impl Producer {
    pub fn new(opts: &Table) -> mlua::Result<Producer> {
        let config = super::client_config(opts, DEFAULTS)?;
        let p = Producer {
            ctx: Ctx::new(&config),
            config,
            future: RefCell::new(None),
        };
        // Check the settings now so a bad one is reported where the producer is made. The client itself
        // is made on first `send`: scripts that only use `send_lines` (its own client) never start one.
        p.config
            .create_native_config()
            .map_err(|e| super::usage(format!("kafka producer: {e}")))?;
        Ok(p)
    }

    /// The client for single sends, made (and warmed up for `topic`) on first use.
    async fn future(&self, topic: Option<&str>) -> mlua::Result<FutureProducer<Ctx>> {
        if let Some(p) = self.future.borrow().as_ref() {
            return Ok(p.clone());
        }
        let p: FutureProducer<Ctx> = self
            .config
            .create_with_context(self.ctx.clone())
            .map_err(|e| super::usage(format!("kafka producer: {e}")))?;
        *self.future.borrow_mut() = Some(p.clone());
        if let Some(topic) = topic {
            let (client, topic) = (p.clone(), topic.to_string());
            crate::task::spawn_blocking(move || warm_up(client.client(), &topic))
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
                let producer = this.future(Some(&topic)).await?;
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
                let mut rec: FutureRecord<'_, Vec<u8>, Vec<u8>> =
                    FutureRecord::to(&topic).payload(&value);
                if let Some(k) = &key {
                    rec = rec.key(k);
                }
                if let Some(h) = headers {
                    rec = rec.headers(h);
                }
                if let Some(p) = partition {
                    rec = rec.partition(p);
                }
                // message.timeout.ms bounds the wait: librdkafka fails the delivery when it passes.
                match producer.send(rec, Timeout::Never).await {
                    Ok(d) => {
                        let t = lua.create_table()?;
                        t.set("partition", d.partition)?;
                        t.set("offset", d.offset)?;
                        Ok(t)
                    }
                    Err((e, _)) => Err(crate::host::lua_error(anyhow::anyhow!(
                        "kafka: delivery to topic {topic} partition {} failed: {e}{}",
                        partition.map_or("any".to_string(), |p| p.to_string()),
                        this.ctx.hint()
                    ))),
                }
            },
        );
        // flush(timeout): waits until every queued message is delivered (default 30 s).
        m.add_async_method("flush", |_, this, timeout: Value| async move {
            let producer = this.future(None).await?;
            let timeout = super::duration(&timeout, "flush timeout", Duration::from_secs(30))?;
            let hint = this.ctx.hint();
            crate::task::spawn_blocking(move || producer.flush(timeout))
                .await
                .lua_err()?
                .map_err(|e| {
                    crate::host::lua_error(anyhow::anyhow!(
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
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!(
                "kafka.producer({})",
                this.config.get("bootstrap.servers").unwrap_or("")
            ))
        });
    }
}
