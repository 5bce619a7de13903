//! yaml decoding: bad input is an error, good input survives encode + decode unchanged.
#![no_main]

#[path = "../../tests/common/lua_harness.rs"]
mod lua_harness;

use libfuzzer_sys::fuzz_target;

thread_local! {
    static H: lua_harness::Harness = lua_harness::Harness::new();
}

fuzz_target!(|data: &[u8]| {
    H.with(|h| h.round_trip("yaml", data));
});
