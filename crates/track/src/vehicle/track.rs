//! One vehicle's track: its motion, plate vote, best shots and line crossing, in bounded
//! memory.

use std::sync::Arc;

use anpr_types::{
    BBox, KnownPlate, PlateRead, PlateStatus, RgbFrame, VehicleClass, VehicleDetection,
};

use super::motion::{Edges, Motion};
use super::{Moment, PlateShot, TrackId, VehiclePassage, VehicleShot, VehicleTrackerConfig};
use crate::geometry::{CountingLine, Point, Scene, Side};

/// Frames are kept on the best reads of this many leading texts.
pub(super) const LEADING_TEXT_FRAMES: usize = 2;

/// Most frames one track holds: the best reads of the leading texts, the best vehicle
/// detection, and the best plate box that could not be read.
pub const FRAMES_PER_TRACK: usize = LEADING_TEXT_FRAMES + 2;

/// A plate's own motion predicts where it is for this many frames after it was last seen.
pub(super) const PLATE_MEMORY: u64 = 12;
/// ...or this many while its motion is unknown (seen once): a plate standing still in the
/// prediction soon says nothing of where it is.
pub(super) const PLATE_MEMORY_UNKNOWN: u64 = 4;

/// Weight of a read in the vote: read confidence times detection confidence.
fn weight(read: &PlateRead) -> f32 {
    let w = read.confidence * read.detection_confidence;
    if w.is_finite() { w.max(0.0) } else { 0.0 }
}

#[derive(Debug, Clone)]
struct Vote {
    text: String,
    weight: f32,
    reads: u32,
    best: PlateShot,
}

/// A confidence-weighted vote over at most `cap` distinct texts; a new text arriving when
/// all places are taken evicts the weakest.
#[derive(Debug, Clone, Default)]
struct Votes {
    entries: Vec<Vote>,
    /// Weight of every read ever voted, evicted texts included (for the agreement share).
    total: f32,
}

impl Votes {
    fn add(&mut self, shot: PlateShot, weight: f32, reads: u32, cap: usize) {
        self.total += weight;
        if let Some(v) = self.entries.iter_mut().find(|v| v.text == shot.read.text) {
            v.weight += weight;
            v.reads = v.reads.saturating_add(reads);
            if shot.read.confidence > v.best.read.confidence {
                v.best = shot;
            }
        } else {
            if self.entries.len() >= cap.max(1)
                && let Some(i) = self.weakest()
            {
                self.entries.swap_remove(i);
            }
            self.entries.push(Vote {
                text: shot.read.text.clone(),
                weight,
                reads,
                best: shot,
            });
        }
        self.keep_frames_of_leaders();
    }

    fn weakest(&self) -> Option<usize> {
        self.entries
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
            .map(|(i, _)| i)
    }

    fn leader(&self) -> Option<&Vote> {
        // Ties go to the text first voted, so the outcome does not depend on eviction order.
        self.entries
            .iter()
            .fold(None, |best: Option<&Vote>, v| match best {
                Some(b) if b.weight >= v.weight => Some(b),
                _ => Some(v),
            })
    }

    fn keep_frames_of_leaders(&mut self) {
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        order.sort_by(|&a, &b| self.entries[b].weight.total_cmp(&self.entries[a].weight));
        for &i in order.iter().skip(LEADING_TEXT_FRAMES) {
            self.entries[i].best.frame = None;
        }
    }

    fn drop_frames(&mut self) {
        for v in &mut self.entries {
            v.best.frame = None;
        }
    }

    fn frames(&self) -> usize {
        self.entries
            .iter()
            .filter(|v| v.best.frame.is_some())
            .count()
    }
}

