//! The queue's hash chain: the head (hash of the last event appended), the runs of rows the
//! queue removed itself (pruned, dropped, quarantined) with the hash of the last of each run,
//! and the walk that checks a queue row by row ([`Store::verify`], [`verify_queue`]).
//!
//! Each event's `prev_hash` is the head when it was appended, read inside the append's write
//! transaction, so two writers on one file (the recognizer and a camera's gap) still chain
//! one after the other. Removing a row keeps its hash in `removed`, so the walk can tell a
//! row the queue removed from one deleted behind its back.

use std::path::Path;

use anpr_trust::VerifyingKey;
use anpr_trust::chain::{JournalWalk, Mismatch, Walk};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::schema::{SCHEMA_VERSION, key, meta_get};
use crate::sqlite::sql_error;
use crate::{Store, StoreError, sha256_hex};

/// The hash of the last event appended, if any was appended since hashes are kept.
pub(crate) fn head(tx: &Transaction<'_>) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT hash FROM chain_head WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()
}

/// Moves the head to the event `seq` with hash `hash`.
pub(crate) fn set_head(tx: &Transaction<'_>, seq: u64, hash: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO chain_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )?
    .execute(params![seq as i64, hash])?;
    Ok(())
}

/// Records that the row `seq` is being removed by the queue itself; call before deleting it.
/// Adjacent removed rows are kept as one run.
pub(crate) fn record_removed(tx: &Transaction<'_>, seq: i64) -> rusqlite::Result<()> {
    let hash: Option<String> = tx
        .prepare_cached("SELECT hash FROM events WHERE seq = ?1")?
        .query_row(params![seq], |r| r.get(0))
        .optional()?
        .flatten();
    let before: Option<i64> = tx
        .prepare_cached("SELECT first_seq FROM removed WHERE last_seq = ?1")?
        .query_row(params![seq - 1], |r| r.get(0))
        .optional()?;
    let first = if let Some(first) = before {
        tx.prepare_cached("UPDATE removed SET last_seq = ?1, last_hash = ?2 WHERE first_seq = ?3")?
            .execute(params![seq, hash, first])?;
        first
    } else {
        tx.prepare_cached(
            "INSERT INTO removed (first_seq, last_seq, last_hash) VALUES (?1, ?1, ?2)",
        )?
        .execute(params![seq, hash])?;
        seq
    };
    let after: Option<(i64, Option<String>)> = tx
        .prepare_cached("SELECT last_seq, last_hash FROM removed WHERE first_seq = ?1")?
        .query_row(params![seq + 1], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((last, last_hash)) = after {
        tx.prepare_cached("DELETE FROM removed WHERE first_seq = ?1")?
            .execute(params![seq + 1])?;
        tx.prepare_cached("UPDATE removed SET last_seq = ?1, last_hash = ?2 WHERE first_seq = ?3")?
            .execute(params![last, last_hash, first])?;
    }
    Ok(())
}

/// Migration 4: hashes for the rows written before hashes were kept, the gaps among them
/// recorded as removed (their hashes unknown), and the head on the last row if it is there.
pub(crate) fn hash_existing_rows(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let rows: Vec<(i64, Option<String>)> = {
        let mut stmt = tx.prepare("SELECT seq, payload FROM events ORDER BY seq")?;
        let mut out = Vec::new();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let payload: String = r.get(1)?;
            let hash = serde_json::from_str::<anpr_types::Event>(&payload)
                .ok()
                .map(|e| anpr_trust::event::event_hash(&e));
            out.push((seq, hash));
        }
        out
    };
    let next_seq = meta_get(tx, key::NEXT_SEQ)? as i64;
    let mut expected = 1i64;
    for (seq, hash) in &rows {
        tx.execute(
            "UPDATE events SET hash = ?1 WHERE seq = ?2",
            params![hash, seq],
        )?;
        if *seq > expected {
            tx.execute(
                "INSERT INTO removed (first_seq, last_seq, last_hash) VALUES (?1, ?2, NULL)",
                params![expected, seq - 1],
            )?;
        }
        expected = seq + 1;
    }
    if expected < next_seq {
        tx.execute(
            "INSERT INTO removed (first_seq, last_seq, last_hash) VALUES (?1, ?2, NULL)",
            params![expected, next_seq - 1],
        )?;
    }
    if let Some((seq, Some(hash))) = rows.last()
        && *seq == next_seq - 1
    {
        set_head(tx, *seq as u64, hash)?;
    }
    Ok(())
}

