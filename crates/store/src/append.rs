//! Appending events: sequence numbers, batches (one commit for many), and the disk quota that
//! makes room by pruning delivered rows (violations only past their keep) and then releasing
//! the images of undelivered passages. An undelivered record is never deleted: when neither
//! frees enough, a new passage or violation is refused ([`StoreError::QuotaFull`]) and the
//! recognizer holds it in memory as on a full disk.

use anpr_types::{Drops, Event, EventKind, EvidenceRef};
use chrono::Utc;
use rusqlite::{Connection, Transaction, params};

use crate::evidence::NewEvidence;
use crate::journal::journal_add;
use crate::schema::{key, meta_add, meta_get};
use crate::sqlite::{sql_error, ts};
use crate::{Store, StoreError, sha256_hex};

/// One event to append: its builder (given the sequence number) and its images.
pub struct NewRecord<'a> {
    pub build: Box<dyn FnOnce(u64) -> Event + 'a>,
    pub evidence: Vec<NewEvidence>,
}

impl Store {
    /// Appends an event built from the next sequence number, committed durably before return.
    pub fn append(&mut self, build: impl FnOnce(u64) -> Event) -> Result<Event, StoreError> {
        self.append_with(build, Vec::new())
    }

    /// Appends an event with its evidence images (their references are filled in here).
    pub fn append_with(
        &mut self,
        build: impl FnOnce(u64) -> Event,
        evidence: Vec<NewEvidence>,
    ) -> Result<Event, StoreError> {
        let mut out = self.append_batch(vec![NewRecord {
            build: Box::new(build),
            evidence,
        }])?;
        Ok(out.remove(0))
    }

    /// Appends several events in one transaction: one sync to disk for all (group commit).
    /// Each is durable when this returns; none is if it fails.
    pub fn append_batch(&mut self, records: Vec<NewRecord<'_>>) -> Result<Vec<Event>, StoreError> {
        self.append_batch_journaled(records, None)
    }

    /// Appends an event and a journal entry (`kind`, `detail`) about it in one transaction:
    /// both are durable when this returns, neither is if it fails. A camera's gap is recorded
    /// so ([`Store::journal`] kind `camera-gap`).
    pub fn append_journaled(
        &mut self,
        build: impl FnOnce(u64) -> Event,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<Event, StoreError> {
        let mut out = self.append_batch_journaled(
            vec![NewRecord {
                build: Box::new(build),
                evidence: Vec::new(),
            }],
            Some((kind, detail)),
        )?;
        Ok(out.remove(0))
    }

    fn append_batch_journaled(
        &mut self,
        records: Vec<NewRecord<'_>>,
        journal: Option<(&str, &serde_json::Value)>,
    ) -> Result<Vec<Event>, StoreError> {
        let quota = self.quota;
        let signer = self.signer.clone();
        let (tx, path) = self.begin_write()?;
        let out = append_in(&tx, path, quota, signer.as_ref(), records, journal)?;
        tx.commit().map_err(sql_error(path))?;
        self.bump_appended();
        Ok(out)
    }
}

/// Appends `records` (and the journal entry, if any) inside the caller's write transaction:
/// sequence numbers, chain links, signatures, the quota and the counters, as
/// [`Store::append_batch`] does; the caller commits.
pub(crate) fn append_in(
    tx: &Transaction<'_>,
    path: &std::path::Path,
    quota: Option<u64>,
    signer: Option<&crate::SigningKey>,
    records: Vec<NewRecord<'_>>,
    journal: Option<(&str, &serde_json::Value)>,
) -> Result<Vec<Event>, StoreError> {
    let sql = sql_error(path);
    let first: i64 = tx
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            params![key::NEXT_SEQ],
            |r| r.get(0),
        )
        .map_err(&sql)?;
    let mut next = first;
    let mut prev_hash = crate::chain::head(tx)
        .map_err(&sql)?
        .unwrap_or_else(|| anpr_trust::ZERO_HASH.to_string());
    let accepted_at = ts(Utc::now());
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let seq = next as u64;
        let mut event = (record.build)(seq);
        event.evidence = record
            .evidence
            .iter()
            .map(|e| EvidenceRef {
                kind: e.kind.clone(),
                sha256: sha256_hex(&e.data),
                size: e.data.len() as u64,
                content_type: e.content_type.clone(),
            })
            .collect();
        event.seq = seq;
        event.prev_hash = Some(prev_hash.clone());
        let hash = if let Some(key) = signer {
            anpr_trust::event::sign_event(&mut event, key)
        } else {
            event.signature = None;
            anpr_trust::event::event_hash(&event)
        };
        let payload = serde_json::to_string(&event).map_err(|e| StoreError::Corrupt {
            seq,
            message: e.to_string(),
        })?;
        if let Some(quota) = quota {
            let incoming = payload.len() as u64
                + record
                    .evidence
                    .iter()
                    .map(|e| e.data.len() as u64)
                    .sum::<u64>();
            let fits = make_room(tx, quota, incoming).map_err(&sql)?;
            if !fits && matches!(event.kind, EventKind::Passage | EventKind::Violation) {
                return Err(StoreError::QuotaFull {
                    path: path.to_path_buf(),
                    quota,
                    used: bytes_in_use(tx).map_err(&sql)?,
                });
            }
        }
        tx.prepare_cached(
                "INSERT INTO events (seq, event_id, kind, captured_at, payload, accepted_at, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    seq as i64,
                    event.event_id.to_string(),
                    kind_str(event.kind),
                    ts(event.captured_at),
                    payload,
                    accepted_at,
                    hash
                ])
            })
            .map_err(&sql)?;
        for (e, r) in record.evidence.iter().zip(&event.evidence) {
            tx.prepare_cached(
                    "INSERT INTO evidence (seq, kind, sha256, content_type, size, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        seq as i64,
                        r.kind,
                        r.sha256,
                        r.content_type,
                        r.size as i64,
                        e.data
                    ])
                })
                .map_err(&sql)?;
        }
        next += 1;
        prev_hash = hash;
        out.push(event);
    }
    let added = next - first;
    if added > 0 {
        crate::chain::set_head(tx, (next - 1) as u64, &prev_hash).map_err(&sql)?;
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = ?2",
        params![next, key::NEXT_SEQ],
    )
    .and_then(|_| meta_add(tx, key::PRESENT, added))
    .and_then(|()| meta_add(tx, key::PENDING, added))
    .map_err(&sql)?;
    if let Some((kind, detail)) = journal {
        journal_add(tx, kind, detail).map_err(&sql)?;
    }
    Ok(out)
}

