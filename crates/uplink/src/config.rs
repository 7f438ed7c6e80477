//! What the uplink is given and what it shows: its settings ([`UplinkConfig`]), the mode the
//! device sets ([`Mode`]), the live [`Counters`] (with the device's [`FaultBoard`]), the
//! reports it hands out ([`Delivered`], [`Command`]) and its error type.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use anpr_types::Topics;
use chrono::{DateTime, Utc};

use crate::faults::FaultBoard;

/// Largest message sent (an evidence image).
pub const MAX_PACKET: usize = 8 << 20;

/// Errors of the uplink's work on the queue. The uplink reports them as an `uplink` fault and
/// retries with backoff; [`run`](crate::run) returns one only when acknowledgements received
/// just before a stop could not be written (their rows stay queued and are sent again after
/// the next start, which the receiver deduplicates).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UplinkError {
    #[error(transparent)]
    Store(#[from] anpr_store::StoreError),
    /// The thread that owns the queue's connection is gone (it panicked); the uplink starts
    /// a new one.
    #[error(
        "the uplink's queue thread stopped unexpectedly (a panic, logged above); it is restarted with a new connection to the queue"
    )]
    StoreThread,
}

/// Settings of the uplink.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    pub host: String,
    pub port: u16,
    /// Further brokers `(host, port)` of the same central side, tried in order after `host`
    /// when the link cannot be made (see `link::Brokers`); empty: `host` only. The TLS
    /// settings are the same for all.
    pub failover: Vec<(String, u16)>,
    /// TLS with the device's certificate (checked when it was loaded); `None` is plain MQTT,
    /// which the device's configuration allows only with `allow_plaintext`.
    pub tls: Option<anpr_pki::ClientTls>,
    pub client_id: String,
    pub topics: Topics,
    pub queue: PathBuf,
    pub ack_timeout: Duration,
    pub max_inflight: usize,
    /// Backlog events per second at most (live events are not limited).
    pub backlog_rate: f64,
    /// The queue's disk quota, reported in health messages.
    pub quota_bytes: Option<u64>,
    /// The central receiver's public key: an acknowledgement marks a row delivered only with
    /// its signature over exactly that row (see `anpr_trust::ack`).
    pub central_key: anpr_trust::VerifyingKey,
    /// The model files and ONNX Runtime library the device checked at load, reported in
    /// health messages (empty where no recognition runs).
    pub models: Vec<anpr_types::ModelHash>,
}

#[cfg(test)]
impl UplinkConfig {
    /// Settings for tests: a broker on 127.0.0.1:`port`, inventory `KZ-TEST`, short timeouts.
    pub(crate) fn for_test(queue: &std::path::Path, port: u16) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            failover: Vec::new(),
            tls: None,
            client_id: "anpr-KZ-TEST".into(),
            topics: Topics::new("anpr/v1", "KZ-TEST"),
            queue: queue.to_path_buf(),
            ack_timeout: Duration::from_secs(2),
            max_inflight: 16,
            backlog_rate: 1000.0,
            quota_bytes: None,
            central_key: anpr_trust::SigningKey::generate(&mut rand_core::OsRng).verifying_key(),
            models: Vec::new(),
        }
    }
}

/// What the uplink should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver as events arrive.
    Run,
    /// Deliver what is queued (events and their images), then stop (or stop at the deadline
    /// with rows still queued).
    Drain { deadline: Instant },
    /// Stop now; undelivered rows stay queued for the next start.
    Stop,
}

/// Live counters, readable while the uplink runs.
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicBool,
    /// See [`Counters::broker`].
    broker: std::sync::Mutex<String>,
    pub published: AtomicU64,
    pub acked: AtomicU64,
    pub duplicate_acks: AtomicU64,
    pub unknown_acks: AtomicU64,
    /// Acknowledgements refused because their signature is missing or does not verify with
    /// the central receiver's key (or they name another device): each raises `ack-signature`.
    pub bad_acks: AtomicU64,
    pub resent: AtomicU64,
    pub connection_errors: AtomicU64,
    pub images_published: AtomicU64,
    pub images_acked: AtomicU64,
    pub health_published: AtomicU64,
    pub clock_jumps: AtomicU64,
    /// The device's faults (a camera down, a worker that failed, drops, ...): every change is
    /// reported on the health channel within a second.
    pub faults: FaultBoard,
    /// Acknowledgements from transport control posts (`<prefix>/<inventory>/ack/post/<id>`),
    /// counted for information only: they change nothing in the queue (delivery is the
    /// Situational Center's acknowledgement), and their signatures are not checked (the device
    /// holds no post's key; the broker's ACL lets only post `<id>` write its topic).
    pub post_acks: AtomicU64,
    /// Per control post id: acknowledgements received and the highest sequence number
    /// acknowledged.
    pub posts: std::sync::Mutex<std::collections::BTreeMap<String, PostAcks>>,
}

/// What one transport control post acknowledged of this device's events (information only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostAcks {
    pub acks: u64,
    pub last_seq: u64,
}

impl Counters {
    /// Reports a fault that happened (see [`FaultBoard::raise`]) on the health channel.
    pub fn raise_fault(&self, code: &str, message: &str) {
        self.faults.raise(code, message);
    }

    /// `host:port` of the broker the link is on, or is trying (it moves along
    /// [`UplinkConfig::failover`] when a broker cannot be reached); empty before the start.
    #[must_use]
    pub fn broker(&self) -> String {
        self.broker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_broker(&self, broker: String) {
        *self
            .broker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = broker;
    }
}

/// Acknowledged deliveries, reported to whoever watches (the demo prints them).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub seq: u64,
    pub event_id: uuid::Uuid,
    /// `passage` or `violation`.
    pub kind: anpr_types::EventKind,
    /// The plate text, or `(unreadable)` / `(absent)` when it could not be read.
    pub plate: String,
    pub vehicle: String,
    /// Direction of travel, when the vehicle crossed the counting line.
    pub direction: Option<String>,
    /// For a violation: the rule and its reason.
    pub rule: Option<(String, String)>,
    pub captured_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    pub acked_at: DateTime<Utc>,
    pub delayed: bool,
}

impl Delivered {
    /// What will be reported for `row` once it is acknowledged (`acked_at` is set then).
    pub(crate) fn of(row: &anpr_store::Pending, sent_at: DateTime<Utc>, delayed: bool) -> Self {
        let event = &row.event;
        Self {
            seq: row.seq,
            event_id: row.event_id,
            kind: event.kind,
            plate: if event.plate.status == anpr_types::PlateStatus::Read {
                event.plate.text.clone()
            } else {
                format!("({})", event.plate.status.as_str())
            },
            vehicle: event.vehicle.class.to_string(),
            direction: event.vehicle.direction.clone(),
            rule: event
                .violation
                .as_ref()
                .map(|v| (v.rule.clone(), v.reason.clone())),
            captured_at: row.captured_at,
            sent_at,
            acked_at: sent_at,
            delayed,
        }
    }
}

/// A command from the central side, as it arrived on one of the device's command topics
/// (`<prefix>/<inventory>/cmd/#`: one retained topic per subject, such as
/// `<prefix>/<inventory>/cmd/plate-list/<name>`). The uplink only passes it on with its
/// topic; whoever receives it validates both (a plate-list update, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The topic it came on: `<prefix>/<inventory>/cmd` or a topic below it.
    pub topic: String,
    /// The plate list `topic` names when it is a plate-list command topic
    /// ([`Topics::plate_list_name`]); `None` for any other command topic.
    pub plate_list: Option<String>,
    pub payload: Vec<u8>,
    pub received_at: DateTime<Utc>,
}
