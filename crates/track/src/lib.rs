//! Sans-IO tracking: turns what recognition finds in each frame into one passage per vehicle.
//!
//! Two trackers live here. [`VehicleTracker`] (module [`vehicle`]) follows vehicles, with or
//! without a readable plate, and gives each passage its plate status, type, direction over
//! the camera's counting line and zones ([`geometry`]); see its module documentation for the
//! contract. [`PlateTracker`] is the earlier tracker that follows plate reads only; it stays
//! until the pipeline has moved to [`VehicleTracker`].
//!
//! Contract of [`PlateTracker`]: [`PlateTracker::step`] takes the reads of one frame and returns the passages
//! that ended before it; [`PlateTracker::flush`] ends all open tracks (end of stream). No
//! clocks, threads or I/O: the caller passes the frame index and capture time, so the same
//! input always gives the same passages. A track ends when its plate has not been seen for
//! `max_gap` frames. Its text is chosen by a confidence-weighted vote over all reads, and the
//! passage keeps the best single read of that text (the evidence frame).
//!
//! Frames handed in with [`PlateTracker::step_with_frame`] are kept (shared, not copied) only
//! on the best reads of the three leading texts of each open track, so memory stays bounded
//! by a few frames per vehicle in view.

pub mod geometry;
pub mod vehicle;

use std::sync::Arc;

pub use geometry::{CountingLine, Point, Polygon, PolygonError, Scene, Zone};
pub use vehicle::{
    Footprint, FrameAssignments, FrameObservation, Moment, PlateShot, TrackId, VehiclePassage,
    VehicleShot, VehicleTracker, VehicleTrackerConfig,
};

use anpr_types::{BBox, PlateRead, RgbFrame, VehicleDetection};
use chrono::{DateTime, Utc};

/// Tracker settings.
#[derive(Debug, Clone, Copy)]
pub struct TrackerConfig {
    /// Frames without a sighting after which a track ends.
    pub max_gap: u64,
    /// Reads shorter than this many characters are not tracked (partial or false reads).
    pub min_chars: usize,
    /// Least number of reads for a track to become a passage.
    pub min_reads: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_gap: 12,
            min_chars: 4,
            min_reads: 2,
        }
    }
}

/// The best observation of a plate, with the frame it came from.
#[derive(Debug, Clone)]
pub struct Sighting {
    pub read: PlateRead,
    pub vehicle: Option<VehicleDetection>,
    pub frame_index: u64,
    pub captured_at: DateTime<Utc>,
    pub frame_size: (u32, u32),
    /// The frame itself, when the caller handed it in (for evidence images).
    pub frame: Option<Arc<RgbFrame>>,
}

/// One vehicle's passage, decided when its track ended.
#[derive(Debug, Clone)]
pub struct Passage {
    /// Consensus plate text.
    pub text: String,
    /// Share of the vote the consensus text received, 0–1.
    pub agreement: f32,
    /// Number of frames in which the plate was read.
    pub reads: usize,
    /// Best read of the consensus text (its capture time is the passage's capture time).
    pub best: Sighting,
    /// Most confident vehicle detection over the track.
    pub vehicle: Option<VehicleDetection>,
}

#[derive(Debug)]
struct Track {
    last_box: BBox,
    last_frame: u64,
    votes: Vec<(String, f32)>,
    best: Vec<Sighting>,
    vehicle: Option<VehicleDetection>,
}

impl Track {
    fn vote(&mut self, s: Sighting) {
        let weight = s.read.confidence * s.read.detection_confidence;
        match self.votes.iter_mut().find(|(t, _)| *t == s.read.text) {
            Some(v) => v.1 += weight,
            None => self.votes.push((s.read.text.clone(), weight)),
        }
        if let Some(v) = &s.vehicle
            && self
                .vehicle
                .as_ref()
                .is_none_or(|cur| v.confidence > cur.confidence)
        {
            self.vehicle = Some(v.clone());
        }
        self.last_box = s.read.bbox;
        self.last_frame = s.frame_index;
        match self.best.iter_mut().find(|b| b.read.text == s.read.text) {
            Some(b) if b.read.confidence >= s.read.confidence => {}
            Some(b) => *b = s,
            None => self.best.push(s),
        }
        // Keep frames only where they may become the passage's evidence.
        let mut ranked: Vec<&(String, f32)> = self.votes.iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let leading: Vec<&str> = ranked.iter().take(3).map(|v| v.0.as_str()).collect();
        for b in &mut self.best {
            if !leading.contains(&b.read.text.as_str()) {
                b.frame = None;
            }
        }
    }

    fn into_passage(self, reads: usize) -> Option<Passage> {
        let total: f32 = self.votes.iter().map(|v| v.1).sum();
        let (text, score) = self.votes.into_iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
        let best = self.best.into_iter().find(|b| b.read.text == text)?;
        Some(Passage {
            text,
            agreement: if total > 0.0 { score / total } else { 0.0 },
            reads,
            best,
            vehicle: self.vehicle,
        })
    }
}

