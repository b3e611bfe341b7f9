//! Arbitrary text as a database URL and as parameter filter arguments:
//! parsing never panics and redaction never leaks a password.
#![no_main]

#[path = "../../src/bin/simdb/args.rs"]
#[allow(dead_code)]
mod args;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        simdb::fuzzing::url(text);
        let q = simdb::ParameterQuery::default();
        let _ = args::equals_arg(q.clone(), text);
        let _ = args::range_arg(q, text);
    }
});
