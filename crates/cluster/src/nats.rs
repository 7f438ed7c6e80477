//! A NATS cluster with JetStream and its MQTT listener, users and permissions from the PKI.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anpr_pki::{BrokerFiles, CENTRAL_CN, COMMANDS_CN, Pki};

use crate::ClusterError;
use crate::process::{Proc, free_port, http_status, make_dir, write_file};

/// The devices' MQTT topic prefix (`uplink.topic_prefix`), as in the shipped mosquitto ACL.
pub const DEFAULT_PREFIX: &str = "anpr/v1";

/// The account every client of the cluster is a user of.
const ACCOUNT: &str = "ANPR";

/// How long a node has to become healthy (JetStream included) at start and restart.
const READY_SECONDS: u64 = 60;

/// How a [`NatsCluster`] is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// The run directory; the cluster's files go under `<dir>/nats/`.
    pub dir: PathBuf,
    /// Number of nodes (1 to 5; default 3). Streams of the MQTT layer get
    /// `min(nodes, 3)` replicas.
    pub nodes: usize,
    /// The broker's certificate, key and CA (`Pki::broker`): the same files mosquitto uses.
    pub broker: BrokerFiles,
    /// Inventory numbers of the devices let in (each a user with its own topics).
    pub devices: Vec<String>,
    /// The devices' MQTT topic prefix (default [`DEFAULT_PREFIX`]); subjects use
    /// [`subject_prefix`] of it.
    pub prefix: String,
    /// JetStream file store limit of each node, bytes (default 2 GiB).
    pub max_file_store: u64,
    /// JetStream memory store limit of each node, bytes (default 256 MiB).
    pub max_mem_store: u64,
    /// Replicas of the JetStream consumer behind each MQTT QoS 1 subscription (`None`: the
    /// server's default, the session stream's replicas). 1 makes thousands of sessions much
    /// cheaper; a subscription on a node that is down then waits for it.
    pub mqtt_consumer_replicas: Option<u8>,
    /// Keep the state of those consumers in memory (replicated, not on disk): cheaper, and
    /// on a node restart restored from the other replicas (default false).
    pub mqtt_consumer_memory_storage: bool,
    /// How long the MQTT layer waits for JetStream (a session's record, a subscription's
    /// consumer) before it refuses the CONNECT or the SUBSCRIBE (default 5 s, the server's).
    /// Longer lets more of hundreds of devices connecting at once on a small machine through
    /// (with 5 s many of their SUBSCRIBEs fail, SUBACK 0x80); but a device whose request was
    /// lost, as happens right after a node restarts, then waits that long before it retries.
    pub mqtt_api_timeout: std::time::Duration,
}

impl NatsOptions {
    /// Three nodes in `dir`, the broker files of `pki`, `devices`, prefix `anpr/v1`.
    pub fn new(dir: &Path, pki: &Pki, devices: Vec<String>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            nodes: 3,
            broker: pki.broker(),
            devices,
            prefix: DEFAULT_PREFIX.to_string(),
            max_file_store: 2 << 30,
            max_mem_store: 256 << 20,
            mqtt_consumer_replicas: None,
            mqtt_consumer_memory_storage: false,
            mqtt_api_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// The NATS subject prefix of an MQTT topic prefix: `anpr/v1` → `anpr.v1` (NATS's MQTT layer
/// maps `/` to `.`).
pub fn subject_prefix(topic_prefix: &str) -> String {
    topic_prefix.trim_matches('/').replace('/', ".")
}

/// The NATS user a certificate with common name `cn` from the project's PKI maps to under
/// `verify_and_map`: its subject as RFC 2253 writes it (last RDN first), `CN=<cn>,O=ANPR`.
pub fn nats_user(cn: &str) -> String {
    format!("CN={cn},O=ANPR")
}

/// The `accounts` block of a nats-server configuration: account `ANPR` with JetStream, the
/// central receiver, the command sender and one user per device, each with the rights the
/// shipped mosquitto ACL gives it (see the crate docs). `topic_prefix` is the devices'
/// (`anpr/v1`). An operator includes it in each node's configuration (`include
/// accounts.conf`) next to a `tls { verify_and_map: true }` and an `mqtt { tls {
/// verify_and_map: true } }` block.
pub fn nats_accounts_config(topic_prefix: &str, devices: &[String]) -> String {
    let p = subject_prefix(topic_prefix);
    let mut users = Vec::with_capacity(devices.len() + 2);
    users.push(user(
        CENTRAL_CN,
        &["STANDARD"],
        &Rights::allow(&[
            "$JS.API.>",
            "$JS.ACK.>",
            "$JS.FC.>",
            &format!("{p}.*.ack"),
            // An ack stored for the device's MQTT session (JetStream publish into the MQTT
            // layer's `$MQTT_msgs` stream): it waits there while the device is offline.
            &format!("$MQTT.msgs.{p}.*.ack"),
        ]),
        &Rights::allow(&[
            "_INBOX.>",
            &format!("{p}.*.events"),
            &format!("{p}.*.evidence.>"),
            &format!("{p}.*.health"),
        ]),
    ));
    users.push(user(
        COMMANDS_CN,
        &["STANDARD", "MQTT"],
        &Rights::allow(&[&format!("{p}.*.cmd.>")]),
        &Rights::Nothing,
    ));
    for inv in devices {
        users.push(user(
            inv,
            &["MQTT"],
            &Rights::allow(&[
                &format!("{p}.{inv}.events"),
                &format!("{p}.{inv}.evidence.>"),
                &format!("{p}.{inv}.health"),
            ]),
            // `cmd/#` is subscribed to as `cmd` and `cmd.>` (MQTT's `#` matches its parent
            // level too).
            &Rights::allow(&[
                &format!("{p}.{inv}.ack"),
                &format!("{p}.{inv}.ack.post.*"),
                &format!("{p}.{inv}.cmd"),
                &format!("{p}.{inv}.cmd.>"),
            ]),
        ));
    }
    format!(
        "# Users and permissions of the ANPR fleet (anpr-cluster), one per certificate (verify_and_map).\naccounts {{\n  {ACCOUNT} {{\n    jetstream: enabled\n    users: [\n{}    ]\n  }}\n}}\n",
        users.concat()
    )
}

/// What a user may publish, or subscribe to.
enum Rights<'a> {
    Allow(&'a [&'a str]),
    Nothing,
}

