//! Sans-IO vehicle tracking: one passage per vehicle that goes through the view, whether or
//! not its plate could be read.
//!
//! # Contract
//!
//! - [`VehicleTracker::step`] takes what recognition found in one frame (a
//!   [`FrameObservation`]) and returns the passages decided in that frame;
//!   [`VehicleTracker::flush`] ends every open track (end of stream, shutdown). No clocks,
//!   threads or I/O: the caller passes frame indices and capture times, so the same frames
//!   always give the same passages. Frame indices must increase; a frame whose index is not
//!   above the previous one is ignored.
//! - A confirmed track (matched in at least `min_hits` frames) makes exactly one passage: when
//!   it ends, or, for a vehicle in view longer than `max_dwell`, once at that moment (flagged
//!   `dwell`), after which it is followed but not recorded again while it stays. A track that
//!   was never confirmed ends silently.
//! - Two plates read in the same frame never join the same track, and a track takes at most
//!   one plate per frame.
//! - [`VehicleTracker::known_plates`] names the plates open tracks have read as one text in
//!   enough frames, where each is expected next, so that recognition can confirm them from one
//!   view of the reader instead of reading them from every view again. It only reads the
//!   tracker's state; the readings it is then given favour those texts (a plate confirmed
//!   from one view is not read from the further views that might have read it otherwise).
//! - Memory is bounded: each open track holds at most `max_texts` distinct texts and
//!   [`FRAMES_PER_TRACK`] frames, and at most [`MAX_TRACKS`] tracks are open (a detection that
//!   would open one more is ignored). See [`VehicleTracker::footprint`].
//!
//! # How frames are associated
//!
//! Tracks are vehicles, followed SORT-style: predict, associate, update.
//!
//! 1. **Predict.** Each track predicts its box with a constant-velocity filter on each edge
//!    of the box; time is the frame index, so frames that were not recognised
//!    just make a longer step. An edge lying on the frame's border (a vehicle entering or
//!    leaving, cut by the detector) is left to its prediction rather than taken as the
//!    vehicle's edge.
//! 2. **Detections** (frames where the vehicle detector ran) pair with tracks by the
//!    Hungarian method (`pathfinding::kuhn_munkres`), maximising the summed score: the
//!    overlap of predicted and detected box (intersection over union, at least `min_iou`);
//!    failing that, a lower fixed score when the detection holds the track's plate where it
//!    was expected (a vehicle that moved more than predicted); failing that, for a track
//!    seen once (no velocity yet), a small score for a nearby detection of similar size. A
//!    track whose box was only guessed from its plate pairs only with a detection holding
//!    that plate. Greedy best-overlap-first is simpler, but where boxes overlap (vehicles
//!    side by side at the frame's edge, one partly hiding another) it can hand a vehicle's
//!    detection to its neighbour and leave the neighbour unmatched, which splits both
//!    tracks; the optimal assignment does not, and with the handful of boxes a roadside
//!    camera sees it costs microseconds. On frames where the detector did not run, nothing
//!    is known about vehicles without a plate: tracks are predicted and not counted as
//!    missed.
//! 3. **The same vehicle twice.** Two tracks are merged when one, left unmatched, expects
//!    its plate inside the detection the other took, or when the detection a plate-implied
//!    track (below) took also fits a detected track left unmatched; never when their texts
//!    differ by more than one character or both carried plates in overlapping spans of
//!    frames (two plates in one frame stay two vehicles).
//! 4. **New vehicles.** Detections left over start tentative tracks, unless they mostly
//!    cover a box already matched (a duplicate detection).
//! 5. **Plates** attach one per track per frame, and a track takes one plate per frame.
//!    Candidate pairs, best first: the plate is near where the track's plate was expected by
//!    its known motion (nearest first); the plate's centre lies in the track's detected box,
//!    or in the predicted box (with a margin) of a vehicle whose motion is known; the plate
//!    is near a plate seen once lately; the plate lies in the box of a vehicle detected once,
//!    lately. Among plates in boxes, the more confident plate goes first, each to the
//!    smallest box holding it: when two plates fall in one vehicle box, the vehicle keeps the
//!    more confident, and the other goes to another box holding it or is dropped. A box
//!    guessed from a plate holds no other plate. A plate read (at least `min_chars`
//!    characters) that joined no track and lies in no detected vehicle's box starts a
//!    plate-implied track, its box the plate grown to a plausible vehicle size, so that a
//!    plate seen while the detector missed the car still gives a passage; a plate box that
//!    was not read does not (alone it is too weak to claim a vehicle).
//! 6. **Update.** Detections update the boxes; a plate alone moves its track's box by where
//!    the plate sits on the vehicle (learnt from frames with both), or, for a plate-implied
//!    track, by the grown plate box. Each track also follows its plate's own motion.
//!
//! # Ending
//!
//! A track ends when it has been matched (by a detection or a plate) in none of the last
//! `max_gap` frame indices. The gap is counted in frame indices, not recognised frames, so
//! how many frames the gate thins out does not change how long a vehicle may be hidden; it
//! must exceed the frame distance between two runs of the vehicle detector, or a vehicle
//! without a readable plate ends between two of them. A tentative track ends sooner: after
//! `max_gap / 2` frames unmatched, or, if it was detected, when the detector looked for it
//! twice in a row and it was not found: a false detection, or a vehicle another track took
//! over. A plate read in between keeps it only if the plate moved its box (where the plate
//! sits on the vehicle is known); otherwise the box stays where the vehicle was seen while
//! the vehicle drives on. It must not linger where it was seen and catch the next vehicle
//! there (for the same reason a track seen once pairs with a detection it does not overlap
//! only within a few frames of that sighting).
//!
//! # What a passage says
//!
//! - Plate text: the confidence-weighted consensus (weight = read confidence × plate
//!   detection confidence) over texts of at least `min_chars` characters; the best shot is
//!   the most confident read of that text, with its frame. Status `read` when a consensus
//!   exists; `unreadable` when plate boxes were found but none read, or when none were found
//!   on a vehicle never seen close enough; `absent` when none were found on a vehicle whose
//!   box was at least `plate_visible_width` of the frame width in some frame.
//! - Vehicle type: the most confident detection of a known class over the track (a known
//!   class beats `unknown` whatever the confidence). The most confident view is usually the
//!   closest and largest, where the detector tells classes apart best; a vote would let many
//!   distant, uncertain frames outvote it.
//! - Direction: the track's reference point (bottom centre of its box) crossing the camera's
//!   counting line, in frames where the vehicle was matched (see
//!   [`CountingLine`](crate::geometry::CountingLine)). The first crossing counts; its frame
//!   (the first observed on the other side) gives the passage's capture time. A track that
//!   never crosses has no direction, and its capture time is that of its best shot: the
//!   plate's, else the vehicle's.
//! - Zones: the lane containing the reference point at the capture moment, and every zone
//!   containing it.

