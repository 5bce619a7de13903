//! Shared test helpers, one file per area.
#![allow(dead_code)]
pub mod azure;
pub mod s3;
pub mod store;
