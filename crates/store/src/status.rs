//! Read-only figures for the status page and the metrics: the oldest event still owed to the
//! central receiver. Reads the `events_pending` index only (one row), never the payloads.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use crate::{Store, StoreError};

/// The undelivered event with the lowest sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldestPending {
    pub seq: u64,
    /// Its capture time, as recorded.
    pub captured_at: DateTime<Utc>,
}

impl Store {
    /// The oldest undelivered event (lowest sequence), or `None` when everything is delivered.
    pub fn oldest_pending(&self) -> Result<Option<OldestPending>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT seq, captured_at FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT 1",
            )
            .map_err(self.sql())?
            .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .optional()
            .map_err(self.sql())?;
        let Some((seq, at)) = row else {
            return Ok(None);
        };
        let captured_at = DateTime::parse_from_rfc3339(&at)
            .map_err(|e| StoreError::Corrupt {
                seq: seq as u64,
                message: format!("captured_at {at:?}: {e}"),
            })?
            .with_timezone(&Utc);
        Ok(Some(OldestPending {
            seq: seq as u64,
            captured_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use crate::tests::event;

    #[test]
    fn the_oldest_pending_event_follows_the_acknowledgements() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        assert_eq!(s.oldest_pending().unwrap(), None);
        let first = s.append(event).unwrap();
        let second = s.append(event).unwrap();
        let oldest = s.oldest_pending().unwrap().unwrap();
        assert_eq!(oldest.seq, first.seq);
        // Stored with microseconds, so the time read back is the one recorded.
        assert_eq!(
            oldest.captured_at.timestamp_micros(),
            first.captured_at.timestamp_micros()
        );
        s.mark_delivered(first.event_id, first.seq).unwrap();
        assert_eq!(s.oldest_pending().unwrap().unwrap().seq, second.seq);
        s.mark_delivered(second.event_id, second.seq).unwrap();
        assert_eq!(s.oldest_pending().unwrap(), None);
    }
}
