//! One engine process: spawned with its output in a log file, killed on drop.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ClusterError;

/// A free TCP port on 127.0.0.1 (bound and released: another process may take it before it
/// is used, which the engines then report as a start error naming their log).
pub fn free_port() -> Result<u16, ClusterError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ClusterError::Options(format!("cannot bind a loopback port: {e}")))
}

/// A free port `p` on 127.0.0.1 such that `p + offset` is free too (SeaweedFS puts each
/// server's gRPC port 10000 above its HTTP port).
pub(crate) fn free_port_pair(offset: u16) -> Result<u16, ClusterError> {
    for _ in 0..100 {
        let p = free_port()?;
        if p.checked_add(offset)
            .is_some_and(|q| TcpListener::bind(("127.0.0.1", q)).is_ok())
        {
            return Ok(p);
        }
    }
    Err(ClusterError::Options(format!(
        "found no free loopback port p with p+{offset} free too after 100 tries"
    )))
}

/// A server process of one engine.
#[derive(Debug)]
pub(crate) struct Proc {
    pub what: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub log: PathBuf,
    /// Run as this user and group (PostgreSQL started by root).
    pub user: Option<(u32, u32)>,
    pub child: Option<Child>,
}

impl Proc {
    pub fn new(what: impl Into<String>, program: PathBuf, log: PathBuf) -> Self {
        Self {
            what: what.into(),
            program,
            args: Vec::new(),
            log,
            user: None,
            child: None,
        }
    }

    /// Starts the process; its stdout and stderr are appended to the log (which so keeps
    /// every run's lines across restarts).
    pub fn spawn(&mut self) -> Result<(), ClusterError> {
        self.kill();
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
        };
        let write_err = |source| ClusterError::Write {
            path: self.log.clone(),
            source,
        };
        let mut out = open().map_err(write_err)?;
        let _ = writeln!(out, "---- anpr-cluster: starting {}", self.what);
        let err = open().map_err(write_err)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().map_err(|source| ClusterError::Spawn {
            what: self.what.clone(),
            program: self.program.clone(),
            source,
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the process runs (not killed, not exited).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, then waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (a name such as `QUIT`) with kill(1) and waits up to `wait` for the
    /// process to exit; kills it when it has not.
    pub fn signal_and_wait(&mut self, signal: &str, wait: Duration) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let end = Instant::now() + wait;
            while Instant::now() < end && self.running() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    /// Polls `ready` until it holds, for at most `seconds`; fails when the process exits
    /// first or time runs out, naming the log.
    pub fn wait_ready(
        &mut self,
        seconds: u64,
        why: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), ClusterError> {
        let end = Instant::now() + Duration::from_secs(seconds);
        loop {
            self.check_running()?;
            if ready() {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(self.not_ready(seconds, why));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An error if the process has exited (naming its status and log).
    pub fn check_running(&mut self) -> Result<(), ClusterError> {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            self.child = None;
            return Err(ClusterError::Exited {
                what: self.what.clone(),
                status: status.to_string(),
                log: self.log.clone(),
            });
        }
        Ok(())
    }

    /// The error of a process not ready after `seconds`, `why` saying what was waited for.
    pub fn not_ready(&self, seconds: u64, why: &str) -> ClusterError {
        ClusterError::NotReady {
            what: self.what.clone(),
            seconds,
            why: why.to_string(),
            log: self.log.clone(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status code of `GET path` on 127.0.0.1:port, or `None` when it does not answer.
pub(crate) fn http_status(port: u16, path: &str) -> Option<u16> {
    http(port, "GET", path, None).map(|(status, _)| status)
}

/// One HTTP/1.1 request to 127.0.0.1:port (`Connection: close`): the status code and the
/// body, or `None` when the server does not answer within a few seconds.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Option<(u16, Vec<u8>)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(body) = body {
        let _ = write!(
            request,
            "Content-Type: application/octet-stream\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).ok()?;
    if let Some(body) = body {
        s.write_all(body).ok()?;
    }
    let mut response = Vec::new();
    s.read_to_end(&mut response).ok()?;
    let status = std::str::from_utf8(response.get(9..12)?)
        .ok()?
        .parse()
        .ok()?;
    let start = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((status, response[start..].to_vec()))
}

/// Whether something accepts TCP connections on 127.0.0.1:port.
pub(crate) fn port_open(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Creates `dir` (and its parents).
pub(crate) fn make_dir(dir: &Path) -> Result<(), ClusterError> {
    std::fs::create_dir_all(dir).map_err(|source| ClusterError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `text` to `path`.
pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), ClusterError> {
    std::fs::write(path, text).map_err(|source| ClusterError::Write {
        path: path.to_path_buf(),
        source,
    })
}
