//! A PostgreSQL server.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ClusterError;
use crate::process::{Proc, free_port, make_dir, port_open};

/// How long the server has to accept connections at start and restart (crash recovery
/// included).
const READY_SECONDS: u64 = 60;

/// The role and the database the lab's clients use.
const ROLE: &str = "anpr";

/// What the server logs once it accepts connections.
const READY_LINE: &str = "database system is ready to accept connections";

/// A PostgreSQL server on 127.0.0.1 with a database `anpr` owned by the superuser `anpr`;
/// killed (immediate shutdown) when dropped.
///
/// A lab server: connections from loopback are trusted without a password (`initdb -A
/// trust`), and nothing else can connect (it listens on 127.0.0.1 only, no Unix socket).
/// `fsync` and `synchronous_commit` are on: a committed row survives [`Postgres::kill`].
/// `shared_buffers` is small (32 MB) for a small machine.
///
/// PostgreSQL refuses to run as root. Started by root, the server runs as the `postgres`
/// user (made by the Debian package), with its data directory in a directory of that user's
/// under the system's temporary directory (removed when the value is dropped), because the
/// run directory may sit where that user cannot reach; the log stays in the run directory.
/// Started by anyone else it runs as that user with its data in `<dir>/postgres/data`.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    proc: Proc,
    _data_home: Option<tempfile::TempDir>,
}

impl Postgres {
    /// Makes a new database cluster (`initdb`) for `<dir>/postgres/`, starts the server on a
    /// free port and creates the database `anpr`.
    pub fn start(dir: &Path) -> Result<Self, ClusterError> {
        let bin = crate::postgres_bin_dir()?;
        let dir = dir.join("postgres");
        make_dir(&dir)?;
        let log = dir.join("postgres.log");
        let (user, data, data_home) = if is_root() {
            let (uid, gid) = postgres_user()?;
            let home = tempfile::Builder::new()
                .prefix("anpr-postgres-")
                .tempdir()
                .map_err(|source| ClusterError::Write {
                    path: std::env::temp_dir(),
                    source,
                })?;
            std::os::unix::fs::chown(home.path(), Some(uid), Some(gid)).map_err(|source| {
                ClusterError::Write {
                    path: home.path().to_path_buf(),
                    source,
                }
            })?;
            let data = home.path().join("data");
            // Where to find it from the run directory.
            let _ = std::os::unix::fs::symlink(&data, dir.join("data"));
            (Some((uid, gid)), data, Some(home))
        } else {
            (None, dir.join("data"), None)
        };
        let mut pg = Self {
            proc: Proc::new("PostgreSQL", bin.join("postgres"), log),
            bin,
            data,
            port: free_port()?,
            user,
            _data_home: data_home,
        };
        pg.proc.user = user;
        pg.run_tool(
            "initdb",
            &[
                "-D".into(),
                pg.data.clone().into(),
                "-U".into(),
                ROLE.into(),
                "-A".into(),
                "trust".into(),
                "-E".into(),
                "UTF8".into(),
                "--no-locale".into(),
            ],
        )?;
        pg.proc.args = vec![
            "-D".into(),
            pg.data.clone().into(),
            "-p".into(),
            pg.port.to_string().into(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            "unix_socket_directories=".into(),
            "-c".into(),
            "shared_buffers=32MB".into(),
            "-c".into(),
            "fsync=on".into(),
            "-c".into(),
            "synchronous_commit=on".into(),
            "-c".into(),
            "max_connections=200".into(),
        ];
        let mut tries = 1;
        loop {
            match pg.spawn() {
                Err(e) if e.is_port_taken() && tries < crate::PORT_TRIES => {
                    tries += 1;
                    pg.port = free_port()?;
                    let at = pg.proc.args.iter().position(|a| a == "-p").map(|i| i + 1);
                    if let Some(arg) = at.and_then(|i| pg.proc.args.get_mut(i)) {
                        *arg = pg.port.to_string().into();
                    }
                }
                result => break result?,
            }
        }
        pg.run_tool(
            "createdb",
            &[
                "-h".into(),
                "127.0.0.1".into(),
                "-p".into(),
                pg.port.to_string().into(),
                "-U".into(),
                ROLE.into(),
                ROLE.into(),
            ],
        )?;
        Ok(pg)
    }

    fn spawn(&mut self) -> Result<(), ClusterError> {
        let log = self.proc.log.clone();
        let count = |log: &Path| {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .matches(READY_LINE)
                .count()
        };
        let before = count(&log);
        self.proc.spawn()?;
        let port = self.port;
        self.proc.wait_ready(
            READY_SECONDS,
            "it did not log that it accepts connections",
            || count(&log) > before && port_open(port),
        )
    }

    /// Runs one of PostgreSQL's programs to completion (as the server's user), its output
    /// appended to the log.
    fn run_tool(&self, name: &str, args: &[OsString]) -> Result<(), ClusterError> {
        let program = self.bin.join(name);
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.proc.log)
                .map_err(|source| ClusterError::Write {
                    path: self.proc.log.clone(),
                    source,
                })
        };
        let mut cmd = Command::new(&program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?);
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid).current_dir("/");
        }
        let status = cmd.status().map_err(|source| ClusterError::Spawn {
            what: name.to_string(),
            program: program.clone(),
            source,
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(ClusterError::Setup {
                what: name.to_string(),
                message: format!("it exited with {status}"),
                log: self.proc.log.clone(),
            })
        }
    }

    /// `postgres://anpr@127.0.0.1:<port>/anpr` (no password: loopback is trusted).
    pub fn url(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{ROLE}", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The log file (the server's and its tools').
    pub fn log(&self) -> PathBuf {
        self.proc.log.clone()
    }

    /// The postmaster's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// Stops the server as a crash would: an immediate shutdown (SIGQUIT), no checkpoint, so
    /// the next start replays the WAL. Connections are cut.
    pub fn kill(&mut self) {
        self.proc.signal_and_wait("QUIT", Duration::from_secs(10));
    }

    /// Starts the server again on the same port and data (after [`Postgres::kill`], with
    /// crash recovery) and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.kill();
        self.spawn()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether this process runs as root.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of the `postgres` user (from /etc/passwd).
fn postgres_user() -> Result<(u32, u32), ClusterError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "postgres")
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| ClusterError::MissingBinary {
            what: "the `postgres` user (PostgreSQL refuses to run as root)",
            looked: "/etc/passwd".into(),
        })
}
