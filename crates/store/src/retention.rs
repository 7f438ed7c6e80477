//! How long delivered records stay on the device, and the removal of those whose time is over.
//!
//! The device is a buffer, not the archive (the one-year archive is the central receiver's):
//! a record stays here until the central receiver has acknowledged it (or, handed over in an
//! export bundle, until the import is acknowledged), and a delivered violation at least
//! [`Retention::keep_violations_days`] after its capture. [`Store::expire`], run once an
//! hour by the uplink's queue thread with the wall clock (any clock in tests), removes the
//! delivered rows whose time is over: violations after `keep_violations_days`, every other
//! kind after `keep_passages_days`. A row is removed only when it and every one of its images
//! are acknowledged (or the image was dropped by the quota).
//!
//! Every removal, here or by the quota (`append`), is journaled: one `pruned` row per batch,
//! in the transaction of the removal, with the reason, the counts by kind and the range of
//! sequence numbers; each removed row also leaves its hash in `removed`, so the event chain
//! still verifies.
//!
//! The policy is kept in the queue's `meta` table ([`Store::set_retention`], called by the
//! device at start from `[storage]`), so every connection on the queue (the recognizers' with
//! the quota, the uplink's with the cleanup) applies the same one.

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{Connection, Transaction, params};

use crate::chain::record_removed;
use crate::journal::journal_add;
use crate::schema::{key, meta_add, meta_get};
use crate::sqlite::{sql_error, ts};
use crate::{Store, StoreError};

/// Rows removed by one batch of the cleanup at most (one journal row each).
const EXPIRE_BATCH: usize = 1000;

/// How long delivered records stay on the device (`[storage]` of the configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Days after capture a delivered violation and its images stay at least; neither the
    /// quota nor the cleanup removes it sooner. 0: until delivered.
    pub keep_violations_days: u32,
    /// Days after capture a delivered passage (or any other delivered record but a violation)
    /// stays before the cleanup removes it; the quota may remove it sooner. 0: until
    /// delivered.
    pub keep_passages_days: u32,
}

/// What one removal took out: rows by kind, the images removed with them, and the range of
/// their sequence numbers (not every number in the range: undelivered rows between stay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub rows: u64,
    pub passages: u64,
    pub violations: u64,
    /// Camera gaps and custody records.
    pub other: u64,
    /// Evidence rows removed with their events.
    pub images: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

impl Pruned {
    pub(crate) fn add(&mut self, other: &Pruned) {
        self.rows += other.rows;
        self.passages += other.passages;
        self.violations += other.violations;
        self.other += other.other;
        self.images += other.images;
        self.first_seq = match (self.first_seq, other.first_seq) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_seq = self.last_seq.max(other.last_seq);
    }

    /// The journal entry's detail.
    fn detail(&self, reason: &str) -> serde_json::Value {
        serde_json::json!({
            "reason": reason,
            "rows": self.rows,
            "passages": self.passages,
            "violations": self.violations,
            "other": self.other,
            "images": self.images,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
        })
    }
}

/// The policy stored in the queue (defaults where never set).
pub(crate) fn retention(conn: &Connection) -> rusqlite::Result<Retention> {
    let days = |k| meta_get(conn, k).map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    Ok(Retention {
        keep_violations_days: days(key::KEEP_VIOLATIONS_DAYS)?,
        keep_passages_days: days(key::KEEP_PASSAGES_DAYS)?,
    })
}

/// Capture times at or before this are past a keep of `days`, at `now`.
pub(crate) fn cutoff(now: DateTime<Utc>, days: u32) -> String {
    ts(now - TimeDelta::days(i64::from(days)))
}

