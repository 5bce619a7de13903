//! The registry of primitives written in Rust. Each entry opens one `rewind.<name>` module.
//! Adding a primitive: a folder or file under `src/`, one line here, a stub in `stdlib/types/`.

use mlua::{Lua, Table};

pub type RustModule = fn(&Lua) -> mlua::Result<Table>;

pub const RUST_MODULES: &[(&str, RustModule)] = &[
    ("rewind.dedupe", crate::dedupe::module),
    ("rewind.env", crate::env::module),
    ("rewind.errors", super::script::errors_module),
    ("rewind.exec", crate::exec::module),
    ("rewind.fs", crate::fs::module),
    ("rewind.hash", crate::hash::module),
    ("rewind.http", crate::http::module),
    ("rewind.json", crate::json::module),
    ("rewind.kafka", crate::kafka::module),
    ("rewind.log", crate::log::module),
    ("rewind.msgpack", crate::msgpack::module),
    ("rewind.progress", crate::progress::module),
    ("rewind.store", crate::storage::module),
    ("rewind.tar", crate::archive::module),
    ("rewind.task", crate::task::module),
    ("rewind.time", crate::time::module),
    ("rewind.yaml", crate::yaml::module),
];

pub fn rust_module(name: &str) -> Option<RustModule> {
    RUST_MODULES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}