impl Store {
    /// What the quota made the device drop, since the queue was created.
    pub fn drops(&self) -> Result<Drops, StoreError> {
        let get = |k| meta_get(&self.conn, k).map_err(self.sql());
        Ok(Drops {
            passages: get(key::DROPPED_PASSAGES)?,
            violations: get(key::DROPPED_VIOLATIONS)?,
            passage_evidence: get(key::DROPPED_PASSAGE_EVIDENCE)?,
            violation_evidence: get(key::DROPPED_VIOLATION_EVIDENCE)?,
        })
    }

    /// Delivered events removed to make room (not a loss).
    pub fn pruned(&self) -> Result<u64, StoreError> {
        meta_get(&self.conn, key::PRUNED).map_err(self.sql())
    }

    /// Bytes of the database in use (the quota's measure).
    pub fn bytes_used(&self) -> Result<u64, StoreError> {
        bytes_in_use(&self.conn).map_err(self.sql())
    }
}

fn kind_str(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Passage => "passage",
        EventKind::Violation => "violation",
        EventKind::CameraGap => "camera_gap",
        EventKind::Custody => "custody",
    }
}

/// Pages of the database in use, in bytes (the file minus its free pages).
fn bytes_in_use(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// Rows pruned by one step of making room (the batch is journaled once, after all steps).
const PRUNE_BATCH: usize = 64;

/// Makes room for `incoming` more bytes under `quota`, in this order, oldest first: (1)
/// delivered rows whose images are all delivered or dropped (violations only once their
/// `keep_violations_days` is over), (2) the images of undelivered, not exported passages (the
/// passage stays). Returns whether the bytes fit now. One journal row per kind of removal
/// (`pruned`, `dropped-evidence`), in the same transaction; drops are counted.
fn make_room(tx: &Transaction<'_>, quota: u64, incoming: u64) -> rusqlite::Result<bool> {
    let fits =
        |tx: &Transaction<'_>| Ok::<_, rusqlite::Error>(bytes_in_use(tx)? + incoming <= quota);
    if fits(tx)? {
        return Ok(true);
    }
    let policy = crate::retention::retention(tx)?;
    let violations_cutoff = crate::retention::cutoff(Utc::now(), policy.keep_violations_days);
    let mut pruned = crate::retention::Pruned::default();
    let mut images = DroppedImages::default();
    let mut room = false;
    loop {
        let seqs = crate::retention::delivered_before(tx, &violations_cutoff, None, PRUNE_BATCH)?;
        if seqs.is_empty() {
            break;
        }
        pruned.add(&crate::retention::remove_delivered(tx, &seqs)?);
        if fits(tx)? {
            room = true;
            break;
        }
    }
    while !room {
        if drop_passage_images(tx, PRUNE_BATCH / 4, &mut images)? == 0 {
            break;
        }
        room = fits(tx)?;
    }
    crate::retention::journal_pruned(tx, &pruned, "disk quota")?;
    if images.count > 0 {
        meta_add(tx, key::DROPPED_PASSAGE_EVIDENCE, images.count as i64)?;
        journal_add(
            tx,
            "dropped-evidence",
            &serde_json::json!({"reason": "disk quota", "event_kind": "passage",
                "images": images.count, "first_seq": images.first_seq,
                "last_seq": images.last_seq}),
        )?;
        tracing::warn!(
            passage_images = images.count,
            first_seq = images.first_seq,
            last_seq = images.last_seq,
            quota,
            "Queue quota reached: images of undelivered passages released to make room (the passages stay)."
        );
    }
    if !room {
        tracing::error!(
            quota,
            "Queue quota reached with nothing left to delete: every record held is undelivered."
        );
    }
    Ok(room)
}

/// Images of undelivered passages released by one call of [`make_room`].
#[derive(Default)]
struct DroppedImages {
    count: u64,
    first_seq: Option<i64>,
    last_seq: Option<i64>,
}

/// Releases the bytes of up to `limit` images of undelivered, not exported passages, oldest
/// first (the image's row stays, marked dropped); returns how many.
fn drop_passage_images(
    tx: &Transaction<'_>,
    limit: usize,
    out: &mut DroppedImages,
) -> rusqlite::Result<usize> {
    let now = ts(Utc::now());
    let rows: Vec<(i64, String)> = tx
        .prepare_cached(
            "SELECT v.seq, v.kind FROM evidence v JOIN events e ON e.seq = v.seq
             WHERE e.kind = 'passage' AND v.delivered_at IS NULL AND v.dropped_at IS NULL
               AND e.exported_at IS NULL
             ORDER BY v.seq LIMIT ?1",
        )?
        .query_map(params![limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (seq, kind) in &rows {
        tx.prepare_cached(
            "UPDATE evidence SET data = NULL, dropped_at = ?1 WHERE seq = ?2 AND kind = ?3",
        )?
        .execute(params![now, seq, kind])?;
        out.count += 1;
        out.first_seq = out.first_seq.or(Some(*seq));
        out.last_seq = Some(*seq);
    }
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use crate::tests::{event, image, violation};
    use crate::{NewRecord, QueueStats, Store};

    #[test]
    fn a_batch_is_one_commit_with_consecutive_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        s.append(event).unwrap();
        let batch = (0..5)
            .map(|_| NewRecord {
                build: Box::new(event),
                evidence: Vec::new(),
            })
            .collect();
        let out = s.append_batch(batch).unwrap();
        assert_eq!(
            out.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6]
        );
        assert_eq!(s.stats().unwrap().last_seq, 6);
    }

    #[test]
    fn the_quota_prunes_delivered_rows_then_passage_images_and_never_an_undelivered_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let mut s = Store::open(&path).unwrap();
        // 10 delivered passages, then 20 undelivered passages and 5 violations, each with a
        // 20 kB image.
        for _ in 0..10 {
            let e = s
                .append_with(event, vec![image("overview", 3, 20_000)])
                .unwrap();
            let sha = e.evidence[0].sha256.as_str();
            s.mark_delivered_batch(&[(e.event_id, e.seq, None), (e.event_id, e.seq, Some(sha))])
                .unwrap();
        }
        let mut violations = Vec::new();
        for i in 0..25u8 {
            let build = if i % 5 == 4 { violation } else { event };
            let e = s
                .append_with(build, vec![image("overview", i, 20_000)])
                .unwrap();
            if i % 5 == 4 {
                violations.push(e.seq);
            }
        }
        let used = s.bytes_used().unwrap();
        assert!(used > 25 * 20_000, "{used}");
        // Delivered images are released on their ack; a quota that holds about 15 of the
        // 25 undelivered images: delivered rows go first, then passage images.
        let mut s = s.with_quota(Some(used - 10 * 20_000));
        let e = s
            .append_with(event, vec![image("overview", 99, 20_000)])
            .unwrap();
        assert!(s.bytes_used().unwrap() <= used - 10 * 20_000);
        let stats = s.stats().unwrap();
        assert_eq!(stats.last_seq, e.seq, "sequence numbers are not reused");
        assert_eq!(s.pruned().unwrap(), 10, "all delivered rows pruned first");
        let drops = s.drops().unwrap();
        assert!(drops.passage_evidence > 0, "{drops:?}");
        assert_eq!(
            (drops.passages, drops.violations, drops.violation_evidence),
            (0, 0, 0)
        );
        for v in &violations {
            assert!(
                s.evidence(*v, "overview").unwrap().is_some(),
                "violation {v} image kept"
            );
        }
        // The oldest undelivered passage lost its image first; the passage itself stays.
        assert!(s.evidence(11, "overview").unwrap().is_none());
        assert!(s.get(11).unwrap().is_some(), "the event itself stays");
        // One journal row per kind of removal, with counts and the range of seqs.
        let journal = s.journal(0).unwrap();
        assert_eq!(
            journal.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>(),
            ["pruned", "dropped-evidence"]
        );
        assert_eq!(journal[0].detail["reason"], "disk quota");
        assert_eq!(
            (
                &journal[0].detail["rows"],
                &journal[0].detail["first_seq"],
                &journal[0].detail["last_seq"]
            ),
            (&10.into(), &1.into(), &10.into())
        );
        assert_eq!(journal[1].detail["images"], drops.passage_evidence);
        assert_eq!(journal[1].detail["first_seq"], 11);

        // A quota far too small: the passage images that are left go, and then a new
        // violation is refused rather than any undelivered record deleted.
        let before = s.stats().unwrap();
        let mut s = s.with_quota(Some(1));
        let err = s.append(violation).unwrap_err();
        assert!(err.is_quota_full() && err.is_disk_full(), "{err}");
        assert!(err.to_string().contains("storage.quota_mb"), "{err}");
        assert_eq!(
            s.stats().unwrap(),
            before,
            "nothing written, nothing removed"
        );
        assert_eq!(s.journal(0).unwrap().len(), 2, "a refusal rolls back whole");
        for seq in 11..=36 {
            assert!(s.get(seq).unwrap().is_some(), "undelivered {seq} kept");
        }
        assert_eq!(
            (s.drops().unwrap().passages, s.drops().unwrap().violations),
            (0, 0)
        );
        // A camera's gap is still recorded (small, and the record of an outage).
        let gap = s
            .append(|seq| anpr_types::Event {
                kind: anpr_types::EventKind::CameraGap,
                ..event(seq)
            })
            .unwrap();
        assert_eq!(gap.seq, 37);
    }

    #[test]
    fn the_quota_keeps_a_delivered_violation_for_its_keep() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        s.set_retention(crate::Retention {
            keep_violations_days: 30,
            keep_passages_days: 30,
        })
        .unwrap();
        let mut delivered = Vec::new();
        for i in 0..6u8 {
            let build = if i % 2 == 0 { violation } else { event };
            let e = s
                .append_with(build, vec![image("overview", i, 20_000)])
                .unwrap();
            let sha = e.evidence[0].sha256.as_str();
            s.mark_delivered_batch(&[(e.event_id, e.seq, None), (e.event_id, e.seq, Some(sha))])
                .unwrap();
            delivered.push(e);
        }
        // A quota nothing fits under: a camera's gap (always written) makes the quota remove
        // all it may. The delivered passages went (they may go sooner than their keep), the
        // violations stayed with their images; a new passage is refused.
        let mut s = s.with_quota(Some(1));
        s.append(|seq| anpr_types::Event {
            kind: anpr_types::EventKind::CameraGap,
            ..event(seq)
        })
        .unwrap();
        assert_eq!(s.pruned().unwrap(), 3);
        assert!(s.append(event).unwrap_err().is_quota_full());
        for e in &delivered {
            let kept = s.get(e.seq).unwrap().is_some();
            assert_eq!(
                kept,
                e.kind == anpr_types::EventKind::Violation,
                "{}",
                e.seq
            );
        }
        assert_eq!(s.evidence(1, "overview").unwrap().unwrap().len(), 20_000);
    }

    #[test]
    fn counts_stay_true_when_the_quota_prunes_and_drops_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        for i in 0..30u8 {
            let build = if i % 3 == 0 { violation } else { event };
            let e = s
                .append_with(build, vec![image("overview", i, 10_000)])
                .unwrap();
            if i % 4 == 0 {
                s.mark_delivered(e.event_id, e.seq).unwrap();
            }
        }
        let used = s.bytes_used().unwrap();
        // A quota that makes the appends both prune delivered rows and drop passage images
        // (how many appends that takes depends on page sizes, not on what is checked here).
        let mut s = s.with_quota(Some(used * 2 / 3));
        let mut appended = 0;
        while s.pruned().unwrap() == 0 || s.drops().unwrap().passage_evidence == 0 {
            assert!(
                appended < 20,
                "the quota neither pruned nor dropped: pruned {}, {:?}",
                s.pruned().unwrap(),
                s.drops().unwrap()
            );
            s.append_with(event, vec![image("plate", 7, 10_000)])
                .unwrap();
            appended += 1;
        }
        let (total, pending): (i64, i64) = s
            .conn
            .query_row(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE delivered_at IS NULL) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            s.stats().unwrap(),
            QueueStats {
                total: total as u64,
                pending: pending as u64,
                delivered: (total - pending) as u64,
                last_seq: 30 + appended
            }
        );
        assert_eq!(s.pending_count().unwrap(), pending as u64);
    }
}
