//! Recording a passage: the rules checked, the passage and its violations built as events with
//! their evidence, and all of them appended to the queue in one transaction.

use anpr_config::{Camera, Config};
use anpr_rules::{Lists, PassageFacts, RuleSet};
use anpr_store::{NewEvidence, NewRecord, Store};
use anpr_track::VehiclePassage;
use anpr_types::{BBox, Event, PlateStatus, RgbFrame};
use uuid::Uuid;

use crate::event::{event_from_passage_at, violation_event};
use crate::evidence;
use crate::gnss::DeviceGnss;
use crate::overlay::Overlay;
use crate::status::{CameraStatus, RecentEvent, RecentEvents, Stage};

/// What the rules and the evidence of one camera need, and where what is recorded is shown
/// (the camera's `record` latency, the status page's recent events).
pub(crate) struct Recorder<'a> {
    pub cfg: &'a Config,
    pub camera: &'a Camera,
    pub rules: &'a RuleSet,
    pub lists: &'a Lists,
    pub status: &'a CameraStatus,
    pub recent: &'a RecentEvents,
    /// A mobile unit's GNSS receiver: each event's position at its capture time.
    pub gnss: Option<&'a DeviceGnss>,
}

/// The passage's facts as the rules look at them.
fn facts(camera: &str, p: &VehiclePassage) -> PassageFacts {
    PassageFacts {
        camera: camera.to_string(),
        plate: if p.status == PlateStatus::Read {
            p.text.clone()
        } else {
            String::new()
        },
        plate_status: p.status,
        plate_low_confidence: p.status == PlateStatus::Read
            && p.plate
                .as_ref()
                .is_some_and(|shot| shot.read.low_confidence),
        vehicle_class: p.class,
        direction: p.direction.clone(),
        lane: p.lane.clone(),
        zones: p.zones.clone(),
        captured_at: p.captured_at(),
    }
}

