//! Rebuilds the library when a migration is added or changed: the
//! migrations are embedded at compile time (`embed_migrations!`), and a new
//! file alone would not make Cargo recompile the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
