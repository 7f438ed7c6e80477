//! Records to store in the tests of the database and the report.

use anpr_types::{
    Delivery, Drops, Event, EventKind, HEALTH_SCHEMA, Health, ListMatch, QueueHealth, ViolationInfo,
};
use chrono::{DateTime, Utc};

/// Now, to the microsecond (the precision times are stored with).
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_default()
}

/// A delivery of a car whose plate was read, captured now (to the microsecond).
pub(crate) fn delivery(inventory: &str, seq: u64, kind: EventKind) -> Delivery {
    let captured_at = now();
    Delivery {
        event: Event {
            kind,
            captured_at,
            ..anpr_types::sample::passage(inventory, seq)
        },
        sent_at: captured_at,
        delayed: false,
    }
}

/// A violation of `rule` found in `passage`, with the list entry `(name, version, entry,
/// fuzzy)` it matched, if any.
pub(crate) fn violation(
    inventory: &str,
    seq: u64,
    passage: &Delivery,
    rule: &str,
    kind: &str,
    list: Option<(&str, u64, &str, bool)>,
) -> Delivery {
    let mut d = delivery(inventory, seq, EventKind::Violation);
    d.event.violation = Some(ViolationInfo {
        rule: rule.into(),
        kind: kind.into(),
        reason: format!("{rule} broken"),
        priority: 2,
        passage: passage.event.event_id,
        passage_seq: passage.event.seq,
        list: list.map(|(name, version, entry, fuzzy)| ListMatch {
            name: name.into(),
            version,
            entry: entry.into(),
            fuzzy,
        }),
    });
    d
}

/// A full health message with nothing to report.
pub(crate) fn health(inventory: &str, status: &str) -> Health {
    Health {
        schema: HEALTH_SCHEMA.into(),
        status: status.into(),
        inventory: inventory.into(),
        at: now(),
        queue: QueueHealth::default(),
        dropped: Drops::default(),
        clock_jumps: 0,
        faults: Vec::new(),
        journal_head: None,
        models: Vec::new(),
    }
}
