//! Reference central receiver: subscribes to every device's events, stores them, and
//! acknowledges each one after it is stored.
//!
//! Contract: an event is acknowledged (on `<prefix>/<inventory>/ack`, QoS 1) only after it
//! is committed to the receiver's SQLite database (WAL, `synchronous=FULL`). Storage is
//! idempotent on `event_id`: a duplicate delivery is acknowledged again but stored once, so
//! at-least-once delivery from the device becomes exactly once here. The receiver keeps
//! per-device sequence numbers, so [`Receiver::report`] can list what arrived, what is
//! missing (sequence gaps) and how late each event came.
//!
//! Evidence images arrive after their event on `<prefix>/<inventory>/evidence/<event_id>/<kind>`
//! as raw bytes. One is stored and acknowledged (with its sha256) only when its event is
//! stored here and the bytes match the sha256 and size the event names; otherwise it is not
//! acknowledged and the device sends it again. Each device's retained health message is kept
//! (the latest, and every one that reports a fault), so the report shows what the device says
//! it had to drop next to the gaps seen here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anpr_types::{Ack, Delivery, Drops, Health, Topics};
use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, watch};

/// Errors of the receiver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CentralError {
    #[error("receiver database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// Settings of the receiver.
#[derive(Debug, Clone)]
pub struct CentralConfig {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    pub db: PathBuf,
    pub client_id: String,
}

/// One stored event, as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub delivery: Delivery,
    pub received_at: DateTime<Utc>,
    /// False when this event id was already stored (a duplicate delivery).
    pub new: bool,
}

/// Per-device summary of what arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReport {
    pub inventory: String,
    pub events: u64,
    pub max_seq: u64,
    /// Sequence ranges `[from, to]` never received.
    pub gaps: Vec<(u64, u64)>,
    pub delayed: u64,
    /// Largest delay between capture and arrival, seconds.
    pub max_delay_s: f64,
    /// Evidence images stored.
    pub images: u64,
    /// Evidence images the stored events name that have not arrived (yet).
    pub images_missing: u64,
    /// The device's latest health message, if one arrived.
    pub health: Option<Health>,
}

impl DeviceReport {
    /// What the device reported it dropped under its disk quota (zero without health).
    #[must_use]
    pub fn dropped(&self) -> Drops {
        self.health.as_ref().map(|h| h.dropped).unwrap_or_default()
    }
}

impl std::fmt::Display for DeviceReport {
    /// One line: counts, gaps, delays, images, and what the device reported of itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} events, last seq {}, missing {:?}, delayed {}, largest capture-to-arrival {:.1} s, images {} ({} missing)",
            self.inventory,
            self.events,
            self.max_seq,
            self.gaps,
            self.delayed,
            self.max_delay_s,
            self.images,
            self.images_missing
        )?;
        if let Some(h) = &self.health {
            let d = h.dropped;
            write!(
                f,
                "; device says: {}, queue {} events + {} images, dropped {} passages / {} violations / {} passage images / {} violation images, clock jumps {}",
                h.status,
                h.queue.pending_events,
                h.queue.pending_evidence,
                d.passages,
                d.violations,
                d.passage_evidence,
                d.violation_evidence,
                h.clock_jumps
            )?;
            for fault in &h.faults {
                write!(f, "; FAULT {}: {}", fault.code, fault.message)?;
            }
        }
        Ok(())
    }
}

/// What became of an evidence image that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOutcome {
    /// Stored now (`true`) or already stored before (`false`); acknowledge it.
    Stored { new: bool, seq: u64 },
    /// Its event is not stored here: not acknowledged, the device sends it again later.
    UnknownEvent,
    /// The event names no image of this kind, or the bytes do not match its sha256 or size.
    Mismatch,
}

/// The receiver's database.
pub struct Receiver {
    conn: Connection,
    path: PathBuf,
}

