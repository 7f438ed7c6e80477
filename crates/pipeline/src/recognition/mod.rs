//! The recognition thread: one camera's frames through the frame gate, the recognizer (whose
//! ONNX Runtime sessions this thread owns, or its workers' with `parallel_frames`: [`pool`])
//! and the vehicle tracker; each passage is checked against the rules and recorded, with its
//! violations and evidence, in one transaction.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// At the end, how long passages held for a full disk wait for space before they are lost.
const LAST_CHANCE: Duration = Duration::from_secs(10);

use anpr_config::{Camera, Config};
use anpr_ingest::Frame;
use anpr_rules::{Lists, RuleSet};
use anpr_store::Store;
use anpr_track::{FrameGate, FrameObservation, VehiclePassage, VehicleTracker};
use anpr_types::{EventKind, PlateRead, VehicleDetection};
use anpr_vision::Recognizer;
use anyhow::Result;

use crate::DeviceCounters;
use crate::held::Held;
use crate::record::Recorder;
use crate::status::{CameraStatus, Stage};
use crate::watchdog::Part;

mod pool;

use pool::{Done, Job, Pool};

/// What a recognition thread shares with the rest of the device.
pub(crate) struct Shared {
    pub cfg: Arc<Config>,
    /// The device key every event is signed with.
    pub signer: anpr_trust::SigningKey,
    pub rules: Arc<RuleSet>,
    pub lists: Arc<Lists>,
    pub counters: Arc<DeviceCounters>,
    /// Where faults are raised (a full disk).
    pub uplink: Arc<anpr_uplink::Counters>,
    /// A mobile unit's GNSS receiver (events' positions).
    pub gnss: Option<crate::gnss::DeviceGnss>,
}

/// Recognises frames from `rx` until the capture side hangs up, then records the passages
/// still open. An error is a queue failure; a frame that cannot be recognised is skipped. A
/// full disk is no error: the passages wait in memory ([`Held`]) until space returns. `part`
/// is busy while a frame is handled, for the watchdog. With `[models] parallel_frames` above
/// one, that many frames are recognised at once on worker threads ([`pool`]), `rec` being the
/// first worker's recognizer and the others loaded here.
pub(crate) fn recognition_thread(
    shared: &Shared,
    camera: &Camera,
    rec: Recognizer,
    rx: &Receiver<Frame>,
    part: &Part,
) -> Result<()> {
    let cfg = shared.cfg.as_ref();
    let counters = shared.counters.as_ref();
    let mut recognizers = vec![rec];
    for _ in 1..cfg.models.parallel_frames.max(1) {
        recognizers.push(crate::models::load_recognizer(cfg)?);
    }
    let status = counters.cameras.get_or_add(&camera.id);
    let recorder = Recorder {
        cfg,
        camera,
        rules: &shared.rules,
        lists: &shared.lists,
        status: &status,
        recent: &counters.recent,
        gnss: shared.gnss.as_ref(),
    };
    let mut road = Road::new(shared, camera, recorder, &status)?;
    std::thread::scope(|scope| -> Result<()> {
        let mut pool = Pool::start(scope, &camera.id, recognizers)?;
        for frame in rx {
            let _busy = part.busy();
            #[cfg(feature = "fault-injection")]
            crate::inject::maybe_hang(&camera.id, frame.index);
            let Some(job) = road.admit(frame) else {
                continue;
            };
            if let Some(done) = pool.submit(job)? {
                road.take(done)?;
            }
        }
        for done in pool.drain()? {
            road.take(done)?;
        }
        Ok(())
    })?;
    road.finish()
}

/// The sequential side of a camera's recognition: the frame gate before the recognizer, and
/// after it the tracker, the rules and the queue, which take the frames in their order.
struct Road<'a> {
    shared: &'a Shared,
    id: &'a str,
    status: &'a CameraStatus,
    recorder: Recorder<'a>,
    store: Store,
    gate: FrameGate,
    tracker: VehicleTracker,
    held: Held<VehiclePassage>,
    vehicle_every: u64,
    recognised: u64,
}

