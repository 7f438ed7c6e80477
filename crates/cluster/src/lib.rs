//! The central side's distributed engines, started on loopback for labs, tests and the fleet
//! demo: a NATS cluster with JetStream and its MQTT listener, a PostgreSQL server and a
//! SeaweedFS S3 object store.
//!
//! # Contract
//!
//! - Each engine is a real server process of a pinned release (`deploy/fleet-tools.sh` puts
//!   `nats-server` 2.15.1 and `weed` 4.48 in `${ANPR_CACHE:-~/.cache/anpr}/bin`; PostgreSQL is
//!   the Debian package), bound to 127.0.0.1 on free ports chosen at start, in a run directory
//!   the caller gives. Nothing listens on another interface.
//! - `start` returns once the engine serves (NATS: every node's `/healthz` answers 200, so
//!   JetStream has a meta leader; PostgreSQL: the `anpr` database accepts connections;
//!   SeaweedFS: the S3 port answers and an object stored through its filer reads back), or fails within a bound with an error that names the
//!   log to read. A missing binary is [`ClusterError::MissingBinary`], which says to run
//!   `deploy/setup.sh`.
//! - `kill` is a crash (SIGKILL; PostgreSQL: an immediate shutdown, which needs crash
//!   recovery at the next start, as a power cut would). `restart` starts the engine again on
//!   the same ports with the same data, and returns once it serves again. Every process is
//!   killed when its value is dropped; the run directory and the logs in it stay for reading.
//! - Durability is the engines' own: JetStream file store (synced on its own schedule, every
//!   2 minutes by default, and replicated to the other nodes before it acknowledges a stored
//!   message in a stream of 3 replicas), PostgreSQL with `fsync` and `synchronous_commit` on,
//!   SeaweedFS volumes on disk.
//!
//! # NATS: who may do what
//!
//! One account, `ANPR`, with JetStream. Every client authenticates with its certificate from
//! the project's PKI (`anpr_pki`): `verify_and_map` makes the certificate's subject the user
//! name, `CN=<cn>,O=ANPR` (see [`nats_user`]). The permissions mirror the shipped mosquitto ACL
//! (`deploy/mosquitto/acl`) with MQTT topics written as NATS subjects (`anpr/v1/KZ-1/events` →
//! `anpr.v1.KZ-1.events`, [`subject_prefix`]):
//!
//! - a device (CN = its inventory number) publishes `<p>.<inv>.events`, `<p>.<inv>.evidence.>`
//!   and `<p>.<inv>.health`, and receives `<p>.<inv>.ack`, `<p>.<inv>.ack.post.*`,
//!   `<p>.<inv>.cmd` and `<p>.<inv>.cmd.>` (MQTT's `cmd/#` is both), over MQTT only; it needs
//!   no right on the MQTT layer's internal `$MQTT.` subjects (QoS 1 sessions, retained
//!   messages and last wills work without);
//! - the central receiver (CN `anpr-central`) uses JetStream (`$JS.API.>`, `$JS.ACK.>`,
//!   `$JS.FC.>`, replies on `_INBOX.>`) over the NATS protocol only, reads `<p>.*.events`,
//!   `<p>.*.evidence.>`, `<p>.*.health`, and publishes `<p>.*.ack` and
//!   `$MQTT.msgs.<p>.*.ack`; any number of receiver replicas connect with the same
//!   certificate;
//! - the command sender (CN `anpr-commands`) publishes `<p>.*.cmd.>` only (over NATS or MQTT;
//!   a retained plate list needs MQTT) and receives nothing.
//!
//! [`nats_accounts_config`] writes this block for a list of devices, for an operator's own
//! `nats-server` configuration; [`NatsCluster::set_devices`] changes the list of a running
//! cluster (a removed device's connection is closed and its next CONNECT refused, CONNACK 5).
//!
//! How messages cross the MQTT layer (nats-server 2.15.1, checked by `tests/it/cluster.rs`
//! and by hand; details in `docs/fleet.md`):
//!
//! - a device's QoS 1 PUBLISH becomes a NATS message on its subject with the header
//!   `Nmqtt-Pub: 1`; the PUBACK follows once the message is handed on, not once a stream of
//!   the receiver has stored it. A refused PUBLISH is PUBACKed too, and dropped.
//! - an ack published as a plain NATS message reaches the device only while it is connected;
//!   a JetStream publish on `$MQTT.msgs.<p>.<inv>.ack` with the header `Nmqtt-Pub: 1` is kept
//!   for the device's persistent session and delivered when it comes back.
//!
//! # Run directory
//!
//! ```text
//! <dir>/nats/accounts.conf          users and permissions (included by every node)
//! <dir>/nats/n<i>/nats.conf, nats.log, jetstream/    node i (0-based)
//! <dir>/postgres/postgres.log       the server's log; its data directory is <dir>/postgres/data,
//!                                   or, when run as root, a directory owned by the `postgres`
//!                                   user under the system temp dir (see [`Postgres`])
//! <dir>/s3/weed.log, s3.json, data/ the object store
//! ```
//!
//! # API in short
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A PKI made by `anpr pki init --dir /tmp/pki` (devices issued with `anpr pki device`).
//! let pki = anpr_pki::Pki::open(std::path::Path::new("/tmp/pki"))?;
//! let dir = std::path::Path::new("/tmp/run");
//! use anpr_cluster::{NatsCluster, NatsOptions, ObjectStore, Postgres};
//! let mut nats = NatsCluster::start(NatsOptions::new(dir, &pki, vec!["KZ-0001".into()]))?;
//! let mqtt_port = nats.mqtt_port(0); // devices: mqtts://127.0.0.1:<port>
//! let urls = nats.nats_urls(); // receivers: tls://127.0.0.1:<port>, one per node
//! nats.kill(1);
//! nats.restart(1)?;
//! let mut pg = Postgres::start(dir)?;
//! let url = pg.url(); // postgres://anpr@127.0.0.1:<port>/anpr
//! let s3 = ObjectStore::start(dir)?;
//! let (endpoint, key, secret) = (s3.endpoint(), s3.access_key(), s3.secret_key());
//! # Ok(()) }
//! ```