mod assign;
mod motion;
#[cfg(test)]
mod tests;
mod track;

use std::fmt;
use std::sync::Arc;

use anpr_types::{
    BBox, KnownPlate, PlateRead, PlateStatus, RgbFrame, TrackInfo, VehicleClass, VehicleDetection,
};
use chrono::{DateTime, TimeDelta, Utc};

use crate::geometry::{Point, Scene};
pub use track::FRAMES_PER_TRACK;
use track::Track;

/// Most tracks open at once; a detection that would open one more is ignored.
pub const MAX_TRACKS: usize = 256;

/// A tentative track the detector looked for and did not find in this many frames in a row
/// ends (a false detection, or a vehicle another track has taken over).
const TENTATIVE_MISSES: u32 = 2;

/// An unmatched detection covering a matched box at least this much (intersection over
/// union) is taken for a duplicate detection of the same vehicle.
const DUPLICATE_IOU: f32 = 0.6;

/// A predicted box holds plates this much beyond its sides (share of its width and height).
const PREDICTION_MARGIN: f32 = 0.2;

/// A plate joins the track whose own plate was expected within one plate width of it, plus
/// this many plate widths for each frame since that plate was last seen...
const PLATE_SPREAD: f32 = 0.1;
/// ...or this many while the plate's motion is unknown (seen once)...
const PLATE_SPREAD_UNKNOWN: f32 = 0.5;
/// ...and never further than this many plate widths.
const PLATE_GATE_MAX: f32 = 4.0;

/// A plate-implied box: the plate grown to this many plate widths wide...
const GROWN_WIDTH: f32 = 3.0;
/// ...and this many plate widths high...
const GROWN_HEIGHT: f32 = 2.4;
/// ...reaching this many plate heights below the plate's bottom edge.
const GROWN_BELOW: f32 = 0.5;

/// Tracker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleTrackerConfig {
    /// Frames (detections or plates) a track needs before it can make a passage.
    pub min_hits: u32,
    /// Frame indices without a match after which a track ends.
    pub max_gap: u64,
    /// Least overlap (intersection over union) of a predicted box and a detection to pair.
    pub min_iou: f32,
    /// Reads shorter than this many characters do not vote for the text.
    pub min_chars: usize,
    /// Share of the frame width a vehicle's box must reach in some frame for a missing plate
    /// to count as `absent` rather than `unreadable`.
    pub plate_visible_width: f32,
    /// A vehicle in view longer than this (by capture times) is recorded once as it stays.
    /// `None`: never.
    pub max_dwell: Option<TimeDelta>,
    /// Most distinct texts one track's vote holds; the weakest is evicted for a new one.
    pub max_texts: usize,
}

impl Default for VehicleTrackerConfig {
    fn default() -> Self {
        Self {
            min_hits: 3,
            max_gap: 25,
            min_iou: 0.2,
            min_chars: 4,
            plate_visible_width: 0.12,
            max_dwell: Some(TimeDelta::minutes(5)),
            max_texts: 8,
        }
    }
}

