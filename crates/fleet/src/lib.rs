//! The scaled central receiver: any number of replicas take the devices' events, evidence
//! images and health from one NATS JetStream work queue, store them in PostgreSQL (images in
//! S3-compatible object storage), and acknowledge to each device what was committed.
//!
//! # Contract
//!
//! - Devices speak MQTT to the NATS cluster's MQTT listener exactly as to mosquitto; NATS makes
//!   each MQTT topic a subject (`anpr/v1/KZ-1/events` → `anpr.v1.KZ-1.events`). One stream
//!   ([`StreamSettings`], `ANPR` by default) captures `<p>.*.events`, `<p>.*.evidence.>` and
//!   `<p>.*.health` with work-queue retention (a message leaves the stream when a replica acks
//!   it), and one durable pull consumer shared by every replica hands each message to one of
//!   them (explicit ack; a message not acked within `ack_wait`, 30 s, goes to another).
//! - A replica ([`run_replica`]) takes what arrived (up to 256 messages, or what came within
//!   20 ms), parses each subject strictly (`anpr_central::topic`, after `.` → `/`), applies the
//!   single receiver's size caps (`anpr_central::limits`) and checks each event's signature
//!   with the same gate (`anpr_central::Gate`): a device's event is stored only when its own key
//!   signed it and its topic is its own.
//! - The events of a batch, the quarantined ones and the health messages are one PostgreSQL
//!   transaction ([`Archive::store_batch`]). Inside it the replica takes a transaction-scoped
//!   advisory lock per device of the batch (in a fixed order, so two replicas never deadlock),
//!   and checks each event's hash chain against the stored neighbours with the single
//!   receiver's own rule (`anpr_central::chain::link`): two neighbours that land on two
//!   replicas at once are checked by whichever commits second. Unique keys on `event_id` and
//!   `(inventory, seq)` hold it whatever happens.
//! - Order of the answers: commit; then a signed acknowledgement (`anpr_trust::ack`, over the
//!   stored hash) to `<p>.<inv>.ack` for each event stored now or before ([`AckRoute`]); then
//!   the JetStream ack of every message of the batch. A device is never acknowledged what is not committed.
//!   An event refused (quarantined, or breaking its chain) is kept with the reason, acked in
//!   JetStream (so it leaves the queue) and never acknowledged to the device.
//! - An evidence image is taken only when its event is stored and the bytes match the sha256
//!   and size the event names; then it is PUT into the bucket under its sha256 with a
//!   `Content-MD5` header (the store refuses a body that does not match it, and the ETag it
//!   answers is compared with the MD5 too), its row (`evidence`) committed, and only then
//!   acknowledged to the device. An image whose event is not stored yet is put back
//!   (JetStream NAK, 1 s) a few times (its event may be in another replica's batch), then
//!   dropped unacknowledged: the device sends it again.
//! - Health: the last full message per device, its status, and every message with faults.
//!
//! # What is synced when
//!
//! PostgreSQL commits with `synchronous_commit` as the server has it (on, in `anpr-cluster`):
//! a batch is on disk before any of its acknowledgements is sent. An image is in the object
//! store (its PUT answered 200) before its row is committed and before its ack. JetStream's
//! own durability is the cluster's (see `anpr-cluster`).
//!
//! # Crash behaviour
//!
//! A replica killed before its commit leaves its messages un-acked in JetStream: after
//! `ack_wait` they go to another replica. Killed after the commit and before the JetStream
//! acks, the same messages are delivered again and found stored: counted as copies, stored
//! once, acknowledged again. PostgreSQL down or restarted: the batch's transaction fails, its
//! messages are put back (NAK with a delay), the replica reconnects with a backoff (1 s to
//! 10 s) and nothing is acknowledged meanwhile. The object store down: images are put back and
//! not acknowledged. A NATS node down: the client reconnects to another node of the list.
//!
//! # PostgreSQL layout (schema version 1; [`SCHEMA_VERSION`])
//!
//! ```text
//! anpr_schema   version                  one row: migrations applied (under an advisory lock)
//! events        event_id TEXT PK, inventory, seq BIGINT, UNIQUE (inventory, seq), hash,
//!               prev_hash, kind, plate_status, captured_at, sent_at, received_at TIMESTAMPTZ,
//!               delayed, copies, payload TEXT (the delivery as parsed, serialised again)
//! violations    event_id PK, inventory, seq, rule, rule_kind, reason, priority, plate,
//!               vehicle_class, captured_at, received_at
//! evidence      (event_id, kind) PK, inventory, sha256, size, object_key, stored_at
//! quarantine    id, inventory, subject, seq, event_id, reason, received_at, copies, payload,
//!               size; UNIQUE (inventory, event_id, reason)
//! chain_breaks  id, inventory, seq, event_id, hash, reason, received_at, copies, payload;
//!               UNIQUE (event_id, hash, reason)
//! health        inventory PK, received_at, payload     the last full health message
//! status        inventory PK, status, at, received_at, last_will
//! faults        id, inventory, received_at, payload    health messages with faults
//! ```
//!
//! Object store: bucket (default `anpr-evidence`), one object per distinct image, its key the
//! image's lower-case hex sha256.
//!
//! # Not done yet
//!
//! The object store is spoken to over plain HTTP (loopback or a private network); PostgreSQL
//! over plain TCP. The single receiver's per-device rate limit is not applied (JetStream
//! buffers instead). Retention (purge by age) is not applied to the archive.

