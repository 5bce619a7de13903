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
pub const DEFAULTS: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

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

    fn future(&self) -> mlua::Result<FutureProducer<Ctx>> {
        if let Some(p) = self.future.borrow().as_ref() {
            return Ok(p.clone());
        }
        let p: FutureProducer<Ctx> = self
            .config
            .create_with_context(self.ctx.clone())
            .map_err(|e| super::usage(format!("kafka producer: {e}")))?;
        *self.future.borrow_mut() = Some(p.clone());
        Ok(p)
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
                let producer = this.future()?;
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
            let producer = this.future()?;
            let timeout = super::duration(&timeout, "flush timeout", Duration::from_secs(30))?;
            let hint = this.ctx.hint();
            tokio::task::spawn_blocking(move || producer.flush(timeout))
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