/// Removes the delivered rows `seqs` with their images (each leaving its hash in `removed`),
/// and counts them as pruned; the caller journals the batch.
pub(crate) fn remove_delivered(tx: &Transaction<'_>, seqs: &[i64]) -> rusqlite::Result<Pruned> {
    let mut out = Pruned::default();
    for &seq in seqs {
        let kind: String = tx
            .prepare_cached("SELECT kind FROM events WHERE seq = ?1")?
            .query_row(params![seq], |r| r.get(0))?;
        record_removed(tx, seq)?;
        out.images += tx
            .prepare_cached("DELETE FROM evidence WHERE seq = ?1")?
            .execute(params![seq])? as u64;
        tx.prepare_cached("DELETE FROM events WHERE seq = ?1")?
            .execute(params![seq])?;
        match kind.as_str() {
            "passage" => out.passages += 1,
            "violation" => out.violations += 1,
            _ => out.other += 1,
        }
        out.rows += 1;
        let seq = seq as u64;
        out.first_seq = Some(out.first_seq.map_or(seq, |f| f.min(seq)));
        out.last_seq = Some(out.last_seq.map_or(seq, |l| l.max(seq)));
    }
    let n = out.rows as i64;
    meta_add(tx, key::PRUNED, n)?;
    meta_add(tx, key::PRESENT, -n)?;
    Ok(out)
}

/// Journals a batch of removals (nothing when it removed nothing).
pub(crate) fn journal_pruned(
    tx: &Transaction<'_>,
    pruned: &Pruned,
    reason: &str,
) -> rusqlite::Result<()> {
    if pruned.rows == 0 {
        return Ok(());
    }
    journal_add(tx, "pruned", &pruned.detail(reason))
}