impl Receiver {
    /// Opens (creating) the receiver database.
    pub fn open(path: &Path) -> Result<Self, CentralError> {
        let db = |source| CentralError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = anpr_store::open_durable(path).map_err(db)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                event_id TEXT PRIMARY KEY,
                inventory TEXT NOT NULL,
                seq INTEGER NOT NULL,
                captured_at TEXT NOT NULL,
                sent_at TEXT NOT NULL,
                received_at TEXT NOT NULL,
                delayed INTEGER NOT NULL,
                copies INTEGER NOT NULL DEFAULT 1,
                payload TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS events_dev_seq ON events(inventory, seq);
             CREATE TABLE IF NOT EXISTS evidence (
                event_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                size INTEGER NOT NULL,
                received_at TEXT NOT NULL,
                data BLOB NOT NULL,
                PRIMARY KEY (event_id, kind)
             );
             CREATE TABLE IF NOT EXISTS health (
                inventory TEXT PRIMARY KEY,
                received_at TEXT NOT NULL,
                payload TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS faults (
                id INTEGER PRIMARY KEY,
                inventory TEXT NOT NULL,
                received_at TEXT NOT NULL,
                payload TEXT NOT NULL
             );",
        )
        .map_err(db)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> CentralError + '_ {
        move |source| CentralError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Stores a delivery once; returns whether it was new.
    pub fn store(
        &mut self,
        d: &Delivery,
        raw: &str,
        received_at: DateTime<Utc>,
    ) -> Result<bool, CentralError> {
        Ok(self.store_batch(&[(d, raw, received_at)])?[0])
    }

    /// Stores deliveries in one transaction (one sync to disk); returns for each whether it
    /// was new. A duplicate only increments the stored copy count.
    pub fn store_batch(
        &mut self,
        items: &[(&Delivery, &str, DateTime<Utc>)],
    ) -> Result<Vec<bool>, CentralError> {
        let path = self.path.clone();
        let db = move |source| CentralError::Db {
            path: path.clone(),
            source,
        };
        let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let tx = self.conn.transaction().map_err(&db)?;
        let mut out = Vec::with_capacity(items.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO events (event_id, inventory, seq, captured_at, sent_at, received_at, delayed, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(&db)?;
            let mut copy = tx
                .prepare_cached("UPDATE events SET copies = copies + 1 WHERE event_id = ?1")
                .map_err(&db)?;
            for (d, raw, received_at) in items {
                let id = d.event.event_id.to_string();
                let n = insert
                    .execute(params![
                        id,
                        d.event.device.inventory,
                        d.event.seq as i64,
                        ts(d.event.captured_at),
                        ts(d.sent_at),
                        ts(*received_at),
                        d.delayed,
                        raw
                    ])
                    .map_err(&db)?;
                if n == 0 {
                    copy.execute(params![id]).map_err(&db)?;
                }
                out.push(n == 1);
            }
        }
        tx.commit().map_err(&db)?;
        Ok(out)
    }

    /// What arrived per device.
    pub fn report(&self) -> Result<Vec<DeviceReport>, CentralError> {
        let mut stmt = self
            .conn
            .prepare("SELECT inventory, seq, captured_at, received_at, delayed FROM events ORDER BY inventory, seq")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })
            .map_err(self.db())?;
        let mut out: Vec<DeviceReport> = Vec::new();
        for row in rows {
            let (inv, seq, cap, rec, delayed) = row.map_err(self.db())?;
            if out.last().is_none_or(|d| d.inventory != inv) {
                out.push(DeviceReport {
                    inventory: inv.clone(),
                    events: 0,
                    max_seq: 0,
                    gaps: Vec::new(),
                    delayed: 0,
                    max_delay_s: 0.0,
                    images: 0,
                    images_missing: 0,
                    health: None,
                });
            }
            let d = out.last_mut().expect("pushed above");
            if seq > d.max_seq + 1 {
                d.gaps.push((d.max_seq + 1, seq - 1));
            }
            d.max_seq = seq;
            d.events += 1;
            d.delayed += u64::from(delayed);
            if let (Ok(c), Ok(r)) = (
                DateTime::parse_from_rfc3339(&cap),
                DateTime::parse_from_rfc3339(&rec),
            ) {
                d.max_delay_s = d
                    .max_delay_s
                    .max((r - c).num_milliseconds() as f64 / 1000.0);
            }
        }
        for d in &mut out {
            let (named, stored): (i64, i64) = self
                .conn
                .query_row(
                    "SELECT COALESCE(SUM(json_array_length(payload, '$.evidence')), 0),
                            (SELECT COUNT(*) FROM evidence v JOIN events e ON e.event_id = v.event_id WHERE e.inventory = ?1)
                     FROM events WHERE inventory = ?1",
                    params![d.inventory],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(self.db())?;
            d.images = stored as u64;
            d.images_missing = (named - stored).max(0) as u64;
            d.health = self.health(&d.inventory)?;
        }
        Ok(out)
    }

    /// Stores an evidence image of the event `event_id` if that event is here and the bytes
    /// match the reference; see [`ImageOutcome`].
    pub fn store_image(
        &mut self,
        event_id: uuid::Uuid,
        kind: &str,
        data: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<ImageOutcome, CentralError> {
        let found: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT seq, payload FROM events WHERE event_id = ?1",
                params![event_id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.db())?;
        let Some((seq, payload)) = found else {
            return Ok(ImageOutcome::UnknownEvent);
        };
        let event: Option<anpr_types::Event> = serde_json::from_str(&payload).ok();
        let sha = anpr_store::sha256_hex(data);
        let Some(r) = event.and_then(|e| e.evidence.into_iter().find(|r| r.kind == kind)) else {
            return Ok(ImageOutcome::Mismatch);
        };
        if r.sha256 != sha || r.size != data.len() as u64 {
            return Ok(ImageOutcome::Mismatch);
        }
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO evidence (event_id, kind, sha256, size, received_at, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    event_id.to_string(),
                    kind,
                    sha,
                    data.len() as i64,
                    received_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    data
                ],
            )
            .map_err(self.db())?;
        Ok(ImageOutcome::Stored {
            new: n == 1,
            seq: seq as u64,
        })
    }

    /// The stored bytes of an evidence image.
    pub fn image(&self, event_id: uuid::Uuid, kind: &str) -> Result<Option<Vec<u8>>, CentralError> {
        self.conn
            .query_row(
                "SELECT data FROM evidence WHERE event_id = ?1 AND kind = ?2",
                params![event_id.to_string(), kind],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())
    }

    /// Keeps a device's health message: the latest per device, and every one with a fault.
    pub fn store_health(
        &mut self,
        inventory: &str,
        raw: &str,
        received_at: DateTime<Utc>,
    ) -> Result<(), CentralError> {
        let at = received_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.conn
            .execute(
                "INSERT INTO health (inventory, received_at, payload) VALUES (?1, ?2, ?3)
                 ON CONFLICT(inventory) DO UPDATE SET received_at = excluded.received_at, payload = excluded.payload",
                params![inventory, at, raw],
            )
            .map_err(self.db())?;
        if serde_json::from_str::<Health>(raw).is_ok_and(|h| !h.faults.is_empty()) {
            self.conn
                .execute(
                    "INSERT INTO faults (inventory, received_at, payload) VALUES (?1, ?2, ?3)",
                    params![inventory, at, raw],
                )
                .map_err(self.db())?;
        }
        Ok(())
    }

    /// The latest health message of a device, if it sent one in the current schema.
    pub fn health(&self, inventory: &str) -> Result<Option<Health>, CentralError> {
        let raw: Option<String> = self
            .conn
            .query_row(
                "SELECT payload FROM health WHERE inventory = ?1",
                params![inventory],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Health messages of a device that reported faults, oldest first.
    pub fn faults(&self, inventory: &str) -> Result<Vec<Health>, CentralError> {
        self.payloads(
            "SELECT payload FROM faults WHERE inventory = ?1 ORDER BY id",
            inventory,
        )
    }

    /// The JSON payloads a query selects for one device, parsed; ones that do not parse (an
    /// older or foreign schema) are left out.
    fn payloads<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        inventory: &str,
    ) -> Result<Vec<T>, CentralError> {
        let mut stmt = self.conn.prepare(query).map_err(self.db())?;
        let rows = stmt
            .query_map(params![inventory], |r| r.get::<_, String>(0))
            .map_err(self.db())?;
        let mut out = Vec::new();
        for raw in rows {
            if let Ok(v) = serde_json::from_str(&raw.map_err(self.db())?) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Seconds from capture to storage here, per sequence number, for one device.
    pub fn arrival_delays(&self, inventory: &str) -> Result<Vec<(u64, f64)>, CentralError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, captured_at, received_at FROM events WHERE inventory = ?1 ORDER BY seq")
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![inventory], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, cap, rec) = row.map_err(self.db())?;
            if let (Ok(c), Ok(r)) = (
                DateTime::parse_from_rfc3339(&cap),
                DateTime::parse_from_rfc3339(&rec),
            ) {
                out.push((
                    seq,
                    (r - c).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6,
                ));
            }
        }
        Ok(out)
    }

    /// Stored event payloads of one device in sequence order.
    pub fn events_of(&self, inventory: &str) -> Result<Vec<Delivery>, CentralError> {
        self.payloads(
            "SELECT payload FROM events WHERE inventory = ?1 ORDER BY seq",
            inventory,
        )
    }
}

/// Deliveries stored (and acknowledged) together at most.
const BATCH: usize = 256;

/// Runs the receiver until `stop` turns true. Each stored event is also sent on `events`.
/// Deliveries are stored in small batches (every 20 ms, or 256 at a time), each batch in one
/// transaction, and acknowledged after its commit.
pub async fn run(
    cfg: CentralConfig,
    mut stop: watch::Receiver<bool>,
    events: Option<mpsc::UnboundedSender<Received>>,
) -> Result<(), CentralError> {
    let mut receiver = Receiver::open(&cfg.db)?;
    let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_session(false);
    opts.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    let (client, mut eventloop) = AsyncClient::new(opts, 4 * BATCH);
    let filter = Topics::all_events(&cfg.prefix);
    let images = Topics::all_evidence(&cfg.prefix);
    let health = Topics::all_health(&cfg.prefix);
    let mut batch: Vec<(Delivery, String, DateTime<Utc>)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(filter = %filter, "Central receiver subscribed.");
                    for f in [&filter, &images, &health] {
                        let _ = client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.ends_with("/health") => {
                    let inventory = p.topic.rsplit('/').nth(1).unwrap_or_default();
                    let raw = String::from_utf8_lossy(&p.payload);
                    receiver.store_health(inventory, &raw, Utc::now())?;
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.contains("/evidence/") => {
                    // Events first, so an image's event is stored before the image is checked.
                    flush(&mut receiver, &client, &cfg.prefix, &mut batch, events.as_ref())?;
                    receive_image(&mut receiver, &client, &cfg.prefix, &p.topic, &p.payload)?;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let raw = String::from_utf8_lossy(&p.payload).to_string();
                    match serde_json::from_str::<Delivery>(&raw) {
                        Ok(d) => batch.push((d, raw, Utc::now())),
                        Err(e) => tracing::warn!(topic = %p.topic, error = %e, "Event that does not follow the schema rejected."),
                    }
                    if batch.len() >= BATCH {
                        flush(&mut receiver, &client, &cfg.prefix, &mut batch, events.as_ref())?;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "Central receiver link down; retrying.");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            },
            _ = tick.tick() => flush(&mut receiver, &client, &cfg.prefix, &mut batch, events.as_ref())?,
            _ = stop.changed() => {}
        }
    }
    flush(
        &mut receiver,
        &client,
        &cfg.prefix,
        &mut batch,
        events.as_ref(),
    )?;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    Ok(())
}

/// Largest message accepted (an evidence image).
pub const MAX_PACKET: usize = 8 << 20;

/// Stores one evidence image that arrived on `topic` and acknowledges it when stored.
fn receive_image(
    receiver: &mut Receiver,
    client: &AsyncClient,
    prefix: &str,
    topic: &str,
    data: &[u8],
) -> Result<(), CentralError> {
    // <prefix>/<inventory>/evidence/<event_id>/<kind>
    let mut parts = topic.rsplit('/');
    let (Some(kind), Some(id), Some(_), Some(inventory)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(());
    };
    let Ok(event_id) = uuid::Uuid::parse_str(id) else {
        tracing::warn!(topic, "Evidence image with a malformed event id rejected.");
        return Ok(());
    };
    match receiver.store_image(event_id, kind, data, Utc::now())? {
        ImageOutcome::Stored { seq, .. } => {
            let ack = Ack {
                event_id,
                seq,
                evidence: Some(anpr_store::sha256_hex(data)),
            };
            let body = serde_json::to_vec(&ack).expect("acks always serialise");
            let _ = client.try_publish(
                Topics::ack_for(prefix, inventory),
                QoS::AtLeastOnce,
                false,
                body,
            );
        }
        ImageOutcome::UnknownEvent => {
            tracing::warn!(%event_id, kind, "Evidence image for an event not stored here; not acknowledged.");
        }
        ImageOutcome::Mismatch => {
            tracing::warn!(%event_id, kind, "Evidence image does not match its event's sha256 or size; not acknowledged.");
        }
    }
    Ok(())
}

/// Commits the batch, then acknowledges every delivery in it.
fn flush(
    receiver: &mut Receiver,
    client: &AsyncClient,
    prefix: &str,
    batch: &mut Vec<(Delivery, String, DateTime<Utc>)>,
    events: Option<&mpsc::UnboundedSender<Received>>,
) -> Result<(), CentralError> {
    if batch.is_empty() {
        return Ok(());
    }
    let items: Vec<(&Delivery, &str, DateTime<Utc>)> =
        batch.iter().map(|(d, r, t)| (d, r.as_str(), *t)).collect();
    let fresh = receiver.store_batch(&items)?;
    for ((d, _, received_at), new) in batch.drain(..).zip(fresh) {
        let ack = Ack {
            event_id: d.event.event_id,
            seq: d.event.seq,
            evidence: None,
        };
        let topic = Topics::ack_for(prefix, &d.event.device.inventory);
        let body = serde_json::to_vec(&ack).expect("acks always serialise");
        if client
            .try_publish(topic, QoS::AtLeastOnce, false, body)
            .is_err()
        {
            tracing::warn!(
                "Acknowledgement could not be queued; the device will send the event again."
            );
        }
        if let Some(tx) = events {
            let _ = tx.send(Received {
                delivery: d,
                received_at,
                new,
            });
        }
    }
    Ok(())
}