impl Recorder<'_> {
    /// Records `passage` and the violations it raises; returns the events as stored. The
    /// time it took is the camera's [`Stage::Record`] latency, and the events join the recent
    /// ones with the passage's plate crop.
    pub fn record(
        &self,
        store: &mut Store,
        passage: &VehiclePassage,
    ) -> Result<Vec<Event>, anpr_store::StoreError> {
        let started = std::time::Instant::now();
        let camera = self.camera.id.as_str();
        let violations = self.rules.check(&facts(camera, passage), self.lists);
        let quality = self.cfg.storage.jpeg_quality;
        let shown = crate::event::shown(passage);
        let shown = shown.frame.map(|f| (f, shown.vehicle, shown.plate));
        let passage_images = shown.map_or_else(Vec::new, |(frame, _, plate)| {
            evidence::images(frame, plate.as_ref(), &self.cfg.storage.evidence, quality)
        });
        // A copy of the plate crop for the status page (a few kilobytes).
        let plate_jpeg = passage_images
            .iter()
            .find(|e| e.kind == anpr_config::EvidenceKind::Plate.as_str())
            .map(|e| std::sync::Arc::new(e.data.clone()));
        let passage_id = Uuid::now_v7();
        // The passage is built first, so every violation can copy it; sequence numbers follow
        // on in the same transaction.
        // Position and clock are those at the passage's capture time, not at this moment.
        let base = event_from_passage_at(self.cfg, self.gnss, camera, passage, passage_id, 0);
        let mut records: Vec<NewRecord<'_>> = Vec::with_capacity(1 + violations.len());
        let passage_event = base.clone();
        records.push(NewRecord {
            build: Box::new(move |seq| Event {
                seq,
                ..passage_event
            }),
            evidence: passage_images,
        });
        for (k, v) in violations.into_iter().enumerate() {
            let images = shown.map_or_else(Vec::new, |(frame, vehicle, plate)| {
                self.violation_images(frame, vehicle, plate, &base, &v.rule, &v.reason)
            });
            let base = &base;
            records.push(NewRecord {
                build: Box::new(move |seq| {
                    // The passage took the sequence number `k + 1` places before this one.
                    let passage_seq = seq - (k as u64 + 1);
                    violation_event(base, v.into_info(passage_id, passage_seq), seq)
                }),
                evidence: images,
            });
        }
        let events = store.append_batch(records)?;
        self.status
            .latency
            .observe(Stage::Record, started.elapsed());
        for e in &events {
            self.recent.push(RecentEvent::new(e, plate_jpeg.clone()));
        }
        Ok(events)
    }

    /// Overview, plate crop and overlay of a violation, all from the frame that was read.
    fn violation_images(
        &self,
        frame: &RgbFrame,
        vehicle: BBox,
        plate: Option<BBox>,
        passage: &Event,
        rule: &str,
        reason: &str,
    ) -> Vec<NewEvidence> {
        let quality = self.cfg.storage.jpeg_quality;
        let mut out = evidence::images(
            frame,
            plate.as_ref(),
            &[
                anpr_config::EvidenceKind::Overview,
                anpr_config::EvidenceKind::Plate,
            ],
            quality,
        );
        let plate_line = if passage.plate.status == PlateStatus::Read {
            format!("{}  {}", passage.plate.text, passage.vehicle.class)
        } else {
            format!(
                "plate {}  {}",
                passage.plate.status.as_str(),
                passage.vehicle.class
            )
        };
        let local = passage
            .captured_at
            .with_timezone(&self.cfg.device.time_zone)
            .format("%Y-%m-%d %H:%M:%S%.3f %Z");
        let lines = [
            plate_line,
            format!(
                "{local}  {} / {}  {}",
                self.cfg.device.inventory,
                passage.camera,
                passage.vehicle.direction.as_deref().unwrap_or("")
            ),
            format!("{rule}: {reason}"),
        ];
        out.extend(evidence::overlay_image(
            frame,
            &Overlay {
                vehicle: Some(vehicle),
                plate,
                lines: &lines,
            },
            quality,
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_track::{Moment, PlateShot, TrackId};
    use anpr_types::{PlateRead, VehicleClass};

    fn passage(low_confidence: bool) -> VehiclePassage {
        let at = Moment {
            frame_index: 7,
            captured_at: chrono::DateTime::UNIX_EPOCH,
            frame_size: (1280, 720),
            bbox: BBox {
                x: 100.0,
                y: 100.0,
                w: 300.0,
                h: 200.0,
            },
        };
        let read = PlateRead {
            text: "123ABC".into(),
            confidence: 0.9,
            char_confidences: vec![0.9; 6],
            detection_confidence: 0.8,
            bbox: BBox {
                x: 200.0,
                y: 250.0,
                w: 100.0,
                h: 30.0,
            },
            raw_text: "123ABC".into(),
            country: None,
            plate_type: None,
            region: None,
            format_confidence: 0.0,
            low_confidence,
        };
        VehiclePassage {
            track: TrackId(1),
            status: PlateStatus::Read,
            text: "123ABC".into(),
            agreement: 1.0,
            text_reads: 3,
            plate_frames: 3,
            plate: Some(PlateShot {
                read,
                at: at.clone(),
                frame: None,
            }),
            class: VehicleClass::Car,
            class_confidence: 0.9,
            vehicle: None,
            first_seen: at.clone(),
            last_seen: at.clone(),
            frames: 3,
            captured: at,
            direction: None,
            crossing_frame: None,
            lane: None,
            zones: Vec::new(),
            dwell: false,
        }
    }

    #[test]
    fn a_read_no_plate_format_fits_is_flagged_in_the_event_and_to_the_rules() {
        let cfg = anpr_config::parse(
            include_str!("../../../config/example.toml"),
            std::path::Path::new("config/example.toml"),
        )
        .unwrap();
        let sure = crate::event_from_passage(&cfg, "cam1", &passage(false), Uuid::nil(), 1);
        assert!(!sure.plate.low_confidence);
        assert!(
            !serde_json::to_string(&sure)
                .unwrap()
                .contains("low_confidence"),
            "absent when not flagged"
        );
        assert!(!facts("cam1", &passage(false)).plate_low_confidence);
        let unsure = crate::event_from_passage(&cfg, "cam1", &passage(true), Uuid::nil(), 1);
        assert!(unsure.plate.low_confidence);
        assert!(facts("cam1", &passage(true)).plate_low_confidence);
        let mut unread = passage(true);
        unread.status = PlateStatus::Unreadable;
        assert!(!facts("cam1", &unread).plate_low_confidence);
        assert!(
            !crate::event_from_passage(&cfg, "cam1", &unread, Uuid::nil(), 1)
                .plate
                .low_confidence
        );
    }
}
