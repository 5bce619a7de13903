//! The registry of primitives written in Rust. Each entry opens one `rewind.<name>` module.
//! Adding a primitive: a folder or file under `src/`, one line here, a stub in `stdlib/types/`.

use mlua::{Lua, Table};

pub type RustModule = fn(&Lua) -> mlua::Result<Table>;

pub const RUST_MODULES: &[(&str, RustModule)] = &[
    ("rewind.codec", crate::prims::codec::module),
    ("rewind.dedupe", crate::prims::dedupe::module),
    ("rewind.env", crate::prims::env::module),
    ("rewind.errors", super::script::errors_module),
    ("rewind.exec", crate::prims::exec::module),
    ("rewind.fs", crate::prims::fs::module),
    ("rewind.hash", crate::prims::hash::module),
    ("rewind.http", crate::prims::http::module),
    ("rewind.json", crate::prims::json::module),
    #[cfg(feature = "kafka")]
    ("rewind.kafka", crate::prims::kafka::module),
    ("rewind.log", crate::prims::log::module),
    ("rewind.msgpack", crate::prims::msgpack::module),
    ("rewind.progress", crate::prims::progress::module),
    ("rewind.store", crate::prims::storage::module),
    ("rewind.tar", crate::prims::archive::module),
    ("rewind.task", crate::prims::task::module),
    ("rewind.time", crate::prims::time::module),
    ("rewind.yaml", crate::prims::yaml::module),
];

pub fn rust_module(name: &str) -> Option<RustModule> {
    RUST_MODULES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}
