//! Params checking: `key=value` lines (and the same bytes as a YAML params file) against one param of
//! each type: every value is either refused with a message or converted to its declared type.
#![no_main]

#[path = "../../tests/common/lua_harness.rs"]
mod lua_harness;

use libfuzzer_sys::fuzz_target;

thread_local! {
    static H: lua_harness::Harness = lua_harness::Harness::new();
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let cli: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let file = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.as_object().cloned());
    H.with(|h| h.params(&cli, file.as_ref()));
});
