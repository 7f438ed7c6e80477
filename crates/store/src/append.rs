//! Appending events: sequence numbers, batches (one commit for many), and the disk quota that
//! makes room by pruning delivered rows and, as a last resort, dropping undelivered ones in
//! priority order (passages before violations, images before their events).

use anpr_types::{Drops, Event, EventKind, EvidenceRef};
use chrono::Utc;
use rusqlite::{Connection, Transaction, params};

use crate::chain::record_removed;
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
            make_room(tx, quota, incoming).map_err(&sql)?;
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

/// Removes rows in quota order until `incoming` more bytes fit under `quota` (or nothing
/// removable is left). Drops are counted and journaled in the same transaction.
fn make_room(tx: &Transaction<'_>, quota: u64, incoming: u64) -> rusqlite::Result<()> {
    let mut step = 0;
    let mut dropped = [0usize; 5];
    while step < 5 && bytes_in_use(tx)? + incoming > quota {
        let n = evict_step(tx, step, 16)?;
        dropped[step] += n;
        if n == 0 {
            step += 1;
        }
    }
    if dropped[1..].iter().any(|n| *n > 0) {
        tracing::warn!(
            passage_images = dropped[1],
            passages = dropped[2],
            violation_images = dropped[3],
            violations = dropped[4],
            quota,
            "Queue quota reached: undelivered records dropped to make room (oldest passages first)."
        );
    }
    Ok(())
}

/// One step of making room: removes up to `limit` rows of one priority class; returns how
/// many it removed (0: nothing of this class is left).
fn evict_step(tx: &Transaction<'_>, step: usize, limit: usize) -> rusqlite::Result<usize> {
    let now = ts(Utc::now());
    let lim = limit as i64;
    match step {
        // Delivered events whose images are all delivered or dropped: not a loss.
        0 => {
            let seqs: Vec<i64> = tx
                .prepare_cached(
                    "SELECT e.seq FROM events e WHERE e.delivered_at IS NOT NULL AND NOT EXISTS
                       (SELECT 1 FROM evidence v WHERE v.seq = e.seq AND v.delivered_at IS NULL AND v.dropped_at IS NULL)
                     ORDER BY e.seq LIMIT ?1",
                )?
                .query_map(params![lim], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for s in &seqs {
                record_removed(tx, *s)?;
                tx.execute("DELETE FROM evidence WHERE seq = ?1", params![s])?;
                tx.execute("DELETE FROM events WHERE seq = ?1", params![s])?;
            }
            let n = seqs.len() as i64;
            meta_add(tx, key::PRUNED, n)?;
            meta_add(tx, key::PRESENT, -n)?;
            Ok(seqs.len())
        }
        // Images of undelivered passages (1) or violations (3).
        1 | 3 => {
            let (kind, counter) = if step == 1 {
                ("passage", key::DROPPED_PASSAGE_EVIDENCE)
            } else {
                ("violation", key::DROPPED_VIOLATION_EVIDENCE)
            };
            let rows: Vec<(i64, String, String, String)> = tx
                .prepare_cached(
                    "SELECT v.seq, v.kind, v.sha256, e.event_id FROM evidence v JOIN events e ON e.seq = v.seq
                     WHERE e.kind = ?1 AND v.delivered_at IS NULL AND v.dropped_at IS NULL
                       AND e.exported_at IS NULL
                     ORDER BY v.seq LIMIT ?2",
                )?
                .query_map(params![kind, lim], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?;
            for (seq, ekind, sha, id) in &rows {
                tx.execute(
                    "UPDATE evidence SET data = NULL, dropped_at = ?1 WHERE seq = ?2 AND kind = ?3",
                    params![now, seq, ekind],
                )?;
                journal_add(
                    tx,
                    "dropped-evidence",
                    &serde_json::json!({"seq": seq, "event_id": id, "event_kind": kind,
                        "evidence": ekind, "sha256": sha, "reason": "disk quota"}),
                )?;
            }
            meta_add(tx, counter, rows.len() as i64)?;
            Ok(rows.len())
        }
        // Undelivered passages (2) or violations (4), with their images.
        _ => {
            let (kind, counter) = if step == 2 {
                ("passage", key::DROPPED_PASSAGES)
            } else {
                ("violation", key::DROPPED_VIOLATIONS)
            };
            let rows: Vec<(i64, String, String)> = tx
                .prepare_cached(
                    "SELECT seq, event_id, captured_at FROM events
                     WHERE kind = ?1 AND delivered_at IS NULL AND exported_at IS NULL
                     ORDER BY seq LIMIT ?2",
                )?
                .query_map(params![kind, lim], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            for (seq, id, captured_at) in &rows {
                record_removed(tx, *seq)?;
                tx.execute("DELETE FROM evidence WHERE seq = ?1", params![seq])?;
                tx.execute("DELETE FROM events WHERE seq = ?1", params![seq])?;
                journal_add(
                    tx,
                    "dropped-event",
                    &serde_json::json!({"seq": seq, "event_id": id, "event_kind": kind,
                        "captured_at": captured_at, "reason": "disk quota"}),
                )?;
            }
            let n = rows.len() as i64;
            meta_add(tx, counter, n)?;
            meta_add(tx, key::PRESENT, -n)?;
            meta_add(tx, key::PENDING, -n)?;
            Ok(rows.len())
        }
    }
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
    fn the_quota_drops_delivered_rows_then_passage_images_then_passages_and_violations_last() {
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
        // The oldest undelivered passage lost its image first, and it is journaled.
        assert!(s.evidence(11, "overview").unwrap().is_none());
        assert!(s.get(11).unwrap().is_some(), "the event itself stays");
        let journal = s.journal(0).unwrap();
        assert_eq!(journal.len() as u64, drops.passage_evidence);
        assert_eq!(journal[0].kind, "dropped-evidence");
        assert_eq!(journal[0].detail["seq"], 11);

        // A quota far too small: everything but violations goes before any violation does.
        let mut s = s.with_quota(Some(1));
        s.append(violation).unwrap();
        let drops = s.drops().unwrap();
        assert!(drops.passages >= 20, "{drops:?}");
        assert!(drops.violations > 0, "{drops:?}");
        let kinds: Vec<String> = s.journal(0).unwrap().into_iter().map(|j| j.kind).collect();
        let first_violation = s
            .journal(0)
            .unwrap()
            .iter()
            .position(|j| j.detail["event_kind"] == "violation")
            .unwrap();
        let last_passage = s
            .journal(0)
            .unwrap()
            .iter()
            .rposition(|j| j.detail["event_kind"] == "passage")
            .unwrap();
        assert!(last_passage < first_violation, "{kinds:?}");
        assert_eq!(
            s.stats().unwrap().total,
            1,
            "the new event is always written"
        );
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
        // A quota that makes the appends both prune delivered rows and drop passages (how
        // many appends that takes depends on page sizes, not on what is checked here).
        let mut s = s.with_quota(Some(used / 3));
        let mut appended = 0;
        while s.pruned().unwrap() == 0 || s.drops().unwrap().passages == 0 {
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
