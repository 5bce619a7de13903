//! Tar extraction (plain, gzip or zstd, detected): whatever the bytes, nothing outside the destination
//! is written, and nothing panics or hangs (run with -timeout).
#![no_main]

#[path = "../../tests/common/lua_harness.rs"]
mod lua_harness;

use libfuzzer_sys::fuzz_target;

thread_local! {
    static H: lua_harness::Harness = lua_harness::Harness::new();
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    H.with(|h| h.extract_confined(dir.path(), data));
});
