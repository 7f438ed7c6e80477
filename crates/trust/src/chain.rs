//! Walking a device's chain of events in sequence order, as `anpr verify` does on a device's
//! queue or on a receiver's database: every hash recomputed, every link and (given the
//! device's public key) every signature checked, and the first row that does not match named.
//!
//! The walk is fed in sequence order with the rows present ([`Walk::row`]) and, on a device,
//! the runs of rows the queue removed itself and recorded as removed ([`Walk::removed`]:
//! delivered rows pruned, undelivered rows dropped under the quota, unreadable rows
//! quarantined), then told the last sequence number assigned ([`Walk::finish`]).
//!
//! Rows written before events were signed (no `prev_hash`, no `signature`) are accepted only
//! before the first chained row, and counted ([`Walk::legacy`]).
//!
//! A device's journal (drops, clock jumps, camera gaps, quarantined rows) is chained the same
//! way, row by row in id order ([`JournalRow`], [`JournalWalk`]): each row's hash covers its
//! id, time, kind, detail and the hash of the row before it, and the queue records the hash of
//! the last row as the journal's head, which the device also puts in every health message.

use std::fmt;

use anpr_types::{ChainHead, Event};

use crate::event::{event_hash, verify_event};
use crate::{VerifyingKey, ZERO_HASH, sha256_hex};

/// The first row that does not match, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub seq: u64,
    pub what: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}: {}", self.seq, self.what)
    }
}

impl std::error::Error for Mismatch {}

/// What a walk found, for `anpr verify` to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Rows checked.
    pub rows: u64,
    /// Rows from before events were signed (no `prev_hash`, no signature), all before the chain.
    pub legacy: u64,
    /// Rows the queue removed itself (pruned, dropped, quarantined) and kept the hash of.
    pub removed: u64,
    /// Evidence images whose bytes were hashed again.
    pub images: u64,
    /// Highest sequence number assigned (a queue) or stored (a receiver).
    pub last_seq: u64,
    /// Whether signatures were checked (a public key was given).
    pub signatures_checked: bool,
    /// Sequence ranges never received (a receiver only).
    pub gaps: Vec<(u64, u64)>,
    /// The first row that does not match; `None` when the chain is intact.
    pub mismatch: Option<Mismatch>,
    /// Journal rows checked (a device's queue).
    pub journal_rows: u64,
    /// The journal's last link as walked (a device's queue): the `journal_head` its health
    /// messages carry, which the central side can hold it to.
    pub journal_head: Option<ChainHead>,
    /// The first journal row that does not match (its id in [`Mismatch::seq`]); `None` when
    /// the journal's chain is intact.
    pub journal_mismatch: Option<Mismatch>,
}

impl Report {
    /// Whether nothing was found that does not match, in the events or the journal.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.mismatch.is_none() && self.journal_mismatch.is_none()
    }
}

/// A walk along one device's chain.
#[derive(Debug)]
pub struct Walk<'k> {
    key: Option<&'k VerifyingKey>,
    gaps_are_breaks: bool,
    /// The next sequence number expected.
    next: u64,
    /// Hash of the row before `next`, when known.
    prev: Option<String>,
    chained: bool,
    /// Rows checked.
    pub rows: u64,
    /// Rows from before signing (no `prev_hash`, no signature).
    pub legacy: u64,
    /// Rows the queue recorded as removed (pruned, dropped, quarantined).
    pub removed: u64,
    /// Sequence ranges missing without a record (only when gaps are no break: on a receiver,
    /// events that never arrived).
    pub gaps: Vec<(u64, u64)>,
}

/// A hash shortened for messages.
fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

