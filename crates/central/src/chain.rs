//! The chain check of an arriving event against what is stored of its device, sans IO: the
//! caller reads the stored neighbours ([`Neighbours`]) in the transaction that will store the
//! event, and [`link`] says whether the event is new, a copy, or a break. The SQLite receiver
//! and the scaled receiver (`anpr-fleet`, PostgreSQL) share it, so both decide alike.

use anpr_types::Event;

/// What is stored of an arriving event's device around it, read in the storing transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Neighbours {
    /// The hash stored under the event's id: `None` when no event has that id, `Some(None)`
    /// when one is stored without a hash (an event stored before hashes were kept).
    pub same_id: Option<Option<String>>,
    /// The id of the event stored under the event's device and sequence number, if any.
    pub same_seq: Option<String>,
    /// The stored previous event (sequence number − 1) of the device, if any: its hash and
    /// whether it has no `prev_hash` (stored before chaining).
    pub previous: Option<(Option<String>, bool)>,
    /// The `prev_hash` of the stored next event (sequence number + 1), if that event is stored.
    pub next_prev_hash: Option<Option<String>>,
}

/// Whether an event may join its device's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not stored yet, and it fits its stored neighbours.
    New,
    /// Stored already, with the same hash.
    Duplicate,
    /// Breaks the chain (or is another event under a stored id or sequence number): the reason.
    Break(String),
}

/// A hash shortened for messages.
fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// How the event `e` (hash `hash`) fits its stored neighbours `n`: the same event id with
/// another hash, another event id under its sequence number, a `prev_hash` that is not the
/// stored previous event's hash, or a stored next event whose `prev_hash` is not this one's
/// hash is a break. Events arrive out of order (live ones overtake the backlog), so each
/// neighbour is checked when it is there, by whichever of the two arrives second.
#[must_use]
pub fn link(e: &Event, hash: &str, n: &Neighbours) -> Link {
    let id = e.event_id;
    if let Some(stored) = &n.same_id {
        return match stored {
            Some(s) if s != hash => Link::Break(format!(
                "event {id} arrived again with other content (hash {}…; {}… is stored): edited after it was first sent",
                short(hash),
                short(s)
            )),
            _ => Link::Duplicate,
        };
    }
    let seq = e.seq;
    if let Some(other) = &n.same_seq {
        return Link::Break(format!(
            "a second event id for sequence number {seq}: {other} is stored under it"
        ));
    }
    if let Some(p) = &e.prev_hash {
        if seq == 1 && p != anpr_trust::ZERO_HASH {
            return Link::Break(format!(
                "the device's first event has prev_hash {}…, not zeros",
                short(p)
            ));
        }
        // Sequence numbers start at 1: event 0 (never recorded) has no predecessor.
        let before = n.previous.as_ref().filter(|_| seq > 1);
        if let Some((Some(h), unchained)) = before
            && p != h
            && !(*unchained && p == anpr_trust::ZERO_HASH)
        {
            return Link::Break(format!(
                "its prev_hash {}… is not the hash {}… of the stored event {}: one of the two was edited, or an event between was removed",
                short(p),
                short(h),
                seq - 1
            ));
        }
    }
    if let Some(Some(next_prev)) = &n.next_prev_hash
        && next_prev != hash
    {
        return Link::Break(format!(
            "its hash {}… is not the prev_hash {}… of the stored event {}: this event was edited, or it is not the one the device recorded under this number",
            short(hash),
            short(next_prev),
            // Stored as SQLite's i64, the number after the largest wraps as it does there.
            seq.wrapping_add(1)
        ));
    }
    Link::New
}

#[cfg(test)]
mod tests {
    use anpr_types::EventKind;

    use super::{Link, Neighbours, link};
    use crate::db::tests::delivery;

    fn h(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn the_decision_follows_the_stored_neighbours() {
        let mut d = delivery("INV-A", 5, EventKind::Passage);
        d.event.prev_hash = Some(h('a'));
        let e = &d.event;
        let mine = h('m');
        assert_eq!(link(e, &mine, &Neighbours::default()), Link::New);
        let same = Neighbours {
            same_id: Some(Some(mine.clone())),
            ..Neighbours::default()
        };
        assert_eq!(link(e, &mine, &same), Link::Duplicate);
        let edited = Neighbours {
            same_id: Some(Some(h('x'))),
            ..Neighbours::default()
        };
        assert!(matches!(link(e, &mine, &edited), Link::Break(r) if r.contains("other content")));
        let taken = Neighbours {
            same_seq: Some("other-id".into()),
            ..Neighbours::default()
        };
        assert!(matches!(link(e, &mine, &taken), Link::Break(r) if r.contains("second event id")));
        let fits = Neighbours {
            previous: Some((Some(h('a')), false)),
            next_prev_hash: Some(Some(mine.clone())),
            ..Neighbours::default()
        };
        assert_eq!(link(e, &mine, &fits), Link::New);
        let before = Neighbours {
            previous: Some((Some(h('b')), false)),
            ..Neighbours::default()
        };
        assert!(matches!(link(e, &mine, &before), Link::Break(r) if r.contains("stored event 4")));
        let after = Neighbours {
            next_prev_hash: Some(Some(h('n'))),
            ..Neighbours::default()
        };
        assert!(matches!(link(e, &mine, &after), Link::Break(r) if r.contains("stored event 6")));
        // A stored next event from before chaining (no prev_hash) says nothing.
        let unchained = Neighbours {
            next_prev_hash: Some(None),
            ..Neighbours::default()
        };
        assert_eq!(link(e, &mine, &unchained), Link::New);
    }
}
