//! A private PostgreSQL server for one test: its own data directory and
//! loopback port, started, restarted and stopped by the test (the machine's
//! shared server is never touched). Built from the installed server's
//! binaries; when the tests run as root, the server runs as `postgres`.

use std::path::{Path, PathBuf};
use std::process::Command;

use simdb::{Error, Result};

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: what.to_string(),
        source: e,
    }
}

fn failed(what: &str, out: &std::process::Output) -> Error {
    Error::Connection {
        url: what.to_string(),
        message: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The newest installed server's bin directory.
fn server_bin() -> Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(root)
        .map_err(io("/usr/lib/postgresql"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let v = versions.last().ok_or_else(|| {
        io("/usr/lib/postgresql")(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no PostgreSQL server installed",
        ))
    })?;
    Ok(root.join(v.to_string()).join("bin"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as `postgres` when the tests run as root (initdb and
/// the server refuse root).
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("a free port"))?;
    Ok(listener.local_addr().map_err(io("a free port"))?.port())
}

/// A fresh directory for a cluster, owned by the server's user.
fn cluster_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "simdb-cluster-{}-{}",
        std::process::id(),
        free_port()?
    ));
    std::fs::create_dir_all(&dir).map_err(io("cluster dir"))?;
    if is_root() {
        let out = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .output()
            .map_err(io("chown"))?;
        if !out.status.success() {
            return Err(failed("chown", &out));
        }
    }
    Ok(dir)
}

/// Appends server settings: its own port and socket directory, then `settings`.
fn configure(data: &Path, dir: &Path, port: u16, settings: &[&str]) -> Result<()> {
    let mut conf = format!(
        "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
        dir.display()
    );
    for s in settings {
        conf.push_str(s);
        conf.push('\n');
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
        .map_err(io("postgresql.conf"))
}

impl Cluster {
    /// A hot standby of `primary`: `pg_basebackup -R` (streaming, with the
    /// standby signal and the primary's address written for it) into a
    /// directory of its own, started on another free loopback port.
    pub fn replica_of(primary: &Cluster) -> Result<Cluster> {
        let bin = server_bin()?;
        let dir = cluster_dir()?;
        let data = dir.join("data");
        let out = as_server_user(&bin.join("pg_basebackup"))
            .arg("-D")
            .arg(&data)
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ])
            .args(["-p", &primary.port.to_string()])
            .output()
            .map_err(io("pg_basebackup"))?;
        if !out.status.success() {
            return Err(failed("pg_basebackup", &out));
        }
        let port = free_port()?;
        configure(&data, &dir, port, &["hot_standby = on"])?;
        let cluster = Cluster { bin, dir, port };
        cluster.pg_ctl(&["start"])?;
        Ok(cluster)
    }

    /// Stops the server (fast); its directory stays until the drop.
    pub fn stop(&self) -> Result<()> {
        self.pg_ctl(&["stop"])
    }

    /// Starts a stopped server again.
    pub fn start_again(&self) -> Result<()> {
        self.pg_ctl(&["start"])
    }

    /// initdb (trust authentication, superuser `postgres`, `initdb_args`
    /// added) and start on a free loopback port with `settings` (`name=value`).
    pub fn start(initdb_args: &[&str], settings: &[&str]) -> Result<Cluster> {
        let bin = server_bin()?;
        let dir = cluster_dir()?;
        let data = dir.join("data");
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(initdb_args)
            .output()
            .map_err(io("initdb"))?;
        if !out.status.success() {
            return Err(failed("initdb", &out));
        }
        let port = free_port()?;
        configure(&data, &dir, port, settings)?;
        let cluster = Cluster { bin, dir, port };
        cluster.pg_ctl(&["start"])?;
        Ok(cluster)
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-m", "fast"])
            .args(args)
            .output()
            .map_err(io("pg_ctl"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed("pg_ctl", &out))
        }
    }

    /// A URL of database `db` on this server, as superuser `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops (fast: every session is terminated) and starts again.
    pub fn restart(&self) -> Result<()> {
        self.pg_ctl(&["restart"])
    }
}

/// A private primary, a hot standby of it, and a database opened on the
/// primary that reads from the standby (migrated; the standby may still be
/// replaying that: see [`wait_until_replayed`]).
pub fn primary_and_replica() -> Result<(Cluster, Cluster, simdb::Database)> {
    let primary = Cluster::start(&[], &[])?;
    let replica = Cluster::replica_of(&primary)?;
    let db = simdb::Database::builder(primary.url("postgres"))
        .read_replica(replica.url("postgres"))
        .open()?;
    Ok((primary, replica, db))
}

/// Waits until `db`'s (only) replica has replayed all its primary wrote.
pub fn wait_until_replayed(db: &simdb::Database) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = &db.replica_status()[0];
        if status.lag_bytes == Some(0) {
            assert_eq!(status.lag_seconds, Some(0.0));
            return Ok(());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never caught up: {status:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