impl<'a> Rights<'a> {
    fn allow(subjects: &'a [&'a str]) -> Self {
        Self::Allow(subjects)
    }

    fn text(&self) -> String {
        match self {
            Self::Allow(subjects) => format!("{{ allow: [{}] }}", quoted(subjects)),
            Self::Nothing => "{ deny: [\">\"] }".to_string(),
        }
    }
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

fn user(cn: &str, connection_types: &[&str], publish: &Rights, subscribe: &Rights) -> String {
    format!(
        "      {{ user: {}, allowed_connection_types: [{}], permissions: {{ publish: {}, subscribe: {} }} }}\n",
        quoted(&[&nats_user(cn)]),
        quoted(connection_types),
        publish.text(),
        subscribe.text(),
    )
}

/// One node's ports on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    client: u16,
    route: u16,
    mqtt: u16,
    http: u16,
}

#[derive(Debug)]
struct Node {
    ports: Ports,
    dir: PathBuf,
    proc: Proc,
}

/// A NATS cluster on loopback; every node is killed when it is dropped.
#[derive(Debug)]
pub struct NatsCluster {
    options: NatsOptions,
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// Writes the configuration of every node, starts them and waits until each is healthy
    /// (its `/healthz`, which needs JetStream's meta leader, answers 200). A node that exits
    /// because one of its ports was taken meanwhile starts the whole cluster again on other
    /// ports, three tries in all.
    pub fn start(options: NatsOptions) -> Result<Self, ClusterError> {
        let nats = options.dir.join("nats");
        crate::on_free_ports(
            options,
            Self::start_once,
            // The failed attempt's JetStream state would name peers that never formed a
            // cluster.
            || {
                let _ = std::fs::remove_dir_all(&nats);
            },
        )
    }

    fn start_once(options: NatsOptions) -> Result<Self, ClusterError> {
        if !(1..=5).contains(&options.nodes) {
            return Err(ClusterError::Options(format!(
                "a NATS cluster of {} nodes: give 1 to 5",
                options.nodes
            )));
        }
        let program = crate::nats_server_binary()?;
        let base = options.dir.join("nats");
        make_dir(&base)?;
        write_file(
            &base.join("accounts.conf"),
            &nats_accounts_config(&options.prefix, &options.devices),
        )?;
        let mut ports = Vec::new();
        for _ in 0..options.nodes {
            ports.push(Ports {
                client: free_port()?,
                route: free_port()?,
                mqtt: free_port()?,
                http: free_port()?,
            });
        }
        let mut nodes = Vec::new();
        for i in 0..options.nodes {
            let dir = base.join(format!("n{i}"));
            make_dir(&dir.join("jetstream"))?;
            let conf = dir.join("nats.conf");
            write_file(&conf, &node_config(&options, i, &ports))?;
            let mut proc = Proc::new(
                format!("nats-server node {i}"),
                program.clone(),
                dir.join("nats.log"),
            );
            proc.args = vec!["-c".into(), conf.into()];
            nodes.push(Node {
                ports: ports[i],
                dir,
                proc,
            });
        }
        let mut cluster = Self { options, nodes };
        for n in &mut cluster.nodes {
            n.proc.spawn()?;
        }
        cluster.wait_healthy(0..cluster.nodes.len())?;
        Ok(cluster)
    }