/// Identifies a track while it is open and names the passage it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What recognition found in one frame.
#[derive(Debug, Clone)]
pub struct FrameObservation<'a> {
    /// Index of the frame within the stream.
    pub index: u64,
    pub captured_at: DateTime<Utc>,
    /// Width and height in pixels.
    pub size: (u32, u32),
    /// Whether the vehicle detector ran on this frame. When it did not, `vehicles` is
    /// ignored and a vehicle's absence means "not looked", not "gone".
    pub vehicles_detected: bool,
    pub vehicles: &'a [VehicleDetection],
    /// Plate boxes found; a text may be empty when a box was found but not read.
    pub plates: &'a [PlateRead],
    /// The frame itself, kept (shared, not copied) on the shots that may become evidence.
    pub frame: Option<&'a Arc<RgbFrame>>,
}

impl<'a> FrameObservation<'a> {
    /// A frame in which the vehicle detector did not run and no plate was found.
    #[must_use]
    pub fn new(index: u64, captured_at: DateTime<Utc>, size: (u32, u32)) -> Self {
        Self {
            index,
            captured_at,
            size,
            vehicles_detected: false,
            vehicles: &[],
            plates: &[],
            frame: None,
        }
    }

    /// The vehicle detector ran and found `vehicles` (possibly none).
    #[must_use]
    pub fn with_vehicles(mut self, vehicles: &'a [VehicleDetection]) -> Self {
        self.vehicles_detected = true;
        self.vehicles = vehicles;
        self
    }

    #[must_use]
    pub fn with_plates(mut self, plates: &'a [PlateRead]) -> Self {
        self.plates = plates;
        self
    }

    #[must_use]
    pub fn with_frame(mut self, frame: &'a Arc<RgbFrame>) -> Self {
        self.frame = Some(frame);
        self
    }
}

/// A frame in a track's life, with the vehicle's box in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    pub frame_index: u64,
    pub captured_at: DateTime<Utc>,
    /// Width and height of the frame in pixels.
    pub frame_size: (u32, u32),
    /// The vehicle's box: the detection, or the box implied by its plate or motion.
    pub bbox: BBox,
}

impl Moment {
    /// Bottom centre of the vehicle's box in relative coordinates: where the vehicle meets
    /// the road, the point tested against the counting line and zones.
    #[must_use]
    pub fn reference_point(&self) -> Point {
        let w = self.frame_size.0.max(1) as f32;
        let h = self.frame_size.1.max(1) as f32;
        Point::new(
            (self.bbox.x + self.bbox.w / 2.0) / w,
            (self.bbox.y + self.bbox.h) / h,
        )
    }
}

/// A plate as seen in one frame, with the frame when it was kept.
#[derive(Debug, Clone)]
pub struct PlateShot {
    pub read: PlateRead,
    pub at: Moment,
    pub frame: Option<Arc<RgbFrame>>,
}

/// A vehicle detection in one frame, with the frame when it was kept.
#[derive(Debug, Clone)]
pub struct VehicleShot {
    pub detection: VehicleDetection,
    pub at: Moment,
    pub frame: Option<Arc<RgbFrame>>,
}

/// One vehicle that went through the view (or stayed in it longer than `max_dwell`).
#[derive(Debug, Clone)]
pub struct VehiclePassage {
    pub track: TrackId,
    pub status: PlateStatus,
    /// Consensus plate text; empty unless `status` is `read`.
    pub text: String,
    /// Share of the weighted vote the text received, 0–1.
    pub agreement: f32,
    /// Frames in which the consensus text was read.
    pub text_reads: u32,
    /// Frames in which a plate box (read or not) was attached to the vehicle.
    pub plate_frames: u32,
    /// The best read of the consensus text; without one, the most confidently detected
    /// plate box that could not be read.
    pub plate: Option<PlateShot>,
    /// Vehicle type: the most confident detection of a known class (`unknown` if none).
    pub class: VehicleClass,
    pub class_confidence: f32,
    /// The detection the type was taken from.
    pub vehicle: Option<VehicleShot>,
    pub first_seen: Moment,
    pub last_seen: Moment,
    /// Frames in which the vehicle was matched.
    pub frames: u32,
    /// The capture moment: the line crossing, else the best shot (plate, else vehicle).
    pub captured: Moment,
    /// Direction name from the counting line; none when the vehicle did not cross it.
    pub direction: Option<String>,
    /// Frame in which the vehicle was first seen beyond the line.
    pub crossing_frame: Option<u64>,
    /// The lane containing the reference point at the capture moment.
    pub lane: Option<String>,
    /// Every zone containing the reference point at the capture moment.
    pub zones: Vec<String>,
    /// Made because the vehicle stayed longer than `max_dwell`.
    pub dwell: bool,
}

impl VehiclePassage {
    #[must_use]
    pub fn captured_at(&self) -> DateTime<Utc> {
        self.captured.captured_at
    }

