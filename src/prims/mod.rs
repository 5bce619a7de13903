//! The primitives: one file or folder per `rewind.<name>` Lua namespace, each with a `module(lua)` that
//! builds its table. They stand on `base` (and on each other); nothing here knows the host exists.

pub mod archive;
pub mod channel;
pub mod codec;
pub mod dedupe;
pub mod env;
pub mod exec;
pub mod fs;
pub mod hash;
pub mod http;
pub mod json;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod log;
pub mod msgpack;
pub mod progress;
pub mod storage;
pub mod task;
pub mod time;
pub mod yaml;
