//! Loading a script: compile it, check its shape (`description`, `params`, `run`), read its params.

use mlua::{Function, Lua, Table, Value};

use super::UsageError;
use super::params::{ParamSpec, parse_specs};
use super::search::ScriptSource;

pub struct Script {
    pub source: ScriptSource,
    pub description: String,
    pub params: Vec<ParamSpec>,
    /// `graceful_stop = true`: a signal is how this script normally ends (see `runner`).
    pub graceful_stop: bool,
    /// `drain_on_stop = true`: the first signal only asks the script to stop (`task.stopping()`); it
    /// finishes in its own order; a second signal cancels it (see `runner`).
    pub drain_on_stop: bool,
    pub table: Table,
}

impl Script {
    pub fn run_fn(&self) -> mlua::Result<Function> {
        self.table.get("run")
    }
}

/// Compiles and evaluates the script file, which must return `{description=, params=, run=}`.
pub fn load(lua: &Lua, source: &ScriptSource) -> mlua::Result<Script> {
    let chunk = lua.load(source.code.as_str()).set_name(&source.chunk_name);
    let value: Value = chunk.eval()?;
    let where_ = source.chunk_name.trim_start_matches('@');
    let Value::Table(table) = value else {
        return Err(mlua::Error::external(UsageError(format!(
            "{where_}: a script must return a table with description, params and run (it returned {})",
            value.type_name()
        ))));
    };
    let run: Value = table.get("run")?;
    if !matches!(run, Value::Function(_)) {
        return Err(mlua::Error::external(UsageError(format!(
            "{where_}: the returned table has no run function"
        ))));
    }
    let description: Option<String> = table.get("description")?;
    let graceful_stop: Option<bool> = table.get("graceful_stop")?;
    let drain_on_stop: Option<bool> = table.get("drain_on_stop")?;
    let params: Option<Table> = table.get("params")?;
    let params = parse_specs(lua, params)
        .map_err(|e| mlua::Error::external(UsageError(format!("{where_}: {e}"))))?;
    Ok(Script {
        source: source.clone(),
        description: description.unwrap_or_default(),
        params,
        graceful_stop: graceful_stop.unwrap_or(false),
        drain_on_stop: drain_on_stop.unwrap_or(false),
        table,
    })
}

/// `rewind.errors`: `usage(msg)` raises an error that exits with code 2, for scripts that find bad input
/// their param types cannot express (a path that is not a directory, two params that exclude each other).
pub fn errors_module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "usage",
        lua.create_function(|_, msg: String| -> mlua::Result<()> {
            Err(mlua::Error::external(UsageError(
                crate::base::redact::redact(&msg),
            )))
        })?,
    )?;
    // is_usage(err): whether a caught error is a usage error.
    t.set(
        "is_usage",
        lua.create_function(|_, v: Value| {
            Ok(match v {
                Value::Error(e) => crate::base::errors::find_usage(&e).is_some(),
                _ => false,
            })
        })?,
    )?;
    // message(err): a caught error's message, without Lua's traceback (for logs and summaries).
    t.set(
        "message",
        lua.create_function(|_, v: Value| {
            Ok(match v {
                Value::Error(e) => crate::base::errors::Report::from_lua(&e).message,
                Value::String(s) => {
                    let s = s.to_string_lossy();
                    let s = s.split("\nstack traceback:").next().unwrap_or_default();
                    crate::base::redact::redact(s.trim_start_matches("runtime error: "))
                }
                other => crate::base::redact::redact(&other.to_string()?),
            })
        })?,
    )?;
    Ok(t)
}
