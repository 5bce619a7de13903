//! rewind: a Rust host for Lua backup, restore, replay and retention procedures.
//!
//! Floors, each importing only the ones below it (`tests/layers.rs` keeps it so):
//!
//! - `daemon`: schedules, file watching, run history, the HTTP API and metrics; runs scripts through `host`.
//! - `host`: the Lua VM: module registry, search path, params, script loading, the runner, the test runner.
//! - `prims`: the primitives, one per `rewind.<name>` Lua namespace.
//! - `base`: error conversion, durations, exit hooks, streams, redaction: what every binding stands on.
//!
//! The command line (`src/cli/`, in the binary) sits on top of them all.

pub mod base;
pub mod prims;

pub mod host;

pub mod daemon;
