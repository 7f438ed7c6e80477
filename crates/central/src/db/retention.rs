//! The archive's retention: the receiver keeps every event, violation and evidence image for
//! [`DEFAULT_RETENTION_DAYS`] (one year, the rules' archive period; `anpr central
//! --retention-days`) after its capture, then removes it; each removal is recorded in the
//! `purges` table (when, the cutoff, the counts, the capture span removed), and the highest
//! sequence number removed per device in `purged_upto` (so that the report does not call
//! purged records missing), in the same transaction.
//!
//! This is the only way anything leaves the archive: there is no command to delete records,
//! for operators or anyone else (the rules forbid the person who made a record to delete it).
//! Records are removed by capture time, oldest first, never by who or what they are.
//!
//! The `purges` and `purged_upto` tables are created here, on first use (`CREATE TABLE IF NOT EXISTS`), rather
//! than by a schema migration: a receiver file that never purged has none, and one written by
//! this version opens unchanged with older software.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use tokio::sync::watch;

use super::{Receiver, parse_ts, ts};
use crate::CentralError;

/// How long the archive keeps a record after its capture, by default: one year.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;
/// The longest retention accepted (`--retention-days`): 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// How often the receiver purges what is past its retention.
pub const PURGE_EVERY: Duration = Duration::from_hours(1);

const PURGES_TABLE: &str = "CREATE TABLE IF NOT EXISTS purges (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    cutoff TEXT NOT NULL,
    retention_days INTEGER NOT NULL,
    events INTEGER NOT NULL,
    violations INTEGER NOT NULL,
    images INTEGER NOT NULL,
    first_captured TEXT,
    last_captured TEXT
);
CREATE TABLE IF NOT EXISTS purged_upto (
    inventory TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
)";

/// One purge of the archive, as recorded in `purges`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub id: u64,
    /// When it ran (the receiver's clock).
    pub at: DateTime<Utc>,
    /// Records captured before this were removed.
    pub cutoff: DateTime<Utc>,
    pub retention_days: u32,
    /// Events removed (every kind), the violation rows and images removed with them.
    pub events: u64,
    pub violations: u64,
    pub images: u64,
    /// Capture times of the oldest and newest event removed.
    pub first_captured: Option<DateTime<Utc>>,
    pub last_captured: Option<DateTime<Utc>>,
}

fn purge_in(
    tx: &Transaction<'_>,
    now: DateTime<Utc>,
    retention_days: u32,
) -> rusqlite::Result<Option<Purge>> {
    tx.execute_batch(PURGES_TABLE)?;
    let cutoff = now - TimeDelta::days(i64::from(retention_days));
    let cut = ts(cutoff);
    let (events, first, last): (i64, Option<String>, Option<String>) = tx.query_row(
        "SELECT COUNT(*), MIN(captured_at), MAX(captured_at) FROM events WHERE captured_at < ?1",
        params![cut],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if events == 0 {
        return Ok(None);
    }
    // Per device, the highest sequence number removed: the report tells those numbers from
    // events that never arrived.
    tx.execute(
        "INSERT INTO purged_upto (inventory, seq)
         SELECT inventory, MAX(seq) FROM events WHERE captured_at < ?1 GROUP BY inventory
         ON CONFLICT(inventory) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        params![cut],
    )?;
    let images = tx.execute(
        "DELETE FROM evidence WHERE event_id IN (SELECT event_id FROM events WHERE captured_at < ?1)",
        params![cut],
    )?;
    let violations = tx.execute(
        "DELETE FROM violations WHERE event_id IN (SELECT event_id FROM events WHERE captured_at < ?1)",
        params![cut],
    )?;
    tx.execute("DELETE FROM events WHERE captured_at < ?1", params![cut])?;
    let at = ts(now);
    tx.execute(
        "INSERT INTO purges (at, cutoff, retention_days, events, violations, images, first_captured, last_captured)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![at, cut, retention_days, events, violations as i64, images as i64, first, last],
    )?;
    Ok(Some(Purge {
        id: tx.last_insert_rowid() as u64,
        at: parse_ts(&at),
        cutoff: parse_ts(&cut),
        retention_days,
        events: events as u64,
        violations: violations as u64,
        images: images as u64,
        first_captured: first.as_deref().map(parse_ts),
        last_captured: last.as_deref().map(parse_ts),
    }))
}

impl Receiver {
    /// Removes the events (with their violation rows and evidence images) captured more than
    /// `retention_days` before `now` (the receiver's clock; any clock in tests), and records
    /// the purge in `purges`, all in one transaction. Returns the purge, `None` when nothing
    /// was old enough (nothing is recorded then).
    pub fn purge_expired(
        &mut self,
        now: DateTime<Utc>,
        retention_days: u32,
    ) -> Result<Option<Purge>, CentralError> {
        let path = self.path.clone();
        let db = move |source| CentralError::Db {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&db)?;
        let purge = purge_in(&tx, now, retention_days).map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(purge)
    }

    /// The highest sequence number of `inventory` the retention removed (`None` when none was).
    pub fn purged_upto(&self, inventory: &str) -> Result<Option<u64>, CentralError> {
        if !self.has_table("purged_upto")? {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT seq FROM purged_upto WHERE inventory = ?1",
                params![inventory],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|s| s.map(|s| s as u64))
            .map_err(self.db())
    }

    fn has_table(&self, name: &str) -> Result<bool, CentralError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                params![name],
                |_| Ok(()),
            )
            .optional()
            .map_err(self.db())?
            .is_some())
    }

    /// Every purge recorded, oldest first.
    pub fn purges(&self) -> Result<Vec<Purge>, CentralError> {
        if !self.has_table("purges")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, at, cutoff, retention_days, events, violations, images, first_captured, last_captured
                 FROM purges ORDER BY id",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Purge {
                    id: r.get::<_, i64>(0)? as u64,
                    at: parse_ts(&r.get::<_, String>(1)?),
                    cutoff: parse_ts(&r.get::<_, String>(2)?),
                    retention_days: r.get(3)?,
                    events: r.get::<_, i64>(4)? as u64,
                    violations: r.get::<_, i64>(5)? as u64,
                    images: r.get::<_, i64>(6)? as u64,
                    first_captured: r.get::<_, Option<String>>(7)?.as_deref().map(parse_ts),
                    last_captured: r.get::<_, Option<String>>(8)?.as_deref().map(parse_ts),
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }
}