impl<'k> Walk<'k> {
    /// A walk from sequence number 1. With `key`, every chained row's signature is checked.
    /// With `gaps_are_breaks`, a sequence number neither present nor recorded as removed is a
    /// deleted row (a device's queue); without, it is listed in [`gaps`](Self::gaps) and the
    /// link across it is not checked (a receiver, which never gets what a device dropped).
    #[must_use]
    pub fn new(key: Option<&'k VerifyingKey>, gaps_are_breaks: bool) -> Self {
        Self {
            key,
            gaps_are_breaks,
            next: 1,
            prev: Some(ZERO_HASH.to_string()),
            chained: false,
            rows: 0,
            legacy: 0,
            removed: 0,
            gaps: Vec::new(),
        }
    }

    /// Whether signatures are checked.
    #[must_use]
    pub fn checks_signatures(&self) -> bool {
        self.key.is_some()
    }

    fn skip_to(&mut self, seq: u64, why: &str) -> Result<(), Mismatch> {
        if seq < self.next {
            return Err(Mismatch {
                seq,
                what: "sequence number seen twice or out of order".into(),
            });
        }
        if seq > self.next {
            let (from, to) = (self.next, seq - 1);
            if self.gaps_are_breaks {
                return Err(Mismatch {
                    seq: from,
                    what: format!(
                        "row{} missing and not recorded as pruned, dropped or quarantined{why}: deleted, a break in the chain",
                        if from == to {
                            " is".to_string()
                        } else {
                            format!("s {from} to {to} are")
                        }
                    ),
                });
            }
            self.gaps.push((from, to));
            self.prev = None;
        }
        Ok(())
    }

    /// Checks the row `seq` holding `event`, whose hash was recorded as `stored_hash` when it
    /// was stored; returns the event's hash.
    pub fn row(
        &mut self,
        seq: u64,
        stored_hash: Option<&str>,
        event: &Event,
    ) -> Result<String, Mismatch> {
        self.skip_to(seq, "")?;
        let fail = |what: String| Err(Mismatch { seq, what });
        if event.seq != seq {
            return fail(format!(
                "its event says sequence number {}: edited",
                event.seq
            ));
        }
        let legacy = event.prev_hash.is_none() && event.signature.is_none() && !self.chained;
        if let (Some(key), false) = (self.key, legacy)
            && let Err(e) = verify_event(event, key)
        {
            return fail(format!(
                "signature refused ({e}): the event was changed after it was signed, or signed by another key"
            ));
        }
        let hash = event_hash(event);
        if let Some(stored) = stored_hash
            && stored != hash
        {
            return fail(format!(
                "its content hashes to {}…, not to {}… as recorded when it was stored: edited",
                short(&hash),
                short(stored)
            ));
        }
        match (&event.prev_hash, &self.prev) {
            (None, _) if self.chained => {
                return fail(
                    "no prev_hash although the rows before it are chained: inserted or stripped"
                        .into(),
                );
            }
            (None, _) => self.legacy += 1,
            (Some(p), Some(h)) if p != h && (self.chained || p != ZERO_HASH) => {
                return fail(format!(
                    "prev_hash {}… does not match the hash {}… of row {}: that row was edited, or rows were removed or inserted before this one",
                    short(p),
                    short(h),
                    seq - 1
                ));
            }
            (Some(_), _) => self.chained = true,
        }
        self.prev = Some(hash.clone());
        self.next = seq + 1;
        self.rows += 1;
        Ok(hash)
    }

    /// Rows `first..=last` were removed by the queue itself; `last_hash` is the hash of the
    /// last of them (unknown for rows removed before hashes were kept).
    pub fn removed(
        &mut self,
        first: u64,
        last: u64,
        last_hash: Option<&str>,
    ) -> Result<(), Mismatch> {
        self.skip_to(first, "")?;
        if last < first {
            return Err(Mismatch {
                seq: first,
                what: format!("record of removed rows {first} to {last} is malformed"),
            });
        }
        self.prev = last_hash.map(str::to_string);
        self.next = last + 1;
        self.removed += last - first + 1;
        Ok(())
    }

