//! `rewind.env`: environment variables and a secrets file. Values read as secrets are redacted from
//! every log line, result and error message.

use std::collections::BTreeMap;

use anyhow::Context;
use mlua::{Lua, Table};

use crate::base::errors::IntoLua;

/// Reads a secrets file: `KEY=VALUE` lines (`#` comments, optional `export `), or a YAML/JSON mapping.
pub fn read_secrets(path: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading secrets file {path}"))?;
    let trimmed = text.trim_start();
    let mut out = BTreeMap::new();
    if trimmed.starts_with('{')
        || path.ends_with(".yaml")
        || path.ends_with(".yml")
        || path.ends_with(".json")
    {
        let v: serde_json::Value = serde_norway::from_str(&text)
            .with_context(|| format!("parsing secrets file {path}"))?;
        let map = v.as_object().with_context(|| {
            format!("secrets file {path}: expected a mapping of names to values")
        })?;
        for (k, v) in map {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.insert(k.clone(), s);
        }
    } else {
        // `.env` syntax (dotenvy): comments, `export `, single and double quotes, escapes, and `$VAR`
        // expansion outside single quotes (single-quote a value that holds a literal `$`).
        for item in dotenvy::from_read_iter(text.as_bytes()) {
            let (k, v) = item.map_err(|e| match e {
                dotenvy::Error::LineParse(line, _) => {
                    let n = text
                        .lines()
                        .position(|l| l.contains(line.as_str()))
                        .unwrap_or(0);
                    anyhow::anyhow!("secrets file {path}:{}: expected KEY=VALUE", n + 1)
                }
                other => anyhow::anyhow!("secrets file {path}: {other}"),
            })?;
            out.insert(k, v);
        }
    }
    for v in out.values() {
        crate::base::redact::register(v);
    }
    Ok(out)
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "get",
        lua.create_function(|_, (name, default): (String, Option<String>)| {
            Ok(std::env::var(&name).ok().or(default))
        })?,
    )?;
    // secret(name): like get, and the value is redacted everywhere from now on.
    t.set(
        "secret",
        lua.create_function(|_, name: String| {
            let v = std::env::var(&name).ok();
            if let Some(v) = &v {
                crate::base::redact::register(v);
            }
            Ok(v)
        })?,
    )?;
    // require(name): the value, or an error naming the missing variable.
    t.set(
        "require",
        lua.create_function(|_, name: String| {
            std::env::var(&name).map_err(|_| {
                mlua::Error::runtime(format!("environment variable {name} is not set"))
            })
        })?,
    )?;
    t.set(
        "secrets_file",
        lua.create_function(|_, path: String| read_secrets(&path).lua_err())?,
    )?;
    // mark_secret(value): redact a value obtained some other way (a token from an API answer).
    t.set(
        "mark_secret",
        lua.create_function(|_, v: String| {
            crate::base::redact::register(&v);
            Ok(v)
        })?,
    )?;
    t.set(
        "redact",
        lua.create_function(|_, v: String| Ok(crate::base::redact::redact(&v)))?,
    )?;
    t.set(
        "hostname",
        lua.create_function(|_, ()| {
            Ok(hostname::get()
                .map(|h| h.to_string_lossy().to_string())
                .unwrap_or_else(|_| "unknown".into()))
        })?,
    )?;
    t.set("pid", lua.create_function(|_, ()| Ok(std::process::id()))?)?;
    t.set(
        "rewind_version",
        lua.create_function(|_, ()| Ok(env!("CARGO_PKG_VERSION")))?,
    )?;
    Ok(t)
}
