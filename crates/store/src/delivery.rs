//! Delivery of events: the rows still owed to the central receiver, sending attempts,
//! acknowledgements (of events and of their images), and the queue's counts.

use anpr_types::Event;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use crate::schema::{key, meta_add};
use crate::sqlite::{sql_error, ts};
use crate::{Store, StoreError};

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

/// An acknowledgement to apply, as the uplink checked it: of the event `event_id` / `seq`,
/// or of its evidence image with sha256 `image`. `hash` is the hash the receiver says it
/// stored (signed by it): the row is marked only if that is the row's own hash (an image's
/// ack names the image's sha256 in `image`). `None` checks no hash (tests of the queue alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRef<'a> {
    pub event_id: Uuid,
    pub seq: u64,
    pub image: Option<&'a str>,
    pub hash: Option<&'a str>,
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
    /// Events present (pruned ones are gone).
    pub total: u64,
    pub pending: u64,
    pub delivered: u64,
    /// Highest sequence number ever assigned (0 for a new queue).
    pub last_seq: u64,
}

impl Store {
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
            let event = parse(seq, &payload)?;
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

    /// Takes an undelivered row whose payload cannot be read ([`StoreError::Corrupt`]) out of
    /// delivery, so the rows after it still go out: the row and its images leave the queue and
    /// the journal keeps what it held (`quarantined-event`: sequence number, why, and the raw
    /// payload), in one transaction. The receiver sees the sequence number missing. Returns
    /// false when no undelivered row has this sequence number.
    pub fn quarantine(&mut self, seq: u64, reason: &str) -> Result<bool, StoreError> {
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        let row: Option<(String, String)> = tx
            .query_row(
                "SELECT event_id, payload FROM events WHERE seq = ?1 AND delivered_at IS NULL",
                params![seq as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&sql)?;
        let Some((event_id, payload)) = row else {
            return Ok(false);
        };
        crate::chain::record_removed(&tx, seq as i64).map_err(&sql)?;
        tx.execute("DELETE FROM evidence WHERE seq = ?1", params![seq as i64])
            .map_err(&sql)?;
        tx.execute("DELETE FROM events WHERE seq = ?1", params![seq as i64])
            .map_err(&sql)?;
        crate::journal::journal_add(
            &tx,
            "quarantined-event",
            &serde_json::json!({"seq": seq, "event_id": event_id, "reason": reason,
                "payload": payload}),
        )
        .map_err(&sql)?;
        meta_add(&tx, key::PRESENT, -1).map_err(&sql)?;
        meta_add(&tx, key::PENDING, -1).map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(true)
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
        payload.map(|p| parse(seq, &p)).transpose()
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
    /// outcomes come back in the same order. No hash is checked: see
    /// [`Store::mark_acknowledged`].
    pub fn mark_delivered_batch(
        &mut self,
        acks: &[(Uuid, u64, Option<&str>)],
    ) -> Result<Vec<AckOutcome>, StoreError> {
        let refs: Vec<AckRef<'_>> = acks
            .iter()
            .map(|(event_id, seq, image)| AckRef {
                event_id: *event_id,
                seq: *seq,
                image: *image,
                hash: None,
            })
            .collect();
        self.mark_acknowledged(&refs)
    }

    /// Applies acknowledgements in one transaction (one sync to disk); an event's ack marks
    /// its row only when its `hash` (if given) is the row's hash, so an ack for another
    /// content of this row is [`AckOutcome::Unknown`]. The outcomes come back in the same
    /// order.
    pub fn mark_acknowledged(
        &mut self,
        acks: &[AckRef<'_>],
    ) -> Result<Vec<AckOutcome>, StoreError> {
        let now = ts(Utc::now());
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        let mut out = Vec::with_capacity(acks.len());
        let mut events_marked = 0i64;
        {
            let mut find = tx
                .prepare_cached(
                    "SELECT delivered_at IS NOT NULL FROM events
                     WHERE seq = ?1 AND event_id = ?2 AND (?3 IS NULL OR hash = ?3)",
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
            // An acknowledged image's bytes are released at once, except a violation's: a
            // violation keeps its evidence on the device as long as itself (`retention.rs`).
            let mut mark_image = tx
                .prepare_cached(
                    "UPDATE evidence SET delivered_at = ?1,
                       data = CASE WHEN (SELECT kind FROM events WHERE seq = ?2) = 'violation'
                                   THEN data END
                     WHERE seq = ?2 AND sha256 = ?3 AND delivered_at IS NULL",
                )
                .map_err(&sql)?;
            for AckRef {
                event_id: id,
                seq,
                image,
                hash,
            } in acks
            {
                let state: Option<bool> = match image {
                    None => {
                        find.query_row(params![*seq as i64, id.to_string(), hash], |r| r.get(0))
                    }
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
                            None => {
                                events_marked += 1;
                                mark.execute(params![now, *seq as i64])
                                    .and_then(|_| ready.execute(params![*seq as i64]))
                            }
                            Some(sha) => mark_image.execute(params![now, *seq as i64, sha]),
                        }
                        .map_err(&sql)?;
                        AckOutcome::Marked
                    }
                });
            }
        }
        meta_add(&tx, key::PENDING, -events_marked).map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(out)
    }

    /// Number of undelivered rows (a counter: no scan of the queue).
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        Ok(self.stats()?.pending)
    }

