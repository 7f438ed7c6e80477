//! The receiver's schema, one migration per version, run by the queue's migration runner
//! (`anpr_store::migrate`: `user_version` counts the migrations applied, all pending ones run
//! in one transaction under the write lock).
//!
//! Files written before the schema was versioned have `user_version` 0 and the tables of
//! version 1, which is why version 1 creates its tables only if they do not exist.

use std::path::Path;

use anpr_store::{Migration, MigrationError};
use anpr_types::Health;
use rusqlite::{Connection, Transaction, params};

use crate::CentralError;

/// The schema, one entry per version. Never edit an entry that has shipped: add one.
pub(crate) const MIGRATIONS: [Migration; 4] = [
    // 1: events, images, health (the latest message of any kind) and faults.
    Migration::sql(
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
    ),
    // 2: event kind and plate status as columns, violations apart, status apart from health.
    Migration::sql(
        "ALTER TABLE events ADD COLUMN kind TEXT NOT NULL DEFAULT 'passage';
         ALTER TABLE events ADD COLUMN plate_status TEXT NOT NULL DEFAULT 'read';
         UPDATE events SET
            kind = COALESCE(json_extract(payload, '$.kind'), 'passage'),
            plate_status = COALESCE(json_extract(payload, '$.plate.status'), 'read')
          WHERE json_valid(payload);
         CREATE TABLE violations (
            event_id TEXT PRIMARY KEY,
            inventory TEXT NOT NULL,
            seq INTEGER NOT NULL,
            rule TEXT,
            rule_kind TEXT,
            reason TEXT,
            priority INTEGER,
            passage_event_id TEXT,
            passage_seq INTEGER,
            list_name TEXT,
            list_version INTEGER,
            list_entry TEXT,
            list_fuzzy INTEGER,
            plate TEXT NOT NULL,
            vehicle_class TEXT NOT NULL,
            captured_at TEXT NOT NULL,
            received_at TEXT NOT NULL
         );
         CREATE INDEX violations_dev_seq ON violations(inventory, seq);
         INSERT OR IGNORE INTO violations (event_id, inventory, seq, rule, rule_kind, reason,
            priority, passage_event_id, passage_seq, list_name, list_version, list_entry,
            list_fuzzy, plate, vehicle_class, captured_at, received_at)
          SELECT event_id, inventory, seq,
            json_extract(payload, '$.violation.rule'),
            json_extract(payload, '$.violation.kind'),
            json_extract(payload, '$.violation.reason'),
            json_extract(payload, '$.violation.priority'),
            json_extract(payload, '$.violation.passage'),
            json_extract(payload, '$.violation.passage_seq'),
            json_extract(payload, '$.violation.list.name'),
            json_extract(payload, '$.violation.list.version'),
            json_extract(payload, '$.violation.list.entry'),
            json_extract(payload, '$.violation.list.fuzzy'),
            COALESCE(json_extract(payload, '$.plate.text'), ''),
            COALESCE(json_extract(payload, '$.vehicle.class'), 'unknown'),
            captured_at, received_at
          FROM events WHERE kind = 'violation';
         CREATE TABLE status (
            inventory TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            last_will INTEGER NOT NULL
         );",
    )
    .then(split_health),
    // 3: the hash chain: each event's hash and prev_hash, events refused on arrival (not signed
    // by their device, or breaking its chain), and one event per device and sequence number.
    Migration::sql(
        "ALTER TABLE events ADD COLUMN hash TEXT;
         ALTER TABLE events ADD COLUMN prev_hash TEXT;
         CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            inventory TEXT NOT NULL,
            topic TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            received_at TEXT NOT NULL,
            copies INTEGER NOT NULL DEFAULT 1,
            payload TEXT NOT NULL,
            UNIQUE (inventory, event_id, reason)
         );
         CREATE TABLE chain_breaks (
            id INTEGER PRIMARY KEY,
            inventory TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            hash TEXT NOT NULL,
            reason TEXT NOT NULL,
            received_at TEXT NOT NULL,
            copies INTEGER NOT NULL DEFAULT 1,
            payload TEXT NOT NULL,
            UNIQUE (event_id, hash, reason)
         );
         CREATE INDEX chain_breaks_dev_seq ON chain_breaks(inventory, seq);",
    )
    .then(super::trust::hash_stored_events),
    // 4: messages refused unread (over a size cap, on a topic of another shape) are
    // quarantined with their size and without their payload; what the rate limit dropped is
    // counted per device.
    Migration::sql(
        "ALTER TABLE quarantine ADD COLUMN size INTEGER;
         CREATE TABLE rate_limited (
            inventory TEXT PRIMARY KEY,
            dropped INTEGER NOT NULL,
            first_at TEXT NOT NULL,
            last_at TEXT NOT NULL
         );",
    ),
];