mod binaries;
mod nats;
mod objectstore;
mod postgres;
mod process;

use std::path::PathBuf;

pub use binaries::{nats_server_binary, postgres_bin_dir, weed_binary};
pub use nats::{
    DEFAULT_PREFIX, NatsCluster, NatsOptions, nats_accounts_config, nats_user, subject_prefix,
};
pub use objectstore::ObjectStore;
pub use postgres::Postgres;
pub use process::free_port;

/// Errors of starting and restarting the engines; each names the log or file to read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error(
        "{what} is not installed ({looked}); run deploy/setup.sh (it runs deploy/fleet-tools.sh and installs the postgresql package)"
    )]
    MissingBinary { what: &'static str, looked: String },
    #[error("cannot write {path}: {source}; check that the run directory is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {what} ({program}): {source}")]
    Spawn {
        what: String,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} did not become ready within {seconds} s ({why}); read its log {log}")]
    NotReady {
        what: String,
        seconds: u64,
        why: String,
        log: PathBuf,
    },
    #[error("{what} exited during start ({status}); read its log {log}")]
    Exited {
        what: String,
        status: String,
        log: PathBuf,
    },
    #[error("{what} failed: {message}; read {log}")]
    Setup {
        what: String,
        message: String,
        log: PathBuf,
    },
    #[error("invalid option: {0}")]
    Options(String),
}

/// How many times an engine is started on fresh ports when a port picked for it was taken by
/// another process before the engine bound it (the ports are found free, then released).
pub(crate) const PORT_TRIES: usize = 3;

/// Runs `start` on (a copy of) `input` until it does not fail for a taken port
/// ([`ClusterError::is_port_taken`]), at most [`PORT_TRIES`] times, calling `clear` before each
/// new try (the failed engine has been stopped by then: dropped with its result).
pub(crate) fn on_free_ports<I: Clone, T>(
    input: I,
    mut start: impl FnMut(I) -> Result<T, ClusterError>,
    mut clear: impl FnMut(),
) -> Result<T, ClusterError> {
    let mut tries = 1;
    loop {
        match start(input.clone()) {
            Err(e) if e.is_port_taken() && tries < PORT_TRIES => {
                tries += 1;
                clear();
            }
            result => return result,
        }
    }
}

impl ClusterError {
    /// Whether the engine exited during start because a port given to it was in use: its log
    /// says "address already in use" (NATS, SeaweedFS) or "Address already in use"
    /// (PostgreSQL). Such a start is tried again on other ports.
    #[must_use]
    pub fn is_port_taken(&self) -> bool {
        match self {
            ClusterError::Exited { log, .. } => std::fs::read_to_string(log)
                .is_ok_and(|t| t.to_ascii_lowercase().contains("address already in use")),
            _ => false,
        }
    }
}