    /// Waits until each node of `which` is healthy, watching all of them at once: a node that
    /// exits (a port taken meanwhile) is seen at once, not after the others' time runs out
    /// waiting for a meta leader it was needed to elect.
    fn wait_healthy(&mut self, which: std::ops::Range<usize>) -> Result<(), ClusterError> {
        const WHY: &str = "its /healthz did not answer 200: JetStream has no meta leader or this node is not current";
        let end = std::time::Instant::now() + std::time::Duration::from_secs(READY_SECONDS);
        let mut healthy = vec![false; which.len()];
        loop {
            for (k, i) in which.clone().enumerate() {
                let node = &mut self.nodes[i];
                node.proc.check_running()?;
                healthy[k] = healthy[k] || http_status(node.ports.http, "/healthz") == Some(200);
            }
            if let Some(k) = healthy.iter().position(|h| !h) {
                if std::time::Instant::now() >= end {
                    return Err(self.nodes[which.start + k]
                        .proc
                        .not_ready(READY_SECONDS, WHY));
                }
            } else {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The options it was started with.
    pub fn options(&self) -> &NatsOptions {
        &self.options
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The MQTT-over-TLS port of node `i` (devices: `mqtts://127.0.0.1:<port>`).
    pub fn mqtt_port(&self, i: usize) -> u16 {
        self.nodes[i].ports.mqtt
    }

    /// Every node's MQTT port, node 0 first.
    pub fn mqtt_ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.ports.mqtt).collect()
    }

    /// Node `i`'s NATS client URL, `tls://127.0.0.1:<port>` (TLS with a client certificate).
    pub fn nats_url(&self, i: usize) -> String {
        format!("tls://127.0.0.1:{}", self.nodes[i].ports.client)
    }

    /// Every node's NATS client URL, node 0 first (a client given all fails over).
    pub fn nats_urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.nats_url(i)).collect()
    }

    /// Node `i`'s monitoring port (`http://127.0.0.1:<port>/varz`, `/jsz`, `/healthz`).
    pub fn monitor_port(&self, i: usize) -> u16 {
        self.nodes[i].ports.http
    }

    /// The PID of node `i`, while it runs (for CPU and memory figures).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].proc.pid()
    }

    /// Node `i`'s log file.
    pub fn log(&self, i: usize) -> PathBuf {
        self.nodes[i].proc.log.clone()
    }

    /// What node `i` logged so far.
    pub fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(self.log(i)).unwrap_or_default()
    }

    /// Node `i`'s directory (configuration, log, JetStream store).
    pub fn node_dir(&self, i: usize) -> &Path {
        &self.nodes[i].dir
    }

    /// Kills node `i` (SIGKILL, a crash). Its clients reconnect to another node.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].proc.kill();
    }

    /// Whether node `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].proc.running()
    }

    /// Starts node `i` again with the same ports and store, and waits until it is healthy
    /// again: rejoined the cluster and caught up with its streams.
    pub fn restart(&mut self, i: usize) -> Result<(), ClusterError> {
        self.nodes[i].proc.spawn()?;
        self.wait_healthy(i..i + 1)
    }

    /// Lets in `devices` instead of the devices given at start (new certificates, or one
    /// revoked: nats-server has no CRL, a device is shut out by leaving it off this list):
    /// rewrites `accounts.conf` and has each running node reload its configuration (SIGHUP).
    /// The new users apply within a moment; connections of removed users are closed.
    pub fn set_devices(&mut self, devices: Vec<String>) -> Result<(), ClusterError> {
        self.options.devices = devices;
        write_file(
            &self.options.dir.join("nats").join("accounts.conf"),
            &nats_accounts_config(&self.options.prefix, &self.options.devices),
        )?;
        for n in &mut self.nodes {
            if let Some(pid) = n.proc.pid() {
                let _ = std::process::Command::new("kill")
                    .arg("-HUP")
                    .arg(pid.to_string())
                    .status();
            }
        }
        Ok(())
    }
}

