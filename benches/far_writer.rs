//! A writer far from the server (issue 24): the canonical workload (100
//! agents, a reward and a ~60-byte JSON state each, one step row per step)
//! recorded into PostgreSQL through a latency proxy on loopback that holds
//! every packet for half the round trip each way, at 0, 5, 20 and 50 ms,
//! with the Recorder's default batches and with batches four times as
//! large. Prints rows/s (from creating the recorder to `close` returning)
//! and the share of the local rate (goal at 20 ms: 50%), and what starting
//! and closing a recorder took on their own.
//!
//! `cargo bench --bench far_writer`; `SIMDB_BENCH_STEPS` sets the steps
//! per run (default 20,000: 2M rows). Prints `RESULT rtt_ms=...
//! batch_rows=... rows_per_sec=... of_local=... start_ms=... close_ms=...`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use simdb::test_support::TestDatabase;
use simdb::{Backend, Database, NewAgent, NewSimulation, RecorderOptions, SimulationService};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

mod common;

const AGENTS: i32 = 100;

/// Copies `from` to `to`, each chunk delivered `delay` after it was read
/// (in order: a reader thread stamps, this thread waits and writes).
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for (due, bytes) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

/// A proxy to `upstream` adding `rtt` to every round trip; its address.
fn latency_proxy(upstream: SocketAddr, rtt: Duration) -> BenchResult<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            pump(client, s2, rtt / 2);
            pump(server, c2, rtt / 2);
        }
    });
    Ok(addr)
}

/// Records `steps` steps of the canonical workload; rows/s, and the time
/// to start and to close the recorder.
fn record(
    svc: &SimulationService,
    steps: i64,
    batch_rows: usize,
) -> BenchResult<(f64, Duration, Duration)> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"agents": AGENTS})))?;
    svc.register_agents(&sim.id, &(0..AGENTS).map(NewAgent::new).collect::<Vec<_>>())?;
    svc.start_simulation(&sim.id)?;
    let start = Instant::now();
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(batch_rows))?;
    let started = start.elapsed();
    for step in 0..steps {
        common::canonical_step(&mut rec, step, AGENTS)?;
        rec.step(step, &json!({"alive": AGENTS}))?;
        rec.end_step(step)?;
    }
    rec.flush()?;
    let closing = Instant::now();
    rec.close()?;
    let closed = closing.elapsed();
    let rate = (steps * i64::from(AGENTS)) as f64 / start.elapsed().as_secs_f64();
    Ok((rate, started, closed))
}

fn main() -> BenchResult<()> {
    let steps: i64 = std::env::var("SIMDB_BENCH_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let db = TestDatabase::new(Backend::Postgres)?;
    let url = url::Url::parse(db.url())?;
    let host = url.host_str().ok_or("no host")?.to_string();
    let port = url.port().unwrap_or(5432);
    let upstream: SocketAddr = format!("{host}:{port}").parse()?;
    let default_batch = RecorderOptions::default().batch_rows;
    let mut local = std::collections::HashMap::new();
    println!("| round trip | batch rows | rows/s | of local | start | close |");
    println!("|---|---|---|---|---|---|");
    for rtt_ms in [0u64, 5, 20, 50] {
        let through = if rtt_ms == 0 {
            db.url().to_string()
        } else {
            let proxy = latency_proxy(upstream, Duration::from_millis(rtt_ms))?;
            let mut via = url.clone();
            via.set_port(Some(proxy.port())).map_err(|_| "port")?;
            via.to_string()
        };
        let svc = SimulationService::new(Database::open(&through)?);
        for batch_rows in [default_batch, default_batch * 4] {
            let (rate, started, closed) = record(&svc, steps, batch_rows)?;
            let base = *local.entry(batch_rows).or_insert(rate);
            let (start_ms, close_ms) = (started.as_secs_f64() * 1e3, closed.as_secs_f64() * 1e3);
            println!(
                "| {rtt_ms} ms | {batch_rows} | {rate:.0} | {:.0}% | {start_ms:.0} ms | {close_ms:.0} ms |",
                rate / base * 100.0
            );
            println!("RESULT rtt_ms={rtt_ms} batch_rows={batch_rows} rows_per_sec={rate:.0} of_local={:.3} start_ms={start_ms:.1} close_ms={close_ms:.1}", rate / base);
        }
    }
    Ok(())
}
