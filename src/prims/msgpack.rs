//! `rewind.msgpack`: MessagePack encoding for APIs that take it (Treasure Data's v3 table import takes a
//! gzip of concatenated msgpack maps), and decoding of what such APIs return. `rmp-serde` does the work.

use std::io::Write;

use mlua::{Lua, Table, Value};

use crate::base::errors::IntoLua;

const MAX_DEPTH: usize = 128;

/// Encodes every record of a Lua list as a msgpack value and concatenates them.
fn pack_all(lua: &Lua, records: &Table) -> mlua::Result<Vec<u8>> {
    let mut out = Vec::new();
    for v in records.sequence_values::<Value>() {
        let json = crate::base::values::from_lua(lua, &v?)?;
        rmp_serde::encode::write_named(&mut out, &json).lua_err()?;
    }
    Ok(out)
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    // encode(value) -> string: one msgpack value.
    t.set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let json = crate::base::values::from_lua(lua, &v)?;
            let bytes = rmp_serde::to_vec_named(&json).lua_err()?;
            lua.create_string(&bytes)
        })?,
    )?;
    // decode(bytes) -> value: exactly one msgpack value (maps with string keys, no binary data).
    t.set(
        "decode",
        lua.create_function(|lua, bytes: mlua::LuaString| {
            let bytes = bytes.as_bytes();
            let mut de = rmp_serde::Deserializer::new(&bytes[..]);
            // As deep as the JSON and YAML decoders go (128), well within what encode accepts (200):
            // whatever decodes can be encoded again.
            de.set_max_depth(MAX_DEPTH);
            let json: serde_json::Value = serde::Deserialize::deserialize(&mut de)
                .map_err(|e| mlua::Error::runtime(format!("invalid msgpack: {e}")))?;
            let rest = de.into_inner();
            if !rest.is_empty() {
                return Err(mlua::Error::runtime(format!(
                    "invalid msgpack: {} bytes after the value",
                    rest.len()
                )));
            }
            crate::base::values::to_lua(lua, &json)
        })?,
    )?;
    // pack_gz(records) -> string: gzip of the concatenated msgpack encodings of a list of records.
    t.set(
        "pack_gz",
        lua.create_function(|lua, records: Table| {
            let raw = pack_all(lua, &records)?;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&raw).lua_err()?;
            lua.create_string(gz.finish().lua_err()?)
        })?,
    )?;
    Ok(t)
}
