//! The device's journal: every drop the quota forced, every jump of the wall clock and every
//! gap in a live camera's frames, with the time it happened, written in the transaction of
//! what it records.

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

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

/// Adds an entry inside the caller's transaction.
pub(crate) fn journal_add(
    tx: &Transaction<'_>,
    kind: &str,
    detail: &serde_json::Value,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO journal (at, kind, detail) VALUES (?1, ?2, ?3)")?
        .execute(params![ts(Utc::now()), kind, detail.to_string()])?;
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
