//! The device's durable event queue: a SQLite database, the single source of truth for what
//! was recorded and what the central side has acknowledged.
//!
//! Contract:
//! - [`Store::append`] assigns the next per-device sequence number and commits the event in
//!   one transaction before it returns. The database runs in WAL mode with
//!   `synchronous=FULL`, so a returned append is on disk (fsynced) and survives a crash or
//!   power loss of the device.
//! - A row is marked delivered only by [`Store::mark_delivered`], called when the central
//!   receiver acknowledges that exact event id and sequence. Nothing else removes the
//!   obligation to deliver a row.
//! - `captured_at` and the payload are written once and never updated.
//! - A torn write (crash mid-commit) leaves SQLite's journal to roll the transaction back on
//!   the next open: the event is either fully present or absent, and an absent event was never
//!   reported as accepted.
//!
//! On-disk layout: one table `events(seq PK, event_id UNIQUE, captured_at, payload JSON,
//! accepted_at, attempts, delivered_at NULL)`; schema version in `PRAGMA user_version`.

use std::path::{Path, PathBuf};

use anpr_types::Event;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

const SCHEMA_VERSION: i64 = 1;

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

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The row was pending and is now delivered.
    Marked,
    /// The row was already delivered (a duplicate ack).
    AlreadyDelivered,
    /// No row has this id and sequence.
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

/// Counters of the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub total: u64,
    pub pending: u64,
    pub delivered: u64,
}

/// The SQLite queue. One connection; open several (one per thread) on the same file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the queue at `path` and migrates its schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = open_durable(path).map_err(open)?;
        let store = Self {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Starts a transaction that takes the write lock at once (so two writers queue up on the
    /// lock wait instead of failing when a read would have to be upgraded).
    fn begin_write(&mut self) -> Result<(rusqlite::Transaction<'_>, &Path), StoreError> {
        let Self { conn, path } = self;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_error(path))?;
        Ok((tx, path))
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sql_error(&self.path)
    }

    fn migrate(&self) -> Result<(), StoreError> {
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
        if version < 1 {
            self.conn
                .execute_batch(
                    "BEGIN IMMEDIATE;
                     CREATE TABLE IF NOT EXISTS events (
                        seq INTEGER PRIMARY KEY,
                        event_id TEXT NOT NULL UNIQUE,
                        captured_at TEXT NOT NULL,
                        payload TEXT NOT NULL,
                        accepted_at TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        delivered_at TEXT
                     );
                     CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE delivered_at IS NULL;
                     PRAGMA user_version = 1;
                     COMMIT;",
                )
                .map_err(self.sql())?;
        }
        Ok(())
    }

    /// Appends an event built from the next sequence number, committed durably before return.
    pub fn append(&mut self, build: impl FnOnce(u64) -> Event) -> Result<Event, StoreError> {
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        let next: i64 = tx
            .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM events", [], |r| {
                r.get(0)
            })
            .map_err(&sql)?;
        let next = next as u64;
        let event = build(next);
        let payload = serde_json::to_string(&event).map_err(|e| StoreError::Corrupt {
            seq: next,
            message: e.to_string(),
        })?;
        tx.execute(
            "INSERT INTO events (seq, event_id, captured_at, payload, accepted_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                event.seq as i64,
                event.event_id.to_string(),
                event.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                payload,
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(event)
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
        Ok(self.mark_delivered_batch(&[(event_id, seq)])?[0])
    }

    /// Applies acknowledgements `(event_id, seq)` in one transaction (one sync to disk);
    /// the outcomes come back in the same order.
    pub fn mark_delivered_batch(
        &mut self,
        acks: &[(Uuid, u64)],
    ) -> Result<Vec<AckOutcome>, StoreError> {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
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
            for (id, seq) in acks {
                let state: Option<bool> = find
                    .query_row(params![*seq as i64, id.to_string()], |r| r.get(0))
                    .optional()
                    .map_err(&sql)?;
                out.push(match state {
                    None => AckOutcome::Unknown,
                    Some(true) => AckOutcome::AlreadyDelivered,
                    Some(false) => {
                        mark.execute(params![now, *seq as i64]).map_err(&sql)?;
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
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE delivered_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.sql())
    }

    /// Totals of the queue.
    pub fn stats(&self) -> Result<QueueStats, StoreError> {
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
                    })
                },
            )
            .map_err(self.sql())
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
            },
            plate: EventPlate {
                text: "123ABC01".into(),
                confidence: 0.9,
                detection_confidence: 0.8,
                bbox: [1, 2, 3, 4],
                country: None,
                plate_type: None,
                region: None,
            },
            frame: FrameRef {
                index: 1,
                width: 10,
                height: 10,
            },
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
                delivered: 1
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
mod model_tests {
    //! Random sequences of append / deliver / stray ack / reopen against a model of the queue.
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
