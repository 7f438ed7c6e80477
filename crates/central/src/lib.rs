//! Reference central receiver: subscribes to every device's events, evidence images and
//! health, stores them, and acknowledges each event and image after it is stored.
//!
//! # Contract
//!
//! - An event is acknowledged (on `<prefix>/<inventory>/ack`, QoS 1) only after it is
//!   committed to the receiver's SQLite database. Storage is idempotent on `event_id`: a
//!   duplicate delivery is acknowledged again but stored once (its copy count goes up), so
//!   at-least-once delivery from the device becomes exactly once here.
//! - A violation (`kind = violation`) is also recorded in the `violations` table, in the same
//!   transaction as the event and deduplicated the same way, so violations can be listed
//!   ([`Receiver::violations_of`]) without reading every passage.
//! - Evidence images arrive after their event on `<prefix>/<inventory>/evidence/<event_id>/<kind>`
//!   as raw bytes. One is stored and acknowledged (with its sha256) only when its event is
//!   stored here and the bytes match the sha256 and size the event names; otherwise it is not
//!   acknowledged and the device sends it again.
//! - Health: the last full health message of each device is kept, and every one that reports
//!   a fault. The device's status (online/offline, with its time) is kept apart, so the
//!   broker's last will (`{"status":"offline"}`, no counters) updates the status and leaves
//!   the last full health in place.
//! - Per-device sequence numbers are kept, so [`Receiver::report`] can list what arrived,
//!   what is missing (sequence gaps), how late each event came, passages and their plate
//!   statuses, violations per rule, the gaps in the device's cameras, and what the device says
//!   of itself.
//! - Trust (`gate`): an event is stored only when its topic's inventory is the one in its
//!   payload, a public key for that device is in the devices directory
//!   (`<devices>/<inventory>.pub`) and its signature verifies with it; any other is kept in
//!   `quarantine` with the reason, reported, and never acknowledged. An event that breaks its
//!   device's hash chain (its `prev_hash` is not the stored previous event's hash, or the
//!   stored next event names another hash) or is other content under a stored event id or
//!   `(inventory, seq)` is kept in `chain_breaks`, reported, and never acknowledged. Events
//!   arrive out of order, so whichever of two neighbours arrives second checks the link.
//! - Every acknowledgement is signed with the receiver's key over
//!   `anpr-ack/1\n<inventory>\n<seq>\n<event_id>\n<sha256>`, the sha256 being the hash of the
//!   stored event (or of the image's bytes): the device takes no other (`anpr_trust::ack`).
//! - A camera gap (`kind = camera_gap`: a live camera that delivered no frames for a while)
//!   is stored and acknowledged like every event; it is no passage and is counted as none.
//!   [`Receiver::camera_gaps_of`] lists them.
//! - An export bundle (`anpr export` on a device whose link was down) is imported ([`import`])
//!   only whole: its manifest's signature by the device, every file's sha256 and every event's
//!   signature and link checked first, any mismatch refusing it with nothing stored; then its
//!   events go through the same gate and the same [`Receiver::store_batch`] as live ones, so
//!   the live copies that follow when the link returns are duplicates, stored once and
//!   acknowledged. A custody record (`kind = custody`: the device issued, returned or its data
//!   exported) is stored and acknowledged like every event; it is no passage.
//! - Hygiene, before anything is parsed (`topic`, `limits`): a topic must be
//!   `<prefix>/<inventory>/events|health|evidence/<uuid>/<kind>` under the receiver's prefix
//!   with a valid inventory number; a payload must be within the cap of its kind (events
//!   256 KiB, evidence 8 MiB, health 64 KiB); a device must be within its message rate
//!   (10,000 per second, bursts of 2,000). A refused topic or an oversized payload is
//!   quarantined with its size (not its bytes) and reported; a message over the rate is
//!   dropped, counted per device (`rate_limited`, written every 10 s) and logged at most once
//!   a minute per device. None of them is acknowledged, so the device sends it again later:
//!   the rate limit delays, it does not lose.
//! - What is stored of an event or a health message is the value as parsed and checked,
//!   serialised again (`serde_json`), never the text that arrived; for an event that is the
//!   canonical form its hash and signature cover, plus `sent_at` and `delayed`.
//! - Text from a payload or a topic that reaches the log, the report or an error message is
//!   escaped first ([`escape()`]): no control character, ANSI escape or newline gets through.
//!
//! # What is synced when
//!
//! The database runs in WAL mode with `synchronous=FULL` (`anpr_store::open_durable`): each
//! batch of events (up to 256, or what arrived in 20 ms), each image and each health message
//! is one transaction, fsynced before its acknowledgement is queued.
//!
//! # Crash behaviour
//!
//! A crash before a commit loses only what was not acknowledged yet: the device still holds
//! it and sends it again. A crash after a commit but before the acknowledgement went out
//! leads to a duplicate delivery, stored once. A schema migration is one transaction: a crash
//! during it leaves the file at its old version, migrated again on the next open.
//!
//! # On-disk layout
//!
//! ```text
//! central.sqlite (+ -wal, -shm while open)
//!   PRAGMA user_version   number of migrations applied (db/schema.rs); 0 for files written
//!                         before the schema was versioned, whose tables are those of version 1
//!   events      event_id TEXT PRIMARY KEY, inventory, seq, captured_at, sent_at,
//!               received_at, delayed, copies, payload (the delivery as parsed, serialised again),
//!               kind ('passage' | 'violation' | 'camera_gap' | 'custody'),
//!               plate_status ('read' | 'unreadable' | 'absent'),
//!               hash (sha256 of the event's canonical form), prev_hash
//!               index events_dev_seq (inventory, seq), unique events_dev_seq_unique
//!   violations  event_id TEXT PRIMARY KEY, inventory, seq, rule, rule_kind, reason, priority,
//!               passage_event_id, passage_seq, list_name, list_version, list_entry,
//!               list_fuzzy, plate, vehicle_class, captured_at, received_at
//!               (rule and the columns after it NULL for a violation sent without details)
//!               index violations_dev_seq (inventory, seq)
//!   evidence    (event_id, kind) PRIMARY KEY, sha256, size, received_at, data BLOB
//!   health      inventory PRIMARY KEY, received_at, payload: the last full health message
//!   status      inventory PRIMARY KEY, status, at, received_at, last_will
//!   faults      id PRIMARY KEY, inventory, received_at, payload: health messages with faults
//!   quarantine  id PRIMARY KEY, inventory (of the topic), topic, seq, event_id, reason,
//!               received_at, copies, payload, size; unique (inventory, event_id, reason).
//!               A message refused unread has seq 0, an empty payload and its size
//!   rate_limited  inventory PRIMARY KEY, dropped, first_at, last_at
//!   chain_breaks  id PRIMARY KEY, inventory, seq, event_id, hash, reason, received_at,
//!               copies, payload; unique (event_id, hash, reason)
//! ```
//!
//! # Modules
//!
//! `db` (the database: schema, events and violations, images, health, refused events),
//! `chain` (the hash-chain check of an arriving event against its stored neighbours, sans IO,
//! shared with the scaled receiver `anpr-fleet`), `report` (the per-device summary), `gate` (signatures checked, acknowledgements signed),
//! `topic` (the topics taken, parsed strictly), `limits` (size caps and the per-device rate
//! limit), `escape` (outside text made safe to print), `receiver` (the MQTT loop), `import`
//! (export bundles loaded through the same checks and storage), `post` (the second kind of
//! receiver, a transport control post: violations of its devices, its own acks, a gap
//! report; see docs/receivers.md).

