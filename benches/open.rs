//! Connect + migrate a fresh SQLite file (target <= 50 ms), and reopen an
//! already migrated one. `cargo bench --bench open`.

use std::time::{Duration, Instant};

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("simdb-open-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut fresh = Vec::new();
    let mut reopen = Vec::new();
    for i in 0..21 {
        let path = dir.join(format!("fresh-{i}.db"));
        let url = format!("sqlite://{}", path.display());
        let start = Instant::now();
        let db = simdb::Database::open(&url)?;
        fresh.push(start.elapsed());
        drop(db);
        let start = Instant::now();
        let db = simdb::Database::open(&url)?;
        reopen.push(start.elapsed());
        drop(db);
    }
    std::fs::remove_dir_all(&dir)?;
    let (fresh, reopen) = (median(fresh), median(reopen));
    println!("sqlite: connect + migrate a fresh file: {fresh:.2} ms (ceiling 50 ms); reopen a migrated file: {reopen:.2} ms");
    println!("RESULT backend=sqlite open_fresh_ms={fresh:.2} ceiling_ms=50 reopen_ms={reopen:.2}");
    Ok(())
}
