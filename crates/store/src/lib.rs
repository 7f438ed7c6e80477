//! The device's durable event queue: a SQLite database, the single source of truth for what
//! was recorded, what the central side has acknowledged, and what had to be dropped.
//!
//! Contract:
//! - [`Store::append`] (and [`Store::append_batch`], one commit for many events) assigns the
//!   next per-device sequence numbers and commits the events with their evidence images in one
//!   transaction before it returns. The database runs in WAL mode with `synchronous=FULL`, so a
//!   returned append is on disk (fsynced) and survives a crash or power loss of the device.
//! - Sequence numbers come from a counter in the database, never reused, also after rows are
//!   pruned: the central receiver can tell a gap from a pruned row.
//! - Evidence images are stored in the same transaction as their event, referenced from it by
//!   sha256 (computed here, so a reference always matches its bytes).
//! - A row is marked delivered only by [`Store::mark_delivered_batch`], called when the central
//!   receiver acknowledges that exact event id and sequence (and, for an image, its sha256).
//!   Nothing else removes the obligation to deliver a row, except the disk quota below.
//! - `captured_at` and the payload are written once and never updated.
//! - Disk quota ([`Store::with_quota`]): before an append would take the database's pages in
//!   use over the quota, rows are removed in this order, oldest first within each step, until
//!   it fits: (1) events delivered with all their images (not a loss), (2) images of undelivered
//!   passages, (3) undelivered passages, (4) images of undelivered violations, (5) undelivered
//!   violations. Steps 2 to 5 are losses: each is counted ([`Store::drops`]) and journaled
//!   ([`Store::journal`]) in the same transaction, and logged; the uplink raises them as a fault.
//!   The new event itself is always written.
//! - A torn write (crash mid-commit) leaves SQLite's journal to roll the transaction back on
//!   the next open: the event, its images and any drops it caused are either all present or all
//!   absent, and an absent event was never reported as accepted.
//!
//! On-disk layout (schema version in `PRAGMA user_version`, migrated on open):
//! `events(seq PK, event_id UNIQUE, kind, captured_at, payload JSON, accepted_at, attempts,
//! delivered_at NULL)`, `evidence((seq, kind) PK, sha256, content_type, size, data BLOB,
//! delivered_at NULL, dropped_at NULL, ready)` (`ready`: its event is acknowledged), `meta(key PK, value)` for the sequence counter and
//! drop counters, `journal(id PK, at, kind, detail JSON)` for drops and clock jumps.

use std::path::{Path, PathBuf};

use anpr_types::{Drops, Event, EventKind, EvidenceRef};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const SCHEMA_VERSION: i64 = 2;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "queue database {path} cannot be opened: {source}; check that the directory exists and is writable"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "queue database {path} has schema version {found}, newer than this software ({supported}); upgrade the software"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("queue database {path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("stored event {seq} is not valid JSON: {message}")]
    Corrupt { seq: u64, message: String },
}

/// Opens a SQLite database the way every durable table of the appliance wants it: WAL
/// journal, `synchronous=FULL` (each commit is synced to disk), and a 10 s wait on locks.
///
/// Switching a new file to WAL takes an exclusive lock, for which SQLite does not wait on its
/// own; when another connection is creating or writing the same new file at that moment, the
/// switch is tried again until the wait runs out.
pub fn open_durable(path: &Path) -> Result<Connection, rusqlite::Error> {
    let wait = std::time::Duration::from_secs(10);
    let conn = Connection::open(path)?;
    conn.busy_timeout(wait)?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Maps SQLite errors on the queue at `path` to [`StoreError::Sql`].
fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sql {
        path: path.to_path_buf(),
        source,
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Lower-case hex sha256 of `data`.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The row was pending and is now delivered.
    Marked,
    /// The row was already delivered (a duplicate ack).
    AlreadyDelivered,
    /// No row has this id and sequence (or this image).
    Unknown,
}

/// A row waiting for delivery.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: u64,
    pub event_id: Uuid,
    pub captured_at: DateTime<Utc>,
    pub attempts: u32,
    pub event: Event,
}

/// An evidence image to store with its event.
#[derive(Debug, Clone)]
pub struct NewEvidence {
    /// `overview` or `plate`.
    pub kind: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// An evidence image waiting for delivery (its event is already delivered); its bytes are
/// read with [`Store::evidence`] when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvidence {
    pub seq: u64,
    pub event_id: Uuid,
    pub kind: String,
    pub sha256: String,
}

/// One event to append: its builder (given the sequence number) and its images.
pub struct NewRecord<'a> {
    pub build: Box<dyn FnOnce(u64) -> Event + 'a>,
    pub evidence: Vec<NewEvidence>,
}

/// Counters of the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Events present (pruned ones are gone).
    pub total: u64,
    pub pending: u64,
    pub delivered: u64,
    /// Highest sequence number ever assigned (0 for a new queue).
    pub last_seq: u64,
}

/// An entry of the device's journal: drops and clock jumps, with the time they happened.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub id: u64,
    pub at: DateTime<Utc>,
    /// `dropped-event`, `dropped-evidence`, `clock-jump`.
    pub kind: String,
    pub detail: serde_json::Value,
}

/// The SQLite queue. One connection; open several (one per thread) on the same file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    quota: Option<u64>,
}