pub mod chain;
mod db;
pub mod escape;
mod gate;
mod import;
pub mod limits;
mod post;
mod receiver;
mod report;
pub mod topic;

use std::path::PathBuf;

use anpr_types::Delivery;
use chrono::{DateTime, Utc};

pub use db::retention::{DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, Purge, purge_periodically};
pub use db::{
    DeviceStatus, ImageOutcome, RateLimited, Receiver, Refused, ReportedGap, Stored, Violation,
};
pub use escape::escape;
pub use gate::Gate;
pub use import::{ImportError, ImportReport, import};
pub use limits::Limits;
pub use post::{PostConfig, PostReport, open_post_db, post_ack_topic, post_report, run_post};
pub use receiver::{MAX_PACKET, run, run_with_limits};
pub use report::{DeviceReport, PlateCounts, UNSPECIFIED_RULE};

/// Errors of the receiver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CentralError {
    #[error("receiver database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "receiver database {path} has schema version {found}, newer than this software ({supported}); upgrade the software"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("receiver database {path} cannot be migrated: {source}")]
    Migrate {
        path: PathBuf,
        source: anpr_store::MigrationError,
    },
    /// The receiver's signing key or the devices' public keys cannot be used.
    #[error(transparent)]
    Trust(#[from] anpr_trust::TrustError),
    /// The topic prefix cannot be one (`anpr central --prefix`).
    #[error(
        "topic prefix \"{prefix}\" {problem}: give the devices' `uplink.topic_prefix`, such as anpr/v1"
    )]
    Prefix {
        prefix: String,
        problem: &'static str,
    },
}

/// Settings of the receiver.
#[derive(Debug, Clone)]
pub struct CentralConfig {
    pub host: String,
    pub port: u16,
    /// TLS with the central receiver's certificate (CN `anpr-central`, the user the broker's
    /// ACL gives the central side's rights); `None` is plain MQTT, for a lab.
    pub tls: Option<anpr_pki::ClientTls>,
    pub prefix: String,
    pub db: PathBuf,
    pub client_id: String,
    /// The receiver's ed25519 key: every acknowledgement is signed with it.
    pub signing_key: anpr_trust::SigningKey,
    /// Directory of the devices' public keys, `<inventory>.pub`: an event is stored only with
    /// a signature by its device's key.
    pub devices: PathBuf,
}

/// One stored event, as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub delivery: Delivery,
    pub received_at: DateTime<Utc>,
    /// False when this event id was already stored (a duplicate delivery).
    pub new: bool,
}