mod archive;
mod objects;
mod replica;

use std::path::PathBuf;
use std::time::Duration;

pub use archive::{
    Archive, Batch, DeviceSummary, ImageTarget, Quarantined, SCHEMA_VERSION, StoredEvent, Totals,
};
pub use objects::{ObjectStore, ObjectStoreConfig};
pub use replica::{ReplicaReport, ensure_stream, prepare, run_replica};

/// Errors of the scaled receiver; each says what to check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// PostgreSQL refused or lost the connection, or a statement failed.
    #[error(
        "PostgreSQL {what}: {source}{detail}; check that the server at the configured URL runs and accepts the user"
    )]
    Postgres {
        what: &'static str,
        source: tokio_postgres::Error,
        /// What the server said, or the cause underneath (`: …`), if anything.
        detail: String,
    },
    /// The archive's schema is newer than this software.
    #[error(
        "the archive's schema version {found} is newer than this software ({supported}); upgrade the receiver"
    )]
    TooNew { found: i32, supported: i32 },
    /// NATS could not be reached, or JetStream refused a request.
    #[error(
        "NATS {what}: {message}; check the cluster URLs, the receiver's certificate and its permissions"
    )]
    Nats { what: &'static str, message: String },
    /// The object store refused or could not be reached.
    #[error("object store {what}: {message}; check the endpoint, the keys and that the store runs")]
    Objects { what: String, message: String },
    /// The receiver's keys or the devices directory cannot be used.
    #[error(transparent)]
    Central(#[from] anpr_central::CentralError),
    /// The settings cannot work.
    #[error("invalid receiver settings: {0}")]
    Config(String),
}

/// The JetStream stream and consumer the replicas share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Stream name (no `.`, spaces or `>`/`*`): `ANPR`.
    pub name: String,
    /// Durable pull consumer shared by every replica: `anpr-receivers`.
    pub consumer: String,
    /// Copies of the stream across the cluster's nodes: 3 on a 3-node cluster, 1 on one node.
    pub replicas: usize,
    /// How long a message handed to a replica waits for its ack before another gets it.
    pub ack_wait: Duration,
    /// Messages handed out and not yet acked, at most, over all replicas.
    pub max_ack_pending: i64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "ANPR".into(),
            consumer: "anpr-receivers".into(),
            replicas: 3,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 8192,
        }
    }
}

/// Settings of one replica.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// Name in the logs and the NATS connection (`replica-1`).
    pub name: String,
    /// Every node of the NATS cluster (`tls://127.0.0.1:4222`, …): the client fails over.
    pub nats_urls: Vec<String>,
    /// TLS with the central receiver's certificate (CN `anpr-central`); `None` is plain NATS,
    /// for a lab.
    pub tls: Option<anpr_pki::ClientTls>,
    /// The devices' topic prefix, as MQTT writes it: `anpr/v1`.
    pub prefix: String,
    pub stream: StreamSettings,
    /// PostgreSQL connection URL (`postgres://anpr@127.0.0.1:5432/anpr`).
    pub postgres: String,
    pub objects: ObjectStoreConfig,
    /// The receiver's ed25519 key: every acknowledgement is signed with it.
    pub signing_key: anpr_trust::SigningKey,
    /// Directory of the devices' public keys, `<inventory>.pub`.
    pub devices: PathBuf,
    /// Messages taken per batch at most (256).
    pub batch: usize,
    /// How acknowledgements reach the devices.
    pub acks: AckRoute,
}

/// How a replica publishes a device's acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckRoute {
    /// A plain NATS message on `<p>.<inv>.ack`, which NATS's MQTT layer hands to the device's
    /// subscription while it is connected. One sent while the device is away is lost, and the
    /// device sends the event again at its ack timeout (stored once, acknowledged again).
    #[default]
    Core,
    /// Stored for the device's MQTT session: a JetStream publish on `$MQTT.msgs.<p>.<inv>.ack`
    /// (with the MQTT layer's QoS 1 header `Nmqtt-Pub: 1`), delivered when a device with a
    /// persistent session comes back. One stored message per ack (its store confirmed before
    /// the batch is acked in JetStream), and of no use to the shipped uplink, which connects
    /// with a clean session (a new session forgets what was stored for the old one). Right
    /// after a node is killed the store can fail (no leader yet): such acks are counted in
    /// [`ReplicaReport::acks_lost`](crate::ReplicaReport) and the devices send again.
    Session,
}

/// The NATS subject of an MQTT topic (`/` → `.`): `anpr/v1/KZ-1/ack` → `anpr.v1.KZ-1.ack`.
#[must_use]
pub fn subject_of(topic: &str) -> String {
    topic.replace('/', ".")
}

/// The MQTT topic of a NATS subject (`.` → `/`), as the topic parser takes it.
#[must_use]
pub fn topic_of(subject: &str) -> String {
    subject.replace('.', "/")
}