    /// The walk is over: rows up to `last_seq` were assigned; `head` is the chain head the
    /// queue recorded (the hash of row `last_seq`), if it keeps one.
    pub fn finish(&mut self, last_seq: u64, head: Option<&str>) -> Result<(), Mismatch> {
        if last_seq >= self.next {
            self.skip_to(
                last_seq + 1,
                &format!(" (sequence numbers up to {last_seq} were assigned)"),
            )?;
            self.next = last_seq + 1;
        }
        if let (Some(head), Some(prev)) = (head, &self.prev)
            && head != prev
        {
            return Err(Mismatch {
                seq: last_seq,
                what: format!(
                    "the recorded chain head {}… is not the hash {}… of the last row: the last row was edited or replaced",
                    short(head),
                    short(prev)
                ),
            });
        }
        Ok(())
    }
}

/// A row of a device's journal, as stored.
///
/// Its canonical form is `"anpr-journal/1\n" + id + "\n" + at + "\n" + kind + "\n" +
/// prev_hash + "\n" + detail`, with `at` and `detail` (JSON) exactly as stored; its hash is the
/// lower-case hex sha256 of those bytes. `prev_hash` is the hash of the journal row before it
/// ([`ZERO_HASH`] for the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalRow<'a> {
    pub id: u64,
    /// When it was written, RFC 3339 as stored.
    pub at: &'a str,
    pub kind: &'a str,
    /// Its detail, JSON text as stored.
    pub detail: &'a str,
    pub prev_hash: &'a str,
}

impl JournalRow<'_> {
    /// The bytes hashed.
    #[must_use]
    pub fn canonical_bytes(&self) -> Vec<u8> {
        format!(
            "anpr-journal/1\n{}\n{}\n{}\n{}\n{}",
            self.id, self.at, self.kind, self.prev_hash, self.detail
        )
        .into_bytes()
    }

    /// The row's hash: lower-case hex sha256 of its canonical bytes.
    #[must_use]
    pub fn hash(&self) -> String {
        sha256_hex(&self.canonical_bytes())
    }
}

/// A walk along a device's journal, in id order. The queue never removes a journal row, so
/// every row must link to the one before it; a row missing is a deleted one.
#[derive(Debug)]
pub struct JournalWalk {
    /// Id of the last row checked (0 before the first).
    last: u64,
    /// Hash of the last row checked ([`ZERO_HASH`] before the first).
    prev: String,
    /// Rows checked.
    pub rows: u64,
}

impl Default for JournalWalk {
    fn default() -> Self {
        Self::new()
    }
}

impl JournalWalk {
    #[must_use]
    pub fn new() -> Self {
        Self {
            last: 0,
            prev: ZERO_HASH.to_string(),
            rows: 0,
        }
    }

    /// Checks the journal row `id` as stored (`prev_hash` and `stored_hash` as recorded when it
    /// was written, `None` where the columns are empty); returns its hash.
    pub fn row(
        &mut self,
        id: u64,
        at: &str,
        kind: &str,
        detail: &str,
        prev_hash: Option<&str>,
        stored_hash: Option<&str>,
    ) -> Result<String, Mismatch> {
        let fail = |seq: u64, what: String| Err(Mismatch { seq, what });
        if id <= self.last {
            return fail(id, "journal id seen twice or out of order".into());
        }
        let (Some(prev_hash), Some(stored)) = (prev_hash, stored_hash) else {
            return fail(
                id,
                "no hash recorded: written behind the queue's back (inserted)".into(),
            );
        };
        let hash = JournalRow {
            id,
            at,
            kind,
            detail,
            prev_hash,
        }
        .hash();
        if hash != stored {
            return fail(
                id,
                format!(
                    "its content hashes to {}…, not to {}… as recorded when it was written: edited",
                    short(&hash),
                    short(stored)
                ),
            );
        }
        if prev_hash != self.prev {
            if id > self.last + 1 {
                let (from, to) = (self.last + 1, id - 1);
                return fail(
                    from,
                    format!(
                        "{}: deleted, a break in the journal chain",
                        missing(from, to)
                    ),
                );
            }
            return fail(
                id,
                format!(
                    "prev_hash {}… does not match the hash {}… of journal row {}: that row was edited, or rows were removed or inserted before this one",
                    short(prev_hash),
                    short(&self.prev),
                    self.last
                ),
            );
        }
        self.last = id;
        self.prev.clone_from(&hash);
        self.rows += 1;
        Ok(hash)
    }

