//! `rewind.kafka`: Kafka producer, consumer and admin on librdkafka (rdkafka crate).
//!
//! - `kafka.producer{brokers, config}`: idempotent, acks=all by default; every librdkafka setting in
//!   `config` passes through. `p:send`, `p:flush`, `p:send_lines` (the fast path: lines stream from a
//!   Reader through Rust into the topic, see `lines/`).
//! - `kafka.consumer{brokers, group, topics, config, start}`: offsets are committed only by `c:commit()`.
//!   `c:archive_batch{}` does batching and gzip in Rust for the `topic-archive` procedure
//!   (`archive_batch.rs`).
//! - `kafka.admin{brokers}`: topics with partitions and watermarks, `create_topic`.
//!
//! Credentials in `config` (any key naming a password, secret, key or token) are registered as secrets,
//! and librdkafka's own log lines and error reports pass through `redact` before they reach a log.

mod admin;
mod archive_batch;
mod consumer;
mod envelope;
mod lines;
mod producer;
mod rebalance;
mod txn;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::{Lua, Table, Value};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "producer",
        lua.create_function(|_, opts: Table| producer::Producer::new(&opts))?,
    )?;
    t.set(
        "consumer",
        lua.create_async_function(|_, opts: Table| consumer::Consumer::new(opts))?,
    )?;
    t.set(
        "admin",
        lua.create_function(|_, opts: Table| admin::Admin::new(&opts))?,
    )?;
    Ok(t)
}

/// Client context shared by producers, consumers and admin clients: routes librdkafka logs to tracing
/// (redacted) and remembers the last client-level error (e.g. "Connect to ipv4#127.0.0.1:1 failed"), which
/// is added to delivery errors so a down broker is named in the message.
#[derive(Clone, Default)]
pub struct Ctx {
    pub last_error: Arc<Mutex<Option<String>>>,
    pub brokers: Arc<String>,
    /// Partitions the consumer group took away (consumers only; `rebalance.rs`).
    pub rebalances: Arc<rebalance::Rebalances>,
}

impl Ctx {
    pub fn new(config: &ClientConfig) -> Ctx {
        Ctx {
            last_error: Default::default(),
            brokers: Arc::new(config.get("bootstrap.servers").unwrap_or("").to_string()),
            rebalances: Default::default(),
        }
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
    /// " (brokers ...; last client error: ...)".
    pub fn hint(&self) -> String {
        let brokers = crate::base::redact::redact_url(&self.brokers);
        match self.last_error() {
            Some(e) => format!(" (brokers {brokers}; last client error: {e})"),
            None => format!(" (brokers {brokers})"),
        }
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let msg = crate::base::redact::redact(log_message);
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::debug!(target: "rdkafka", "{fac}: {msg}"),
            _ => tracing::trace!(target: "rdkafka", "{fac}: {msg}"),
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        let msg = crate::base::redact::redact(&format!("{error}: {reason}"));
        tracing::debug!(target: "rdkafka", "client error: {msg}");
        if let Ok(mut e) = self.last_error.lock() {
            // Keep a specific reason ("Connect to ipv4#127.0.0.1:1 failed: Connection refused") next to
            // the generic one that follows it ("1/1 brokers are down").
            *e = Some(match e.take() {
                Some(prev) if prev.contains(&msg) => prev,
                Some(prev)
                    if msg.contains("brokers are down") && !prev.contains("brokers are down") =>
                {
                    format!("{prev}; {msg}")
                }
                _ => msg,
            });
        }
    }
}

/// Whether a librdkafka setting carries a credential.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "ssl.key.pem",
        "ssl_key",
        "sasl.oauthbearer.config",
        "sasl.jaas",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// A librdkafka setting value from Lua: strings, numbers and booleans.
fn setting_value(key: &str, v: Value) -> mlua::Result<String> {
    Ok(match v {
        Value::String(s) => s.to_str()?.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) if n.fract() == 0.0 => (n as i64).to_string(),
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => {
            return Err(crate::base::errors::lua_error(anyhow::Error::new(
                crate::base::errors::UsageError(format!(
                    "kafka config {key}: expected a string, number or boolean, got {}",
                    other.type_name()
                )),
            )));
        }
    })
}

