//! Arbitrary text as a database URL and as parameter filter arguments:
//! parsing never panics and redaction never leaks a password.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        simdb::fuzzing::url(text);
        simdb::fuzzing::parameter_args(text);
    }
});