    /// The track part of the event record.
    #[must_use]
    pub fn track_info(&self) -> TrackInfo {
        TrackInfo {
            first_seen: self.first_seen.captured_at,
            last_seen: self.last_seen.captured_at,
            frames: self.frames,
            crossing_frame: self.crossing_frame,
            dwell: self.dwell,
        }
    }
}

/// Where the detections and plates of the last frame went (for overlays, logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameAssignments {
    /// The track each detection joined or started, by position in the frame's detections;
    /// `None` for a duplicate, or when the tracker was full.
    pub vehicles: Vec<Option<TrackId>>,
    /// The track each plate joined or started, by position in the frame's plates; `None`
    /// for a plate dropped.
    pub plates: Vec<Option<TrackId>>,
    /// Tracks found to be the same vehicle in this frame: `(merged, into)`.
    pub merged: Vec<(TrackId, TrackId)>,
}

/// What the tracker holds, to check that it stays bounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    pub tracks: usize,
    /// Distinct texts held in all votes.
    pub texts: usize,
    /// Frame references held on shots (the same frame may be counted more than once).
    pub frames: usize,
}

/// Follows vehicles from frame to frame and decides their passages.
#[derive(Debug)]
pub struct VehicleTracker {
    cfg: VehicleTrackerConfig,
    scene: Scene,
    tracks: Vec<Track>,
    next_id: u64,
    last_frame: Option<u64>,
    detector_ran: bool,
    assignments: FrameAssignments,
}

/// Whether the centre `c` lies in `b`.
fn holds(b: &BBox, c: (f32, f32)) -> bool {
    c.0 >= b.x && c.0 <= b.x + b.w && c.1 >= b.y && c.1 <= b.y + b.h
}

fn centre(b: &BBox) -> (f32, f32) {
    (b.x + b.w / 2.0, b.y + b.h / 2.0)
}

/// A predicted box with room for the prediction's error, for finding the plates it holds.
fn widened(b: &BBox) -> BBox {
    BBox {
        x: b.x - b.w * PREDICTION_MARGIN,
        y: b.y - b.h * PREDICTION_MARGIN,
        w: b.w * (1.0 + 2.0 * PREDICTION_MARGIN),
        h: b.h * (1.0 + 2.0 * PREDICTION_MARGIN),
    }
}

/// Within this many pixels of the frame's border, a box's edge is taken as cut by it.
const NEAR_BORDER: f32 = 2.0;

/// Which edges of `b` (left, top, right, bottom) lie on the border of a frame of `size`:
/// the vehicle may reach beyond them.
fn cut_edges(b: &BBox, size: (u32, u32)) -> motion::Edges {
    [
        b.x <= NEAR_BORDER,
        b.y <= NEAR_BORDER,
        b.x + b.w >= size.0 as f32 - NEAR_BORDER,
        b.y + b.h >= size.1 as f32 - NEAR_BORDER,
    ]
}

/// Whether `b` touches the border of a frame of `size`.
fn at_edge(b: &BBox, size: (u32, u32)) -> bool {
    cut_edges(b, size).contains(&true)
}

/// The box of a vehicle whose plate is `plate`, by the plate's usual place and proportions.
fn grown(plate: &BBox) -> BBox {
    let w = plate.w * GROWN_WIDTH;
    let h = plate.w * GROWN_HEIGHT;
    let bottom = plate.y + plate.h * (1.0 + GROWN_BELOW);
    BBox {
        x: plate.x + plate.w / 2.0 - w / 2.0,
        y: bottom - h,
        w,
        h,
    }
}

/// Where `plate`'s centre sits on `vehicle`, in box widths and heights from its centre.
fn anchor_of(plate: &BBox, vehicle: &BBox) -> (f32, f32) {
    let (px, py) = centre(plate);
    let (vx, vy) = centre(vehicle);
    (
        (px - vx) / vehicle.w.max(1.0),
        (py - vy) / vehicle.h.max(1.0),
    )
}

impl VehicleTracker {
    #[must_use]
    pub fn new(cfg: VehicleTrackerConfig, scene: Scene) -> Self {
        Self {
            cfg,
            scene,
            tracks: Vec::new(),
            next_id: 1,
            last_frame: None,
            detector_ran: false,
            assignments: FrameAssignments::default(),
        }
    }

    #[must_use]
    pub fn config(&self) -> &VehicleTrackerConfig {
        &self.cfg
    }

    /// Number of open tracks (tentative ones included).
    #[must_use]
    pub fn open_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Whether an open track has not yet had a detection of a known type with at least
    /// `least` confidence: the vehicle detector is worth running on the next frame.
    #[must_use]
    pub fn needs_vehicle(&self, least: f32) -> bool {
        self.tracks.iter().any(|t| t.lacks_vehicle(least))
    }

