//! `rewind.dedupe`: a persistent set of keys with an expiry, the "hit cache" of source 004 (skip content
//! already sent recently).
//!
//! Backed by redb: every `add`/`remove` is its own durable write transaction (fsync on commit), so a key
//! whose `add` returned survives a crash or a SIGKILL. An entry older than the ttl counts as not seen.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use mlua::{Lua, Table, UserData, UserDataMethods, Value};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::base::errors::IntoLua;

const KEYS: TableDefinition<&str, u64> = TableDefinition::new("keys");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Dedupe {
    db: Arc<Database>,
    /// Seconds; None = entries never expire.
    ttl: Option<u64>,
    path: PathBuf,
}

impl Dedupe {
    pub fn open(path: PathBuf, ttl: Option<u64>) -> anyhow::Result<Dedupe> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let db = Database::create(&path)
            .with_context(|| format!("opening the dedupe cache {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(KEYS)?;
        txn.commit()?;
        Ok(Dedupe {
            db: Arc::new(db),
            ttl,
            path,
        })
    }

    fn live(&self, added: u64, now: u64) -> bool {
        self.ttl.is_none_or(|ttl| now.saturating_sub(added) < ttl)
    }

    pub fn seen(&self, key: &str) -> anyhow::Result<bool> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(KEYS)?;
        Ok(match t.get(key)? {
            Some(v) => self.live(v.value(), now()),
            None => false,
        })
    }

    /// Adds keys in one durable transaction; returns how many were not seen before.
    pub fn add(&self, keys: &[String]) -> anyhow::Result<u64> {
        let txn = self.db.begin_write()?;
        let mut new = 0;
        let t_now = now();
        {
            let mut t = txn.open_table(KEYS)?;
            for k in keys {
                let prev = t.insert(k.as_str(), t_now)?.map(|v| v.value());
                if prev.is_none_or(|p| !self.live(p, t_now)) {
                    new += 1;
                }
            }
        }
        txn.commit()?;
        Ok(new)
    }

    pub fn remove(&self, keys: &[String]) -> anyhow::Result<u64> {
        let txn = self.db.begin_write()?;
        let mut n = 0;
        {
            let mut t = txn.open_table(KEYS)?;
            for k in keys {
                if t.remove(k.as_str())?.is_some() {
                    n += 1;
                }
            }
        }
        txn.commit()?;
        Ok(n)
    }

    /// Deletes expired entries; returns how many.
    pub fn expire(&self) -> anyhow::Result<u64> {
        let Some(ttl) = self.ttl else { return Ok(0) };
        let cutoff = now().saturating_sub(ttl);
        let txn = self.db.begin_write()?;
        let removed;
        {
            let mut t = txn.open_table(KEYS)?;
            let before = t.len()?;
            t.retain(|_, added| added > cutoff)?;
            removed = before - t.len()?;
        }
        txn.commit()?;
        Ok(removed)
    }

    /// Up to `limit` keys that count as seen, in key order.
    pub fn keys(&self, limit: usize) -> anyhow::Result<Vec<String>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(KEYS)?;
        let n = now();
        let mut out = Vec::new();
        for e in t.iter()? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = e?;
            if self.live(v.value(), n) {
                out.push(k.value().to_string());
            }
        }
        Ok(out)
    }

    /// Entries that count as seen (not expired).
    pub fn count(&self) -> anyhow::Result<u64> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(KEYS)?;
        if self.ttl.is_none() {
            return Ok(t.len()?);
        }
        let n = now();
        let mut c = 0;
        for e in t.iter()? {
            let (_, v) = e?;
            if self.live(v.value(), n) {
                c += 1;
            }
        }
        Ok(c)
    }
}

/// The Lua handle; operations run on the blocking pool.
struct Handle(Arc<Dedupe>);

fn keys_arg(v: Value) -> mlua::Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.to_str()?.to_string()]),
        Value::Table(t) => t.sequence_values::<String>().collect(),
        Value::Integer(i) => Ok(vec![i.to_string()]),
        other => Err(mlua::Error::runtime(format!(
            "dedupe: a key must be a string (or a list of strings), got {}",
            other.type_name()
        ))),
    }
}

async fn blocking<T: Send + 'static>(
    d: &Arc<Dedupe>,
    f: impl FnOnce(&Dedupe) -> anyhow::Result<T> + Send + 'static,
) -> mlua::Result<T> {
    let d = d.clone();
    crate::base::blocking::spawn_blocking(move || {
        let p = d.path.display().to_string();
        f(&d).with_context(|| format!("dedupe cache {p}"))
    })
    .await
    .lua_err()?
    .lua_err()
}

impl UserData for Handle {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("seen", |_, this, key: String| async move {
            blocking(&this.0, move |d| d.seen(&key)).await
        });
        // add(key | {keys}) → how many were new (not seen, or expired)
        m.add_async_method("add", |_, this, keys: Value| async move {
            let keys = keys_arg(keys)?;
            blocking(&this.0, move |d| d.add(&keys)).await
        });
        m.add_async_method("remove", |_, this, keys: Value| async move {
            let keys = keys_arg(keys)?;
            blocking(&this.0, move |d| d.remove(&keys)).await
        });
        m.add_async_method("expire", |_, this, ()| async move {
            blocking(&this.0, |d| d.expire()).await
        });
        m.add_async_method("count", |_, this, ()| async move {
            blocking(&this.0, |d| d.count()).await
        });
        // keys([limit]) → the live keys, in key order (a failure cache lists what to retry).
        m.add_async_method("keys", |_, this, limit: Option<usize>| async move {
            blocking(&this.0, move |d| d.keys(limit.unwrap_or(usize::MAX))).await
        });
        m.add_method("path", |_, this, ()| Ok(this.0.path.display().to_string()));
    }
}

fn ttl_arg(v: Value) -> mlua::Result<Option<u64>> {
    let bad = |s: String| {
        crate::base::errors::lua_error(
            crate::base::errors::UsageError(format!("dedupe.open: ttl: {s}")).into(),
        )
    };
    match v {
        Value::Nil => Ok(None),
        Value::Integer(i) if i >= 0 => Ok(Some(i as u64)),
        Value::Number(n) if n >= 0.0 => Ok(Some(n.ceil() as u64)),
        Value::String(s) => crate::base::duration::parse_duration(&s.to_str()?)
            .map(|f| Some(f.ceil() as u64))
            .map_err(bad),
        other => Err(bad(format!(
            "expected seconds or a duration, got {}",
            other.type_name()
        ))),
    }
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "open",
        lua.create_async_function(|_, (path, opts): (String, Option<Table>)| async move {
            let ttl = match &opts {
                Some(o) => ttl_arg(o.get("ttl")?)?,
                None => None,
            };
            let d = crate::base::blocking::spawn_blocking(move || {
                Dedupe::open(PathBuf::from(path), ttl)
            })
            .await
            .lua_err()?
            .lua_err()?;
            Ok(Handle(Arc::new(d)))
        })?,
    )?;
    Ok(t)
}