/// What walking a queue found (see [`anpr_trust::chain::Report`]).
pub type VerifyReport = anpr_trust::chain::Report;

/// Walks the queue at `path` without changing it (a queue from older software is refused:
/// the device migrates it when it starts). See [`Store::verify`].
pub fn verify_queue(
    path: &Path,
    key: Option<&VerifyingKey>,
    progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            source: rusqlite::Error::InvalidPath(path.to_path_buf()),
        });
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let sql = sql_error(path);
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(&sql)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&sql)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        return Err(StoreError::TooOld {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    walk(&conn, path, key, progress)
}

impl Store {
    /// Walks the whole queue in sequence order: every event's hash recomputed and compared
    /// with the one recorded when it was appended, every `prev_hash` compared with the hash of
    /// the row before (or of the run of rows the queue removed before it), every signature
    /// checked when `key` is given, every evidence image still held hashed again; a sequence
    /// number neither present nor recorded as removed is a deleted row. Stops at the first
    /// row that does not match ([`VerifyReport::mismatch`]). Then walks the journal's chain
    /// the same way, every row's hash and link checked and its head compared with the one
    /// recorded, naming the first journal row that does not match
    /// ([`VerifyReport::journal_mismatch`]). `progress(done, total)` is called every 10,000
    /// rows.
    pub fn verify(
        &self,
        key: Option<&VerifyingKey>,
        progress: impl FnMut(u64, u64),
    ) -> Result<VerifyReport, StoreError> {
        walk(&self.conn, &self.path, key, progress)
    }
}

/// How often `progress` is called.
const PROGRESS_EVERY: u64 = 10_000;

fn walk(
    conn: &Connection,
    path: &Path,
    key: Option<&VerifyingKey>,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, StoreError> {
    let sql = sql_error(path);
    let last_seq = meta_get(conn, key::NEXT_SEQ)
        .map_err(&sql)?
        .saturating_sub(1);
    let total = meta_get(conn, key::PRESENT).map_err(&sql)?;
    let head: Option<String> = conn
        .query_row("SELECT hash FROM chain_head WHERE id = 1", [], |r| r.get(0))
        .optional()
        .map_err(&sql)?;
    let removed: Vec<(u64, u64, Option<String>)> = conn
        .prepare("SELECT first_seq, last_seq, last_hash FROM removed ORDER BY first_seq")
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u64,
                    r.get(2)?,
                ))
            })?
            .collect()
        })
        .map_err(&sql)?;
    let mut removed = removed.into_iter().peekable();
    let mut walk = Walk::new(key, true);
    let mut report = VerifyReport {
        last_seq,
        signatures_checked: key.is_some(),
        ..VerifyReport::default()
    };
    let mut images = conn
        .prepare("SELECT kind, sha256, data FROM evidence WHERE seq = ?1 ORDER BY kind")
        .map_err(&sql)?;
    let mut stmt = conn
        .prepare("SELECT seq, hash, payload FROM events ORDER BY seq")
        .map_err(&sql)?;
    let mut rows = stmt.query([]).map_err(&sql)?;
    let outcome = 'walk: {
        while let Some(r) = rows.next().map_err(&sql)? {
            let seq = r.get::<_, i64>(0).map_err(&sql)? as u64;
            let stored: Option<String> = r.get(1).map_err(&sql)?;
            let payload: String = r.get(2).map_err(&sql)?;
            while let Some((first, last, hash)) = removed.next_if(|(first, ..)| *first < seq) {
                if let Err(m) = walk.removed(first, last, hash.as_deref()) {
                    break 'walk Some(m);
                }
            }
            let event = match serde_json::from_str::<anpr_types::Event>(&payload) {
                Ok(e) => e,
                Err(e) => {
                    break 'walk Some(Mismatch {
                        seq,
                        what: format!("its payload is not a valid event ({e}): edited or torn"),
                    });
                }
            };
            if let Err(m) = walk.row(seq, stored.as_deref(), &event) {
                break 'walk Some(m);
            }
            match check_images(&mut images, seq, &event) {
                Ok(Ok(n)) => report.images += n,
                Ok(Err(m)) => break 'walk Some(m),
                Err(e) => return Err(sql(e)),
            }
            if walk.rows.is_multiple_of(PROGRESS_EVERY) {
                progress(walk.rows, total);
            }
        }
        for (first, last, hash) in removed.by_ref() {
            if let Err(m) = walk.removed(first, last, hash.as_deref()) {
                break 'walk Some(m);
            }
        }
        walk.finish(last_seq, head.as_deref()).err()
    };
    report.rows = walk.rows;
    report.legacy = walk.legacy;
    report.removed = walk.removed;
    report.mismatch = outcome;
    let journal = walk_journal(conn).map_err(&sql)?;
    report.journal_rows = journal.0.rows;
    report.journal_head = journal.0.head();
    report.journal_mismatch = journal.1;
    Ok(report)
}

