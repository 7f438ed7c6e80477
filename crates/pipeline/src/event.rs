//! A vehicle's passage as the event records stored and sent: the passage itself, and one
//! violation event per rule it broke, each referring to the passage.

use anpr_config::Config;
use std::sync::Arc;

use anpr_track::{Moment, VehiclePassage};

use crate::gnss::DeviceGnss;
use anpr_types::{
    BBox, ClockInfo, DeviceInfo, EVENT_SCHEMA, Event, EventKind, EventPlate, EventVehicle,
    FrameRef, PlateStatus, Position, RgbFrame, ViolationInfo,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What a passage's evidence shows: the moment (frame) it comes from, that frame when the
/// tracker kept it, the vehicle's box and the plate's box in it.
pub(crate) struct Shown<'a> {
    pub at: &'a Moment,
    pub frame: Option<&'a Arc<RgbFrame>>,
    pub vehicle: BBox,
    pub plate: Option<BBox>,
}

/// The passage's evidence: its best plate read, else its best view of the vehicle, else the
/// moment it was captured (no frame).
pub(crate) fn shown(p: &VehiclePassage) -> Shown<'_> {
    if let Some(shot) = &p.plate {
        return Shown {
            at: &shot.at,
            frame: shot.frame.as_ref(),
            vehicle: shot.at.bbox,
            plate: Some(shot.read.bbox),
        };
    }
    if let Some(v) = &p.vehicle {
        return Shown {
            at: &v.at,
            frame: v.frame.as_ref(),
            vehicle: v.detection.bbox,
            plate: None,
        };
    }
    Shown {
        at: &p.captured,
        frame: None,
        vehicle: p.captured.bbox,
        plate: None,
    }
}

/// Turns a passage into the event record stored and sent, with id `event_id` and sequence
/// number `seq`. Its capture time is the moment the vehicle crossed the counting line (or
/// its best shot when it did not cross it); `frame` names the frame its evidence comes from.
/// A stationary unit's position is its configured site; see [`event_from_passage_at`] for a
/// mobile unit's.
#[must_use]
pub fn event_from_passage(
    cfg: &Config,
    camera: &str,
    p: &VehiclePassage,
    event_id: Uuid,
    seq: u64,
) -> Event {
    event_from_passage_at(cfg, None, camera, p, event_id, seq)
}

/// [`event_from_passage`] with a mobile unit's GNSS receiver: the position (and, with
/// `use_for_clock`, the clock) at the passage's capture time.
pub(crate) fn event_from_passage_at(
    cfg: &Config,
    gnss: Option<&DeviceGnss>,
    camera: &str,
    p: &VehiclePassage,
    event_id: Uuid,
    seq: u64,
) -> Event {
    let vehicle = EventVehicle {
        class: p.class,
        confidence: p.class_confidence,
        bbox: p
            .vehicle
            .as_ref()
            .map(|v| v.detection.bbox.to_wire())
            .or(Some(p.captured.bbox.to_wire())),
        direction: p.direction.clone(),
        lane: p.lane.clone(),
    };
    let plate = match (&p.plate, p.status) {
        (Some(shot), PlateStatus::Read) => EventPlate {
            text: p.text.clone(),
            confidence: shot.read.confidence,
            detection_confidence: shot.read.detection_confidence,
            bbox: shot.read.bbox.to_wire(),
            country: shot.read.country.clone(),
            plate_type: shot.read.plate_type.clone(),
            region: shot.read.region.clone(),
            status: PlateStatus::Read,
            low_confidence: shot.read.low_confidence,
        },
        (shot, status) => EventPlate {
            text: String::new(),
            confidence: 0.0,
            detection_confidence: shot.as_ref().map_or(0.0, |s| s.read.detection_confidence),
            bbox: shot.as_ref().map_or([0; 4], |s| s.read.bbox.to_wire()),
            country: None,
            plate_type: None,
            region: None,
            status: if status == PlateStatus::Read {
                PlateStatus::Unreadable
            } else {
                status
            },
            low_confidence: false,
        },
    };
    let shown = shown(p).at;
    Event {
        schema: EVENT_SCHEMA.to_string(),
        event_id,
        seq,
        device: device_info(cfg),
        camera: camera.to_string(),
        kind: EventKind::Passage,
        captured_at: p.captured_at(),
        clock: clock_at(camera, p.captured_at(), gnss),
        position: position(cfg, gnss, p.captured_at()),
        vehicle,
        plate,
        frame: FrameRef {
            index: shown.frame_index,
            width: shown.frame_size.0,
            height: shown.frame_size.1,
        },
        evidence: Vec::new(),
        track: Some(p.track_info()),
        violation: None,
        gap: None,
        custody: None,
        prev_hash: None,
        signature: None,
    }
}

/// A violation event found in `passage`: the passage's facts, its own id and sequence number,
/// and what the rule says.
#[must_use]
pub fn violation_event(passage: &Event, info: ViolationInfo, seq: u64) -> Event {
    Event {
        event_id: Uuid::now_v7(),
        seq,
        kind: EventKind::Violation,
        evidence: Vec::new(),
        violation: Some(info),
        ..passage.clone()
    }
}

/// The device as every event names it.
pub(crate) fn device_info(cfg: &Config) -> DeviceInfo {
    DeviceInfo {
        inventory: cfg.device.inventory.clone(),
        profile: cfg.device.profile.as_str().to_string(),
        site: cfg.device.site.clone(),
    }
}

/// Where this camera's capture times came from at `at` (`camera-ntp`, `pipeline`, `system`),
/// and whether the host clock was synchronised; `gnss` when a mobile unit's receiver serves as
/// the clock (see `crate::gnss`).
pub(crate) fn clock_at(camera: &str, at: DateTime<Utc>, gnss: Option<&DeviceGnss>) -> ClockInfo {
    let host = ClockInfo {
        source: crate::capture::clock::source_at(camera, at).as_str().into(),
        synced: crate::capture::clock::synced(),
        ..ClockInfo::default()
    };
    match gnss {
        Some(g) => g.clock(host, Utc::now()),
        None => host,
    }
}

/// The device's position at capture time `at`: a stationary unit's configured site, a mobile
/// unit's from its GNSS track (none before its first fix).
pub(crate) fn position(
    cfg: &Config,
    gnss: Option<&DeviceGnss>,
    at: DateTime<Utc>,
) -> Option<Position> {
    match gnss {
        Some(g) => g.position_at(at),
        None => cfg
            .device
            .coordinates
            .map(|[lat, lon]| Position::fixed(lat, lon)),
    }
}