    /// The walk is over: `head` is the journal head the queue recorded (id and hash of the
    /// last row written), if it recorded one.
    pub fn finish(&self, head: Option<&ChainHead>) -> Result<(), Mismatch> {
        let Some(head) = head else {
            return if self.rows == 0 {
                Ok(())
            } else {
                Err(Mismatch {
                    seq: self.last,
                    what: "the journal has rows but no recorded head: the head was deleted".into(),
                })
            };
        };
        if head.seq > self.last {
            let (from, to) = (self.last + 1, head.seq);
            return Err(Mismatch {
                seq: from,
                what: format!(
                    "{} (the recorded head is row {to}): deleted",
                    missing(from, to)
                ),
            });
        }
        if head.seq < self.last {
            return Err(Mismatch {
                seq: head.seq + 1,
                what: format!(
                    "rows after the recorded head (row {}): written behind the queue's back (inserted)",
                    head.seq
                ),
            });
        }
        if head.hash != self.prev {
            return Err(Mismatch {
                seq: self.last,
                what: format!(
                    "the recorded journal head {}… is not the hash {}… of the last row: the last row was edited or replaced",
                    short(&head.hash),
                    short(&self.prev)
                ),
            });
        }
        Ok(())
    }

    /// The last link walked (none for an empty journal).
    #[must_use]
    pub fn head(&self) -> Option<ChainHead> {
        (self.rows > 0).then(|| ChainHead {
            seq: self.last,
            hash: self.prev.clone(),
        })
    }
}