/// A vehicle followed from frame to frame.
#[derive(Debug, Clone)]
pub(super) struct Track {
    pub(super) id: TrackId,
    pub(super) motion: Motion,
    /// Whether the vehicle detector ever found this vehicle (otherwise its box is guessed
    /// from its plate).
    pub(super) detected: bool,
    /// Where the plate sits on the vehicle: its centre relative to the box centre, in box
    /// widths and heights.
    pub(super) anchor: Option<(f32, f32)>,
    /// Whether `anchor` was learnt from a whole detected box (not one cut by the frame edge).
    pub(super) anchor_whole: bool,
    /// Motion of the plate itself, once one was attached.
    pub(super) plate_motion: Option<Motion>,
    /// Frames in which a detection or a plate was matched.
    pub(super) hits: u32,
    /// Frames in a row, up to now, in which the detector ran and the vehicle's box was not
    /// found: no detection matched, nor a plate that moved the box.
    pub(super) missed_looks: u32,
    pub(super) first: Moment,
    pub(super) last: Moment,
    /// First and last frame in which a plate was attached.
    pub(super) plate_span: Option<(u64, u64)>,
    /// A passage was already made for this vehicle (it stayed longer than `max_dwell`).
    pub(super) reported: bool,
    votes: Votes,
    unread: Option<PlateShot>,
    plate_frames: u32,
    vehicle: Option<VehicleShot>,
    /// Widest the detected box was, as a share of the frame's width.
    widest: f32,
    side: Option<(Side, Point)>,
    crossing: Option<(Moment, String)>,
}

/// Whether `a` is a better vehicle shot than `b`: a known class first, then confidence.
fn better_vehicle(a: &VehicleDetection, b: &VehicleDetection) -> bool {
    let known = |d: &VehicleDetection| d.class != VehicleClass::Unknown;
    match (known(a), known(b)) {
        (true, false) => true,
        (false, true) => false,
        _ => a.confidence > b.confidence,
    }
}

impl Track {
    pub(super) fn new(id: TrackId, at: Moment, detected: bool, cut: Edges) -> Self {
        Self {
            id,
            motion: Motion::new(at.bbox, at.frame_index, cut),
            detected,
            anchor: None,
            anchor_whole: false,
            plate_motion: None,
            hits: 0,
            missed_looks: 0,
            first: at.clone(),
            last: at,
            plate_span: None,
            reported: false,
            votes: Votes::default(),
            unread: None,
            plate_frames: 0,
            vehicle: None,
            widest: 0.0,
            side: None,
            crossing: None,
        }
    }

    pub(super) fn confirmed(&self, cfg: &VehicleTrackerConfig) -> bool {
        self.hits >= cfg.min_hits
    }

    /// Where the track's plate must be at `frame`, when its own motion is known and it was
    /// seen lately: a detection not holding it is another vehicle.
    pub(super) fn plate_fix(&self, frame: u64) -> Option<(f32, f32)> {
        let m = self.plate_motion.as_ref()?;
        let (_, last) = self.plate_span?;
        (m.has_velocity() && frame.saturating_sub(last) <= PLATE_MEMORY).then(|| {
            let p = m.predict(frame);
            (p.x + p.w / 2.0, p.y + p.h / 2.0)
        })
    }

    /// Where the track's plate is expected at `frame`: by the plate's own motion while it
    /// was seen lately, else by where it sits on the detected vehicle's box `bbox` there.
    pub(super) fn expected_plate(&self, frame: u64, bbox: &BBox) -> Option<(f32, f32)> {
        if let Some(m) = &self.plate_motion
            && let Some((_, last)) = self.plate_span
            && frame.saturating_sub(last)
                <= if m.has_velocity() {
                    PLATE_MEMORY
                } else {
                    PLATE_MEMORY_UNKNOWN
                }
        {
            let p = m.predict(frame);
            return Some((p.x + p.w / 2.0, p.y + p.h / 2.0));
        }
        // A box guessed from the plate knows no more than the plate's own motion.
        if !self.detected {
            return None;
        }
        self.anchor
            .map(|(ax, ay)| (bbox.x + bbox.w * (0.5 + ax), bbox.y + bbox.h * (0.5 + ay)))
    }

    /// The leading text, if any read reached `min_chars`.
    pub(super) fn text(&self) -> Option<&str> {
        self.votes.leader().map(|v| v.text.as_str())
    }

