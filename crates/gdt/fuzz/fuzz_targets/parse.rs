#![no_main]

//! Parses arbitrary bytes strictly and leniently, reads every typed accessor, writes
//! what parsed and parses it again (see `tests/harness/mod.rs`, shared with the stable
//! proptest smoke test).

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::exercise(data);
});