    /// The plates open tracks have read as one text in at least `min_reads` frames (that text
    /// holding more than half the track's vote), each where its own motion puts it at frame
    /// `frame`: what the recognizer may confirm from one view rather than read from every view
    /// (`[models] known_plate_reads`). A plate counts while it was seen within `max_gap`
    /// frames, as long as its track may stay open: frames recognised in parallel and
    /// `track_every` put the frame asked for several frames past the last one stepped. Empty
    /// while `min_reads` is 0.
    #[must_use]
    pub fn known_plates(&self, frame: u64, min_reads: u32) -> Vec<KnownPlate> {
        self.tracks
            .iter()
            .filter_map(|t| t.known_plate(frame, min_reads, self.cfg.max_gap))
            .collect()
    }

    /// Vehicles in view as of the last frame: tracks matched in it, and confirmed tracks
    /// not looked for (the detector did not run). For the frame gate:
    /// `gate.saw(index, tracker.vehicles_in_view())`.
    #[must_use]
    pub fn vehicles_in_view(&self) -> usize {
        let Some(last) = self.last_frame else {
            return 0;
        };
        self.tracks
            .iter()
            .filter(|t| {
                t.last.frame_index == last || (!self.detector_ran && t.confirmed(&self.cfg))
            })
            .count()
    }

    /// Where the detections and plates of the last frame went.
    #[must_use]
    pub fn last_assignments(&self) -> &FrameAssignments {
        &self.assignments
    }

    /// What the tracker holds now.
    #[must_use]
    pub fn footprint(&self) -> Footprint {
        self.tracks.iter().fold(Footprint::default(), |mut f, t| {
            let (texts, frames) = t.footprint();
            f.tracks += 1;
            f.texts += texts;
            f.frames += frames;
            f
        })
    }

    fn new_id(&mut self) -> TrackId {
        let id = TrackId(self.next_id);
        self.next_id += 1;
        id
    }

    /// How well detection `det` fits track `t` predicted at `predicted`; 0: not at all.
    fn match_score(
        &self,
        t: &Track,
        frame: u64,
        frame_box: &BBox,
        predicted: &BBox,
        det: &BBox,
    ) -> f32 {
        // A vehicle's detection holds its plate: where the plate is known to be, a detection
        // without it is another vehicle, however well the boxes overlap.
        // (A plate expected beyond the frame's border, on a vehicle leaving, tells nothing.)
        if let Some(c) = t.plate_fix(frame)
            && holds(frame_box, c)
            && !holds(&widened(det), c)
        {
            return 0.0;
        }
        let iou = predicted.iou(det);
        let holds_plate = t
            .expected_plate(frame, predicted)
            .is_some_and(|c| holds(det, c));
        // A box guessed from a plate is weak evidence: the detection must hold the plate.
        if !t.detected {
            return if holds_plate {
                iou.max(self.cfg.min_iou * 0.75)
            } else {
                0.0
            };
        }
        if iou >= self.cfg.min_iou {
            return iou;
        }
        // The detection holding the plate where the track's plate was expected is the
        // vehicle, even when its box moved more than predicted (or was cut by the frame's
        // edge).
        if holds_plate {
            return self.cfg.min_iou * 0.75;
        }
        // One sighting, no velocity yet, lately: a nearby detection of similar size.
        if !t.motion.has_velocity()
            && frame.saturating_sub(t.motion.last_frame()) <= track::PLATE_MEMORY_UNKNOWN
        {
            let (a, b) = (centre(predicted), centre(det));
            let reach = predicted.w.max(predicted.h);
            let dist = (a.0 - b.0).hypot(a.1 - b.1);
            let ratio = det.area() / predicted.area().max(1.0);
            if dist < reach && (0.33..=3.0).contains(&ratio) {
                return self.cfg.min_iou * 0.5 * (1.0 - dist / reach) + 1e-3;
            }
        }
        0.0
    }

