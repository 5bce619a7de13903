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
    // process(pid?): {pid, start, boot_id, pid_ns} of a running process (default: this one), nil when no
    // such process runs (a zombie counts as gone). Leases use it to tell a dead holder on this host.
    t.set(
        "process",
        lua.create_function(|lua, pid: Option<u32>| {
            let pid = pid.unwrap_or_else(std::process::id);
            match process_info(pid) {
                Some(info) => crate::base::values::to_lua(lua, &info),
                None => Ok(mlua::Value::Nil),
            }
        })?,
    )?;
    t.set(
        "rewind_version",
        lua.create_function(|_, ()| Ok(env!("CARGO_PKG_VERSION")))?,
    )?;
    Ok(t)
}

/// What identifies a running process beyond its pid (pids are reused): its start time in clock ticks
/// after boot, the kernel's boot id and its pid namespace (Linux; elsewhere only `pid`). `None` when no
/// such process runs.
fn process_info(pid: u32) -> Option<serde_json::Value> {
    if pid == 0 || pid > i32::MAX as u32 {
        return None;
    }
    // kill(pid, 0): ESRCH means no such process; EPERM means it runs under another user.
    if unsafe { libc::kill(pid as i32, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return None;
    }
    let mut info = serde_json::Map::new();
    info.insert("pid".into(), pid.into());
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Fields after the command name (which may hold spaces and parentheses): state is the 1st,
        // starttime the 20th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
            return None;
        }
        if let Some(start) = fields.get(19) {
            info.insert("start".into(), (*start).into());
        }
    } else if std::path::Path::new("/proc/self/stat").exists() {
        // /proc is there but not this pid: it ended between the two checks.
        return None;
    }
    if let Ok(b) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        info.insert("boot_id".into(), b.trim().into());
    }
    if let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/pid")) {
        info.insert("pid_ns".into(), ns.to_string_lossy().into_owned().into());
    }
    Some(serde_json::Value::Object(info))
}