/// Decides which frames of a stream go to recognition: one in `track_every` while a plate is
/// in view (and for `hold` frames after the last sighting), one in `idle_every` while none is.
/// A vehicle entering the view is seen within `idle_every` frames; the tracker gets a read
/// every `track_every` frames of a passage (its `max_gap` must exceed that).
#[derive(Debug, Clone)]
pub struct FrameGate {
    idle_every: u64,
    track_every: u64,
    hold: u64,
    last_seen: Option<u64>,
}

impl FrameGate {
    #[must_use]
    pub fn new(idle_every: u32, track_every: u32, hold: u64) -> Self {
        Self {
            idle_every: u64::from(idle_every.max(1)),
            track_every: u64::from(track_every.max(1)),
            hold,
            last_seen: None,
        }
    }

    /// Whether frame `index` should be recognised.
    #[must_use]
    pub fn wants(&self, index: u64) -> bool {
        match self.last_seen {
            Some(seen) if index.saturating_sub(seen) <= self.hold => {
                (index - seen).is_multiple_of(self.track_every)
            }
            _ => index.is_multiple_of(self.idle_every),
        }
    }

    /// Tells the gate what recognition found in frame `index`.
    pub fn saw(&mut self, index: u64, plates: usize) {
        if plates > 0 {
            self.last_seen = Some(index);
        }
    }
}

/// Groups plate reads into tracks, one per vehicle.
#[derive(Debug)]
pub struct PlateTracker {
    cfg: TrackerConfig,
    tracks: Vec<(Track, usize)>,
}