    /// Totals of the queue, read from the counters kept with the rows (one indexed read of
    /// three keys, consistent with each other; no scan of the queue).
    pub fn stats(&self) -> Result<QueueStats, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM meta WHERE key IN (?1, ?2, ?3)")
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![key::NEXT_SEQ, key::PRESENT, key::PENDING], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })
            .map_err(self.sql())?;
        let (mut next_seq, mut total, mut pending) = (0, 0, 0);
        for row in rows {
            let (k, v) = row.map_err(self.sql())?;
            match k.as_str() {
                key::NEXT_SEQ => next_seq = v,
                key::PRESENT => total = v,
                _ => pending = v,
            }
        }
        Ok(QueueStats {
            total,
            pending,
            delivered: total.saturating_sub(pending),
            last_seq: next_seq.saturating_sub(1),
        })
    }
}

fn parse(seq: u64, payload: &str) -> Result<Event, StoreError> {
    serde_json::from_str(payload).map_err(|e| StoreError::Corrupt {
        seq,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use crate::tests::event;
    use crate::{AckOutcome, QueueStats, Store};

    #[test]
    fn a_corrupt_row_between_two_good_ones_is_quarantined_and_the_good_ones_stay_pending() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        for _ in 0..3 {
            s.append(event).unwrap();
        }
        s.conn
            .execute(
                "UPDATE events SET payload = 'not an event' WHERE seq = 2",
                [],
            )
            .unwrap();
        let err = s.pending(0, 10).unwrap_err();
        assert!(
            matches!(err, crate::StoreError::Corrupt { seq: 2, .. }),
            "{err}"
        );
        assert!(s.quarantine(2, &err.to_string()).unwrap());
        assert!(
            !s.quarantine(2, "again").unwrap(),
            "nothing left to quarantine"
        );
        let seqs: Vec<u64> = s.pending(0, 10).unwrap().iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [1, 3]);
        let stats = s.stats().unwrap();
        assert_eq!((stats.total, stats.pending, stats.last_seq), (2, 2, 3));
        let journal = s.journal(0).unwrap();
        let q = journal
            .iter()
            .find(|j| j.kind == "quarantined-event")
            .unwrap();
        assert_eq!(q.detail["seq"], 2);
        assert_eq!(
            q.detail["payload"], "not an event",
            "what the row held is kept"
        );
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
    fn the_payload_round_trips_with_its_capture_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let a = s.append(event).unwrap();
        let p = &s.pending(0, 1).unwrap()[0];
        assert_eq!(p.event, a);
        assert_eq!(p.captured_at, a.captured_at);
    }

    #[test]
    fn stats_read_counters_without_scanning_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let plan: Vec<String> = s
            .conn
            .prepare("EXPLAIN QUERY PLAN SELECT key, value FROM meta WHERE key IN (?1, ?2, ?3)")
            .unwrap()
            .query_map(["a", "b", "c"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().all(|p| !p.starts_with("SCAN")),
            "stats scan: {plan:?}"
        );
        assert_eq!(s.stats().unwrap(), QueueStats::default());
    }

    #[test]
    fn an_ack_for_an_image_does_not_change_the_count_of_pending_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let e = s
            .append_with(event, vec![crate::tests::image("overview", 1, 10)])
            .unwrap();
        s.append(event).unwrap();
        let sha = e.evidence[0].sha256.as_str();
        let out = s
            .mark_delivered_batch(&[
                (e.event_id, e.seq, None),
                (e.event_id, e.seq, Some(sha)),
                (e.event_id, e.seq, None),
            ])
            .unwrap();
        assert_eq!(
            out,
            vec![
                AckOutcome::Marked,
                AckOutcome::Marked,
                AckOutcome::AlreadyDelivered
            ]
        );
        assert_eq!(
            (s.stats().unwrap().pending, s.pending_count().unwrap()),
            (1, 1)
        );
    }
}
