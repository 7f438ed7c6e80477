//! Records to store in the tests of the database and the report.

use anpr_types::{
    ClockInfo, Delivery, DeviceInfo, Drops, EVENT_SCHEMA, Event, EventKind, EventPlate,
    EventVehicle, FrameRef, HEALTH_SCHEMA, Health, ListMatch, PlateStatus, QueueHealth,
    VehicleClass, ViolationInfo,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Now, to the microsecond (the precision times are stored with).
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_default()
}

/// A delivery of a car whose plate was read.
pub(crate) fn delivery(inventory: &str, seq: u64, kind: EventKind) -> Delivery {
    let captured_at = now();
    Delivery {
        event: Event {
            schema: EVENT_SCHEMA.into(),
            event_id: Uuid::now_v7(),
            seq,
            device: DeviceInfo {
                inventory: inventory.into(),
                profile: "stationary".into(),
                site: "s".into(),
            },
            camera: "cam1".into(),
            kind,
            captured_at,
            clock: ClockInfo {
                source: "system".into(),
                synced: false,
                ..ClockInfo::default()
            },
            position: None,
            vehicle: EventVehicle {
                class: VehicleClass::Car,
                confidence: 0.9,
                bbox: None,
                direction: None,
                lane: None,
            },
            plate: EventPlate {
                text: "123ABC01".into(),
                confidence: 0.9,
                detection_confidence: 0.8,
                bbox: [1, 2, 3, 4],
                country: None,
                plate_type: None,
                region: None,
                status: PlateStatus::Read,
                low_confidence: false,
            },
            frame: FrameRef {
                index: 1,
                width: 10,
                height: 10,
            },
            evidence: Vec::new(),
            track: None,
            violation: None,
            gap: None,
            custody: None,
            prev_hash: None,
            signature: None,
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
