//! Helpers that start real services for the demo and the tests.
//!
//! Contract: [`Mosquitto::start`] runs a real `mosquitto` broker bound to 127.0.0.1 on a
//! free port, in a private temporary directory, and waits until it accepts connections. The
//! broker is killed when the value is dropped, so a test never leaves one behind.
//!
//! By default the broker runs the shipped configuration, `deploy/mosquitto/anpr.conf` with
//! `deploy/mosquitto/acl`: mutual TLS only, the certificate's CN as user name and client id,
//! the topic ACL. Only the listener's port and the files' paths are changed (and `user root`
//! is added, so that a broker started by root reads its key in the test's private directory
//! instead of dropping to the `mosquitto` user first); the ACL gets one more user,
//! `anpr-watch`, that reads every topic under `anpr/v1`, for `interface::SchemaWatch` (with the
//! `interface` feature), which checks every message of a test against `docs/interface/`. Its certificates come from a
//! [`BrokerPki`]: a PKI made by `anpr-pki` in a temporary directory for this broker, or one
//! shared by several brokers ([`Mosquitto::start_with_pki`]), or one kept in a directory (the
//! demo's); a device's identity is issued the first time it is asked for
//! ([`Mosquitto::device_tls`]), and so is the command sender's (`anpr-commands`,
//! [`Mosquitto::commands_tls`]) in a kept PKI made before `anpr pki init` issued it.
//!
//! A broker can run plain MQTT instead ([`BrokerOptions::plaintext`]), for the tests that
//! speak MQTT over a raw socket and for refused subscriptions ([`BrokerOptions::deny_subscribe`]),
//! as a broker whose ACL does not let a device read a topic would. Mosquitto's `acl_file`
//! cannot do that: it grants every SUBSCRIBE (SUBACK 0 in MQTT 3.1.1 and 5, checked with
//! mosquitto 2.0.11) and only withholds the messages at delivery, as its author says in
//! eclipse/mosquitto#2042. Its dynamic security plugin checks subscriptions and answers a
//! refused one with SUBACK 0x80 (MQTT 3.1.1) or reason code 135 (MQTT 5), so the launcher uses
//! that plugin, with one role given to anonymous clients, on a plain listener.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anpr_pki::{CentralFiles, DeviceFiles, Pki, TlsFiles};
use anyhow::{Context, Result, bail};

#[cfg(feature = "interface")]
pub mod interface;
#[cfg(feature = "interface")]
pub use interface::{Interface, SchemaWatch};

/// The shipped broker configuration.
pub const SHIPPED_CONF: &str = include_str!("../../../deploy/mosquitto/anpr.conf");
/// The shipped ACL.
pub const SHIPPED_ACL: &str = include_str!("../../../deploy/mosquitto/acl");

/// How a broker is started; changed options take effect at the next [`Mosquitto::restart`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerOptions {
    /// Keep sessions and queued messages on disk across [`Mosquitto::restart`].
    pub persistence: bool,
    /// Plain MQTT, anonymous clients, no ACL, instead of the shipped TLS configuration.
    pub plaintext: bool,
    /// Topic filters no client may subscribe to: a SUBSCRIBE to one (or to a filter the
    /// pattern matches) gets a failure SUBACK. Publishing to them stays allowed. Needs
    /// `plaintext`.
    pub deny_subscribe: Vec<String>,
    /// Users given the same rights as `anpr-central` in the ACL (read events, images and
    /// health; write acks), besides it (the shipped ACL with one more `user` block each): for
    /// a test that needs a second receiver-side client while the receiver runs (both cannot
    /// be `anpr-central`: the broker makes the user name the client id, so the second would
    /// take the first's session). Their certificates come from
    /// [`Mosquitto::central_side_tls`]. Commands are sent with the shipped command sender's
    /// identity instead, [`Mosquitto::commands_tls`].
    pub central_side_users: Vec<String>,
    /// ACL blocks appended to the shipped ACL as they are, such as a control post's
    /// (`anpr_pki::post_acl`, what `anpr pki post` writes for the operator to append).
    pub acl_blocks: Vec<String>,
}

