//! A TCP proxy in front of PostgreSQL that injects network faults for real:
//! it can cut a connection right after forwarding a COMMIT, or a run of a
//! recorder's one-statement batch, which commits on its own (so the server
//! commits and the client never hears back), or the batch's preparation
//! (so it never runs), or swallow all traffic.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Default)]
struct Faults {
    /// COMMITs still to be cut.
    cut_commits: AtomicUsize,
    /// Connections cut so far.
    cut: AtomicUsize,
    /// Preparations of the one-statement batch still to be cut.
    cut_prepares: AtomicUsize,
    /// Forward nothing in either direction.
    black_hole: AtomicBool,
}

/// A running proxy; it lives as long as the test process.
pub struct Proxy {
    addr: SocketAddr,
    faults: Arc<Faults>,
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(Faults::default());
        let shared = Arc::clone(&faults);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let faults = Arc::clone(&shared);
                std::thread::spawn(move || {
                    if let Ok(server) = TcpStream::connect(upstream) {
                        relay(client, server, faults);
                    }
                });
            }
        });
        Ok(Proxy { addr, faults })
    }

    /// `url` (a `postgres://user:pw@host:port/db...` URL) pointed at the
    /// proxy, without TLS so that the proxy can read the protocol.
    pub fn url_for(&self, url: &str) -> String {
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let rest = &url[scheme_end..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let host_start = rest[..authority_end].rfind('@').map_or(0, |i| i + 1);
        let tail = &rest[authority_end..];
        let sep = if tail.contains('?') { '&' } else { '?' };
        format!(
            "{}{}{}{tail}{sep}sslmode=disable",
            &url[..scheme_end],
            &rest[..host_start],
            self.addr,
        )
    }

    /// Cuts the connection that carries the next COMMIT, right after the
    /// server received it.
    pub fn cut_next_commit(&self) {
        self.faults.cut_commits.store(1, Ordering::SeqCst);
    }

    /// Cuts the connection that carries the next preparation of a
    /// recorder's one-statement batch (its first run on a connection),
    /// right after the server received it: the batch never ran.
    pub fn cut_next_batch_prepare(&self) {
        self.faults.cut_prepares.store(1, Ordering::SeqCst);
    }

    /// How many connections were cut (at a COMMIT or a preparation).
    pub fn commits_cut(&self) -> usize {
        self.faults.cut.load(Ordering::SeqCst)
    }

    /// Stops forwarding anything (connections stay open, silent).
    pub fn black_hole(&self, on: bool) {
        self.faults.black_hole.store(on, Ordering::SeqCst);
    }
}

/// The upstream address of a `postgres://` URL (host:port, default 5432).
pub fn upstream_of(url: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host_port = &authority[authority.rfind('@').map_or(0, |i| i + 1)..];
    let with_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    with_port.to_socket_addrs().ok()?.next()
}

/// The marker of a recorder's one-statement batch, its leading comment.
const BATCH: &[u8] = b"-- simdb: one-statement batch";

/// What a chunk the client sent does, as far as the faults care.
#[derive(PartialEq)]
enum Sent {
    /// Commits: a simple-protocol COMMIT, or a run of the one-statement
    /// batch (which commits on its own): sent with its text unnamed, or
    /// the `Bind` of its prepared statement.
    Commit,
    /// Prepares the one-statement batch under a name (no run yet).
    PrepareBatch,
    Other,
}

/// The NUL-terminated string at the start of `bytes`, and what follows it.
fn cstr(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// Classifies `chunk`, learning the batch statement's name on this
/// connection from its `Parse` (a chunk of the extended protocol starts
/// with a message: type byte, length, body).
fn classify(chunk: &[u8], batch_name: &mut Option<Vec<u8>>) -> Sent {
    let body = chunk.get(5..).unwrap_or_default();
    match chunk.first() {
        Some(b'P') if chunk.windows(BATCH.len()).any(|w| w == BATCH) => {
            match cstr(body) {
                Some((name, _)) if !name.is_empty() => {
                    *batch_name = Some(name.to_vec());
                    return Sent::PrepareBatch;
                }
                // Unnamed: parsed, bound and run in this one chunk.
                _ => return Sent::Commit,
            }
        }
        Some(b'B') => {
            let statement = cstr(body).and_then(|(_portal, rest)| cstr(rest));
            if let (Some((name, _)), Some(batch)) = (statement, batch_name.as_deref()) {
                if name == batch {
                    return Sent::Commit;
                }
            }
        }
        _ => {}
    }
    if chunk
        .windows(7)
        .any(|w| w.eq_ignore_ascii_case(b"COMMIT\0"))
    {
        Sent::Commit
    } else {
        Sent::Other
    }
}

fn relay(client: TcpStream, server: TcpStream, faults: Arc<Faults>) {
    let cut = Arc::new(AtomicBool::new(false));
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up_faults = Arc::clone(&faults);
    let up_cut = Arc::clone(&cut);
    let up = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut batch_name = None;
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if up_faults.black_hole.load(Ordering::SeqCst) {
                continue;
            }
            let chunk = &buf[..n];
            let armed = match classify(chunk, &mut batch_name) {
                Sent::Commit => Some(&up_faults.cut_commits),
                Sent::PrepareBatch => Some(&up_faults.cut_prepares),
                Sent::Other => None,
            };
            let cutting = armed.is_some_and(|count| {
                count
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| k.checked_sub(1))
                    .is_ok()
            });
            if cutting {
                // Nothing more reaches the client: the COMMIT's reply is
                // lost. The other direction closes the client as soon as
                // that reply arrives, i.e. once the server has committed.
                up_faults.cut.fetch_add(1, Ordering::SeqCst);
                up_cut.store(true, Ordering::SeqCst);
            }
            if s_write.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let (Ok(mut s_read), Ok(mut c_write)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            break;
        }
        if faults.black_hole.load(Ordering::SeqCst) {
            continue;
        }
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = up.join();
}
