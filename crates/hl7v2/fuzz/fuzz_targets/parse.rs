#![no_main]

//! Parses arbitrary bytes, walks every field through paths, decodes escapes, writes the
//! message back and builds an ACK (see `tests/harness/mod.rs`, shared with the stable
//! proptest smoke test).

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::exercise(data);
});