impl<'a> Road<'a> {
    fn new(
        shared: &'a Shared,
        camera: &'a Camera,
        recorder: Recorder<'a>,
        status: &'a CameraStatus,
    ) -> Result<Self> {
        let cfg = shared.cfg.as_ref();
        let store = Store::open(&cfg.storage.queue)?
            .with_quota(cfg.storage.quota_bytes())
            .with_signer(shared.signer.clone());
        let tracker_cfg = crate::view::tracker_config(cfg, camera);
        let gate = FrameGate::new(camera.idle_every, camera.track_every, tracker_cfg.max_gap);
        let tracker = VehicleTracker::new(tracker_cfg, crate::view::scene(camera)?);
        Ok(Self {
            shared,
            id: camera.id.as_str(),
            status,
            recorder,
            store,
            gate,
            tracker,
            held: Held::new(&camera.id),
            vehicle_every: u64::from(cfg.models.vehicle_every.max(1)),
            recognised: 0,
        })
    }

    /// Counts a frame from the camera and, when the frame gate wants it, makes it a job for
    /// the recognizer: with the vehicle detector while a passage still lacks a vehicle of a
    /// known type, and on one recognised frame in `vehicle_every` besides; with the plates
    /// the tracker has read alike in `known_plate_reads` frames, for the recognizer to
    /// confirm from one view.
    fn admit(&mut self, frame: Frame) -> Option<Job> {
        let counters = self.shared.counters.as_ref();
        if let Some(decoded) = self.status.take_decoded(frame.captured_at) {
            self.status.latency.observe(Stage::Wait, decoded.elapsed());
        }
        // At most once a second, for the status page.
        self.status.offer_snapshot(&frame.image);
        counters
            .stream_ms
            .fetch_max(frame.pts.as_millis() as u64, Ordering::Relaxed);
        if !self.gate.wants(frame.index) {
            counters.frames_skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let want_vehicles = self.recognised.is_multiple_of(self.vehicle_every)
            || self
                .tracker
                .needs_vehicle(self.shared.cfg.models.vehicle_class_confidence);
        self.recognised += 1;
        let known = self
            .tracker
            .known_plates(frame.index, self.shared.cfg.models.known_plate_reads);
        Some(Job {
            frame,
            want_vehicles,
            known,
        })
    }

    /// Takes a recognised frame: counts it, steps the tracker and records the passages it
    /// ended. A frame the recognizer failed on is skipped.
    fn take(&mut self, done: Done) -> Result<()> {
        let Done { job, result, took } = done;
        let Job {
            frame,
            want_vehicles,
            ..
        } = job;
        let (id, counters) = (self.id, self.shared.counters.as_ref());
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(camera = id, frame = frame.index, error = %e, "Frame skipped.");
                return Ok(());
            }
        };
        counters
            .infer_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.status.latency.observe(Stage::Recognise, took);
        self.status
            .frames_recognised
            .fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "fault-injection")]
        crate::inject::maybe_panic(id, frame.index);
        counters.frames.fetch_add(1, Ordering::Relaxed);
        counters.plate_reads.fetch_add(
            result.plates.iter().filter(|p| !p.text.is_empty()).count() as u64,
            Ordering::Relaxed,
        );
        counters
            .plates_confirmed
            .fetch_add(result.confirmed_reads() as u64, Ordering::Relaxed);
        counters
            .vehicles
            .fetch_add(result.vehicles.len() as u64, Ordering::Relaxed);
        let size = (frame.image.width, frame.image.height);
        let seen = !result.plates.is_empty() || !result.vehicles.is_empty();
        // Kept (shared) only on the shots that may become evidence: a few frames per vehicle.
        let image = seen.then(|| Arc::new(frame.image));
        let plates: Vec<PlateRead> = result
            .plates
            .iter()
            .filter(|p| plausible_plate(p, &result.vehicles))
            .cloned()
            .collect();
        let mut obs =
            FrameObservation::new(frame.index, frame.captured_at, size).with_plates(&plates);
        if want_vehicles {
            obs = obs.with_vehicles(&result.vehicles);
        }
        if let Some(image) = &image {
            obs = obs.with_frame(image);
        }
        let t = Instant::now();
        let ended = self.tracker.step(&obs);
        self.status.latency.observe(Stage::Track, t.elapsed());
        self.gate.saw(
            frame.index,
            result.plates.len() + self.tracker.vehicles_in_view(),
        );
        self.commit(ended)?;
        Ok(())
    }

    /// Records `passages` (held in memory while the disk is full); returns how many are held.
    fn commit(&mut self, passages: Vec<VehiclePassage>) -> Result<usize> {
        let Self {
            shared,
            id,
            recorder,
            store,
            held,
            ..
        } = self;
        let (id, counters) = (*id, shared.counters.as_ref());
        let log_plates = shared.cfg.device.log_plates;
        #[cfg(feature = "fault-injection")]
        crate::inject::queue_full(store);
        held.commit(passages, Instant::now(), &shared.uplink.faults, |p| {
            let events = recorder.record(store, p)?;
            for e in &events {
                // The plate text goes into the log only where `[device] log_plates` asks.
                let plate = log_plates.then_some(e.plate.text.as_str());
                match e.kind {
                    EventKind::Passage => {
                        tracing::info!(camera = id, seq = e.seq, plate, status = e.plate.status.as_str(), class = %e.vehicle.class, direction = e.vehicle.direction.as_deref().unwrap_or("-"), "Passage recorded.");
                    }
                    EventKind::Violation => {
                        let rule = e.violation.as_ref().map_or("", |v| v.rule.as_str());
                        tracing::info!(camera = id, seq = e.seq, plate, status = e.plate.status.as_str(), rule, "Violation recorded.");
                        counters.violations.fetch_add(1, Ordering::Relaxed);
                    }
                    // Gaps are recorded on the capture side and custody records by `anpr
                    // custody` / `anpr export`, never from a passage.
                    EventKind::CameraGap | EventKind::Custody => {}
                }
            }
            counters
                .events
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(held.len())
    }

    /// Records the passages still open; passages held for a full disk get a last short while
    /// for the disk to free up before they are lost.
    fn finish(mut self) -> Result<()> {
        let ended = self.tracker.flush();
        let mut still_held = self.commit(ended)?;
        let last_chance = Instant::now() + LAST_CHANCE;
        while still_held > 0 && Instant::now() < last_chance {
            std::thread::sleep(Duration::from_millis(250));
            still_held = self.commit(Vec::new())?;
        }
        if still_held > 0 {
            tracing::error!(
                camera = self.id,
                passages = still_held,
                "Stopping with the queue's disk still full: the passages held in memory are lost."
            );
        }
        Ok(())
    }
}

/// A plate is at most about a third of its vehicle's width (a 520 mm plate on a car 1.7 m wide
/// or more; a motorcycle's plate is narrower still). A plate box that could not be read and
/// covers more than this share of the width of the vehicle around it is another part of the
/// vehicle (a door, a panel): it must not make a vehicle without a plate `unreadable`.
const PLATE_WIDTH_SHARE_MAX: f32 = 0.6;

/// Fewer characters than this is no plate read (the tracker does not vote on them either).
const PLATE_MIN_CHARS: usize = 4;

/// Whether a plate box is worth giving the tracker: any plate read, and a box not read (or read
/// as a character or two) unless it is too wide for the vehicle that holds its centre.
pub fn plausible_plate(plate: &PlateRead, vehicles: &[VehicleDetection]) -> bool {
    plate.text.chars().count() >= PLATE_MIN_CHARS
        || !vehicles.iter().any(|v| {
            v.bbox.contains_centre_of(&plate.bbox)
                && plate.bbox.w > PLATE_WIDTH_SHARE_MAX * v.bbox.w
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_types::{BBox, VehicleClass};

    fn plate(text: &str, w: f32) -> PlateRead {
        PlateRead {
            text: text.into(),
            confidence: 0.9,
            char_confidences: vec![0.9; text.len()],
            detection_confidence: 0.5,
            bbox: BBox {
                x: 100.0,
                y: 150.0,
                w,
                h: w / 4.0,
            },
            raw_text: text.into(),
            country: None,
            plate_type: None,
            region: None,
            format_confidence: 0.0,
            low_confidence: false,
        }
    }

    #[test]
    fn an_unread_plate_box_wider_than_most_of_its_vehicle_is_not_a_plate() {
        let truck = VehicleDetection {
            class: VehicleClass::Truck,
            confidence: 0.8,
            bbox: BBox {
                x: 50.0,
                y: 50.0,
                w: 300.0,
                h: 300.0,
            },
        };
        assert!(plausible_plate(
            &plate("", 100.0),
            std::slice::from_ref(&truck)
        ));
        assert!(!plausible_plate(
            &plate("", 200.0),
            std::slice::from_ref(&truck)
        ));
        assert!(
            plausible_plate(&plate("123ABC01", 200.0), std::slice::from_ref(&truck)),
            "a read plate is kept"
        );
        assert!(
            plausible_plate(&plate("", 200.0), &[]),
            "no vehicle to judge by"
        );
    }
}
