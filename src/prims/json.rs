//! `rewind.json`: `encode`/`decode` on top of the Lua <-> JSON conversion in `base::values`.

use mlua::{Lua, LuaSerdeExt, Table, Value};

use crate::base::errors::IntoLua;
use crate::base::values::{decode, from_lua};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("null", lua.null())?;
    t.set(
        "encode",
        lua.create_function(|lua, (v, opts): (Value, Option<Table>)| {
            let j = from_lua(lua, &v)?;
            let pretty = opts
                .map(|o| o.get::<Option<bool>>("pretty"))
                .transpose()?
                .flatten()
                .unwrap_or(false);
            let s = if pretty {
                serde_json::to_string_pretty(&j)
            } else {
                serde_json::to_string(&j)
            };
            s.lua_err()
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| decode(lua, &s.as_bytes()))?,
    )?;
    // array(t): marks a table as a JSON array (so an empty one encodes as []).
    t.set(
        "array",
        lua.create_function(|lua, t: Option<Table>| {
            let t = match t {
                Some(t) => t,
                None => lua.create_table()?,
            };
            t.set_metatable(Some(lua.array_metatable()))?;
            Ok(t)
        })?,
    )?;
    t.set(
        "is_null",
        lua.create_function(|_, v: Value| {
            Ok(matches!(v, Value::LightUserData(p) if p.0.is_null()))
        })?,
    )?;
    Ok(t)
}
