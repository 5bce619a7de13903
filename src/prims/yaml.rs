//! `rewind.yaml`: YAML encode and decode, with the same value mapping as `rewind.json`.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde_json::Value as Json;

use crate::base::errors::IntoLua;

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("null", lua.null())?;
    t.set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let j = crate::base::values::from_lua(lua, &v)?;
            serde_norway::to_string(&j).lua_err()
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            let j: Json = serde_norway::from_slice(&s.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("invalid YAML: {e}")))?;
            crate::base::values::to_lua(lua, &j)
        })?,
    )?;
    Ok(t)
}
