//! `kafka.admin{brokers, config}`: topics with partitions and watermarks, and topic creation.

use std::time::Duration;

use mlua::{Table, UserData, UserDataMethods, Value};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer as _};

use super::Ctx;
use crate::base::errors::IntoLua;

pub struct Admin {
    config: ClientConfig,
    ctx: Ctx,
}

impl Admin {
    pub fn new(opts: &Table) -> mlua::Result<Admin> {
        let config = super::client_config(opts, &[])?;
        Ok(Admin {
            ctx: Ctx::new(&config),
            config,
        })
    }
}

struct Partition {
    id: i32,
    low: i64,
    high: i64,
}

impl UserData for Admin {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // topics({timeout}) -> { {name, partitions = { {id, low, high} }, messages} } (internal topics left out)
        m.add_async_method("topics", |lua, this, opts: Option<Table>| async move {
            let timeout = match &opts {
                Some(o) => super::duration(&o.get("timeout")?, "timeout", Duration::from_secs(10))?,
                None => Duration::from_secs(10),
            };
            let consumer: BaseConsumer<Ctx> = this
                .config
                .create_with_context(this.ctx.clone())
                .map_err(|e| super::usage(format!("kafka admin: {e}")))?;
            let hint = this.ctx.hint();
            let topics = crate::base::blocking::spawn_blocking(move || -> anyhow::Result<_> {
                let md = consumer
                    .fetch_metadata(None, timeout)
                    .map_err(|e| anyhow::anyhow!("kafka admin: listing topics failed: {e}"))?;
                let mut out = Vec::new();
                for t in md.topics() {
                    if t.name().starts_with("__") {
                        continue;
                    }
                    let mut parts = Vec::new();
                    for p in t.partitions() {
                        let (low, high) = consumer
                            .fetch_watermarks(t.name(), p.id(), timeout)
                            .map_err(|e| {
                                anyhow::anyhow!(
                                    "kafka admin: watermarks of {} partition {} failed: {e}",
                                    t.name(),
                                    p.id()
                                )
                            })?;
                        parts.push(Partition {
                            id: p.id(),
                            low,
                            high,
                        });
                    }
                    parts.sort_by_key(|p| p.id);
                    out.push((t.name().to_string(), parts));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            })
            .await
            .lua_err()?
            .map_err(|e| crate::base::errors::lua_error(e.context(hint)))?;
            let arr = lua.create_table()?;
            for (name, parts) in topics {
                let t = lua.create_table()?;
                t.set("name", name)?;
                let pa = lua.create_table()?;
                let mut total = 0;
                for p in parts {
                    let pt = lua.create_table()?;
                    pt.set("id", p.id)?;
                    pt.set("low", p.low)?;
                    pt.set("high", p.high)?;
                    total += p.high - p.low;
                    pa.push(pt)?;
                }
                t.set("partitions", pa)?;
                t.set("messages", total)?;
                arr.push(t)?;
            }
            Ok(arr)
        });
        // create_topic(name, partitions, {replication, config = {}}) -> true
        m.add_async_method(
            "create_topic",
            |_, this, (name, partitions, opts): (String, Option<i32>, Option<Table>)| async move {
                let admin: AdminClient<Ctx> = this
                    .config
                    .create_with_context(this.ctx.clone())
                    .map_err(|e| super::usage(format!("kafka admin: {e}")))?;
                let replication = match &opts {
                    Some(o) => o.get::<Option<i32>>("replication")?.unwrap_or(1),
                    None => 1,
                };
                let mut settings = Vec::new();
                if let Some(o) = &opts
                    && let Some(c) = o.get::<Option<Table>>("config")?
                {
                    for pair in c.pairs::<String, Value>() {
                        let (k, v) = pair?;
                        settings.push((k.clone(), super::setting_value(&k, v)?));
                    }
                }
                let mut nt = NewTopic::new(
                    &name,
                    partitions.unwrap_or(1),
                    TopicReplication::Fixed(replication),
                );
                for (k, v) in &settings {
                    nt = nt.set(k, v);
                }
                let res = admin
                    .create_topics(
                        [&nt],
                        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                    )
                    .await
                    .map_err(|e| {
                        crate::base::errors::lua_error(anyhow::anyhow!(
                            "kafka admin: creating topic {name} failed: {e}{}",
                            this.ctx.hint()
                        ))
                    })?;
                for r in res {
                    if let Err((t, code)) = r {
                        return Err(crate::base::errors::lua_error(anyhow::anyhow!(
                            "kafka admin: creating topic {t} failed: {code}"
                        )));
                    }
                }
                Ok(true)
            },
        );
    }
}