/// Version 1 kept the latest health message of any kind, so a last will may have replaced the
/// full message: each device's latest message becomes its status, and stays as its health
/// only if it is a full health message (the one it replaced is gone).
fn split_health(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let rows: Vec<(String, String, String)> = tx
        .prepare("SELECT inventory, received_at, payload FROM health")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (inventory, received_at, payload) in rows {
        let (status, at, last_will) = if let Ok(h) = serde_json::from_str::<Health>(&payload) {
            (Some(h.status), super::ts(h.at), false)
        } else {
            tx.execute(
                "DELETE FROM health WHERE inventory = ?1",
                params![inventory],
            )?;
            (
                super::health::status_of(&payload),
                received_at.clone(),
                true,
            )
        };
        if let Some(status) = status {
            tx.execute(
                "INSERT INTO status (inventory, status, at, received_at, last_will) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![inventory, status, at, received_at, last_will],
            )?;
        }
    }
    Ok(())
}

/// Brings the database at `path` to the current schema.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), CentralError> {
    match anpr_store::migrate(conn, &MIGRATIONS) {
        Ok(from) => {
            if from < MIGRATIONS.len() as i64 {
                tracing::info!(path = %path.display(), from, to = MIGRATIONS.len(), "Receiver schema migrated.");
            }
            Ok(())
        }
        Err(MigrationError::TooNew { found, supported }) => Err(CentralError::TooNew {
            path: path.to_path_buf(),
            found,
            supported,
        }),
        Err(MigrationError::Sql(source)) => Err(CentralError::Db {
            path: path.to_path_buf(),
            source,
        }),
        Err(source) => Err(CentralError::Migrate {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use anpr_types::{EventKind, ListMatch, PlateStatus, ViolationInfo};
    use rusqlite::{Connection, params};

    use crate::db::tests::{delivery, health};
    use crate::{CentralError, Receiver};

    /// The tables as the receiver created them before the schema was versioned, verbatim.
    const UNVERSIONED_SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS events (
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
         );";

    #[test]
    fn a_database_written_before_versioning_opens_and_is_migrated_with_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.sqlite");
        let passage = delivery("INV-A", 1, EventKind::Passage);
        let mut unreadable = delivery("INV-A", 2, EventKind::Passage);
        unreadable.event.plate.status = PlateStatus::Unreadable;
        unreadable.event.plate.text.clear();
        let mut listed = delivery("INV-A", 3, EventKind::Violation);
        listed.event.violation = Some(ViolationInfo {
            rule: "hotlist".into(),
            kind: "plate-list".into(),
            reason: "wanted: stolen vehicle".into(),
            priority: 1,
            passage: passage.event.event_id,
            passage_seq: 1,
            list: Some(ListMatch {
                name: "wanted".into(),
                version: 4,
                entry: "123ABC01".into(),
                fuzzy: true,
            }),
        });
        // A violation from software that sent no details.
        let bare = delivery("INV-B", 1, EventKind::Violation);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(UNVERSIONED_SCHEMA).unwrap();
            for d in [&passage, &unreadable, &listed, &bare] {
                conn.execute(
                    "INSERT INTO events (event_id, inventory, seq, captured_at, sent_at, received_at, delayed, payload)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?4, 0, ?5)",
                    params![
                        d.event.event_id.to_string(),
                        d.event.device.inventory,
                        d.event.seq as i64,
                        crate::db::ts(d.event.captured_at),
                        serde_json::to_string(d).unwrap()
                    ],
                )
                .unwrap();
            }
            // INV-A's last message was its full health; INV-B's, the broker's last will,
            // which replaced its full health.
            conn.execute(
                "INSERT INTO health (inventory, received_at, payload) VALUES
                   ('INV-A', '2025-01-01T00:00:00.000000Z', ?1),
                   ('INV-B', '2025-01-01T00:05:00.000000Z', '{\"status\":\"offline\"}')",
                params![serde_json::to_string(&health("INV-A", "online")).unwrap()],
            )
            .unwrap();
        }

        let r = Receiver::open(&path).unwrap();
        let version: i64 = r
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, super::MIGRATIONS.len() as i64);
        assert_eq!(r.events_of("INV-A").unwrap().len(), 3);

        let v = r.violations_of("INV-A").unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].seq, 3);
        assert_eq!(v[0].detail, listed.event.violation);
        assert_eq!(v[0].plate, "123ABC01");
        let v = r.violations_of("INV-B").unwrap();
        assert_eq!((v.len(), v[0].detail.as_ref()), (1, None));

        let reports = r.report().unwrap();
        let a = &reports[0];
        assert_eq!((a.events, a.passages), (3, 2));
        assert_eq!((a.plates.read, a.plates.unreadable), (1, 1));
        assert_eq!(a.violations.get("hotlist"), Some(&1));
        assert_eq!(a.status.as_ref().unwrap().status, "online");
        assert!(a.health.is_some());
        let b = &reports[1];
        assert!(b.health.is_none(), "the last will is not kept as health");
        let status = b.status.as_ref().unwrap();
        assert_eq!(
            (status.status.as_str(), status.last_will),
            ("offline", true)
        );
        drop(r);
        // Opening again finds nothing left to migrate.
        assert_eq!(Receiver::open(&path).unwrap().report().unwrap().len(), 2);
    }

    #[test]
    fn a_database_from_newer_software_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 42;")
            .unwrap();
        let err = Receiver::open(&path).err().unwrap();
        assert!(
            matches!(err, CentralError::TooNew { found: 42, .. }),
            "{err}"
        );
    }
}
