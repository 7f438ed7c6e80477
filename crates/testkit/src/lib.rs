//! Helpers that start real services for the demo and the tests.
//!
//! Contract: [`Mosquitto::start`] runs a real `mosquitto` broker bound to 127.0.0.1 on a
//! free port, in a private temporary directory, and waits until it accepts connections. The
//! broker is killed when the value is dropped, so a test never leaves one behind.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A mosquitto broker on loopback.
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    persistence: bool,
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(l.local_addr()?.port())
}

/// Path of the mosquitto binary, or a clear error telling how to install it.
pub fn mosquitto_binary() -> Result<PathBuf> {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if Path::new(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("mosquitto is not installed; run deploy/setup.sh (it installs the `mosquitto` package)")
}

impl Mosquitto {
    /// Starts a broker on a free port.
    pub fn start() -> Result<Self> {
        Self::start_with(false)
    }

    /// Starts a broker; with `persistence` it keeps sessions and queued messages on disk
    /// across [`Mosquitto::restart`].
    pub fn start_with(persistence: bool) -> Result<Self> {
        let dir =
            tempfile::tempdir().context("cannot create a temporary directory for mosquitto")?;
        let mut m = Self {
            child: None,
            port: free_port()?,
            dir,
            persistence,
        };
        m.spawn()?;
        Ok(m)
    }

    /// Starts mosquitto on `self.port`; when that port was taken meanwhile (another test may
    /// have been handed the same free port), tries again on a new one.
    fn spawn(&mut self) -> Result<()> {
        let mut last = String::new();
        for _ in 0..5 {
            match self.spawn_once()? {
                Ok(()) => return Ok(()),
                Err(log) => {
                    last = log;
                    self.port = free_port()?;
                }
            }
        }
        bail!("mosquitto did not start on a free loopback port after 5 tries: {last}")
    }

    /// `Ok(Ok(()))` once mosquitto says it is running on our port (its own log line, so a
    /// broker of someone else on that port is never mistaken for ours); `Ok(Err(log))` when it
    /// could not listen.
    fn spawn_once(&mut self) -> Result<Result<(), String>> {
        let conf = self.dir.path().join("mosquitto.conf");
        let mut text = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\nlog_dest stderr\n",
            self.port
        );
        if self.persistence {
            let _ = write!(
                text,
                "persistence true\npersistence_location {}/\nautosave_interval 1\n",
                self.dir.path().display()
            );
        }
        std::fs::write(&conf, text)?;
        let log_path = self.dir.path().join("mosquitto.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(mosquitto_binary()?)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start mosquitto")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || text.contains("Error:") {
                self.kill();
                return Ok(Err(text));
            }
            if text.contains(" running") && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(Ok(()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        bail!(
            "mosquitto did not report running on port {} within 10 s",
            self.port
        )
    }

    /// The broker's port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills the broker (like a crash: SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same port (clients reconnect to it there).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        match self.spawn_once()? {
            Ok(()) => Ok(()),
            Err(log) => bail!(
                "mosquitto could not listen again on port {}: {log}",
                self.port
            ),
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
