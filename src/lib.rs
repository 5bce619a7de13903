//! rewind: a Rust host for Lua backup, restore, replay and retention procedures.
//!
//! The host (`host/`) builds Lua states, resolves scripts and modules through the search path and checks
//! params. Every other top-level module is one primitive exposed to Lua as `rewind.<name>`.

pub mod archive;
pub mod host;
pub mod progress;
pub mod redact;
pub mod storage;
pub mod stream;

pub mod dedupe;
pub mod env;
pub mod exec;
pub mod fs;
pub mod hash;
pub mod http;
pub mod json;
pub mod kafka;
pub mod log;
pub mod msgpack;
pub mod task;
pub mod time;
pub mod yaml;
