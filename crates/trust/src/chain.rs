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

use std::fmt;

use anpr_types::Event;

use crate::event::{event_hash, verify_event};
use crate::{VerifyingKey, ZERO_HASH};

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
}
