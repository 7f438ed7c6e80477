//! Made-up events: what the fleet simulator records and what the tests store, sign and send.
//!
//! Here rather than in `anpr-testkit` because the simulator (`anpr-fleetsim`, part of the
//! shipped binary) records them too, and a shipped crate does not depend on the test kit.
//! Each function returns a whole, valid event that the caller changes field by field where
//! it needs something else.

use chrono::Utc;
use uuid::Uuid;

use crate::{
    ClockInfo, DeviceInfo, EVENT_SCHEMA, Event, EventKind, EventPlate, EventVehicle, FrameRef,
    PlateStatus, VehicleClass,
};

/// A passage of a car whose plate `123ABC01` was read, event `seq` of the stationary device
/// `inventory` (site `s`, camera `cam1`), captured now by an unsynchronised system clock: a
/// new event id, no position, no boxes but the plate's, no evidence, not chained or signed.
#[must_use]
pub fn passage(inventory: &str, seq: u64) -> Event {
    Event {
        schema: EVENT_SCHEMA.into(),
        event_id: Uuid::now_v7(),
        seq,
        device: DeviceInfo {
            inventory: inventory.into(),
            profile: "stationary".into(),
            site: "s".into(),
        },
        camera: "cam1".into(),
        kind: EventKind::Passage,
        captured_at: Utc::now(),
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
    }
}

/// As [`passage`], with what the recognizer adds to a read: the vehicle's box, the plate's
/// box, country (`KZ`), type and region, in frame `seq` of 1280×720.
#[must_use]
pub fn recorded_passage(inventory: &str, seq: u64) -> Event {
    let mut event = passage(inventory, seq);
    event.vehicle.bbox = Some([10, 20, 300, 200]);
    event.plate = EventPlate {
        confidence: 0.95,
        bbox: [100, 150, 120, 26],
        country: Some("KZ".into()),
        plate_type: Some("private-2012".into()),
        region: Some("01 Astana".into()),
        ..event.plate
    };
    event.frame = FrameRef {
        index: seq,
        width: 1280,
        height: 720,
    };
    event
}
