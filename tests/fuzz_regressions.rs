//! Inputs `cargo fuzz` once broke, replayed on every test run.

#[test]
fn user_text_regressions() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/user_text");
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let bytes = std::fs::read(entry?.path())?;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            simdb::fuzzing::url(text);
            simdb::fuzzing::parameter_args(text);
            n += 1;
        }
    }
    assert!(n >= 2, "regression inputs missing");
    Ok(())
}