    /// The plate this track has read as one text in at least `min_reads` frames, that text
    /// holding more than half the weight of every read voted, with where the plate is expected
    /// at `frame` by its own motion (its motion known, the plate seen within `horizon` frames).
    pub(super) fn known_plate(
        &self,
        frame: u64,
        min_reads: u32,
        horizon: u64,
    ) -> Option<KnownPlate> {
        let leader = self.votes.leader()?;
        if min_reads == 0 || leader.reads < min_reads || leader.weight <= self.votes.total / 2.0 {
            return None;
        }
        let m = self.plate_motion.as_ref()?;
        let (_, last) = self.plate_span?;
        (m.has_velocity() && frame.saturating_sub(last) <= horizon).then(|| KnownPlate {
            bbox: m.predict(frame),
            text: leader.text.clone(),
        })
    }

    /// Whether no known-class detection with at least `least` confidence was seen.
    pub(super) fn lacks_vehicle(&self, least: f32) -> bool {
        self.vehicle.as_ref().is_none_or(|v| {
            v.detection.class == VehicleClass::Unknown || v.detection.confidence < least
        })
    }

    pub(super) fn observe_detection(
        &mut self,
        det: &VehicleDetection,
        at: &Moment,
        frame: Option<&Arc<RgbFrame>>,
    ) {
        self.detected = true;
        let share = det.bbox.w / at.frame_size.0.max(1) as f32;
        if share.is_finite() {
            self.widest = self.widest.max(share);
        }
        if self
            .vehicle
            .as_ref()
            .is_none_or(|v| better_vehicle(det, &v.detection))
        {
            self.vehicle = Some(VehicleShot {
                detection: det.clone(),
                at: at.clone(),
                frame: if self.reported { None } else { frame.cloned() },
            });
        }
    }

    pub(super) fn observe_plate(
        &mut self,
        read: &PlateRead,
        at: &Moment,
        frame: Option<&Arc<RgbFrame>>,
        cfg: &VehicleTrackerConfig,
    ) {
        self.plate_frames = self.plate_frames.saturating_add(1);
        self.plate_span = Some(match self.plate_span {
            Some((first, _)) => (first, at.frame_index),
            None => (at.frame_index, at.frame_index),
        });
        let frame = if self.reported { None } else { frame.cloned() };
        let shot = PlateShot {
            read: read.clone(),
            at: at.clone(),
            frame,
        };
        if read.text.chars().count() >= cfg.min_chars {
            self.votes.add(shot, weight(read), 1, cfg.max_texts);
            if let Some(u) = &mut self.unread {
                u.frame = None;
            }
        } else if self
            .unread
            .as_ref()
            .is_none_or(|u| read.detection_confidence > u.read.detection_confidence)
        {
            let mut shot = shot;
            if !self.votes.entries.is_empty() {
                shot.frame = None;
            }
            self.unread = Some(shot);
        }
    }

    /// Records that the vehicle was matched at `at` (its observed box there); `line` is the
    /// camera's counting line.
    pub(super) fn observed(&mut self, at: Moment, line: Option<&CountingLine>) {
        self.hits = self.hits.saturating_add(1);
        if let Some(line) = line {
            let p = at.reference_point();
            let side = line.side(p);
            if side != Side::On {
                if let Some((prev_side, prev)) = self.side
                    && prev_side != side
                    && self.crossing.is_none()
                    && let Some(direction) = line.crossing(prev, p)
                {
                    self.crossing = Some((at.clone(), direction.to_string()));
                }
                self.side = Some((side, p));
            }
        }
        self.last = at;
    }

    /// Stops holding frames (the vehicle was recorded; it is only followed from now on).
    pub(super) fn drop_frames(&mut self) {
        self.votes.drop_frames();
        if let Some(v) = &mut self.vehicle {
            v.frame = None;
        }
        if let Some(u) = &mut self.unread {
            u.frame = None;
        }
    }

    /// Distinct texts in the vote and frames held.
    pub(super) fn footprint(&self) -> (usize, usize) {
        let frames = self.votes.frames()
            + usize::from(self.vehicle.as_ref().is_some_and(|v| v.frame.is_some()))
            + usize::from(self.unread.as_ref().is_some_and(|u| u.frame.is_some()));
        (self.votes.entries.len(), frames)
    }