/// The configuration file of node `i` of a cluster whose nodes have `ports`.
fn node_config(o: &NatsOptions, i: usize, ports: &[Ports]) -> String {
    let me = ports[i];
    let dir = o.dir.join("nats").join(format!("n{i}"));
    let q = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap_or_default();
    let tls = format!(
        "tls {{\n    cert_file: {}\n    key_file: {}\n    ca_file: {}\n    verify_and_map: true\n    timeout: 5\n  }}",
        q(&o.broker.cert),
        q(&o.broker.key),
        q(&o.broker.ca)
    );
    let mut text = format!(
        "# Node {i} of the ANPR fleet's NATS cluster, written by anpr-cluster.\n\
         server_name: \"anpr-n{i}\"\n\
         listen: \"127.0.0.1:{client}\"\n\
         http: \"127.0.0.1:{http}\"\n\
         # Device images are up to 8 MiB (the device's MQTT packet limit).\n\
         max_payload: 8MB\n\
         max_pending: 64MB\n\
         {tls}\n\
         jetstream {{\n  store_dir: {store}\n  max_file_store: {file}\n  max_memory_store: {mem}\n}}\n",
        client = me.client,
        http = me.http,
        store = q(&dir.join("jetstream")),
        file = o.max_file_store,
        mem = o.max_mem_store,
    );
    if ports.len() > 1 {
        let routes: Vec<String> = ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{}\"", p.route))
            .collect();
        let _ = write!(
            text,
            "# Routes between the nodes stay on loopback, in the clear.\ncluster {{\n  name: \"anpr\"\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n",
            me.route,
            routes.join(", ")
        );
    }
    let _ = write!(
        text,
        "mqtt {{\n  listen: \"127.0.0.1:{}\"\n  {tls}\n",
        me.mqtt
    );
    let _ = writeln!(
        text,
        "  js_api_timeout: \"{}ms\"",
        o.mqtt_api_timeout.as_millis()
    );
    if let Some(r) = o.mqtt_consumer_replicas {
        let _ = writeln!(text, "  consumer_replicas: {r}");
    }
    if o.mqtt_consumer_memory_storage {
        text.push_str("  consumer_memory_storage: true\n");
    }
    text.push_str("}\ninclude \"../accounts.conf\"\n");
    text
}

#[cfg(test)]
mod tests {
    use super::{nats_accounts_config, nats_user, subject_prefix};

    #[test]
    fn subjects_replace_slashes_with_dots() {
        assert_eq!(subject_prefix("anpr/v1"), "anpr.v1");
        assert_eq!(subject_prefix("/fleet/kz/"), "fleet.kz");
    }

    #[test]
    fn a_device_gets_only_its_own_subjects() {
        let text = nats_accounts_config("anpr/v1", &["KZ-1".to_string()]);
        assert!(text.contains(&format!("user: \"{}\"", nats_user("KZ-1"))));
        assert!(text.contains("\"anpr.v1.KZ-1.events\""));
        assert!(text.contains("\"anpr.v1.KZ-1.cmd.>\""));
        assert!(!text.contains("\"anpr.v1.*.events\", \"anpr.v1.KZ"));
    }

    #[test]
    fn a_node_that_found_its_port_taken_is_told_from_other_failures() {
        let dir = tempfile::tempdir().unwrap();
        let exited = |text: &str| {
            let log = dir.path().join(format!("{}.log", text.len()));
            std::fs::write(&log, text).unwrap();
            crate::ClusterError::Exited {
                what: "nats-server node 0".into(),
                status: "exit status: 1".into(),
                log,
            }
        };
        assert!(exited("[FTL] Error listening on port: 127.0.0.1:4222, \"listen tcp 127.0.0.1:4222: bind: address already in use\"").is_port_taken());
        assert!(
            exited("LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use")
                .is_port_taken()
        );
        // SeaweedFS, as `weed server` logs it when its master port is taken (exit status 255).
        assert!(
            exited("F1202 13:38:43.222204 master.go:212 Master startup error: listen tcp 127.0.0.1:51393: bind: address already in use")
                .is_port_taken()
        );
        assert!(!exited("[FTL] error parsing config").is_port_taken());
        let missing = crate::ClusterError::Exited {
            what: "x".into(),
            status: "exit status: 1".into(),
            log: dir.path().join("none.log"),
        };
        assert!(!missing.is_port_taken());

        // A start is tried again only for a taken port, at most three times in all.
        let (mut calls, mut cleared) = (0, 0);
        let r = crate::on_free_ports(
            (),
            |()| {
                calls += 1;
                if calls < 3 {
                    Err(exited("bind: address already in use"))
                } else {
                    Ok(calls)
                }
            },
            || cleared += 1,
        );
        assert_eq!((r.unwrap(), cleared), (3, 2));
        let mut calls = 0;
        let r: Result<(), _> = crate::on_free_ports(
            (),
            |()| {
                calls += 1;
                Err(exited("bind: address already in use"))
            },
            || {},
        );
        assert!(r.unwrap_err().is_port_taken());
        assert_eq!(calls, crate::PORT_TRIES);
        let mut calls = 0;
        let r: Result<(), _> = crate::on_free_ports(
            (),
            |()| {
                calls += 1;
                Err(exited("[FTL] error parsing config"))
            },
            || {},
        );
        assert!(r.is_err());
        assert_eq!(calls, 1, "any other failure is not tried again");
    }
}