fn usage(msg: impl Into<String>) -> mlua::Error {
    crate::base::errors::lua_error(anyhow::Error::new(crate::base::errors::UsageError(
        msg.into(),
    )))
}

/// `brokers` as a string ("h1:9092,h2:9092") or an array of strings.
fn brokers(opts: &Table) -> mlua::Result<String> {
    let list = brokers_given(opts)?;
    // An empty list would make librdkafka wait for brokers forever instead of failing.
    if list.split(',').all(|b| b.trim().is_empty()) {
        return Err(usage(
            "kafka: brokers is empty (expected \"host:port,host:port\")",
        ));
    }
    Ok(list)
}

fn brokers_given(opts: &Table) -> mlua::Result<String> {
    match opts.get::<Value>("brokers")? {
        Value::String(s) => Ok(s.to_str()?.to_string()),
        Value::Table(t) => {
            let v: Vec<String> = t.sequence_values::<String>().collect::<mlua::Result<_>>()?;
            Ok(v.join(","))
        }
        Value::Nil => {
            // A bootstrap.servers in config is accepted too.
            let cfg: Option<Table> = opts.get("config")?;
            if let Some(cfg) = cfg
                && let Some(s) = cfg.get::<Option<String>>("bootstrap.servers")?
            {
                return Ok(s);
            }
            Err(usage(
                "kafka: brokers is required (\"host:port,host:port\")",
            ))
        }
        other => Err(usage(format!(
            "kafka: brokers must be a string or a list, got {}",
            other.type_name()
        ))),
    }
}

/// Builds a ClientConfig: `defaults` first, then the user's `config` table (which wins), then bootstrap
/// servers. Registers credentials as secrets.
fn client_config(opts: &Table, defaults: &[(&str, &str)]) -> mlua::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    c.set("bootstrap.servers", brokers(opts)?);
    if let Some(cfg) = opts.get::<Option<Table>>("config")? {
        for pair in cfg.pairs::<String, Value>() {
            let (k, v) = pair?;
            let v = setting_value(&k, v)?;
            if is_secret_key(&k) {
                crate::base::redact::register(&v);
            }
            c.set(k, v);
        }
    }
    Ok(c)
}

/// Seconds (number) or a duration string ("5s", "10m") from Lua.
fn duration(v: &Value, what: &str, default: Duration) -> mlua::Result<Duration> {
    match v {
        Value::Nil => Ok(default),
        Value::Integer(i) => Ok(Duration::from_secs_f64((*i as f64).max(0.0))),
        Value::Number(n) => Ok(Duration::from_secs_f64(n.max(0.0))),
        Value::String(s) => {
            let s = s.to_str()?.to_string();
            crate::base::duration::parse_duration(&s)
                .map(|d| Duration::from_secs_f64(d.max(0.0)))
                .map_err(|e| usage(format!("{what}: {e}")))
        }
        other => Err(usage(format!(
            "{what}: expected seconds or a duration like \"5s\", got {}",
            other.type_name()
        ))),
    }
}

/// A timestamp from Lua (epoch seconds, or an RFC 3339 string) as epoch milliseconds.
fn timestamp_ms(v: &Value, what: &str) -> mlua::Result<i64> {
    match v {
        Value::Integer(i) => Ok(i * 1000),
        Value::Number(n) => Ok((n * 1000.0) as i64),
        Value::String(s) => {
            let s = s.to_str()?.to_string();
            chrono::DateTime::parse_from_rfc3339(&s)
                .map(|t| t.timestamp_millis())
                .map_err(|e| usage(format!("{what}: {s:?} is not an RFC 3339 time: {e}")))
        }
        other => Err(usage(format!(
            "{what}: expected epoch seconds or an RFC 3339 time, got {}",
            other.type_name()
        ))),
    }
}
