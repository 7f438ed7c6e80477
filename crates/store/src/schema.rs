//! The queue's tables, the counters kept beside them, and the migrations that bring any older
//! queue file up to the current schema.
//!
//! `PRAGMA user_version` holds the number of migrations applied, the convention of the
//! `rusqlite_migration` crate, so the versions written by earlier software (1: events only,
//! 2: evidence, meta and journal) are the first two entries of [`MIGRATIONS`]. That crate is
//! not used itself: its latest release (2.6) is built against rusqlite 0.40 while the
//! workspace is on 0.43, and two rusqlite versions cannot link one SQLite into one build; it
//! also reads the version before its transaction begins, so two processes opening the same new
//! file could both apply the first migration. [`migrate`] reads the version again under the
//! write lock instead, and the same runner serves the central receiver's database.
//!
//! Each migration runs in the one transaction that also sets `user_version`: a crash during
//! it leaves the file as it was, and the next open tries again.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::StoreError;

/// One step of a schema: SQL to run, then optionally a function for what SQL cannot say
/// (reading JSON payloads, say). Both run in the transaction of the step.
#[derive(Clone, Copy)]
pub struct Migration {
    sql: &'static str,
    then: Option<fn(&Transaction<'_>) -> rusqlite::Result<()>>,
}

impl Migration {
    /// A step that runs `sql` (one or more statements).
    #[must_use]
    pub const fn sql(sql: &'static str) -> Self {
        Self { sql, then: None }
    }

