//! Shared test helpers, one file per area. Every test crate includes them all with `mod common;`
//! (a folder crate with `#[path = "../common/mod.rs"]`).
#![allow(dead_code)]
pub mod archive;
pub mod azure;
pub mod daemon;
pub mod dispatcher;
pub mod fault_proxy;
pub mod http;
pub mod kafka;
pub mod lease;
pub mod lua_harness;
pub mod mariadb;
pub mod metrics;
pub mod path_restore;
pub mod pg;
pub mod process;
pub mod replay_env;
pub mod s3;
pub mod store;
pub mod td;
