//! The device's journal: every drop the quota forced, every jump of the wall clock and every
//! gap in a live camera's frames, with the time it happened, written in the transaction of
//! what it records.
//!
//! The journal is a hash chain of its own ([`anpr_trust::chain::JournalRow`]): each row holds
//! the hash of the row before it (`prev_hash`, read under the write lock) and its own `hash`,
//! and `journal_head` keeps the id and hash of the last row written. Rows are never removed.

use anpr_trust::chain::JournalRow;
use anpr_types::ChainHead;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::schema::{key, meta_add, meta_get};
use crate::sqlite::{rows4, sql_error, ts};
use crate::{Store, StoreError};

/// An entry of the device's journal: drops and clock jumps, with the time they happened.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub id: u64,
    pub at: DateTime<Utc>,
    /// `dropped-event`, `dropped-evidence`, `clock-jump`, `camera-gap` (a live camera's
    /// outage: camera, from, to, frames lost, reason, and the sequence number of its
    /// `camera_gap` event).
    pub kind: String,
    pub detail: serde_json::Value,
}

/// Adds an entry inside the caller's transaction, chained to the journal's head.
pub(crate) fn journal_add(
    tx: &Transaction<'_>,
    kind: &str,
    detail: &serde_json::Value,
) -> rusqlite::Result<()> {
    let head = journal_head(tx)?;
    let max: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM journal")?
        .query_row([], |r| r.get(0))?;
    // After the head, never reusing an id, also if the last row was deleted behind our back.
    let id = head.as_ref().map_or(0, |h| h.seq).max(max as u64) + 1;
    let prev_hash = head.map_or_else(|| anpr_trust::ZERO_HASH.to_string(), |h| h.hash);
    let (at, detail) = (ts(Utc::now()), detail.to_string());
    let hash = JournalRow {
        id,
        at: &at,
        kind,
        detail: &detail,
        prev_hash: &prev_hash,
    }
    .hash();
    tx.prepare_cached(
        "INSERT INTO journal (id, at, kind, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id as i64, at, kind, detail, prev_hash, hash])?;
    set_journal_head(tx, id, &hash)
}

/// The id and hash of the last journal row written, if any.
pub(crate) fn journal_head(conn: &Connection) -> rusqlite::Result<Option<ChainHead>> {
    conn.prepare_cached("SELECT seq, hash FROM journal_head WHERE id = 1")?
        .query_row([], |r| {
            Ok(ChainHead {
                seq: r.get::<_, i64>(0)? as u64,
                hash: r.get(1)?,
            })
        })
        .optional()
}

fn set_journal_head(tx: &Transaction<'_>, id: u64, hash: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO journal_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )?
    .execute(params![id as i64, hash])?;
    Ok(())
}

/// Migration 5: the rows written before the journal was chained are chained now, in id order,
/// and the head set on the last of them.
pub(crate) fn chain_existing_journal(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let rows = rows4(
        tx,
        "SELECT id, at, kind, detail FROM journal ORDER BY id",
        [],
    )?;
    let mut prev = anpr_trust::ZERO_HASH.to_string();
    for (id, at, kind, detail) in &rows {
        let hash = JournalRow {
            id: *id,
            at,
            kind,
            detail,
            prev_hash: &prev,
        }
        .hash();
        tx.execute(
            "UPDATE journal SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
            params![prev, hash, *id as i64],
        )?;
        prev = hash;
    }
    if let Some((id, ..)) = rows.last() {
        set_journal_head(tx, *id, &prev)?;
    }
    Ok(())
}

impl Store {
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
        .and_then(|()| meta_add(&tx, key::CLOCK_JUMPS, 1))
        .map_err(&sql)?;
        tx.commit().map_err(&sql)
    }

    /// Wall-clock jumps recorded with [`Store::record_clock_jump`].
    pub fn clock_jumps(&self) -> Result<u64, StoreError> {
        meta_get(&self.conn, key::CLOCK_JUMPS).map_err(self.sql())
    }

    /// The journal's head: id and hash of the last row written (none while it is empty). The
    /// uplink puts it in every health message.
    pub fn journal_head(&self) -> Result<Option<ChainHead>, StoreError> {
        journal_head(&self.conn).map_err(self.sql())
    }

    /// Journal entries with id above `after`, oldest first.
    pub fn journal(&self, after: u64) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = rows4(
            &self.conn,
            "SELECT id, at, kind, detail FROM journal WHERE id > ?1 ORDER BY id",
            params![after as i64],
        )
        .map_err(self.sql())?;
        Ok(rows
            .into_iter()
            .map(|(id, at, kind, detail)| JournalEntry {
                id,
                at: DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default(),
                kind,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use crate::Store;

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

    #[test]
    fn an_event_and_its_journal_entry_are_written_together() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        s.append(crate::tests::event).unwrap();
        let detail = serde_json::json!({"camera": "cam1", "frames_lost": 500});
        let e = s
            .append_journaled(crate::tests::event, "camera-gap", &detail)
            .unwrap();
        assert_eq!(e.seq, 2);
        let j = s.journal(0).unwrap();
        assert_eq!(j.len(), 1);
        assert_eq!((j[0].kind.as_str(), &j[0].detail), ("camera-gap", &detail));
        assert_eq!(s.stats().unwrap().pending, 2);
    }
}