/// "row 4 is missing", "rows 4 to 6 are missing".
fn missing(from: u64, to: u64) -> String {
    if from == to {
        format!("row {from} is missing")
    } else {
        format!("rows {from} to {to} are missing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use crate::event::sign_event;
    use crate::event::tests::passage;

    /// `n` signed, chained events; their hashes.
    fn chain(key: &SigningKey, n: u64) -> (Vec<Event>, Vec<String>) {
        let mut prev = ZERO_HASH.to_string();
        let mut events = Vec::new();
        let mut hashes = Vec::new();
        for seq in 1..=n {
            let mut e = passage(seq);
            e.prev_hash = Some(prev.clone());
            prev = sign_event(&mut e, key);
            events.push(e);
            hashes.push(prev.clone());
        }
        (events, hashes)
    }

    fn walk_all(walk: &mut Walk<'_>, events: &[Event], hashes: &[String]) -> Result<(), Mismatch> {
        for (e, h) in events.iter().zip(hashes) {
            walk.row(e.seq, Some(h), e)?;
        }
        walk.finish(
            events.last().map_or(0, |e| e.seq),
            hashes.last().map(String::as_str),
        )
    }

    #[test]
    fn an_intact_chain_of_three_passes_with_and_without_the_key() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let vk = key.verifying_key();
        let (events, hashes) = chain(&key, 3);
        walk_all(&mut Walk::new(Some(&vk), true), &events, &hashes).unwrap();
        let mut w = Walk::new(None, true);
        walk_all(&mut w, &events, &hashes).unwrap();
        assert_eq!((w.rows, w.legacy), (3, 0));
    }

    #[test]
    fn an_edit_in_the_middle_of_three_is_named() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let vk = key.verifying_key();
        let (mut events, hashes) = chain(&key, 3);
        events[1].plate.text = "777KZA02".into();
        // With the key: the signature of row 2 fails.
        let err = walk_all(&mut Walk::new(Some(&vk), true), &events, &hashes).unwrap_err();
        assert_eq!(err.seq, 2, "{err}");
        assert!(err.what.contains("signature"), "{err}");
        // Without it: row 2 no longer hashes to what was recorded.
        let err = walk_all(&mut Walk::new(None, true), &events, &hashes).unwrap_err();
        assert_eq!(err.seq, 2, "{err}");
        assert!(err.what.contains("edited"), "{err}");
        // Recorded hashes rewritten too, no key: row 3's link names row 2.
        let rehashed: Vec<String> = events.iter().map(event_hash).collect();
        let err = walk_all(&mut Walk::new(None, true), &events, &rehashed).unwrap_err();
        assert_eq!(err.seq, 3, "{err}");
        assert!(
            err.what.contains("hash") && err.what.contains("row 2"),
            "{err}"
        );
    }

    #[test]
    fn a_deleted_row_is_a_break_unless_recorded_as_removed() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let (events, hashes) = chain(&key, 4);
        let mut w = Walk::new(None, true);
        w.row(1, Some(&hashes[0]), &events[0]).unwrap();
        let err = w.row(3, Some(&hashes[2]), &events[2]).unwrap_err();
        assert_eq!(err.seq, 2);
        assert!(err.what.contains("deleted"), "{err}");
        // The queue pruned row 2 and kept its hash: fine.
        let mut w = Walk::new(None, true);
        w.row(1, Some(&hashes[0]), &events[0]).unwrap();
        w.removed(2, 2, Some(&hashes[1])).unwrap();
        w.row(3, Some(&hashes[2]), &events[2]).unwrap();
        w.row(4, Some(&hashes[3]), &events[3]).unwrap();
        w.finish(4, Some(&hashes[3])).unwrap();
        assert_eq!(w.removed, 1);
        // The last row deleted: the queue assigned 4, the walk ends at 3.
        let mut w = Walk::new(None, true);
        for i in 0..3 {
            w.row(events[i].seq, Some(&hashes[i]), &events[i]).unwrap();
        }
        let err = w.finish(4, Some(&hashes[3])).unwrap_err();
        assert_eq!(err.seq, 4, "{err}");
        // On a receiver a missing event is a gap, not a break.
        let mut w = Walk::new(None, false);
        w.row(1, Some(&hashes[0]), &events[0]).unwrap();
        w.row(3, Some(&hashes[2]), &events[2]).unwrap();
        w.finish(3, None).unwrap();
        assert_eq!(w.gaps, vec![(2, 2)]);
    }

    #[test]
    fn unsigned_rows_from_before_signing_pass_only_before_the_chain() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let vk = key.verifying_key();
        let mut old = passage(1);
        old.prev_hash = None;
        let old_hash = event_hash(&old);
        let mut new = passage(2);
        new.prev_hash = Some(old_hash.clone());
        let new_hash = sign_event(&mut new, &key);
        let mut w = Walk::new(Some(&vk), true);
        w.row(1, Some(&old_hash), &old).unwrap();
        w.row(2, Some(&new_hash), &new).unwrap();
        assert_eq!(w.legacy, 1);
        let mut late = passage(3);
        late.prev_hash = None;
        let err = w.row(3, None, &late).unwrap_err();
        assert_eq!(err.seq, 3, "{err}");
        assert!(err.what.contains("no signature"), "{err}");
        // Without the key, the missing link names it.
        let mut w = Walk::new(None, true);
        w.row(1, Some(&old_hash), &old).unwrap();
        w.row(2, Some(&new_hash), &new).unwrap();
        let err = w.row(3, None, &late).unwrap_err();
        assert!(err.what.contains("no prev_hash"), "{err}");
        // A chained row without a signature, with the key given: refused.
        let mut w = Walk::new(Some(&vk), true);
        let mut unsigned = passage(1);
        unsigned.signature = None;
        let err = w.row(1, None, &unsigned).unwrap_err();
        assert!(err.what.contains("no signature"), "{err}");
    }

    /// `n` chained journal rows: (id, at, kind, detail, prev_hash, hash).
    fn journal(n: u64) -> Vec<(u64, String, String, String, String, String)> {
        let mut prev = ZERO_HASH.to_string();
        (1..=n)
            .map(|id| {
                let (at, kind) = ("2025-01-01T00:00:00.000000Z".to_string(), "clock-jump");
                let detail = format!(r#"{{"step_s":{id}}}"#);
                let hash = JournalRow {
                    id,
                    at: &at,
                    kind,
                    detail: &detail,
                    prev_hash: &prev,
                }
                .hash();
                let row = (id, at, kind.into(), detail, prev.clone(), hash.clone());
                prev = hash;
                row
            })
            .collect()
    }

    type JRow = (u64, String, String, String, String, String);

    fn walk_journal(rows: &[JRow], head: Option<&ChainHead>) -> Result<JournalWalk, Mismatch> {
        let mut w = JournalWalk::new();
        for (id, at, kind, detail, prev, hash) in rows {
            w.row(*id, at, kind, detail, Some(prev), Some(hash))?;
        }
        w.finish(head)?;
        Ok(w)
    }

    #[test]
    fn an_intact_journal_walks_to_its_head() {
        let rows = journal(3);
        let head = ChainHead {
            seq: 3,
            hash: rows[2].5.clone(),
        };
        let w = walk_journal(&rows, Some(&head)).unwrap();
        assert_eq!((w.rows, w.head()), (3, Some(head)));
        assert!(walk_journal(&[], None).unwrap().head().is_none());
    }

    #[test]
    fn an_edited_journal_row_is_named_with_or_without_its_hash_rewritten() {
        let mut rows = journal(4);
        let head = ChainHead {
            seq: 4,
            hash: rows[3].5.clone(),
        };
        rows[1].3 = r#"{"step_s":0}"#.into();
        let err = walk_journal(&rows, Some(&head)).unwrap_err();
        assert_eq!(err.seq, 2, "{err}");
        assert!(err.what.contains("edited"), "{err}");
        // The hash rewritten too: row 3's link names row 2.
        let r = &rows[1];
        rows[1].5 = JournalRow {
            id: r.0,
            at: &r.1,
            kind: &r.2,
            detail: &r.3,
            prev_hash: &r.4,
        }
        .hash();
        let err = walk_journal(&rows, Some(&head)).unwrap_err();
        assert_eq!(err.seq, 3, "{err}");
        assert!(err.what.contains("journal row 2"), "{err}");
    }

    #[test]
    fn a_deleted_journal_row_is_a_break_and_a_deleted_last_row_is_found_from_the_head() {
        let mut rows = journal(4);
        let head = ChainHead {
            seq: 4,
            hash: rows[3].5.clone(),
        };
        let mut middle = rows.clone();
        middle.remove(1);
        let err = walk_journal(&middle, Some(&head)).unwrap_err();
        assert_eq!(err.seq, 2, "{err}");
        assert!(err.what.contains("row 2 is missing: deleted"), "{err}");
        rows.pop();
        let err = walk_journal(&rows, Some(&head)).unwrap_err();
        assert_eq!(err.seq, 4, "{err}");
        assert!(err.what.contains("deleted"), "{err}");
        let err = walk_journal(&rows, None).unwrap_err();
        assert!(err.what.contains("no recorded head"), "{err}");
        // A row without hashes (inserted by hand) is refused.
        let mut w = JournalWalk::new();
        let err = w.row(1, "t", "clock-jump", "{}", None, None).unwrap_err();
        assert!(err.what.contains("inserted"), "{err}");
    }
}