/// Counter keys in the `meta` table.
const NEXT_SEQ: &str = "next_seq";
const DROP_KEYS: [&str; 4] = [
    "dropped_passages",
    "dropped_violations",
    "dropped_passage_evidence",
    "dropped_violation_evidence",
];
const PRUNED: &str = "pruned_events";
const CLOCK_JUMPS: &str = "clock_jumps";

fn kind_str(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Passage => "passage",
        EventKind::Violation => "violation",
    }
}

fn meta_add(tx: &Transaction<'_>, key: &str, by: u64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
        params![key, by as i64],
    )?;
    Ok(())
}

fn journal_add(
    tx: &Transaction<'_>,
    kind: &str,
    detail: &serde_json::Value,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO journal (at, kind, detail) VALUES (?1, ?2, ?3)",
        params![ts(Utc::now()), kind, detail.to_string()],
    )?;
    Ok(())
}

/// Pages of the database in use, in bytes (the file minus its free pages).
fn bytes_in_use(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// One step of making room: removes up to `limit` rows of one priority class; returns how
/// many it removed (0: nothing of this class is left).
fn evict_step(tx: &Transaction<'_>, step: usize, limit: usize) -> rusqlite::Result<usize> {
    let now = ts(Utc::now());
    let lim = limit as i64;
    match step {
        // Delivered events whose images are all delivered or dropped: not a loss.
        0 => {
            let seqs: Vec<i64> = tx
                .prepare_cached(
                    "SELECT e.seq FROM events e WHERE e.delivered_at IS NOT NULL AND NOT EXISTS
                       (SELECT 1 FROM evidence v WHERE v.seq = e.seq AND v.delivered_at IS NULL AND v.dropped_at IS NULL)
                     ORDER BY e.seq LIMIT ?1",
                )?
                .query_map(params![lim], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for s in &seqs {
                tx.execute("DELETE FROM evidence WHERE seq = ?1", params![s])?;
                tx.execute("DELETE FROM events WHERE seq = ?1", params![s])?;
            }
            meta_add(tx, PRUNED, seqs.len() as u64)?;
            Ok(seqs.len())
        }
        // Images of undelivered passages (1) or violations (3).
        1 | 3 => {
            let (kind, counter) = if step == 1 {
                ("passage", DROP_KEYS[2])
            } else {
                ("violation", DROP_KEYS[3])
            };
            let rows: Vec<(i64, String, String, String)> = tx
                .prepare_cached(
                    "SELECT v.seq, v.kind, v.sha256, e.event_id FROM evidence v JOIN events e ON e.seq = v.seq
                     WHERE e.kind = ?1 AND v.delivered_at IS NULL AND v.dropped_at IS NULL
                     ORDER BY v.seq LIMIT ?2",
                )?
                .query_map(params![kind, lim], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?;
            for (seq, ekind, sha, id) in &rows {
                tx.execute(
                    "UPDATE evidence SET data = NULL, dropped_at = ?1 WHERE seq = ?2 AND kind = ?3",
                    params![now, seq, ekind],
                )?;
                journal_add(
                    tx,
                    "dropped-evidence",
                    &serde_json::json!({"seq": seq, "event_id": id, "event_kind": kind,
                        "evidence": ekind, "sha256": sha, "reason": "disk quota"}),
                )?;
            }
            meta_add(tx, counter, rows.len() as u64)?;
            Ok(rows.len())
        }
        // Undelivered passages (2) or violations (4), with their images.
        _ => {
            let (kind, counter) = if step == 2 {
                ("passage", DROP_KEYS[0])
            } else {
                ("violation", DROP_KEYS[1])
            };
            let rows: Vec<(i64, String, String)> = tx
                .prepare_cached(
                    "SELECT seq, event_id, captured_at FROM events
                     WHERE kind = ?1 AND delivered_at IS NULL ORDER BY seq LIMIT ?2",
                )?
                .query_map(params![kind, lim], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            for (seq, id, captured_at) in &rows {
                tx.execute("DELETE FROM evidence WHERE seq = ?1", params![seq])?;
                tx.execute("DELETE FROM events WHERE seq = ?1", params![seq])?;
                journal_add(
                    tx,
                    "dropped-event",
                    &serde_json::json!({"seq": seq, "event_id": id, "event_kind": kind,
                        "captured_at": captured_at, "reason": "disk quota"}),
                )?;
            }
            meta_add(tx, counter, rows.len() as u64)?;
            Ok(rows.len())
        }
    }
}

impl Store {
    /// Opens (creating if needed) the queue at `path` and migrates its schema. No quota.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = open_durable(path).map_err(open)?;
        let mut store = Self {
            conn,
            path: path.to_path_buf(),
            quota: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Sets the disk quota in bytes (pages of the database in use); `None` for no quota.
    #[must_use]
    pub fn with_quota(mut self, quota: Option<u64>) -> Self {
        self.quota = quota;
        self
    }

    /// The quota set with [`Store::with_quota`].
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    /// Starts a transaction that takes the write lock at once (so two writers queue up on the
    /// lock wait instead of failing when a read would have to be upgraded).
    fn begin_write(&mut self) -> Result<(rusqlite::Transaction<'_>, &Path), StoreError> {
        let Self { conn, path, .. } = self;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_error(path))?;
        Ok((tx, path))
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sql_error(&self.path)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.sql())?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version >= SCHEMA_VERSION {
            return Ok(());
        }
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        // Read again under the write lock: another connection may have migrated meanwhile.
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&sql)?;
        if version < 1 {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS events (
                    seq INTEGER PRIMARY KEY,
                    event_id TEXT NOT NULL UNIQUE,
                    captured_at TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    accepted_at TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    delivered_at TEXT
                 );
                 CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE delivered_at IS NULL;",
            )
            .map_err(&sql)?;
        }
        if version < 2 {
            tx.execute_batch(
                "ALTER TABLE events ADD COLUMN kind TEXT NOT NULL DEFAULT 'passage';
                 CREATE TABLE evidence (
                    seq INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    sha256 TEXT NOT NULL,
                    content_type TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    data BLOB,
                    delivered_at TEXT,
                    dropped_at TEXT,
                    ready INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (seq, kind)
                 );
                 CREATE INDEX evidence_pending ON evidence(seq) WHERE delivered_at IS NULL AND dropped_at IS NULL;
                 CREATE INDEX evidence_ready ON evidence(seq) WHERE ready = 1 AND delivered_at IS NULL AND dropped_at IS NULL;
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 CREATE TABLE journal (id INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
                 INSERT INTO meta (key, value) SELECT 'next_seq', COALESCE(MAX(seq), 0) + 1 FROM events;",
            )
            .map_err(&sql)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(&sql)?;
        tx.commit().map_err(&sql)
    }

    /// Appends an event built from the next sequence number, committed durably before return.
    pub fn append(&mut self, build: impl FnOnce(u64) -> Event) -> Result<Event, StoreError> {
        self.append_with(build, Vec::new())
    }

    /// Appends an event with its evidence images (their references are filled in here).
    pub fn append_with(
        &mut self,
        build: impl FnOnce(u64) -> Event,
        evidence: Vec<NewEvidence>,
    ) -> Result<Event, StoreError> {
        let mut out = self.append_batch(vec![NewRecord {
            build: Box::new(build),
            evidence,
        }])?;
        Ok(out.remove(0))
    }

    /// Appends several events in one transaction: one sync to disk for all (group commit).
    /// Each is durable when this returns; none is if it fails.
    pub fn append_batch(&mut self, records: Vec<NewRecord<'_>>) -> Result<Vec<Event>, StoreError> {
        let quota = self.quota;
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        let mut next: i64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![NEXT_SEQ],
                |r| r.get(0),
            )
            .map_err(&sql)?;
        let accepted_at = ts(Utc::now());
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let seq = next as u64;
            let mut event = (record.build)(seq);
            event.evidence = record
                .evidence
                .iter()
                .map(|e| EvidenceRef {
                    kind: e.kind.clone(),
                    sha256: sha256_hex(&e.data),
                    size: e.data.len() as u64,
                    content_type: e.content_type.clone(),
                })
                .collect();
            let payload = serde_json::to_string(&event).map_err(|e| StoreError::Corrupt {
                seq,
                message: e.to_string(),
            })?;
            if let Some(quota) = quota {
                let incoming = payload.len() as u64
                    + record
                        .evidence
                        .iter()
                        .map(|e| e.data.len() as u64)
                        .sum::<u64>();
                make_room(&tx, quota, incoming).map_err(&sql)?;
            }
            tx.prepare_cached(
                "INSERT INTO events (seq, event_id, kind, captured_at, payload, accepted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    seq as i64,
                    event.event_id.to_string(),
                    kind_str(event.kind),
                    ts(event.captured_at),
                    payload,
                    accepted_at
                ])
            })
            .map_err(&sql)?;
            for (e, r) in record.evidence.iter().zip(&event.evidence) {
                tx.prepare_cached(
                    "INSERT INTO evidence (seq, kind, sha256, content_type, size, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        seq as i64,
                        r.kind,
                        r.sha256,
                        r.content_type,
                        r.size as i64,
                        e.data
                    ])
                })
                .map_err(&sql)?;
            }
            next += 1;
            out.push(event);
        }
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = ?2",
            params![next, NEXT_SEQ],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(out)
    }

    /// Up to `limit` undelivered rows with sequence above `after`, in sequence order.
    pub fn pending(&self, after: u64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, payload, attempts FROM events WHERE delivered_at IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![after as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, payload, attempts) = row.map_err(self.sql())?;
            let event: Event = serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt {
                seq,
                message: e.to_string(),
            })?;
            out.push(Pending {
                seq,
                event_id: event.event_id,
                captured_at: event.captured_at,
                attempts,
                event,
            });
        }
        Ok(out)
    }

    /// Up to `limit` undelivered evidence images whose event is delivered, with sequence above
    /// `after`, in sequence order: images go out after their event.
    pub fn pending_evidence(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<PendingEvidence>, StoreError> {
        let rows = self.rows4(
            "SELECT v.seq, e.event_id, v.kind, v.sha256 FROM evidence v JOIN events e ON e.seq = v.seq
             WHERE v.ready = 1 AND v.delivered_at IS NULL AND v.dropped_at IS NULL AND v.seq > ?1
             ORDER BY v.seq, v.kind LIMIT ?2",
            params![after as i64, limit as i64],
        )?;
        let mut out = Vec::new();
        for (seq, id, kind, sha256) in rows {
            let event_id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt {
                seq,
                message: e.to_string(),
            })?;
            out.push(PendingEvidence {
                seq,
                event_id,
                kind,
                sha256,
            });
        }
        Ok(out)
    }

    /// The stored event with this sequence number, delivered or not.
    pub fn get(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        let payload: Option<String> = self
            .conn
            .query_row(
                "SELECT payload FROM events WHERE seq = ?1",
                params![seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        payload
            .map(|p| {
                serde_json::from_str(&p).map_err(|e| StoreError::Corrupt {
                    seq,
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    /// The stored bytes of one evidence image (`None` if absent or dropped).
    pub fn evidence(&self, seq: u64, kind: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT data FROM evidence WHERE seq = ?1 AND kind = ?2",
                params![seq as i64, kind],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(self.sql())
    }

    /// Records one more sending attempt for each row, in one transaction.
    pub fn note_attempts(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        {
            let mut stmt = tx
                .prepare_cached("UPDATE events SET attempts = attempts + 1 WHERE seq = ?1")
                .map_err(&sql)?;
            for &seq in seqs {
                stmt.execute(params![seq as i64]).map_err(&sql)?;
            }
        }
        tx.commit().map_err(&sql)
    }

    /// Marks the row with this id and sequence delivered (the central side stored it).
    pub fn mark_delivered(&mut self, event_id: Uuid, seq: u64) -> Result<AckOutcome, StoreError> {
        Ok(self.mark_delivered_batch(&[(event_id, seq, None)])?[0])
    }

    /// Applies acknowledgements `(event_id, seq, evidence sha256)` in one transaction (one
    /// sync to disk); an ack with a sha256 is for that evidence image of the event. The
    /// outcomes come back in the same order.
    pub fn mark_delivered_batch(
        &mut self,
        acks: &[(Uuid, u64, Option<&str>)],
    ) -> Result<Vec<AckOutcome>, StoreError> {
        let now = ts(Utc::now());
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        let mut out = Vec::with_capacity(acks.len());
        {
            let mut find = tx
                .prepare_cached(
                    "SELECT delivered_at IS NOT NULL FROM events WHERE seq = ?1 AND event_id = ?2",
                )
                .map_err(&sql)?;
            let mut mark = tx
                .prepare_cached(
                    "UPDATE events SET delivered_at = ?1 WHERE seq = ?2 AND delivered_at IS NULL",
                )
                .map_err(&sql)?;
            // The event's images may go now; the index on `ready` finds them without a scan
            // of every undelivered image.
            let mut ready = tx
                .prepare_cached("UPDATE evidence SET ready = 1 WHERE seq = ?1")
                .map_err(&sql)?;
            let mut find_image = tx
                .prepare_cached(
                    "SELECT v.delivered_at IS NOT NULL FROM evidence v JOIN events e ON e.seq = v.seq
                     WHERE v.seq = ?1 AND e.event_id = ?2 AND v.sha256 = ?3",
                )
                .map_err(&sql)?;
            let mut mark_image = tx
                .prepare_cached(
                    "UPDATE evidence SET delivered_at = ?1, data = NULL WHERE seq = ?2 AND sha256 = ?3 AND delivered_at IS NULL",
                )
                .map_err(&sql)?;
            for (id, seq, image) in acks {
                let state: Option<bool> = match image {
                    None => find.query_row(params![*seq as i64, id.to_string()], |r| r.get(0)),
                    Some(sha) => find_image
                        .query_row(params![*seq as i64, id.to_string(), sha], |r| r.get(0)),
                }
                .optional()
                .map_err(&sql)?;
                out.push(match state {
                    None => AckOutcome::Unknown,
                    Some(true) => AckOutcome::AlreadyDelivered,
                    Some(false) => {
                        match image {
                            None => mark
                                .execute(params![now, *seq as i64])
                                .and_then(|_| ready.execute(params![*seq as i64])),
                            Some(sha) => mark_image.execute(params![now, *seq as i64, sha]),
                        }
                        .map_err(&sql)?;
                        AckOutcome::Marked
                    }
                });
            }
        }
        tx.commit().map_err(&sql)?;
        Ok(out)
    }

    /// Number of undelivered rows (uses the index of pending rows, cheap on a long queue).
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM events WHERE delivered_at IS NULL")
    }

    /// Number of evidence images not yet delivered (nor dropped).
    pub fn pending_evidence_count(&self) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(*) FROM evidence WHERE delivered_at IS NULL AND dropped_at IS NULL",
        )
    }

    fn count(&self, query: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row(query, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.sql())
    }

    /// Totals of the queue.
    pub fn stats(&self) -> Result<QueueStats, StoreError> {
        let last_seq = self.meta(NEXT_SEQ)?.saturating_sub(1);
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(delivered_at IS NULL), 0) FROM events",
                [],
                |r| {
                    let total = r.get::<_, i64>(0)? as u64;
                    let pending = r.get::<_, i64>(1)? as u64;
                    Ok(QueueStats {
                        total,
                        pending,
                        delivered: total - pending,
                        last_seq,
                    })
                },
            )
            .map_err(self.sql())
    }

    fn meta(&self, key: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(self.sql())
    }

    /// What the quota made the device drop, since the queue was created.
    pub fn drops(&self) -> Result<Drops, StoreError> {
        Ok(Drops {
            passages: self.meta(DROP_KEYS[0])?,
            violations: self.meta(DROP_KEYS[1])?,
            passage_evidence: self.meta(DROP_KEYS[2])?,
            violation_evidence: self.meta(DROP_KEYS[3])?,
        })
    }

    /// Delivered events removed to make room (not a loss).
    pub fn pruned(&self) -> Result<u64, StoreError> {
        self.meta(PRUNED)
    }

    /// Wall-clock jumps recorded with [`Store::record_clock_jump`].
    pub fn clock_jumps(&self) -> Result<u64, StoreError> {
        self.meta(CLOCK_JUMPS)
    }

    /// Bytes of the database in use (the quota's measure).
    pub fn bytes_used(&self) -> Result<u64, StoreError> {
        bytes_in_use(&self.conn).map_err(self.sql())
    }

    /// Journals a jump of the wall clock (seen against the monotonic clock): when it was
    /// seen, the wall time before and after, and the size of the step in seconds.
    pub fn record_clock_jump(
        &mut self,
        before: DateTime<Utc>,
        after: DateTime<Utc>,
        step_s: f64,
    ) -> Result<(), StoreError> {
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        journal_add(
            &tx,
            "clock-jump",
            &serde_json::json!({"wall_before": ts(before), "wall_after": ts(after), "step_s": step_s}),
        )
        .and_then(|()| meta_add(&tx, CLOCK_JUMPS, 1))
        .map_err(&sql)?;
        tx.commit().map_err(&sql)
    }

    /// Journal entries with id above `after`, oldest first.
    pub fn journal(&self, after: u64) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = self.rows4(
            "SELECT id, at, kind, detail FROM journal WHERE id > ?1 ORDER BY id",
            params![after as i64],
        )?;
        let mut out = Vec::new();
        for (id, at, kind, detail) in rows {
            out.push(JournalEntry {
                id,
                at: DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default(),
                kind,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(out)
    }

    /// Rows of a query selecting an integer and three texts.
    fn rows4(
        &self,
        query: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<(u64, String, String, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(query).map_err(self.sql())?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Whether the row with this sequence is delivered (`None` if there is no such row).
    pub fn is_delivered(&self, seq: u64) -> Result<Option<bool>, StoreError> {
        self.conn
            .query_row(
                "SELECT delivered_at IS NOT NULL FROM events WHERE seq = ?1",
                params![seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())
    }
}

/// Removes rows in quota order until `incoming` more bytes fit under `quota` (or nothing
/// removable is left). Drops are counted and journaled in the same transaction.
fn make_room(tx: &Transaction<'_>, quota: u64, incoming: u64) -> rusqlite::Result<()> {
    let mut step = 0;
    let mut dropped = [0usize; 5];
    while step < 5 && bytes_in_use(tx)? + incoming > quota {
        let n = evict_step(tx, step, 16)?;
        dropped[step] += n;
        if n == 0 {
            step += 1;
        }
    }
    if dropped[1..].iter().any(|n| *n > 0) {
        tracing::warn!(
            passage_images = dropped[1],
            passages = dropped[2],
            violation_images = dropped[3],
            violations = dropped[4],
            quota,
            "Queue quota reached: undelivered records dropped to make room (oldest passages first)."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_types::{
        ClockInfo, DeviceInfo, EVENT_SCHEMA, EventKind, EventPlate, EventVehicle, FrameRef,
        VehicleClass,
    };

    pub(crate) fn event(seq: u64) -> Event {
        Event {
            schema: EVENT_SCHEMA.into(),
            event_id: Uuid::now_v7(),
            seq,
            device: DeviceInfo {
                inventory: "INV-1".into(),
                profile: "stationary".into(),
                site: "s".into(),
            },
            camera: "cam1".into(),
            kind: EventKind::Passage,
            captured_at: Utc::now(),
            clock: ClockInfo {
                source: "system".into(),
                synced: false,
            },
            position: None,
            vehicle: EventVehicle {
                class: VehicleClass::Car,
                confidence: 0.9,
                bbox: None,
                direction: None,
                lane: None,
            },
            plate: EventPlate {
                text: "123ABC01".into(),
                confidence: 0.9,
                detection_confidence: 0.8,
                bbox: [1, 2, 3, 4],
                country: None,
                plate_type: None,
                region: None,
                status: anpr_types::PlateStatus::Read,
            },
            frame: FrameRef {
                index: 1,
                width: 10,
                height: 10,
            },
            evidence: Vec::new(),
            track: None,
            violation: None,
        }
    }

    #[test]
    fn appends_get_gap_free_sequences_that_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        {
            let mut s = Store::open(&path).unwrap();
            for _ in 0..3 {
                s.append(event).unwrap();
            }
        }
        let mut s = Store::open(&path).unwrap();
        let e = s.append(event).unwrap();
        assert_eq!(e.seq, 4);
        let p = s.pending(0, 10).unwrap();
        assert_eq!(
            p.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
    }

    #[test]
    fn only_a_matching_ack_marks_a_row_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let a = s.append(event).unwrap();
        let b = s.append(event).unwrap();
        assert_eq!(
            s.mark_delivered(a.event_id, b.seq).unwrap(),
            AckOutcome::Unknown
        );
        assert_eq!(
            s.mark_delivered(Uuid::now_v7(), a.seq).unwrap(),
            AckOutcome::Unknown
        );
        assert_eq!(
            s.mark_delivered(a.event_id, a.seq).unwrap(),
            AckOutcome::Marked
        );
        assert_eq!(
            s.mark_delivered(a.event_id, a.seq).unwrap(),
            AckOutcome::AlreadyDelivered
        );
        assert_eq!(
            s.stats().unwrap(),
            QueueStats {
                total: 2,
                pending: 1,
                delivered: 1,
                last_seq: 2
            }
        );
        assert_eq!(s.pending(0, 10).unwrap()[0].seq, b.seq);
    }

    #[test]
    fn opening_a_new_queue_while_another_connection_creates_and_fills_it_works() {
        for _ in 0..100 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("q.sqlite");
            let p = path.clone();
            let writer = std::thread::spawn(move || {
                let mut s = Store::open(&p).unwrap();
                for _ in 0..5 {
                    s.append(event).unwrap();
                }
            });
            let reader = Store::open(&path).map(|s| s.stats());
            writer.join().unwrap();
            assert!(matches!(reader, Ok(Ok(_))), "{:?}", reader.err());
        }
    }

    #[test]
    fn stores_opened_at_the_same_moment_on_a_new_file_all_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || {
                    let mut s = Store::open(&p).unwrap();
                    s.append(event).unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(Store::open(&path).unwrap().stats().unwrap().total, 6);
    }

    #[test]
    fn the_payload_round_trips_with_its_capture_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let a = s.append(event).unwrap();
        let p = &s.pending(0, 1).unwrap()[0];
        assert_eq!(p.event, a);
        assert_eq!(p.captured_at, a.captured_at);
    }
}

#[cfg(test)]
mod evidence_and_quota_tests {
    use super::*;

    fn image(kind: &str, byte: u8, len: usize) -> NewEvidence {
        NewEvidence {
            kind: kind.into(),
            content_type: "image/jpeg".into(),
            data: vec![byte; len],
        }
    }

    fn violation(seq: u64) -> Event {
        Event {
            kind: EventKind::Violation,
            ..tests::event(seq)
        }
    }

    #[test]
    fn evidence_is_referenced_by_sha256_and_offered_only_after_its_event_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let e = s
            .append_with(
                tests::event,
                vec![image("overview", 1, 1000), image("plate", 2, 100)],
            )
            .unwrap();
        assert_eq!(e.evidence.len(), 2);
        assert_eq!(e.evidence[0].sha256, sha256_hex(&[1u8; 1000]));
        assert_eq!(e.evidence[1].size, 100);
        assert_eq!(s.get(e.seq).unwrap().unwrap().evidence, e.evidence);
        assert!(
            s.pending_evidence(0, 10).unwrap().is_empty(),
            "event not delivered yet"
        );
        s.mark_delivered(e.event_id, e.seq).unwrap();
        let images = s.pending_evidence(0, 10).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(
            s.evidence(e.seq, &images[0].kind).unwrap().unwrap(),
            vec![1u8; 1000]
        );
        let wrong = s
            .mark_delivered_batch(&[(
                e.event_id,
                e.seq,
                Some(e.evidence[1].sha256.as_str().get(1..).unwrap()),
            )])
            .unwrap();
        assert_eq!(wrong, vec![AckOutcome::Unknown]);
        let sha = e.evidence[0].sha256.clone();
        let acks = s
            .mark_delivered_batch(&[
                (e.event_id, e.seq, Some(&sha)),
                (e.event_id, e.seq, Some(&sha)),
            ])
            .unwrap();
        assert_eq!(acks, vec![AckOutcome::Marked, AckOutcome::AlreadyDelivered]);
        assert_eq!(s.pending_evidence_count().unwrap(), 1);
        assert_eq!(s.pending_evidence(0, 10).unwrap()[0].kind, "plate");
    }

    #[test]
    fn a_batch_is_one_commit_with_consecutive_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        s.append(tests::event).unwrap();
        let batch = (0..5)
            .map(|_| NewRecord {
                build: Box::new(tests::event),
                evidence: Vec::new(),
            })
            .collect();
        let out = s.append_batch(batch).unwrap();
        assert_eq!(
            out.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6]
        );
        assert_eq!(s.stats().unwrap().last_seq, 6);
    }

    #[test]
    fn the_quota_drops_delivered_rows_then_passage_images_then_passages_and_violations_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let mut s = Store::open(&path).unwrap();
        // 10 delivered passages, then 20 undelivered passages and 5 violations, each with a
        // 20 kB image.
        for _ in 0..10 {
            let e = s
                .append_with(tests::event, vec![image("overview", 3, 20_000)])
                .unwrap();
            let sha = e.evidence[0].sha256.as_str();
            s.mark_delivered_batch(&[(e.event_id, e.seq, None), (e.event_id, e.seq, Some(sha))])
                .unwrap();
        }
        let mut violations = Vec::new();
        for i in 0..25u8 {
            let build = if i % 5 == 4 { violation } else { tests::event };
            let e = s
                .append_with(build, vec![image("overview", i, 20_000)])
                .unwrap();
            if i % 5 == 4 {
                violations.push(e.seq);
            }
        }
        let used = s.bytes_used().unwrap();
        assert!(used > 25 * 20_000, "{used}");
        // Delivered images are released on their ack; a quota that holds about 15 of the
        // 25 undelivered images: delivered rows go first, then passage images.
        let mut s = s.with_quota(Some(used - 10 * 20_000));
        let e = s
            .append_with(tests::event, vec![image("overview", 99, 20_000)])
            .unwrap();
        assert!(s.bytes_used().unwrap() <= used - 10 * 20_000);
        let stats = s.stats().unwrap();
        assert_eq!(stats.last_seq, e.seq, "sequence numbers are not reused");
        assert_eq!(s.pruned().unwrap(), 10, "all delivered rows pruned first");
        let drops = s.drops().unwrap();
        assert!(drops.passage_evidence > 0, "{drops:?}");
        assert_eq!(
            (drops.passages, drops.violations, drops.violation_evidence),
            (0, 0, 0)
        );
        for v in &violations {
            assert!(
                s.evidence(*v, "overview").unwrap().is_some(),
                "violation {v} image kept"
            );
        }
        // The oldest undelivered passage lost its image first, and it is journaled.
        assert!(s.evidence(11, "overview").unwrap().is_none());
        assert!(s.get(11).unwrap().is_some(), "the event itself stays");
        let journal = s.journal(0).unwrap();
        assert_eq!(journal.len() as u64, drops.passage_evidence);
        assert_eq!(journal[0].kind, "dropped-evidence");
        assert_eq!(journal[0].detail["seq"], 11);

        // A quota far too small: everything but violations goes before any violation does.
        let mut s = s.with_quota(Some(1));
        s.append(violation).unwrap();
        let drops = s.drops().unwrap();
        assert!(drops.passages >= 20, "{drops:?}");
        assert!(drops.violations > 0, "{drops:?}");
        let kinds: Vec<String> = s.journal(0).unwrap().into_iter().map(|j| j.kind).collect();
        let first_violation = s
            .journal(0)
            .unwrap()
            .iter()
            .position(|j| j.detail["event_kind"] == "violation")
            .unwrap();
        let last_passage = s
            .journal(0)
            .unwrap()
            .iter()
            .rposition(|j| j.detail["event_kind"] == "passage")
            .unwrap();
        assert!(last_passage < first_violation, "{kinds:?}");
        assert_eq!(
            s.stats().unwrap().total,
            1,
            "the new event is always written"
        );
    }

    #[test]
    fn a_version_1_queue_is_migrated_keeping_its_rows_and_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,
                   captured_at TEXT NOT NULL, payload TEXT NOT NULL, accepted_at TEXT NOT NULL,
                   attempts INTEGER NOT NULL DEFAULT 0, delivered_at TEXT);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
            let mut e = tests::event(7);
            e.evidence.clear();
            let mut v: serde_json::Value = serde_json::to_value(&e).unwrap();
            v.as_object_mut().unwrap().remove("evidence");
            conn.execute(
                "INSERT INTO events (seq, event_id, captured_at, payload, accepted_at) VALUES (7, ?1, ?2, ?3, ?2)",
                params![e.event_id.to_string(), ts(e.captured_at), v.to_string()],
            )
            .unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.pending(0, 10).unwrap()[0].seq, 7);
        assert_eq!(s.append(tests::event).unwrap().seq, 8);
    }

    #[test]
    fn clock_jumps_are_journaled_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let before = Utc::now();
        let after = before - chrono::Duration::hours(1);
        s.record_clock_jump(before, after, -3600.0).unwrap();
        assert_eq!(s.clock_jumps().unwrap(), 1);
        let j = &s.journal(0).unwrap()[0];
        assert_eq!(j.kind, "clock-jump");
        assert_eq!(j.detail["step_s"], -3600.0);
    }
}