/// Walks the journal's chain in id order, then checks its recorded head.
fn walk_journal(conn: &Connection) -> rusqlite::Result<(JournalWalk, Option<Mismatch>)> {
    let mut walk = JournalWalk::new();
    let head = crate::journal::journal_head(conn)?;
    let mut stmt =
        conn.prepare("SELECT id, at, kind, detail, prev_hash, hash FROM journal ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id = r.get::<_, i64>(0)? as u64;
        let (at, kind, detail): (String, String, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
        let (prev, hash): (Option<String>, Option<String>) = (r.get(4)?, r.get(5)?);
        if let Err(m) = walk.row(id, &at, &kind, &detail, prev.as_deref(), hash.as_deref()) {
            return Ok((walk, Some(m)));
        }
    }
    let mismatch = walk.finish(head.as_ref()).err();
    Ok((walk, mismatch))
}

/// Checks the evidence rows of the event `seq`: each is one the event names (kind and sha256),
/// each one still held hashes to its sha256, and none the event names is missing. Returns the
/// images hashed.
fn check_images(
    stmt: &mut rusqlite::Statement<'_>,
    seq: u64,
    event: &anpr_types::Event,
) -> rusqlite::Result<Result<u64, Mismatch>> {
    let rows: Vec<(String, String, Option<Vec<u8>>)> = stmt
        .query_map(params![seq as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let fail = |what: String| Ok(Err(Mismatch { seq, what }));
    let mut hashed = 0;
    for (kind, sha, data) in &rows {
        if !event
            .evidence
            .iter()
            .any(|r| r.kind == *kind && r.sha256 == *sha)
        {
            return fail(format!(
                "its {kind} image has sha256 {}…, which its event does not name: replaced",
                sha.get(..12).unwrap_or(sha)
            ));
        }
        if let Some(data) = data {
            hashed += 1;
            if sha256_hex(data) != *sha {
                return fail(format!(
                    "the bytes of its {kind} image do not hash to their sha256: edited"
                ));
            }
        }
    }
    for r in &event.evidence {
        if !rows.iter().any(|(kind, ..)| *kind == r.kind) {
            return fail(format!(
                "its {} image, named by the event, is missing from the queue: deleted",
                r.kind
            ));
        }
    }
    Ok(Ok(hashed))
}

#[cfg(test)]
mod tests {
    use anpr_trust::SigningKey;
    use anpr_trust::event::{event_hash, verify_event};

    use crate::tests::{event, image, violation};
    use crate::{AckOutcome, AckRef, Store, verify_queue};

    fn key() -> SigningKey {
        SigningKey::generate(&mut rand_core::OsRng)
    }

    #[test]
    fn appended_events_are_signed_and_chained_across_batches_and_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let k = key();
        let mut s = Store::open(&path).unwrap().with_signer(k.clone());
        let first = s.append(event).unwrap();
        assert_eq!(first.prev_hash.as_deref(), Some(anpr_trust::ZERO_HASH));
        let batch = (0..3)
            .map(|_| crate::NewRecord {
                build: Box::new(event),
                evidence: vec![image("plate", 4, 30)],
            })
            .collect();
        let b = s.append_batch(batch).unwrap();
        // Another connection (a camera's gap) goes on from the same head.
        let mut other = Store::open(&path).unwrap().with_signer(k.clone());
        let c = other.append(event).unwrap();
        let all = [vec![first], b, vec![c]].concat();
        for pair in all.windows(2) {
            assert_eq!(pair[1].prev_hash, Some(event_hash(&pair[0])));
        }
        for e in &all {
            verify_event(e, &k.verifying_key()).unwrap();
            assert_eq!(&s.get(e.seq).unwrap().unwrap(), e, "stored as returned");
        }
        let report = s.verify(Some(&k.verifying_key()), |_, _| {}).unwrap();
        assert_eq!(report.mismatch, None);
        assert_eq!((report.rows, report.images, report.last_seq), (5, 3, 5));
    }

    #[test]
    fn a_queue_that_pruned_dropped_and_quarantined_rows_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let k = key();
        let mut s = Store::open(&path).unwrap().with_signer(k.clone());
        for i in 0..30u8 {
            let build = if i % 3 == 0 { violation } else { event };
            let e = s
                .append_with(build, vec![image("overview", i, 10_000)])
                .unwrap();
            if i % 4 == 0 {
                s.mark_delivered(e.event_id, e.seq).unwrap();
            }
        }
        s.conn
            .execute("UPDATE events SET payload = 'torn' WHERE seq = 30", [])
            .unwrap();
        assert!(s.quarantine(30, "torn").unwrap());
        let used = s.bytes_used().unwrap();
        let mut s = s.with_quota(Some(used * 2 / 3));
        let mut appended = 0;
        while s.pruned().unwrap() == 0 || s.drops().unwrap().passage_evidence == 0 {
            assert!(appended < 20, "the quota neither pruned nor dropped");
            s.append_with(event, vec![image("plate", 7, 10_000)])
                .unwrap();
            appended += 1;
        }
        let report = verify_queue(&path, Some(&k.verifying_key()), |_, _| {}).unwrap();
        assert_eq!(report.mismatch, None, "{report:?}");
        assert_eq!(report.rows + report.removed, 30 + appended, "{report:?}");
        assert!(report.removed > 2, "{report:?}");
    }

    #[test]
    fn an_edited_plate_is_named_by_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let k = key();
        let mut s = Store::open(&path).unwrap().with_signer(k.clone());
        for _ in 0..5 {
            s.append(event).unwrap();
        }
        s.conn
            .execute(
                "UPDATE events SET payload = json_set(payload, '$.plate.text', '777KZA02') WHERE seq = 3",
                [],
            )
            .unwrap();
        for key in [Some(k.verifying_key()), None] {
            let m = verify_queue(&path, key.as_ref(), |_, _| {})
                .unwrap()
                .mismatch
                .unwrap();
            assert_eq!(m.seq, 3, "{m}");
        }
        // Its stored hash rewritten too: the signature still names it, and without the key
        // the next row's link does.
        let edited = s.get(3).unwrap().unwrap();
        s.conn
            .execute(
                "UPDATE events SET hash = ?1 WHERE seq = 3",
                [event_hash(&edited)],
            )
            .unwrap();
        let m = s.verify(Some(&k.verifying_key()), |_, _| {}).unwrap();
        assert_eq!(m.mismatch.unwrap().seq, 3);
        let m = s.verify(None, |_, _| {}).unwrap().mismatch.unwrap();
        assert_eq!(m.seq, 4, "{m}");
        assert!(m.what.contains("row 3"), "{m}");
    }

    #[test]
    fn a_deleted_row_or_image_is_a_break() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let mut s = Store::open(&path).unwrap().with_signer(key());
        for i in 0..4 {
            s.append_with(event, vec![image("overview", i, 100)])
                .unwrap();
        }
        s.conn
            .execute("DELETE FROM evidence WHERE seq = 4", [])
            .unwrap();
        let m = s.verify(None, |_, _| {}).unwrap().mismatch.unwrap();
        assert_eq!(m.seq, 4);
        assert!(
            m.what.contains("image") && m.what.contains("deleted"),
            "{m}"
        );
        s.conn
            .execute("DELETE FROM events WHERE seq = 2", [])
            .unwrap();
        let m = s.verify(None, |_, _| {}).unwrap().mismatch.unwrap();
        assert_eq!(m.seq, 2, "{m}");
        assert!(m.what.contains("deleted, a break in the chain"), "{m}");
    }

    #[test]
    fn the_last_row_deleted_is_found_from_the_sequence_counter() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        for _ in 0..3 {
            s.append(event).unwrap();
        }
        s.conn
            .execute("DELETE FROM events WHERE seq = 3", [])
            .unwrap();
        let m = s.verify(None, |_, _| {}).unwrap().mismatch.unwrap();
        assert_eq!(m.seq, 3, "{m}");
    }

    #[test]
    fn an_ack_is_taken_only_with_the_rows_own_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let e = s.append(event).unwrap();
        let right = event_hash(&e);
        let wrong = anpr_trust::sha256_hex(b"another event");
        let ack = |hash| AckRef {
            event_id: e.event_id,
            seq: e.seq,
            image: None,
            hash: Some(hash),
        };
        assert_eq!(
            s.mark_acknowledged(&[ack(&wrong)]).unwrap(),
            [AckOutcome::Unknown]
        );
        assert_eq!(s.is_delivered(e.seq).unwrap(), Some(false));
        assert_eq!(
            s.mark_acknowledged(&[ack(&right)]).unwrap(),
            [AckOutcome::Marked]
        );
    }

    /// A queue with three journal rows (a clock jump, a quarantine, a camera gap) and two
    /// events.
    fn journaled(path: &std::path::Path) -> Store {
        let mut s = Store::open(path).unwrap().with_signer(key());
        s.append(event).unwrap();
        let now = chrono::Utc::now();
        s.record_clock_jump(now, now + chrono::Duration::minutes(1), 60.0)
            .unwrap();
        let e = s.append(event).unwrap();
        s.conn
            .execute("UPDATE events SET payload = 'torn' WHERE seq = 2", [])
            .unwrap();
        assert!(s.quarantine(e.seq, "torn").unwrap());
        s.append_journaled(event, "camera-gap", &serde_json::json!({"camera": "cam1"}))
            .unwrap();
        s
    }

    #[test]
    fn the_journal_is_chained_and_its_head_follows_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let s = journaled(&path);
        let head = s.journal_head().unwrap().unwrap();
        assert_eq!(head.seq, 3);
        let report = verify_queue(&path, None, |_, _| {}).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.journal_rows, 3);
        assert_eq!(report.journal_head, Some(head));
        let kinds: Vec<String> = s.journal(0).unwrap().into_iter().map(|j| j.kind).collect();
        assert_eq!(kinds, ["clock-jump", "quarantined-event", "camera-gap"]);
    }

    #[test]
    fn an_edited_journal_row_is_named_by_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let s = journaled(&path);
        s.conn
            .execute(
                "UPDATE journal SET detail = json_set(detail, '$.step_s', 0.5) WHERE id = 1",
                [],
            )
            .unwrap();
        let report = verify_queue(&path, None, |_, _| {}).unwrap();
        assert_eq!(report.mismatch, None, "the events are intact");
        assert!(!report.is_intact());
        let m = report.journal_mismatch.unwrap();
        assert_eq!(m.seq, 1, "{m}");
        assert!(m.what.contains("edited"), "{m}");
        // Its stored hash rewritten too: the next row's link names it.
        let (at, kind, detail, prev): (String, String, String, String) = s
            .conn
            .query_row(
                "SELECT at, kind, detail, prev_hash FROM journal WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let forged = anpr_trust::chain::JournalRow {
            id: 1,
            at: &at,
            kind: &kind,
            detail: &detail,
            prev_hash: &prev,
        }
        .hash();
        s.conn
            .execute("UPDATE journal SET hash = ?1 WHERE id = 1", [forged])
            .unwrap();
        let m = s.verify(None, |_, _| {}).unwrap().journal_mismatch.unwrap();
        assert_eq!(m.seq, 2, "{m}");
        assert!(m.what.contains("journal row 1"), "{m}");
    }

    #[test]
    fn a_deleted_journal_row_is_a_break_in_the_journal_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let mut s = journaled(&path);
        s.conn
            .execute("DELETE FROM journal WHERE id = 2", [])
            .unwrap();
        let m = s.verify(None, |_, _| {}).unwrap().journal_mismatch.unwrap();
        assert_eq!(m.seq, 2, "{m}");
        assert!(
            m.what.contains("deleted, a break in the journal chain"),
            "{m}"
        );
        // The last row deleted: the recorded head still names it, and the next entry does not
        // take its id.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        s = journaled(&path);
        s.conn
            .execute("DELETE FROM journal WHERE id = 3", [])
            .unwrap();
        let m = s.verify(None, |_, _| {}).unwrap().journal_mismatch.unwrap();
        assert_eq!(m.seq, 3, "{m}");
        assert!(m.what.contains("deleted"), "{m}");
        let now = chrono::Utc::now();
        s.record_clock_jump(now, now, 3.0).unwrap();
        assert_eq!(s.journal_head().unwrap().unwrap().seq, 4);
        let m = s.verify(None, |_, _| {}).unwrap().journal_mismatch.unwrap();
        assert_eq!(m.seq, 3, "{m}");
    }
}