    /// The same step, followed by `f` in the same transaction.
    #[must_use]
    pub const fn then(self, f: fn(&Transaction<'_>) -> rusqlite::Result<()>) -> Self {
        Self {
            sql: self.sql,
            then: Some(f),
        }
    }
}

/// Why a database could not be brought to the current schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    #[error("schema version {found} is newer than this software ({supported})")]
    TooNew { found: i64, supported: i64 },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// Applies the migrations `conn` has not had yet, all in one transaction that takes the write
/// lock at once; returns the version found (equal to `migrations.len()` when there was nothing
/// to do). A database whose version is above `migrations.len()` is refused, unchanged.
pub fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<i64, MigrationError> {
    let latest = migrations.len() as i64;
    let version = user_version(conn)?;
    if version > latest {
        return Err(MigrationError::TooNew {
            found: version,
            supported: latest,
        });
    }
    if version == latest {
        return Ok(version);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Read again under the write lock: another connection may have migrated meanwhile.
    let version = user_version(&tx)?;
    if version > latest {
        return Err(MigrationError::TooNew {
            found: version,
            supported: latest,
        });
    }
    for m in &migrations[version.max(0) as usize..] {
        tx.execute_batch(m.sql)?;
        if let Some(f) = m.then {
            f(&tx)?;
        }
    }
    tx.pragma_update(None, "user_version", latest)?;
    tx.commit()?;
    Ok(version)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// The queue's schema, one entry per version. Never edit an entry that has shipped: add one.
pub(crate) const MIGRATIONS: [Migration; 6] = [
    // 1: the events.
    Migration::sql(
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
    ),
    // 2: event kinds, evidence images, counters and the journal.
    Migration::sql(
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
    ),
    // 3: counts of rows present and undelivered, so that stats need not scan the queue.
    Migration::sql(
        "INSERT OR REPLACE INTO meta (key, value) SELECT 'events_present', COUNT(*) FROM events;
         INSERT OR REPLACE INTO meta (key, value)
           SELECT 'events_pending', COUNT(*) FROM events WHERE delivered_at IS NULL;",
    ),
    // 4: the hash chain: each row's hash, the chain head, and the runs of rows removed.
    Migration::sql(
        "ALTER TABLE events ADD COLUMN hash TEXT;
         CREATE TABLE chain_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL
         );
         CREATE TABLE removed (
            first_seq INTEGER PRIMARY KEY,
            last_seq INTEGER NOT NULL,
            last_hash TEXT
         );
         CREATE UNIQUE INDEX removed_last ON removed(last_seq);",
    )
    .then(crate::chain::hash_existing_rows),
    // 5: the journal's hash chain: each row's link and hash, and the journal's head. The rows
    // already there are chained in id order.
    Migration::sql(
        "ALTER TABLE journal ADD COLUMN prev_hash TEXT;
         ALTER TABLE journal ADD COLUMN hash TEXT;
         CREATE TABLE journal_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL
         );",
    )
    .then(crate::journal::chain_existing_journal),
    // 6: export bundles (`anpr export`): when a row was copied out and into which bundle (the
    // row stays undelivered, and out of the quota's reach, until acknowledged); and the
    // journal found by kind (the custody journal is read out of it).
    Migration::sql(
        "ALTER TABLE events ADD COLUMN exported_at TEXT;
         ALTER TABLE events ADD COLUMN export_id TEXT;
         CREATE INDEX journal_kind ON journal(kind, id);",
    ),
];

/// Version of the queue schema this software writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the queue at `path` to [`SCHEMA_VERSION`].
pub(crate) fn migrate_queue(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    match migrate(conn, &MIGRATIONS) {
        Ok(from) if from < SCHEMA_VERSION => {
            tracing::info!(path = %path.display(), from, to = SCHEMA_VERSION, "Queue schema migrated.");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(MigrationError::TooNew { found, supported }) => Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported,
        }),
        Err(MigrationError::Sql(source)) => Err(StoreError::Sql {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Keys of the counters in the `meta` table.
pub(crate) mod key {
    /// Next sequence number to assign.
    pub const NEXT_SEQ: &str = "next_seq";
    /// Rows in `events`.
    pub const PRESENT: &str = "events_present";
    /// Rows in `events` not yet delivered.
    pub const PENDING: &str = "events_pending";
    pub const DROPPED_PASSAGES: &str = "dropped_passages";
    pub const DROPPED_VIOLATIONS: &str = "dropped_violations";
    pub const DROPPED_PASSAGE_EVIDENCE: &str = "dropped_passage_evidence";
    pub const DROPPED_VIOLATION_EVIDENCE: &str = "dropped_violation_evidence";
    /// Delivered rows removed to make room.
    pub const PRUNED: &str = "pruned_events";
    pub const CLOCK_JUMPS: &str = "clock_jumps";
    /// The retention policy (`retention.rs`), in days; absent: 0.
    pub const KEEP_VIOLATIONS_DAYS: &str = "keep_violations_days";
    pub const KEEP_PASSAGES_DAYS: &str = "keep_passages_days";
}

/// Adds `by` (which may be negative) to a counter, inside the caller's transaction.
pub(crate) fn meta_add(tx: &Transaction<'_>, key: &str, by: i64) -> rusqlite::Result<()> {
    if by != 0 {
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
        )?
        .execute(params![key, by])?;
    }
    Ok(())
}

/// A counter's value (0 when it was never set).
pub(crate) fn meta_get(conn: &Connection, key: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row(params![key], |r| r.get::<_, i64>(0))
        .optional()
        .map(|v| v.unwrap_or(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, params};

    use crate::sqlite::ts;
    use crate::tests::event;
    use crate::{AckOutcome, NewEvidence, QueueStats, Store, StoreError, sha256_hex};

    /// The schema as software of version 2 wrote it, kept here verbatim: the fixture must not
    /// follow later edits of [`super::MIGRATIONS`].
    const VERSION_2_SCHEMA: &str = "
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            captured_at TEXT NOT NULL,
            payload TEXT NOT NULL,
            accepted_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            delivered_at TEXT,
            kind TEXT NOT NULL DEFAULT 'passage'
        );
        CREATE INDEX events_pending ON events(seq) WHERE delivered_at IS NULL;
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
        PRAGMA user_version = 2;";

    #[test]
    fn a_queue_written_by_the_version_2_schema_opens_upgrades_and_keeps_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        // Rows 3 to 7 (1 and 2 were pruned): 3 and 4 delivered, 5 with an image waiting for
        // its event's ack, a drop counted and journaled, a clock jump counted.
        let mut events = Vec::new();
        {
            let conn = crate::open_durable(&path).unwrap();
            conn.execute_batch(VERSION_2_SCHEMA).unwrap();
            for seq in 3..=7u64 {
                let mut e = event(seq);
                if seq == 5 {
                    e.evidence.push(anpr_types::EvidenceRef {
                        kind: "overview".into(),
                        sha256: sha256_hex(&[9, 9, 9]),
                        size: 3,
                        content_type: "image/jpeg".into(),
                    });
                }
                let delivered = (seq <= 4).then(|| ts(e.captured_at));
                conn.execute(
                    "INSERT INTO events (seq, event_id, kind, captured_at, payload, accepted_at, delivered_at)
                     VALUES (?1, ?2, 'passage', ?3, ?4, ?3, ?5)",
                    params![
                        seq as i64,
                        e.event_id.to_string(),
                        ts(e.captured_at),
                        serde_json::to_string(&e).unwrap(),
                        delivered
                    ],
                )
                .unwrap();
                events.push(e);
            }
            conn.execute(
                "INSERT INTO evidence (seq, kind, sha256, content_type, size, data) VALUES (5, 'overview', ?1, 'image/jpeg', 3, ?2)",
                params![sha256_hex(&[9, 9, 9]), vec![9u8, 9, 9]],
            )
            .unwrap();
            conn.execute_batch(
                "INSERT INTO meta (key, value) VALUES ('next_seq', 8), ('pruned_events', 2),
                   ('dropped_passage_evidence', 1), ('clock_jumps', 1);
                 INSERT INTO journal (at, kind, detail)
                   VALUES ('2025-01-01T00:00:00.000000Z', 'dropped-evidence', '{\"seq\": 2}');",
            )
            .unwrap();
        }

        let mut s = Store::open(&path).unwrap();
        let version: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::SCHEMA_VERSION);
        assert_eq!(
            s.stats().unwrap(),
            QueueStats {
                total: 5,
                pending: 3,
                delivered: 2,
                last_seq: 7
            }
        );
        assert_eq!(
            s.pending(0, 10)
                .unwrap()
                .iter()
                .map(|p| p.seq)
                .collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        assert_eq!(s.get(3).unwrap().unwrap(), events[0]);
        assert_eq!(s.pruned().unwrap(), 2);
        assert_eq!(s.drops().unwrap().passage_evidence, 1);
        assert_eq!(s.clock_jumps().unwrap(), 1);
        assert_eq!(s.journal(0).unwrap()[0].detail["seq"], 2);
        assert_eq!(s.pending_evidence_count().unwrap(), 1);

        // It goes on where it stopped: the image follows its event's ack, sequences continue.
        assert_eq!(
            s.mark_delivered(events[2].event_id, 5).unwrap(),
            AckOutcome::Marked
        );
        assert_eq!(s.pending_evidence(0, 10).unwrap()[0].seq, 5);
        let e = s
            .append_with(
                event,
                vec![NewEvidence {
                    kind: "plate".into(),
                    content_type: "image/jpeg".into(),
                    data: vec![1, 2],
                }],
            )
            .unwrap();
        assert_eq!(e.seq, 8);
        // The chain starts from the last row written before hashes were kept; the rows pruned
        // before are recorded as removed, and the old rows pass as unsigned ones before it.
        assert_eq!(e.prev_hash, Some(anpr_trust::event::event_hash(&events[4])));
        let walked = s.verify(None, |_, _| {}).unwrap();
        assert_eq!(walked.mismatch, None, "{walked:?}");
        assert_eq!((walked.legacy, walked.removed, walked.rows), (5, 2, 6));
        assert_eq!(
            s.stats().unwrap(),
            QueueStats {
                total: 6,
                pending: 3,
                delivered: 3,
                last_seq: 8
            }
        );
        drop(s);
        // Opening again finds nothing left to migrate.
        assert_eq!(Store::open(&path).unwrap().stats().unwrap().total, 6);
    }

    #[test]
    fn a_version_4_queue_has_its_journal_chained_in_order_at_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        {
            // Version 4 as shipped (the first four steps never change), its journal written
            // the way version 4 wrote it: no link, no hash.
            let mut conn = crate::open_durable(&path).unwrap();
            assert_eq!(
                crate::migrate(&mut conn, &super::MIGRATIONS[..4]).unwrap(),
                0
            );
            conn.execute_batch(
                "INSERT INTO journal (at, kind, detail) VALUES
                   ('2025-01-01T00:00:00.000000Z', 'clock-jump', '{\"step_s\": 60.0}'),
                   ('2025-01-01T00:01:00.000000Z', 'dropped-event', '{\"seq\": 2}'),
                   ('2025-01-01T00:02:00.000000Z', 'camera-gap', '{\"camera\": \"cam1\"}');",
            )
            .unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        let head = s.journal_head().unwrap().unwrap();
        assert_eq!(head.seq, 3);
        let report = s.verify(None, |_, _| {}).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.journal_rows, 3);
        assert_eq!(report.journal_head.as_ref(), Some(&head));
        // Chained in id order from the zero hash, each row's content as it was.
        let rows: Vec<(String, String, String)> = s
            .conn
            .prepare("SELECT kind, prev_hash, hash FROM journal ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows[0].1, anpr_trust::ZERO_HASH);
        assert_eq!(
            (rows[1].1.as_str(), rows[2].1.as_str()),
            (rows[0].2.as_str(), rows[1].2.as_str())
        );
        assert_eq!(rows[2].2, head.hash);
        assert_eq!(s.journal(0).unwrap()[1].detail["seq"], 2);
        // New entries go on from the migrated head.
        let now = chrono::Utc::now();
        s.record_clock_jump(now, now, 3.0).unwrap();
        assert_eq!(s.journal_head().unwrap().unwrap().seq, 4);
        assert!(s.verify(None, |_, _| {}).unwrap().is_intact());
        // An edit of a migrated row is found like any other.
        s.conn
            .execute("UPDATE journal SET kind = 'clock-jumq' WHERE id = 2", [])
            .unwrap();
        let m = s.verify(None, |_, _| {}).unwrap().journal_mismatch.unwrap();
        assert_eq!(m.seq, 2, "{m}");
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
            let mut e = event(7);
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
        assert_eq!(s.stats().unwrap().total, 1);
        assert_eq!(s.append(event).unwrap().seq, 8);
        assert_eq!(s.stats().unwrap().pending, 2);
    }

    #[test]
    fn a_queue_from_newer_software_is_refused_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("upgrade the software"), "{err}");
        let version: i64 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 99);
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
}