    /// Feeds one frame; returns the passages decided in it.
    pub fn step(&mut self, obs: &FrameObservation<'_>) -> Vec<VehiclePassage> {
        self.assignments = FrameAssignments {
            vehicles: vec![None; obs.vehicles.len()],
            plates: vec![None; obs.plates.len()],
            merged: Vec::new(),
        };
        if self.last_frame.is_some_and(|last| obs.index <= last) {
            return Vec::new();
        }
        self.last_frame = Some(obs.index);
        self.detector_ran = obs.vehicles_detected;
        let dets: &[VehicleDetection] = if obs.vehicles_detected {
            obs.vehicles
        } else {
            &[]
        };
        let moment = |bbox: BBox| Moment {
            frame_index: obs.index,
            captured_at: obs.captured_at,
            frame_size: obs.size,
            bbox,
        };

        // 1. Predict, and pair tracks with detections.
        let frame_box = BBox {
            x: 0.0,
            y: 0.0,
            w: obs.size.0 as f32,
            h: obs.size.1 as f32,
        };
        let mut predicted: Vec<BBox> = self
            .tracks
            .iter()
            .map(|t| t.motion.predict(obs.index))
            .collect();
        let scores: Vec<Vec<f32>> = self
            .tracks
            .iter()
            .zip(&predicted)
            .map(|(t, p)| {
                dets.iter()
                    .map(|d| self.match_score(t, obs.index, &frame_box, p, &d.bbox))
                    .collect()
            })
            .collect();
        let mut det_of: Vec<Option<usize>> = vec![None; self.tracks.len()];
        for (t, d) in assign::best_pairs(&scores) {
            det_of[t] = Some(d);
        }

        // 2. A plate-implied track that turns out to be a detected vehicle joins it.
        self.merge_same_vehicles(obs.index, &scores, &mut det_of, &mut predicted, dets);
        let mut boxes: Vec<BBox> = det_of
            .iter()
            .zip(&predicted)
            .map(|(d, p)| d.map_or(*p, |d| dets[d].bbox))
            .collect();
        let mut fresh = vec![false; self.tracks.len()];

        // 3. Leftover detections start tentative tracks, duplicates aside.
        for (d, det) in dets.iter().enumerate() {
            if det_of.contains(&Some(d)) {
                continue;
            }
            let duplicate = det_of
                .iter()
                .flatten()
                .any(|&o| dets[o].bbox.iou(&det.bbox) >= DUPLICATE_IOU);
            if duplicate || self.tracks.len() >= MAX_TRACKS {
                continue;
            }
            let id = self.new_id();
            self.tracks.push(Track::new(
                id,
                moment(det.bbox),
                true,
                cut_edges(&det.bbox, obs.size),
            ));
            det_of.push(Some(d));
            boxes.push(det.bbox);
            fresh.push(true);
        }

        // 4. Plates, one per track.
        let weight = |p: usize| obs.plates[p].confidence * obs.plates[p].detection_confidence;
        let mut order: Vec<usize> = (0..obs.plates.len()).collect();
        order.sort_by(|&a, &b| {
            weight(b).total_cmp(&weight(a)).then(
                obs.plates[b]
                    .detection_confidence
                    .total_cmp(&obs.plates[a].detection_confidence),
            )
        });
        // Where each track's plate is expected, how far from there (in plate widths) a plate
        // may be to be that one (the further, the longer unseen), and whether the plate's
        // motion is known.
        let plate_pred: Vec<Option<(BBox, f32, bool)>> = self
            .tracks
            .iter()
            .map(|t| {
                let m = t.plate_motion.as_ref()?;
                let unseen = obs.index.saturating_sub(m.last_frame());
                let known = m.has_velocity();
                let (spread, memory) = if known {
                    (PLATE_SPREAD, track::PLATE_MEMORY)
                } else {
                    (PLATE_SPREAD_UNKNOWN, track::PLATE_MEMORY_UNKNOWN)
                };
                (unseen <= memory).then(|| {
                    let gate = (1.0 + spread * unseen as f32).min(PLATE_GATE_MAX);
                    (m.predict(obs.index), gate, known)
                })
            })
            .collect();
        // Candidate pairs of a plate and a track, by class: 0, near where the track's plate
        // was expected by its known motion; 1, inside a detected box, or the predicted box of
        // a vehicle whose motion is known; 2, near a plate seen once lately; 3, inside the box
        // of a vehicle detected once, lately. A box guessed from a plate holds no plate: only
        // nearness to its own plate counts for it.
        let mut pairs: Vec<(usize, usize, u8, f32)> = Vec::new();
        let mut holding: Vec<Vec<usize>> = vec![Vec::new(); obs.plates.len()];
        for (p, read) in obs.plates.iter().enumerate() {
            let c = centre(&read.bbox);
            for t in 0..self.tracks.len() {
                let track = &self.tracks[t];
                let unmatched = det_of[t].is_none();
                let (in_box, box_class) = if !unmatched {
                    (holds(&boxes[t], c), 1)
                } else if !track.detected {
                    (false, 1)
                } else if track.motion.has_velocity() {
                    (holds(&widened(&boxes[t]), c), 1)
                } else {
                    let recent = obs.index.saturating_sub(track.motion.last_frame())
                        <= track::PLATE_MEMORY_UNKNOWN;
                    (recent && holds(&boxes[t], c), 3)
                };
                let near = plate_pred
                    .get(t)
                    .copied()
                    .flatten()
                    .and_then(|(q, gate, known)| {
                        let d = (centre(&q).0 - c.0).hypot(centre(&q).1 - c.1);
                        let gate = q.w.max(read.bbox.w) * gate;
                        (d <= gate).then_some((d / gate, known))
                    });
                let pair = match near {
                    Some((r, true)) if in_box || unmatched => Some((0, r)),
                    Some((r, false)) if unmatched && !(in_box && box_class == 1) => Some((2, r)),
                    _ if in_box => Some((box_class, boxes[t].area())),
                    _ => None,
                };
                if let Some((class, key)) = pair {
                    pairs.push((p, t, class, key));
                    holding[p].push(t);
                }
            }
        }
        // Best pairs first: by class; near ones by distance; inside boxes, the more confident
        // plate first, each to the smallest box.
        let rank: Vec<usize> = {
            let mut r = vec![0; obs.plates.len()];
            for (i, &p) in order.iter().enumerate() {
                r[p] = i;
            }
            r
        };
        pairs.sort_by(|a, b| {
            a.2.cmp(&b.2).then_with(|| {
                if a.2 % 2 == 0 {
                    a.3.total_cmp(&b.3)
                } else {
                    rank[a.0].cmp(&rank[b.0]).then(a.3.total_cmp(&b.3))
                }
            })
        });
        let mut plate_of: Vec<Option<usize>> = vec![None; self.tracks.len()];
        let mut placed = vec![false; obs.plates.len()];
        for &(p, t, _, _) in &pairs {
            if !placed[p] && plate_of[t].is_none() {
                plate_of[t] = Some(p);
                placed[p] = true;
            }
        }
        // A plate read that found no vehicle starts one, unless a detected vehicle holds it
        // (it took a more confident plate; this one is dropped).
        for p in order {
            let read = &obs.plates[p];
            if placed[p] {
                continue;
            }
            let only_guessed = holding[p].iter().all(|&t| !self.tracks[t].detected);
            let readable = read.text.chars().count() >= self.cfg.min_chars;
            if only_guessed && readable && self.tracks.len() < MAX_TRACKS {
                let bbox = grown(&read.bbox);
                let id = self.new_id();
                let mut t = Track::new(id, moment(bbox), false, motion::WHOLE);
                t.anchor = Some(anchor_of(&read.bbox, &bbox));
                self.tracks.push(t);
                det_of.push(None);
                boxes.push(bbox);
                fresh.push(true);
                plate_of.push(Some(p));
            }
        }

        // 5. Take in what each track was matched with.
        let line = self.scene.line.as_ref();
        for (i, t) in self.tracks.iter_mut().enumerate() {
            let det = det_of.get(i).copied().flatten().map(|d| &dets[d]);
            let plate = plate_of.get(i).copied().flatten().map(|p| &obs.plates[p]);
            if det.is_none() && plate.is_none() {
                if obs.vehicles_detected {
                    t.missed_looks = t.missed_looks.saturating_add(1);
                }
                continue;
            }
            let observed = match (det, plate) {
                (Some(d), _) => Some(d.bbox),
                (None, Some(p)) if !t.detected => Some(grown(&p.bbox)),
                (None, Some(p)) => t.anchor.map(|(ax, ay)| {
                    let b = boxes[i];
                    let (px, py) = centre(&p.bbox);
                    BBox {
                        x: px - b.w * (0.5 + ax),
                        y: py - b.h * (0.5 + ay),
                        ..b
                    }
                }),
                (None, None) => None,
            };
            // A plate that cannot place the box (where it sits on the vehicle is not yet
            // learnt) leaves the box where it was last seen: it does not count as finding
            // the vehicle, or a tentative track would stay where it was first seen and catch
            // the next vehicle there.
            if observed.is_some() {
                t.missed_looks = 0;
            } else if obs.vehicles_detected {
                t.missed_looks = t.missed_looks.saturating_add(1);
            }
            let at = moment(observed.unwrap_or(boxes[i]));
            let was_detected = t.detected;
            if let Some(d) = det {
                if !fresh[i] {
                    if was_detected {
                        t.motion
                            .update(d.bbox, obs.index, cut_edges(&d.bbox, obs.size));
                    } else {
                        // The plate's place on a guessed box says nothing of the real one.
                        t.motion
                            .adopt(d.bbox, obs.index, cut_edges(&d.bbox, obs.size));
                        t.anchor = None;
                        t.anchor_whole = false;
                    }
                }
                t.observe_detection(d, &at, obs.frame);
            } else if let Some(b) = observed
                && !fresh[i]
            {
                // Edges the prediction puts on the frame's border stay unseen.
                let cut = if t.detected {
                    cut_edges(&boxes[i], obs.size)
                } else {
                    motion::WHOLE
                };
                t.motion.update(b, obs.index, cut);
            }
            if let Some(p) = plate {
                // Learn where the plate sits on the vehicle from frames with both: from whole
                // boxes (a box cut by the frame's edge puts it elsewhere), or from a cut box
                // until a whole one is seen.
                if let Some(d) = det {
                    let a = anchor_of(&p.bbox, &d.bbox);
                    if !at_edge(&d.bbox, obs.size) {
                        t.anchor = Some(match t.anchor {
                            Some(old) if t.anchor_whole => {
                                (f32::midpoint(old.0, a.0), f32::midpoint(old.1, a.1))
                            }
                            _ => a,
                        });
                        t.anchor_whole = true;
                    } else if t.anchor.is_none() {
                        t.anchor = Some(a);
                    }
                }
                match &mut t.plate_motion {
                    Some(m) => m.update(p.bbox, obs.index, motion::WHOLE),
                    None => {
                        t.plate_motion =
                            Some(motion::Motion::new(p.bbox, obs.index, motion::WHOLE));
                    }
                }
                t.observe_plate(p, &at, obs.frame, &self.cfg);
            }
            t.observed(at, line);
        }
        for (i, t) in self.tracks.iter().enumerate() {
            if let Some(Some(d)) = det_of.get(i) {
                self.assignments.vehicles[*d] = Some(t.id);
            }
            if let Some(Some(p)) = plate_of.get(i) {
                self.assignments.plates[*p] = Some(t.id);
            }
        }

        // 6. Dwell, then ends.
        let mut out = Vec::new();
        if let Some(max_dwell) = self.cfg.max_dwell {
            for t in &mut self.tracks {
                if !t.reported
                    && t.confirmed(&self.cfg)
                    && obs.captured_at - t.first.captured_at >= max_dwell
                {
                    out.push(t.passage(&self.scene, &self.cfg, true));
                    t.reported = true;
                    t.drop_frames();
                }
            }
        }
        let cfg = &self.cfg;
        let (ended, open): (Vec<Track>, Vec<Track>) =
            std::mem::take(&mut self.tracks).into_iter().partition(|t| {
                let gap = obs.index.saturating_sub(t.last.frame_index);
                gap > cfg.max_gap
                    || (!t.confirmed(cfg)
                        && (gap > cfg.max_gap / 2
                            || (t.detected && t.missed_looks >= TENTATIVE_MISSES)))
            });
        self.tracks = open;
        out.extend(self.finish(&ended));
        out.sort_by_key(|p| (p.captured.frame_index, p.track));
        out
    }

