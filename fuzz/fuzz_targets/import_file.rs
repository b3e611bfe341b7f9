//! Arbitrary bytes as a JSONL import file: validation must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    simdb::fuzzing::import_file(data);
});