/// The PKI a broker takes its certificates from, with the clients' identities issued on
/// demand.
pub struct BrokerPki {
    pki: Pki,
    /// Serialises issuing (tests ask from several threads).
    issuing: Mutex<()>,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for BrokerPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerPki")
            .field("dir", &self.pki.dir())
            .finish_non_exhaustive()
    }
}

impl BrokerPki {
    /// A new PKI in a temporary directory, removed when the last holder drops it.
    pub fn temporary() -> Result<Arc<Self>> {
        let temp = tempfile::tempdir().context("cannot create a temporary directory for a PKI")?;
        let pki = Pki::init(&temp.path().join("pki"), &[])?;
        Ok(Arc::new(Self {
            pki,
            issuing: Mutex::new(()),
            _temp: Some(temp),
        }))
    }

    /// The PKI in `dir`, made there first if it holds none (so a second call, or a second
    /// run, uses the same CA and identities).
    pub fn at(dir: &Path) -> Result<Arc<Self>> {
        let pki = if dir.join("ca.key").exists() {
            Pki::open(dir)?
        } else {
            Pki::init(dir, &[])?
        };
        Ok(Arc::new(Self {
            pki,
            issuing: Mutex::new(()),
            _temp: None,
        }))
    }

    /// The PKI.
    #[must_use]
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The identity of device `inventory`, issued if it has none yet.
    pub fn device(&self, inventory: &str) -> Result<DeviceFiles> {
        let _guard = self
            .issuing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let files = self.pki.device(inventory)?;
        if files.tls.key.exists() {
            return Ok(files);
        }
        Ok(self.pki.issue_device(inventory)?)
    }

    /// The central receiver's identity (CN `anpr-central`).
    #[must_use]
    pub fn central(&self) -> CentralFiles {
        self.pki.central()
    }

    /// The command sender's identity (CN `anpr-commands`), issued if the PKI has none yet
    /// (one kept from before `anpr pki init` issued it).
    pub fn commands(&self) -> Result<TlsFiles> {
        let _guard = self
            .issuing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let files = self.pki.commands();
        if files.key.exists() {
            return Ok(files);
        }
        Ok(self.pki.issue_commands()?)
    }

    /// The identity of control post `id` reading `devices` (every device when empty) under
    /// `anpr/v1`, issued if it has none yet; its ACL block is in the returned files' `acl`.
    /// The devices must be issued first (the post gets copies of their public keys).
    pub fn post(&self, id: &str, devices: &[String]) -> Result<anpr_pki::PostFiles> {
        let _guard = self
            .issuing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let files = self.pki.post(id)?;
        if files.tls.key.exists() {
            return Ok(files);
        }
        Ok(self.pki.issue_post(id, devices, "anpr/v1")?)
    }

    /// A client certificate with CN `name`, issued if there is none yet (for
    /// [`BrokerOptions::central_side_users`]).
    pub fn client(&self, name: &str) -> Result<TlsFiles> {
        let _guard = self
            .issuing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = self.pki.dir().join("clients");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let files = TlsFiles {
            ca: self.pki.ca_cert(),
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        if !files.key.exists() {
            self.pki.issue_client(name, &files.cert, &files.key)?;
        }
        Ok(files)
    }
}

/// A mosquitto broker on loopback.
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    options: BrokerOptions,
    pki: Arc<BrokerPki>,
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
    /// Starts a broker on a free port, with the shipped TLS configuration and a new PKI.
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

    /// Starts a broker with `options` (and a new PKI).
    pub fn start_with_options(options: BrokerOptions) -> Result<Self> {
        Self::start_with_pki(options, BrokerPki::temporary()?)
    }

    /// Starts a broker with `options` and the certificates of `pki` (which other brokers may
    /// share: a device's identity then works on each).
    pub fn start_with_pki(options: BrokerOptions, pki: Arc<BrokerPki>) -> Result<Self> {
        if options.plaintext && !options.central_side_users.is_empty() {
            bail!("central_side_users are ACL users: they need the TLS broker, not plaintext");
        }
        if !options.plaintext && !options.deny_subscribe.is_empty() {
            bail!(
                "deny_subscribe uses the dynamic security plugin on a plain listener: set plaintext too"
            );
        }
        let dir =
            tempfile::tempdir().context("cannot create a temporary directory for mosquitto")?;
        let mut m = Self {
            child: None,
            port: free_port()?,
            dir,
            options,
            pki,
        };
        m.spawn()?;
        Ok(m)
    }