    /// Merges a track into another found to be the same vehicle: a track left unmatched
    /// whose plate is expected inside the detection another track took, or a plate-implied
    /// track whose detection also fits a detected track left unmatched.
    /// Never when their texts differ by more than one character or both carried plates in
    /// overlapping spans of frames.
    fn merge_same_vehicles(
        &mut self,
        frame: u64,
        scores: &[Vec<f32>],
        det_of: &mut Vec<Option<usize>>,
        predicted: &mut Vec<BBox>,
        dets: &[VehicleDetection],
    ) {
        let n = self.tracks.len();
        let mut involved = vec![false; n];
        let mut pairs: Vec<(TrackId, TrackId)> = Vec::new();
        for u in 0..n {
            let ut = &self.tracks[u];
            if involved[u] || (ut.detected && det_of[u].is_some()) {
                continue;
            }
            let candidates = (0..n).filter(|&t| {
                t != u && !involved[t] && self.tracks[t].detected && compatible(&self.tracks[t], ut)
            });
            let host = match det_of[u] {
                None => {
                    let Some(c) = ut.expected_plate(frame, &predicted[u]) else {
                        continue;
                    };
                    candidates
                        .filter(|&t| det_of[t].is_some_and(|d| holds(&dets[d].bbox, c)))
                        .min_by(|&a, &b| {
                            let area = |t: usize| det_of[t].map_or(0.0, |d| dets[d].bbox.area());
                            area(a).total_cmp(&area(b))
                        })
                }
                Some(d) => candidates
                    .filter(|&t| det_of[t].is_none() && scores[t][d] > 0.0)
                    .max_by(|&a, &b| scores[a][d].total_cmp(&scores[b][d])),
            };
            if let Some(t) = host {
                involved[u] = true;
                involved[t] = true;
                if let Some(d) = det_of[u].take() {
                    det_of[t] = Some(d);
                }
                pairs.push((ut.id, self.tracks[t].id));
            }
        }
        for (from, into) in pairs {
            let Some(u) = self.tracks.iter().position(|t| t.id == from) else {
                continue;
            };
            let merged = self.tracks.remove(u);
            det_of.remove(u);
            predicted.remove(u);
            if let Some(t) = self.tracks.iter_mut().find(|t| t.id == into) {
                t.absorb(merged, &self.cfg);
                self.assignments.merged.push((from, into));
            }
        }
    }

    /// Ends every open track (end of stream, shutdown) and returns their passages.
    pub fn flush(&mut self) -> Vec<VehiclePassage> {
        let all = std::mem::take(&mut self.tracks);
        let mut out = self.finish(&all);
        out.sort_by_key(|p| (p.captured.frame_index, p.track));
        out
    }

    fn finish(&self, ended: &[Track]) -> Vec<VehiclePassage> {
        ended
            .iter()
            .filter(|t| t.confirmed(&self.cfg) && !t.reported)
            .map(|t| t.passage(&self.scene, &self.cfg, false))
            .collect()
    }
}

/// Whether two tracks may be one vehicle: their texts the same but for one misread
/// character, and never a plate on both in overlapping spans of frames.
fn compatible(a: &Track, b: &Track) -> bool {
    let texts = match (a.text(), b.text()) {
        (Some(x), Some(y)) => crate::edit_distance(x, y) <= 1,
        _ => true,
    };
    let spans = match (a.plate_span, b.plate_span) {
        (Some(x), Some(y)) => x.1 < y.0 || y.1 < x.0,
        _ => true,
    };
    texts && spans
}
