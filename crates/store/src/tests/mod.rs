//! Helpers shared by the tests of every module, and the tests that span modules.

mod model;

use anpr_types::{
    ClockInfo, DeviceInfo, EVENT_SCHEMA, Event, EventKind, EventPlate, EventVehicle, FrameRef,
    PlateStatus, VehicleClass,
};
use chrono::Utc;
use uuid::Uuid;

use crate::NewEvidence;

/// A passage of a car, read, captured now.
pub(crate) fn event(seq: u64) -> Event {
    Event {
        schema: EVENT_SCHEMA.into(),
        event_id: Uuid::now_v7(),
        seq,
        device: DeviceInfo {
            inventory: "INV-1".into(),
            profile: "stationary".into(),
            site: "s".into(),
        },
        camera: "cam1".into(),
        kind: EventKind::Passage,
        captured_at: Utc::now(),
        clock: ClockInfo {
            source: "system".into(),
            synced: false,
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
        },
        frame: FrameRef {
            index: 1,
            width: 10,
            height: 10,
        },
        evidence: Vec::new(),
        track: None,
        violation: None,
    }
}

/// A violation, otherwise as [`event`].
pub(crate) fn violation(seq: u64) -> Event {
    Event {
        kind: EventKind::Violation,
        ..event(seq)
    }
}

/// A JPEG-typed image of `len` bytes, all `byte`.
pub(crate) fn image(kind: &str, byte: u8, len: usize) -> NewEvidence {
    NewEvidence {
        kind: kind.into(),
        content_type: "image/jpeg".into(),
        data: vec![byte; len],
    }
}