#[cfg(test)]
mod model_tests {
    //! Random sequences of queue operations against a model of the queue.
    use super::*;
    use std::collections::BTreeMap;

    /// A small deterministic generator, so a failing sequence can be replayed from its seed.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    /// One row of the model: event id, capture time, delivered, sending attempts, and its
    /// image (sha256, delivered) if it has one.
    struct Row {
        id: Uuid,
        captured_at: DateTime<Utc>,
        delivered: bool,
        attempts: u32,
        image: Option<(String, bool)>,
    }

    /// Random sequences of append (with or without an image) / publish (an attempt noted) /
    /// event ack / image ack / disconnect (nothing in flight survives; the queue must not
    /// change) / restart, checked against the model after every step.
    #[test]
    fn publishing_images_and_disconnects_agree_with_a_model_of_the_queue() {
        for seed in 0..25u64 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("q.sqlite");
            let mut store = Store::open(&path).unwrap();
            let mut rng = Lcg(seed ^ 0x5eed);
            let mut model: BTreeMap<u64, Row> = BTreeMap::new();
            for step in 0..120 {
                match rng.next(12) {
                    0..=2 => {
                        let image = (rng.next(2) == 0).then(|| NewEvidence {
                            kind: "overview".into(),
                            content_type: "image/jpeg".into(),
                            data: vec![(step % 251) as u8; 64 + step],
                        });
                        let sha = image.as_ref().map(|i| sha256_hex(&i.data));
                        let e = store
                            .append_with(tests::event, image.into_iter().collect())
                            .unwrap();
                        model.insert(
                            e.seq,
                            Row {
                                id: e.event_id,
                                captured_at: e.captured_at,
                                delivered: false,
                                attempts: 0,
                                image: sha.map(|s| (s, false)),
                            },
                        );
                    }
                    3 | 4 => {
                        // Publish up to three pending rows.
                        let seqs: Vec<u64> = model
                            .iter()
                            .filter(|(_, r)| !r.delivered)
                            .map(|(s, _)| *s)
                            .take(3)
                            .collect();
                        store.note_attempts(&seqs).unwrap();
                        for s in &seqs {
                            model.get_mut(s).unwrap().attempts += 1;
                        }
                    }
                    5 | 6 if !model.is_empty() => {
                        let seq = rng.next(model.len() as u64) + 1;
                        let row = model.get_mut(&seq).unwrap();
                        let want = if row.delivered {
                            AckOutcome::AlreadyDelivered
                        } else {
                            AckOutcome::Marked
                        };
                        assert_eq!(
                            store.mark_delivered(row.id, seq).unwrap(),
                            want,
                            "seed {seed}"
                        );
                        row.delivered = true;
                    }
                    7 => {
                        // Ack an image of a delivered event (images go out after their event).
                        let candidate = model
                            .iter_mut()
                            .filter(|(_, r)| r.delivered && r.image.is_some())
                            .nth(rng.next(4) as usize);
                        if let Some((seq, row)) = candidate {
                            let (sha, done) = row.image.as_mut().unwrap();
                            let want = if *done {
                                AckOutcome::AlreadyDelivered
                            } else {
                                AckOutcome::Marked
                            };
                            let got = store
                                .mark_delivered_batch(&[(row.id, *seq, Some(sha.as_str()))])
                                .unwrap();
                            assert_eq!(got, vec![want], "seed {seed}");
                            *done = true;
                        }
                    }
                    8 => store = Store::open(&path).unwrap(), // restart
                    // Disconnect (the uplink forgets what was in flight): nothing in the queue
                    // may change, which the checks below confirm.
                    _ => {}
                }
                let pending: Vec<(u64, u32)> = store
                    .pending(0, 10_000)
                    .unwrap()
                    .iter()
                    .map(|p| (p.seq, p.attempts))
                    .collect();
                let want: Vec<(u64, u32)> = model
                    .iter()
                    .filter(|(_, r)| !r.delivered)
                    .map(|(s, r)| (*s, r.attempts))
                    .collect();
                assert_eq!(pending, want, "seed {seed} step {step}: pending rows");
                let images: Vec<u64> = store
                    .pending_evidence(0, 10_000)
                    .unwrap()
                    .iter()
                    .map(|p| p.seq)
                    .collect();
                let want: Vec<u64> = model
                    .iter()
                    .filter(|(_, r)| r.delivered && r.image.as_ref().is_some_and(|i| !i.1))
                    .map(|(s, _)| *s)
                    .collect();
                assert_eq!(images, want, "seed {seed} step {step}: images to send");
            }
            for (seq, row) in &model {
                let e = store.get(*seq).unwrap().unwrap();
                assert_eq!((e.event_id, e.captured_at), (row.id, row.captured_at));
            }
        }
    }

    #[test]
    fn random_operation_sequences_agree_with_a_model_of_the_queue() {
        for seed in 0..40u64 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("q.sqlite");
            let mut store = Store::open(&path).unwrap();
            let mut rng = Lcg(seed);
            // seq -> (event id, captured_at, delivered)
            let mut model: BTreeMap<u64, (Uuid, DateTime<Utc>, bool)> = BTreeMap::new();
            for _ in 0..150 {
                match rng.next(10) {
                    0..=3 => {
                        let e = store.append(tests::event).unwrap();
                        assert_eq!(e.seq, model.len() as u64 + 1, "seed {seed}: sequence gap");
                        model.insert(e.seq, (e.event_id, e.captured_at, false));
                    }
                    4..=6 if !model.is_empty() => {
                        let seq = rng.next(model.len() as u64) + 1;
                        let (id, _, done) = model[&seq];
                        let want = if done {
                            AckOutcome::AlreadyDelivered
                        } else {
                            AckOutcome::Marked
                        };
                        assert_eq!(store.mark_delivered(id, seq).unwrap(), want, "seed {seed}");
                        model.get_mut(&seq).unwrap().2 = true;
                    }
                    7 => {
                        let seq = rng.next(model.len() as u64 + 3) + 1;
                        assert_eq!(
                            store.mark_delivered(Uuid::now_v7(), seq).unwrap(),
                            AckOutcome::Unknown
                        );
                    }
                    8 => store = Store::open(&path).unwrap(), // restart
                    _ => {
                        let pending: Vec<u64> = store
                            .pending(0, 10_000)
                            .unwrap()
                            .iter()
                            .map(|p| p.seq)
                            .collect();
                        let want: Vec<u64> = model
                            .iter()
                            .filter(|(_, v)| !v.2)
                            .map(|(s, _)| *s)
                            .collect();
                        assert_eq!(
                            pending, want,
                            "seed {seed}: pending rows differ from the model"
                        );
                    }
                }
            }
            for (seq, (id, captured_at, done)) in &model {
                let e = store.get(*seq).unwrap().unwrap();
                assert_eq!(
                    (e.event_id, e.captured_at),
                    (*id, *captured_at),
                    "seed {seed}"
                );
                assert_eq!(
                    store.is_delivered(*seq).unwrap(),
                    Some(*done),
                    "seed {seed}"
                );
            }
        }
    }
}
