//! The floor every binding stands on: error conversion, duration parsing, per-state bookkeeping (exit
//! hooks, loaded files), stream types, Lua <-> JSON conversion, blocking work, redaction of secrets,
//! the retry policy, sizes as people read them, atomic local files and what streaming pipelines share.
//! It imports nothing else from the crate.

pub mod blocking;
pub mod duration;
pub mod errors;
pub mod file_sink;
pub mod files;
pub mod pipe;
pub mod pipeline;
pub mod redact;
pub mod retry;
pub mod state;
pub mod stream;
pub mod units;
pub mod values;