    /// Takes in a track found to be the same vehicle.
    pub(super) fn absorb(&mut self, other: Track, cfg: &VehicleTrackerConfig) {
        if other.first.frame_index < self.first.frame_index {
            self.first = other.first;
        }
        if other.last.frame_index > self.last.frame_index {
            self.last = other.last;
            self.side = other.side.or(self.side);
        } else {
            self.side = self.side.or(other.side);
        }
        // The plate seen last tells best where it goes next.
        if other
            .plate_span
            .is_some_and(|o| self.plate_span.is_none_or(|s| o.1 > s.1))
        {
            self.plate_motion = other.plate_motion;
        }
        self.hits = self.hits.saturating_add(other.hits);
        self.plate_frames = self.plate_frames.saturating_add(other.plate_frames);
        self.plate_span = match (self.plate_span, other.plate_span) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
        self.reported |= other.reported;
        self.widest = self.widest.max(other.widest);
        self.anchor = self.anchor.or(other.anchor);
        // The agreement share counts every read ever voted, evicted texts of both included.
        let total = self.votes.total + other.votes.total;
        for v in other.votes.entries {
            self.votes.add(v.best, v.weight, v.reads, cfg.max_texts);
        }
        self.votes.total = total;
        if let Some(u) = other.unread
            && self
                .unread
                .as_ref()
                .is_none_or(|cur| u.read.detection_confidence > cur.read.detection_confidence)
        {
            self.unread = Some(u);
        }
        if let Some(v) = other.vehicle
            && self
                .vehicle
                .as_ref()
                .is_none_or(|cur| better_vehicle(&v.detection, &cur.detection))
        {
            self.vehicle = Some(v);
        }
        match (&self.crossing, other.crossing) {
            (Some(mine), Some(theirs)) if theirs.0.frame_index < mine.0.frame_index => {
                self.crossing = Some(theirs);
            }
            (None, theirs) => self.crossing = theirs,
            _ => {}
        }
        if self.reported {
            self.drop_frames();
        }
    }

    /// The passage this track makes now.
    pub(super) fn passage(
        &self,
        scene: &Scene,
        cfg: &VehicleTrackerConfig,
        dwell: bool,
    ) -> VehiclePassage {
        let leader = self.votes.leader();
        let seen_close = self.widest >= cfg.plate_visible_width;
        let status = if leader.is_some() {
            PlateStatus::Read
        } else if self.plate_frames > 0 || !seen_close {
            PlateStatus::Unreadable
        } else {
            PlateStatus::Absent
        };
        let plate = leader
            .map(|v| v.best.clone())
            .or_else(|| self.unread.clone());
        let captured = self
            .crossing
            .as_ref()
            .map(|c| c.0.clone())
            .or_else(|| plate.as_ref().map(|p| p.at.clone()))
            .or_else(|| self.vehicle.as_ref().map(|v| v.at.clone()))
            .unwrap_or_else(|| self.first.clone());
        let (lane, zones) = scene.zones_at(captured.reference_point());
        let (class, class_confidence) = self
            .vehicle
            .as_ref()
            .map_or((VehicleClass::Unknown, 0.0), |v| {
                (v.detection.class, v.detection.confidence)
            });
        VehiclePassage {
            track: self.id,
            status,
            text: leader.map(|v| v.text.clone()).unwrap_or_default(),
            agreement: match leader {
                Some(v) if self.votes.total > 0.0 => (v.weight / self.votes.total).min(1.0),
                _ => 0.0,
            },
            text_reads: leader.map_or(0, |v| v.reads),
            plate_frames: self.plate_frames,
            plate,
            class,
            class_confidence,
            vehicle: self.vehicle.clone(),
            first_seen: self.first.clone(),
            last_seen: self.last.clone(),
            frames: self.hits,
            captured,
            direction: self.crossing.as_ref().map(|c| c.1.clone()),
            crossing_frame: self.crossing.as_ref().map(|c| c.0.frame_index),
            lane,
            zones,
            dwell,
        }
    }
}
