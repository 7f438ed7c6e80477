//! Helpers that start real services for the demo and the tests.
//!
//! Contract: [`Mosquitto::start`] runs a real `mosquitto` broker bound to 127.0.0.1 on a
//! free port, in a private temporary directory, and waits until it accepts connections. The
//! broker is killed when the value is dropped, so a test never leaves one behind.
//!
//! A broker can refuse subscriptions ([`BrokerOptions::deny_subscribe`]), as a broker whose
//! ACL does not let a device read a topic would. Mosquitto's `acl_file` cannot do that: it
//! grants every SUBSCRIBE (SUBACK 0 in MQTT 3.1.1 and 5, checked with mosquitto 2.0.11) and
//! only withholds the messages at delivery, as its author says in eclipse/mosquitto#2042. Its
//! dynamic security plugin checks subscriptions and answers a refused one with SUBACK 0x80
//! (MQTT 3.1.1) or reason code 135 (MQTT 5), so the launcher uses that plugin, with one role
//! given to anonymous clients.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How a broker is started; changed options take effect at the next [`Mosquitto::restart`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerOptions {
    /// Keep sessions and queued messages on disk across [`Mosquitto::restart`].
    pub persistence: bool,
    /// Topic filters no client may subscribe to: a SUBSCRIBE to one (or to a filter the
    /// pattern matches) gets a failure SUBACK. Publishing to them stays allowed.
    pub deny_subscribe: Vec<String>,
}

/// A mosquitto broker on loopback.
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    options: BrokerOptions,
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

/// Path of mosquitto's dynamic security plugin, or a clear error telling how to install it.
pub fn dynamic_security_plugin() -> Result<PathBuf> {
    const NAME: &str = "mosquitto_dynamic_security.so";
    let mut dirs = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/local/lib")];
    // Debian and Ubuntu put it under the multiarch directory (`/usr/lib/x86_64-linux-gnu`).
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("-linux-gnu")),
        );
    }
    dirs.into_iter()
        .map(|d| d.join(NAME))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{NAME} is not installed; it ships with the `mosquitto` package from version 2.0: run deploy/setup.sh"
            )
        })
}

impl Mosquitto {
    /// Starts a broker on a free port.
    pub fn start() -> Result<Self> {
        Self::start_with(false)
    }

    /// Starts a broker; with `persistence` it keeps sessions and queued messages on disk
    /// across [`Mosquitto::restart`].
    pub fn start_with(persistence: bool) -> Result<Self> {
        Self::start_with_options(BrokerOptions {
            persistence,
            ..BrokerOptions::default()
        })
    }

    /// Starts a broker with `options`.
    pub fn start_with_options(options: BrokerOptions) -> Result<Self> {
        let dir =
            tempfile::tempdir().context("cannot create a temporary directory for mosquitto")?;
        let mut m = Self {
            child: None,
            port: free_port()?,
            dir,
            options,
        };
        m.spawn()?;
        Ok(m)
    }

    /// The options the broker runs with; what is changed here takes effect at the next
    /// [`Mosquitto::restart`] (e.g. clear `deny_subscribe` to grant what was refused).
    pub fn options_mut(&mut self) -> &mut BrokerOptions {
        &mut self.options
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
        if self.options.persistence {
            let _ = write!(
                text,
                "persistence true\npersistence_location {}/\nautosave_interval 1\n",
                self.dir.path().display()
            );
        }
        if !self.options.deny_subscribe.is_empty() {
            let security = self.dir.path().join("dynamic-security.json");
            std::fs::write(&security, dynamic_security(&self.options.deny_subscribe))
                .with_context(|| format!("cannot write {}", security.display()))?;
            let _ = write!(
                text,
                "plugin {}\nplugin_opt_config_file {}\n",
                dynamic_security_plugin()?.display(),
                security.display()
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

/// The dynamic security plugin's configuration: everything allowed, except subscribing to
/// `deny`, for anonymous clients (the tests' clients connect without a user name).
fn dynamic_security(deny: &[String]) -> String {
    let acls: Vec<serde_json::Value> = deny
        .iter()
        .map(|topic| {
            serde_json::json!({"acltype": "subscribePattern", "topic": topic, "priority": 0, "allow": false})
        })
        .collect();
    serde_json::json!({
        "defaultACLAccess": {
            "publishClientSend": true, "publishClientReceive": true,
            "subscribe": true, "unsubscribe": true
        },
        "clients": [],
        "groups": [{"groupname": "anonymous", "roles": [{"rolename": "test-denials"}], "clients": []}],
        "roles": [{"rolename": "test-denials", "acls": acls}],
        "anonymousGroup": "anonymous"
    })
    .to_string()
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use super::{BrokerOptions, Mosquitto};

    /// Subscribes to `filter` over a bare MQTT 3.1.1 connection; returns the SUBACK's return
    /// code (0x80: refused).
    fn suback_code(port: u16, filter: &str) -> u8 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let id = b"testkit";
        let mut connect = vec![0x10, (10 + 2 + id.len()) as u8];
        connect.extend([
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            4,
            0x02,
            0,
            60,
            0,
            id.len() as u8,
        ]);
        connect.extend(id);
        s.write_all(&connect).unwrap();
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack).unwrap();
        assert_eq!(connack, [0x20, 2, 0, 0], "connection accepted");
        let mut subscribe = vec![0x82, (2 + 2 + filter.len() + 1) as u8, 0, 1];
        subscribe.extend([0, filter.len() as u8]);
        subscribe.extend(filter.as_bytes());
        subscribe.push(1);
        s.write_all(&subscribe).unwrap();
        let mut suback = [0u8; 5];
        s.read_exact(&mut suback).unwrap();
        assert_eq!(suback[..4], [0x90, 3, 0, 1]);
        suback[4]
    }

    #[test]
    fn a_broker_refuses_the_denied_subscriptions_only_and_grants_them_once_restarted_without() {
        let mut broker = Mosquitto::start_with_options(BrokerOptions {
            deny_subscribe: vec!["anpr/v1/KZ-1/ack".into()],
            ..BrokerOptions::default()
        })
        .unwrap();
        assert_eq!(suback_code(broker.port(), "anpr/v1/KZ-1/ack"), 0x80);
        assert_eq!(suback_code(broker.port(), "anpr/v1/KZ-1/cmd"), 1);
        broker.options_mut().deny_subscribe.clear();
        broker.restart().unwrap();
        assert_eq!(suback_code(broker.port(), "anpr/v1/KZ-1/ack"), 1);
    }
}