    /// The options the broker runs with; what is changed here takes effect at the next
    /// [`Mosquitto::restart`] (e.g. clear `deny_subscribe` to grant what was refused).
    pub fn options_mut(&mut self) -> &mut BrokerOptions {
        &mut self.options
    }

    /// Whether clients must connect over TLS with a certificate.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        !self.options.plaintext
    }

    /// The PKI the broker's certificates come from.
    #[must_use]
    pub fn pki(&self) -> &Arc<BrokerPki> {
        &self.pki
    }

    /// The TLS files of device `inventory` (issued the first time), or `None` on a plain
    /// broker.
    pub fn device_tls(&self, inventory: &str) -> Result<Option<TlsFiles>> {
        if self.options.plaintext {
            return Ok(None);
        }
        Ok(Some(self.pki.device(inventory)?.tls))
    }

    /// The central receiver's TLS files, or `None` on a plain broker.
    #[must_use]
    pub fn central_tls(&self) -> Option<TlsFiles> {
        (!self.options.plaintext).then(|| self.pki.central().tls)
    }

    /// The command sender's TLS files (CN `anpr-commands`: the shipped ACL lets it write
    /// `anpr/v1/+/cmd/#` and nothing else), or `None` on a plain broker.
    pub fn commands_tls(&self) -> Result<Option<TlsFiles>> {
        if self.options.plaintext {
            return Ok(None);
        }
        Ok(Some(self.pki.commands()?))
    }

    /// The TLS files of `name`, one of [`BrokerOptions::central_side_users`].
    pub fn central_side_tls(&self, name: &str) -> Result<TlsFiles> {
        if !self.options.central_side_users.iter().any(|u| u == name) {
            bail!("{name} is not one of this broker's central_side_users");
        }
        self.pki.client(name)
    }

    /// Options for a rumqttc client of this broker: over TLS with `identity` (anonymous, so
    /// refused, without one) on a TLS broker; plain otherwise.
    pub fn client_options(
        &self,
        client_id: &str,
        identity: Option<&TlsFiles>,
    ) -> Result<rumqttc::MqttOptions> {
        let mut opts = rumqttc::MqttOptions::new(client_id, "127.0.0.1", self.port);
        opts.set_keep_alive(Duration::from_secs(5));
        if self.is_tls() {
            let config = match identity {
                Some(files) => anpr_pki::ClientTls::load(files)?.config(),
                None => Arc::new(client_without_certificate(&self.pki.pki().ca_cert())?),
            };
            opts.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(config),
            ));
        }
        Ok(opts)
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

    /// The configuration file's text.
    fn config_text(&self) -> Result<String> {
        let mut text = if self.options.plaintext {
            format!("listener {} 127.0.0.1\nallow_anonymous true\n", self.port)
        } else {
            let acl = self.dir.path().join("acl");
            // Plus the reader of every message that tests check against the interface.
            let text = acl_text(&self.options.central_side_users)
                + &self.options.acl_blocks.concat()
                + WATCH_ACL;
            std::fs::write(&acl, text)
                .with_context(|| format!("cannot write {}", acl.display()))?;
            shipped_conf(self.port, &self.pki.pki().broker(), &acl)?
        };
        text.push_str("max_queued_messages 100000\nlog_dest stderr\n");
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
        Ok(text)
    }

    /// `Ok(Ok(()))` once mosquitto says it is running on our port (its own log line, so a
    /// broker of someone else on that port is never mistaken for ours); `Ok(Err(log))` when it
    /// could not listen.
    fn spawn_once(&mut self) -> Result<Result<(), String>> {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(&conf, self.config_text()?)?;
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
            if text.contains("Error: Address already in use") {
                self.kill();
                return Ok(Err(text));
            }
            if exited || text.contains("Error:") {
                self.kill();
                bail!("mosquitto did not start: {text}");
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

    /// `mqtts://127.0.0.1:PORT` (`mqtt://` on a plain broker).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// What the broker logged so far (connections, denied publishes, TLS errors).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
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

/// The shipped configuration for a broker on `127.0.0.1:port` with `broker`'s files and the
/// ACL at `acl`. Fails when a line it must change is not there (the shipped file changed).
fn shipped_conf(port: u16, broker: &anpr_pki::BrokerFiles, acl: &Path) -> Result<String> {
    let mut out = String::new();
    let mut changed = Vec::new();
    for line in SHIPPED_CONF.lines() {
        let key = line.split_whitespace().next().unwrap_or_default();
        let replaced = match key {
            "listener" => Some(format!("listener {port} 127.0.0.1")),
            "cafile" => Some(format!("cafile {}", broker.ca.display())),
            "certfile" => Some(format!("certfile {}", broker.cert.display())),
            "keyfile" => Some(format!("keyfile {}", broker.key.display())),
            "crlfile" => Some(format!("crlfile {}", broker.crl.display())),
            "acl_file" => Some(format!("acl_file {}", acl.display())),
            _ => None,
        };
        if let Some(r) = replaced {
            changed.push(key);
            out.push_str(&r);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    for key in [
        "listener", "cafile", "certfile", "keyfile", "crlfile", "acl_file",
    ] {
        if !changed.contains(&key) {
            bail!("deploy/mosquitto/anpr.conf has no `{key}` line for the test broker to set");
        }
    }
    // Started by root, mosquitto would drop to the `mosquitto` user before reading the key,
    // which lives in the test's private directory.
    out.push_str("user root\n");
    Ok(out)
}

/// The shipped ACL, with `extra` users given the rights of `anpr-central`.
fn acl_text(extra: &[String]) -> String {
    let mut text = SHIPPED_ACL.to_string();
    let central: Vec<&str> = SHIPPED_ACL
        .lines()
        .skip_while(|l| l.trim() != "user anpr-central")
        .skip(1)
        .take_while(|l| l.starts_with("topic "))
        .collect();
    for user in extra {
        let _ = write!(text, "\nuser {user}\n{}\n", central.join("\n"));
    }
    text
}

/// The ACL block the test broker adds for the user that reads every message under `anpr/v1`
/// (`anpr-watch`, `interface::SchemaWatch`): the shipped ACL has no such user.
const WATCH_ACL: &str = "\nuser anpr-watch\ntopic read anpr/v1/#\n";

/// A rustls client that trusts `ca` and has no certificate of its own.
fn client_without_certificate(ca: &Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).context("CA certificate")?)?;
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
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
            plaintext: true,
            deny_subscribe: vec!["anpr/v1/KZ-1/ack".into()],
            ..BrokerOptions::default()
        })
        .unwrap();
        assert_eq!(suback_code(broker.port(), "anpr/v1/KZ-1/ack"), 0x80);
        assert_eq!(suback_code(broker.port(), "anpr/v1/KZ-1/cmd/#"), 1);
        broker.options_mut().deny_subscribe.clear();
        broker.restart().unwrap();
        assert_eq!(suback_code(broker.port(), "anpr/v1/KZ-1/ack"), 1);
    }

    #[test]
    fn the_default_broker_runs_the_shipped_tls_configuration_and_refuses_plain_mqtt() {
        let broker = Mosquitto::start().unwrap();
        assert!(broker.url().starts_with("mqtts://127.0.0.1:"));
        let log = broker.log();
        assert!(log.contains(" running"), "{log}");
        // An MQTT CONNECT in the clear is no TLS ClientHello: the broker hangs up, no CONNACK.
        let mut s = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let connect = [
            0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 4, b'p', b'l', b'a', b'n',
        ];
        let _ = s.write_all(&connect);
        let mut reply = [0u8; 4];
        let got = s.read(&mut reply).unwrap_or(0);
        assert!(
            got == 0 || reply[0] != 0x20,
            "a CONNACK over plain TCP: {reply:?}"
        );
        // The device's identity is issued once and then reused.
        let a = broker.device_tls("KZ-1").unwrap().unwrap();
        let b = broker.device_tls("KZ-1").unwrap().unwrap();
        assert_eq!(a, b);
        assert!(a.key.is_file() && a.cert.is_file());
        let commands = broker.commands_tls().unwrap().unwrap();
        assert_eq!(commands, broker.pki().pki().commands());
        assert!(commands.key.is_file() && commands.cert.is_file());
    }

    #[test]
    fn central_side_users_get_the_rights_of_anpr_central_in_the_acl() {
        let text = super::acl_text(&["ops".into()]);
        assert!(text.starts_with(super::SHIPPED_ACL));
        let extra = text[super::SHIPPED_ACL.len()..].trim();
        assert!(
            extra.starts_with("user ops\ntopic read anpr/v1/+/events"),
            "{extra}"
        );
        assert!(extra.ends_with("topic write anpr/v1/+/ack"), "{extra}");
        assert!(!extra.contains("cmd"), "{extra}");
    }

    #[test]
    fn a_kept_pki_without_the_command_senders_identity_gets_it_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("pki");
        let first = super::BrokerPki::at(&kept).unwrap();
        let files = first.pki().commands();
        // As a PKI kept from before `anpr pki init` issued it.
        std::fs::remove_file(&files.key).unwrap();
        std::fs::remove_file(&files.cert).unwrap();
        drop(first);
        let again = super::BrokerPki::at(&kept).unwrap();
        let issued = again.commands().unwrap();
        assert_eq!(issued, files);
        let key = std::fs::read(&issued.key).unwrap();
        assert_eq!(again.commands().unwrap(), files, "issued once, then reused");
        assert_eq!(std::fs::read(&issued.key).unwrap(), key);
    }

    /// The lines of the shipped ACL's block for `user`, up to the next blank line.
    fn user_block(user: &str) -> Vec<&'static str> {
        super::SHIPPED_ACL
            .lines()
            .skip_while(|l| l.trim() != format!("user {user}"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .collect()
    }

    #[test]
    fn the_shipped_acl_gives_each_user_only_what_it_does() {
        let acl = super::SHIPPED_ACL;
        let patterns: Vec<&str> = acl.lines().filter(|l| l.starts_with("pattern ")).collect();
        assert_eq!(
            patterns,
            [
                "pattern write anpr/v1/%u/events",
                "pattern write anpr/v1/%u/evidence/#",
                "pattern write anpr/v1/%u/health",
                "pattern read anpr/v1/%u/ack",
                "pattern read anpr/v1/%u/ack/post/+",
                "pattern read anpr/v1/%u/cmd/#",
            ]
        );
        assert_eq!(
            user_block("anpr-central"),
            [
                "topic read anpr/v1/+/events",
                "topic read anpr/v1/+/evidence/#",
                "topic read anpr/v1/+/health",
                "topic write anpr/v1/+/ack",
            ],
            "the receiver sends no commands"
        );
        assert_eq!(
            user_block("anpr-commands"),
            ["topic write anpr/v1/+/cmd/#"],
            "the command sender writes commands and reads nothing"
        );
        assert_eq!(
            acl.lines().filter(|l| l.starts_with("user ")).count(),
            2,
            "{acl}"
        );
    }

    #[test]
    fn a_control_posts_acl_block_reads_only_its_devices_and_writes_only_its_own_acks() {
        let block = anpr_pki::post_acl("P1", &["KZ-1".into(), "KZ-2".into()], "anpr/v1");
        let lines: Vec<&str> = block
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(
            lines,
            [
                "user anpr-post-P1",
                "topic read anpr/v1/KZ-1/events",
                "topic read anpr/v1/KZ-1/evidence/#",
                "topic read anpr/v1/KZ-1/health",
                "topic read anpr/v1/KZ-2/events",
                "topic read anpr/v1/KZ-2/evidence/#",
                "topic read anpr/v1/KZ-2/health",
                "topic write anpr/v1/KZ-1/ack/post/P1",
                "topic write anpr/v1/KZ-2/ack/post/P1",
            ]
        );
        let all = anpr_pki::post_acl("P2", &[], "anpr/v1/");
        assert!(all.contains("topic read anpr/v1/+/events\n"), "{all}");
        assert!(all.contains("topic write anpr/v1/+/ack/post/P2\n"), "{all}");
    }
}
