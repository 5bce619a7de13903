//! Manifest parsing: any bytes at any key are refused with a reason, or yield a manifest whose id is
//! the one its key names and whose deletable keys all lie in its own directory.
#![no_main]

#[path = "../../tests/common/lua_harness.rs"]
mod lua_harness;

use libfuzzer_sys::fuzz_target;

thread_local! {
    static H: lua_harness::Harness = lua_harness::Harness::new();
}

fuzz_target!(|data: &[u8]| {
    // The first line is the key the manifest was found at, the rest its body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let key = String::from_utf8_lossy(&data[..split]).to_string();
    let body = data.get(split + 1..).unwrap_or(&[]);
    H.with(|h| {
        h.manifest(body, &key);
        h.snapshot_key(key.as_bytes());
    });
});
