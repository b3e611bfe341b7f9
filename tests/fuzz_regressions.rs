//! Inputs `cargo fuzz` once broke, replayed on every test run.

// The command line's argument parsing, as the `user_text` fuzz target sees it.
#[path = "../src/bin/simdb/args.rs"]
#[allow(dead_code)]
mod args;

#[test]
fn user_text_regressions() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/user_text");
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let bytes = std::fs::read(entry?.path())?;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            simdb::fuzzing::url(text);
            let q = simdb::ParameterQuery::default();
            let _ = args::equals_arg(q.clone(), text);
            let _ = args::range_arg(q, text);
            n += 1;
        }
    }
    assert!(n >= 2, "regression inputs missing");
    Ok(())
}