/// Purges the archive at `db` every hour (`PURGE_EVERY`; the first at once) until `stop` turns
/// true, each purge on a blocking thread with its own connection; a failed purge is logged
/// and tried again at the next period. `anpr central` runs it beside the receiver.
pub async fn purge_periodically(db: PathBuf, retention_days: u32, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        let path = db.clone();
        let done = tokio::task::spawn_blocking(move || {
            Receiver::open(&path)?.purge_expired(Utc::now(), retention_days)
        })
        .await;
        match done {
            Ok(Ok(Some(p))) => tracing::info!(
                events = p.events,
                violations = p.violations,
                images = p.images,
                cutoff = %p.cutoff,
                retention_days,
                "Archive purged: records past their retention removed (recorded in `purges`)."
            ),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "The archive's retention purge failed; tried again in an hour.");
            }
            Err(e) => tracing::warn!(error = %e, "The archive's retention purge stopped."),
        }
    }
}

#[cfg(test)]
mod tests {
    use anpr_types::EventKind;
    use chrono::TimeDelta;

    use super::super::tests::{delivery, now, violation};
    use crate::Receiver;

    #[test]
    fn records_past_the_retention_are_purged_by_capture_time_and_the_purge_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        assert!(r.purges().unwrap().is_empty());
        let t = now();
        let mut old = delivery("INV", 1, EventKind::Passage);
        old.event.captured_at = t - TimeDelta::days(400);
        let mut old_v = violation("INV", 2, &old, "hotlist", "list", None);
        old_v.event.captured_at = t - TimeDelta::days(366);
        let image = [1u8, 2, 3, 4];
        old_v.event.evidence.push(anpr_types::EvidenceRef {
            kind: "overview".into(),
            sha256: anpr_store::sha256_hex(&image),
            size: 4,
            content_type: "image/jpeg".into(),
        });
        let mut kept = delivery("INV", 3, EventKind::Passage);
        kept.event.captured_at = t - TimeDelta::days(364);
        for d in [&old, &old_v, &kept] {
            assert!(r.store(d, t).unwrap());
        }
        r.store_image(old_v.event.event_id, "overview", &image, t)
            .unwrap();
        assert!(r.image(old_v.event.event_id, "overview").unwrap().is_some());
        // Nothing is a year old at a time a year before: nothing done, nothing recorded.
        assert_eq!(
            r.purge_expired(t - TimeDelta::days(100), 365).unwrap(),
            None
        );
        assert!(r.purges().unwrap().is_empty());

        let p = r.purge_expired(t, 365).unwrap().unwrap();
        assert_eq!((p.events, p.violations, p.images), (2, 1, 1));
        assert!(r.image(old_v.event.event_id, "overview").unwrap().is_none());
        assert_eq!(p.first_captured, Some(old.event.captured_at));
        assert_eq!(p.last_captured, Some(old_v.event.captured_at));
        assert_eq!(p.cutoff, t - TimeDelta::days(365));
        let left = r.events_of("INV").unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].event.seq, 3);
        assert!(r.violations_of("INV").unwrap().is_empty());
        assert_eq!(r.purges().unwrap(), vec![p]);
        // Run again: nothing more, nothing recorded.
        assert_eq!(r.purge_expired(t, 365).unwrap(), None);
        assert_eq!(r.purges().unwrap().len(), 1);
        // The report counts seq 1 and 2 as purged, not missing; a later gap is still one.
        assert_eq!(r.purged_upto("INV").unwrap(), Some(2));
        assert_eq!(r.purged_upto("OTHER").unwrap(), None);
        let mut after_gap = delivery("INV", 5, EventKind::Passage);
        after_gap.event.captured_at = t;
        assert!(r.store(&after_gap, t).unwrap());
        let report = r.report().unwrap();
        assert_eq!(report[0].purged_upto, Some(2));
        assert_eq!(report[0].gaps, vec![(4, 4)]);
        assert!(
            report[0]
                .to_string()
                .contains("seq 1 to 2 past retention and purged"),
            "{}",
            report[0]
        );
    }
}