/// Edit distance between two short strings.
#[must_use]
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl PlateTracker {
    #[must_use]
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            cfg,
            tracks: Vec::new(),
        }
    }

    /// Number of open tracks.
    #[must_use]
    pub fn open_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Whether an open track still has no vehicle of a known type seen with at least
    /// `least` confidence: the vehicle detector is worth running on the next frame.
    #[must_use]
    pub fn needs_vehicle(&self, least: f32) -> bool {
        self.tracks.iter().any(|(t, _)| {
            t.vehicle.as_ref().is_none_or(|v| {
                v.class == anpr_types::VehicleClass::Unknown || v.confidence < least
            })
        })
    }

    /// Feeds the reads of frame `frame_index`; returns passages whose tracks ended.
    pub fn step(
        &mut self,
        frame_index: u64,
        captured_at: DateTime<Utc>,
        frame_size: (u32, u32),
        reads: &[PlateRead],
        vehicles: &[VehicleDetection],
    ) -> Vec<Passage> {
        self.step_with_frame(frame_index, captured_at, frame_size, reads, vehicles, None)
    }

    /// As [`PlateTracker::step`], keeping `frame` with the reads so a passage can carry its
    /// evidence frame ([`Sighting::frame`] of [`Passage::best`]).
    pub fn step_with_frame(
        &mut self,
        frame_index: u64,
        captured_at: DateTime<Utc>,
        frame_size: (u32, u32),
        reads: &[PlateRead],
        vehicles: &[VehicleDetection],
        frame: Option<&Arc<RgbFrame>>,
    ) -> Vec<Passage> {
        for read in reads
            .iter()
            .filter(|r| r.text.chars().count() >= self.cfg.min_chars)
        {
            let vehicle = vehicles
                .iter()
                .find(|v| v.bbox.contains_centre_of(&read.bbox))
                .cloned();
            let sighting = Sighting {
                read: read.clone(),
                vehicle,
                frame_index,
                captured_at,
                frame_size,
                frame: frame.cloned(),
            };
            // Same vehicle: the box moved a little, or the text is (nearly) the same.
            let grown = |b: &BBox| BBox {
                x: b.x - b.w,
                y: b.y - b.h * 3.0,
                w: b.w * 3.0,
                h: b.h * 7.0,
            };
            let idx = self.tracks.iter().position(|(t, _)| {
                frame_index.saturating_sub(t.last_frame) <= self.cfg.max_gap
                    && (t.last_box.iou(&read.bbox) > 0.05
                        || grown(&t.last_box).contains_centre_of(&read.bbox)
                        || t.votes
                            .iter()
                            .any(|(txt, _)| edit_distance(txt, &read.text) <= 1))
            });
            if let Some(i) = idx {
                self.tracks[i].0.vote(sighting);
                self.tracks[i].1 += 1;
            } else {
                let mut t = Track {
                    last_box: read.bbox,
                    last_frame: frame_index,
                    votes: Vec::new(),
                    best: Vec::new(),
                    vehicle: None,
                };
                t.vote(sighting);
                self.tracks.push((t, 1));
            }
        }
        let (ended, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|(t, _)| frame_index.saturating_sub(t.last_frame) > self.cfg.max_gap);
        self.tracks = open;
        self.finish(ended)
    }

    /// Ends every open track (end of stream).
    pub fn flush(&mut self) -> Vec<Passage> {
        let all = std::mem::take(&mut self.tracks);
        self.finish(all)
    }

    fn finish(&self, tracks: Vec<(Track, usize)>) -> Vec<Passage> {
        let mut out: Vec<Passage> = tracks
            .into_iter()
            .filter(|(_, n)| *n >= self.cfg.min_reads)
            .filter_map(|(t, n)| t.into_passage(n))
            .collect();
        out.sort_by_key(|p| p.best.frame_index);
        out
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    #[test]
    fn idle_frames_are_thinned_and_a_plate_in_view_gets_every_frame_until_the_hold_ends() {
        let mut g = FrameGate::new(3, 1, 12);
        let idle: Vec<u64> = (0..9).filter(|i| g.wants(*i)).collect();
        assert_eq!(idle, [0, 3, 6]);
        g.saw(9, 1);
        assert!((10..=21).all(|i| g.wants(i)), "every frame while tracking");
        assert!(!g.wants(22), "back to one in three after the hold");
        assert!(g.wants(24));
        g.saw(24, 0);
        assert!(!g.wants(25));
        let every = FrameGate::new(1, 1, 12);
        assert!((0..50).all(|i| every.wants(i)));
    }

    #[test]
    fn while_tracking_one_frame_in_track_every_is_recognised() {
        let mut g = FrameGate::new(4, 2, 12);
        g.saw(8, 1);
        let tracked: Vec<u64> = (9..=20).filter(|i| g.wants(*i)).collect();
        assert_eq!(tracked, [10, 12, 14, 16, 18, 20]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, x: f32, conf: f32) -> PlateRead {
        PlateRead {
            text: text.into(),
            confidence: conf,
            char_confidences: vec![conf; text.len()],
            detection_confidence: 0.8,
            bbox: BBox {
                x,
                y: 100.0,
                w: 100.0,
                h: 25.0,
            },
            raw_text: text.into(),
            country: None,
            plate_type: None,
            region: None,
            format_confidence: 0.0,
        }
    }

    #[test]
    fn a_track_needs_the_vehicle_detector_until_its_vehicle_is_known() {
        let mut t = PlateTracker::new(TrackerConfig::default());
        let now = Utc::now();
        assert!(!t.needs_vehicle(0.5), "no track, nothing to classify");
        t.step(0, now, (640, 480), &[read("123ABC01", 10.0, 0.9)], &[]);
        assert!(t.needs_vehicle(0.5));
        let truck = |confidence| VehicleDetection {
            class: anpr_types::VehicleClass::Truck,
            confidence,
            bbox: BBox {
                x: 0.0,
                y: 0.0,
                w: 300.0,
                h: 300.0,
            },
        };
        t.step(
            1,
            now,
            (640, 480),
            &[read("123ABC01", 12.0, 0.9)],
            &[truck(0.3)],
        );
        assert!(t.needs_vehicle(0.5), "not sure enough yet");
        t.step(
            2,
            now,
            (640, 480),
            &[read("123ABC01", 14.0, 0.9)],
            &[truck(0.8)],
        );
        assert!(!t.needs_vehicle(0.5));
    }

    #[test]
    fn one_vehicle_over_many_frames_gives_one_passage_with_the_voted_text() {
        let mut t = PlateTracker::new(TrackerConfig::default());
        let now = Utc::now();
        let mut out = Vec::new();
        for i in 0..10u64 {
            let text = if i == 3 { "123ABO01" } else { "123ABC01" };
            out.extend(t.step(
                i,
                now,
                (640, 480),
                &[read(text, 10.0 + i as f32 * 5.0, 0.9)],
                &[],
            ));
        }
        assert!(out.is_empty());
        for i in 10..30u64 {
            out.extend(t.step(i, now, (640, 480), &[], &[]));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "123ABC01");
        assert_eq!(out[0].reads, 10);
        assert!(t.flush().is_empty());
    }

    #[test]
    fn two_plates_far_apart_are_two_passages_and_single_glimpses_are_dropped() {
        let mut t = PlateTracker::new(TrackerConfig::default());
        let now = Utc::now();
        for i in 0..3u64 {
            t.step(
                i,
                now,
                (640, 480),
                &[read("111AAA01", 0.0, 0.9), read("222BBB02", 400.0, 0.9)],
                &[],
            );
        }
        t.step(3, now, (640, 480), &[read("999ZZZ09", 200.0, 0.9)], &[]);
        let out = t.flush();
        let texts: Vec<_> = out.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, vec!["111AAA01", "222BBB02"]);
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("123ABC01", "123ABC01"), 0);
        assert_eq!(edit_distance("123ABC01", "123AB001"), 1);
        assert_eq!(edit_distance("123ABC01", "23ABC01"), 1);
    }
}
