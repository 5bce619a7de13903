//! The conversion between Lua values and JSON values that every primitive uses.
//!
//! - JSON null is `json.null` (a light userdata), so a null inside a table is kept.
//! - Arrays decode to tables marked with the array metatable, so `[]` encodes back as `[]`; a plain
//!   Lua sequence `{1, 2}` encodes as an array, an empty unmarked table as `{}` (use `json.array()`).
//! - Integers stay 64-bit integers (no loss above 2^53); integral floats encode without `.0`.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde_json::{Map, Number, Value as Json};

const MAX_DEPTH: usize = 200;

/// A JSON value as a person reads it: a string without its quotes, anything else as JSON text.
pub fn display(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn to_lua(lua: &Lua, v: &Json) -> mlua::Result<Value> {
    Ok(match v {
        Json::Null => lua.null(),
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Integer(i)
            } else {
                Value::Number(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, item) in a.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            t.set_metatable(Some(lua.array_metatable()))?;
            Value::Table(t)
        }
        Json::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, item) in o {
                t.raw_set(k.as_str(), to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

pub fn from_lua(lua: &Lua, v: &Value) -> mlua::Result<Json> {
    convert(lua, v, 0)
}

fn convert(lua: &Lua, v: &Value, depth: usize) -> mlua::Result<Json> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime(
            "cannot encode: tables nested too deep (a cycle?)",
        ));
    }
    Ok(match v {
        Value::Nil => Json::Null,
        Value::LightUserData(p) if p.0.is_null() => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Number(f) => {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Json::from(*f as i64)
            } else {
                Number::from_f64(*f)
                    .map(Json::Number)
                    .ok_or_else(|| mlua::Error::runtime(format!("cannot encode {f} as JSON")))?
            }
        }
        Value::String(s) => Json::String(s.to_string_lossy().to_string()),
        Value::Table(t) => table_to_json(lua, t, depth)?,
        Value::Error(e) => Json::String(crate::base::errors::Report::from_lua(e).message),
        other => {
            return Err(mlua::Error::runtime(format!(
                "cannot encode a {} as JSON",
                other.type_name()
            )));
        }
    })
}

fn table_to_json(lua: &Lua, t: &Table, depth: usize) -> mlua::Result<Json> {
    let marked_array = t.metatable().is_some_and(|m| m == lua.array_metatable());
    let len = t.raw_len();
    let mut count = 0usize;
    let mut all_seq = true;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        count += 1;
        match k {
            Value::Integer(i) if i >= 1 && (i as usize) <= len => {}
            _ => all_seq = false,
        }
    }
    if marked_array || (len > 0 && all_seq && count == len) {
        let mut out = Vec::with_capacity(len);
        for i in 1..=len {
            out.push(convert(lua, &t.raw_get::<Value>(i)?, depth + 1)?);
        }
        return Ok(Json::Array(out));
    }
    let mut keys: Vec<(String, Value)> = Vec::with_capacity(count);
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = match k {
            Value::String(s) => s.to_string_lossy().to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(mlua::Error::runtime(format!(
                    "cannot encode a table key of type {}",
                    other.type_name()
                )));
            }
        };
        keys.push((key, v));
    }
    // Stable output: sorted keys.
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let mut map = Map::new();
    for (k, v) in keys {
        map.insert(k, convert(lua, &v, depth + 1)?);
    }
    Ok(Json::Object(map))
}

/// Parses JSON text into a Lua value.
pub fn decode(lua: &Lua, text: &[u8]) -> mlua::Result<Value> {
    let v: Json = serde_json::from_slice(text)
        .map_err(|e| mlua::Error::runtime(format!("invalid JSON: {e}")))?;
    to_lua(lua, &v)
}