/// Delivered rows (with every image acknowledged or dropped) captured at or before their
/// kind's cutoff, oldest first, `limit` at most.
pub(crate) fn delivered_before(
    tx: &Transaction<'_>,
    violations_cutoff: &str,
    others_cutoff: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<i64>> {
    tx.prepare_cached(
        "SELECT e.seq FROM events e
         WHERE e.delivered_at IS NOT NULL
           AND CASE WHEN e.kind = 'violation' THEN e.captured_at <= ?1
                    ELSE (?2 IS NULL OR e.captured_at <= ?2) END
           AND NOT EXISTS (SELECT 1 FROM evidence v WHERE v.seq = e.seq
                           AND v.delivered_at IS NULL AND v.dropped_at IS NULL)
         ORDER BY e.seq LIMIT ?3",
    )?
    .query_map(
        params![violations_cutoff, others_cutoff, limit as i64],
        |r| r.get(0),
    )?
    .collect()
}

impl Store {
    /// Stores the retention policy in the queue, for every connection on it; a change is
    /// journaled (`retention-policy`, with the old and new values).
    pub fn set_retention(&mut self, policy: Retention) -> Result<(), StoreError> {
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        let old = retention(&tx).map_err(&sql)?;
        if old != policy {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2), (?3, ?4)",
                params![
                    key::KEEP_VIOLATIONS_DAYS,
                    i64::from(policy.keep_violations_days),
                    key::KEEP_PASSAGES_DAYS,
                    i64::from(policy.keep_passages_days)
                ],
            )
            .and_then(|_| {
                journal_add(
                    &tx,
                    "retention-policy",
                    &serde_json::json!({
                        "keep_violations_days": policy.keep_violations_days,
                        "keep_passages_days": policy.keep_passages_days,
                        "was": {
                            "keep_violations_days": old.keep_violations_days,
                            "keep_passages_days": old.keep_passages_days,
                        },
                    }),
                )
            })
            .map_err(&sql)?;
        }
        tx.commit().map_err(&sql)
    }

    /// The retention policy stored in the queue.
    pub fn retention(&self) -> Result<Retention, StoreError> {
        retention(&self.conn).map_err(self.sql())
    }

    /// Removes the delivered rows whose time on the device is over at `now` (the wall clock
    /// on the device; any clock in tests): violations captured `keep_violations_days` or more
    /// before, other records `keep_passages_days` or more before. Undelivered rows, rows
    /// exported and not acknowledged, and delivered rows with an image still owed are never
    /// touched. One transaction and one `pruned` journal row (reason `retention`) per batch
    /// of at most 1000 rows; returns what was removed in all.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let mut total = Pruned::default();
        loop {
            let (tx, path) = self.begin_write()?;
            let sql = sql_error(path);
            let policy = retention(&tx).map_err(&sql)?;
            let seqs = delivered_before(
                &tx,
                &cutoff(now, policy.keep_violations_days),
                Some(&cutoff(now, policy.keep_passages_days)),
                EXPIRE_BATCH,
            )
            .map_err(&sql)?;
            if seqs.is_empty() {
                break;
            }
            let pruned = remove_delivered(&tx, &seqs).map_err(&sql)?;
            journal_pruned(&tx, &pruned, "retention").map_err(&sql)?;
            tx.commit().map_err(&sql)?;
            total.add(&pruned);
            if seqs.len() < EXPIRE_BATCH {
                break;
            }
        }
        if total.rows > 0 {
            tracing::info!(
                rows = total.rows,
                passages = total.passages,
                violations = total.violations,
                first_seq = total.first_seq,
                last_seq = total.last_seq,
                "Delivered records past their retention removed from the queue (journaled)."
            );
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};

    use crate::tests::{event, image, violation};
    use crate::{Retention, Store};

    fn ack_all(s: &mut Store, e: &anpr_types::Event) {
        let mut acks = vec![(e.event_id, e.seq, None)];
        acks.extend(
            e.evidence
                .iter()
                .map(|v| (e.event_id, e.seq, Some(v.sha256.as_str()))),
        );
        s.mark_delivered_batch(&acks).unwrap();
    }

    fn kinds(s: &Store) -> Vec<String> {
        s.journal(0).unwrap().into_iter().map(|j| j.kind).collect()
    }

    #[test]
    fn a_violation_stays_until_acknowledged_and_its_keep_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        s.set_retention(Retention {
            keep_violations_days: 30,
            keep_passages_days: 0,
        })
        .unwrap();
        let v = s
            .append_with(violation, vec![image("overview", 1, 1000)])
            .unwrap();
        let now = Utc::now();
        // Undelivered: kept however old it gets.
        assert_eq!(s.expire(now + TimeDelta::days(400)).unwrap().rows, 0);
        ack_all(&mut s, &v);
        // Delivered, its image with it: the image's bytes stay for the keep.
        assert_eq!(
            s.evidence(v.seq, "overview").unwrap().unwrap().len(),
            1000,
            "a delivered violation keeps its evidence"
        );
        assert_eq!(s.expire(now + TimeDelta::days(29)).unwrap().rows, 0);
        assert!(s.get(v.seq).unwrap().is_some());
        let pruned = s.expire(now + TimeDelta::days(30)).unwrap();
        assert_eq!((pruned.rows, pruned.violations, pruned.images), (1, 1, 1));
        assert!(s.get(v.seq).unwrap().is_none());
        assert!(s.evidence(v.seq, "overview").unwrap().is_none());
        assert_eq!(s.pruned().unwrap(), 1);
    }

    #[test]
    fn delivered_passages_go_before_violations_and_undelivered_rows_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        s.set_retention(Retention {
            keep_violations_days: 10,
            keep_passages_days: 1,
        })
        .unwrap();
        let p = s.append(event).unwrap();
        let v = s.append(violation).unwrap();
        let undelivered = s.append(event).unwrap();
        ack_all(&mut s, &p);
        ack_all(&mut s, &v);
        let now = Utc::now();
        assert_eq!(s.expire(now).unwrap().rows, 0, "nothing is past its keep");
        let pruned = s.expire(now + TimeDelta::days(2)).unwrap();
        assert_eq!((pruned.passages, pruned.violations), (1, 0));
        assert!(s.get(p.seq).unwrap().is_none());
        assert!(s.get(v.seq).unwrap().is_some());
        let pruned = s.expire(now + TimeDelta::days(11)).unwrap();
        assert_eq!((pruned.passages, pruned.violations), (0, 1));
        assert!(s.get(undelivered.seq).unwrap().is_some(), "never delivered");
        assert_eq!(s.stats().unwrap().total, 1);
    }

    #[test]
    fn a_delivered_row_with_an_image_still_owed_stays() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let p = s
            .append_with(event, vec![image("overview", 1, 100)])
            .unwrap();
        s.mark_delivered(p.event_id, p.seq).unwrap();
        let later = Utc::now() + TimeDelta::days(1);
        assert_eq!(s.expire(later).unwrap().rows, 0, "its image is owed");
        ack_all(&mut s, &p);
        assert_eq!(s.expire(later).unwrap().rows, 1);
    }

    #[test]
    fn exported_rows_stay_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let v = s.append(violation).unwrap();
        let p = s.append(event).unwrap();
        s.conn
            .execute(
                "UPDATE events SET exported_at = '2026-01-01T00:00:00.000000Z', export_id = 'b1'",
                [],
            )
            .unwrap();
        let later = Utc::now() + TimeDelta::days(1000);
        assert_eq!(
            s.expire(later).unwrap().rows,
            0,
            "handed over, not acknowledged"
        );
        // A quota that wants everything gone cannot take them either.
        let mut s = s.with_quota(Some(1));
        assert!(s.append(violation).unwrap_err().is_quota_full());
        assert!(s.get(v.seq).unwrap().is_some() && s.get(p.seq).unwrap().is_some());
        // The import's acknowledgement arrives: now they may go.
        s.mark_delivered(v.event_id, v.seq).unwrap();
        s.mark_delivered(p.event_id, p.seq).unwrap();
        assert_eq!(s.expire(later).unwrap().rows, 2);
    }

    #[test]
    fn every_removal_is_journaled_once_per_batch_and_the_chains_still_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let k = anpr_trust::SigningKey::generate(&mut rand_core::OsRng);
        let mut s = Store::open(&path).unwrap().with_signer(k.clone());
        s.set_retention(Retention {
            keep_violations_days: 5,
            keep_passages_days: 0,
        })
        .unwrap();
        for i in 0..20u8 {
            let build = if i % 4 == 0 { violation } else { event };
            let e = s
                .append_with(build, vec![image("overview", i, 500)])
                .unwrap();
            if i < 16 {
                ack_all(&mut s, &e);
            }
        }
        let now = Utc::now();
        let before = s.journal(0).unwrap().len();
        let pruned = s.expire(now).unwrap();
        // Seqs 1..=16 delivered; violations (1, 5, 9, 13) wait for their 5 days.
        assert_eq!((pruned.passages, pruned.violations), (12, 0));
        assert_eq!((pruned.first_seq, pruned.last_seq), (Some(2), Some(16)));
        let journal = s.journal(0).unwrap();
        assert_eq!(journal.len(), before + 1, "one row for the batch");
        let j = journal.last().unwrap();
        assert_eq!(j.kind, "pruned");
        assert_eq!(j.detail["reason"], "retention");
        assert_eq!(
            (
                &j.detail["rows"],
                &j.detail["passages"],
                &j.detail["images"]
            ),
            (&12.into(), &12.into(), &12.into())
        );
        assert_eq!(
            (&j.detail["first_seq"], &j.detail["last_seq"]),
            (&2.into(), &16.into())
        );
        s.expire(now + TimeDelta::days(5)).unwrap();
        assert_eq!(
            kinds(&s)[before..],
            ["pruned", "pruned"],
            "the violations' removal is its own batch"
        );
        assert_eq!(s.stats().unwrap().total, 4);
        let report = crate::verify_queue(&path, Some(&k.verifying_key()), |_, _| {}).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.rows, report.removed), (4, 16));
        // A change of policy is journaled too.
        s.set_retention(Retention::default()).unwrap();
        assert_eq!(kinds(&s).last().unwrap(), "retention-policy");
        let before = s.journal(0).unwrap().len();
        s.set_retention(Retention::default()).unwrap();
        assert_eq!(s.journal(0).unwrap().len(), before, "no change, no row");
    }
}
