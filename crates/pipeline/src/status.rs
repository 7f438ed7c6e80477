//! What each camera is doing now, readable while the device runs (the status page and the
//! metrics read it; the capture and recognition threads write it).
//!
//! Besides the counters: each camera's frame rate, how long each stage of its pipeline took
//! ([`Stage`], [`LatencyHistogram`]), a snapshot JPEG refreshed at most once a second, and the
//! device's last [`RECENT_EVENTS`] recorded events with their plate crops ([`RecentEvents`]).
//! Nothing here does I/O; everything is bounded in memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anpr_types::{Event, EventKind, RgbFrame};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The state of a camera's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraState {
    /// Opening the source for the first time.
    Starting,
    /// Frames arrive.
    Live,
    /// The source failed or stalled; opening it again (with backoff).
    Reconnecting,
    /// Frames stopped changing, or stopped coming while the source stays open.
    Frozen,
    /// A file at its end, or the device stopping.
    Ended,
}

impl CameraState {
    /// Lower-case name, as on the status page and in metrics labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Live => "live",
            Self::Reconnecting => "reconnecting",
            Self::Frozen => "frozen",
            Self::Ended => "ended",
        }
    }
}

/// The state with when it began and what is known of it.
#[derive(Debug, Clone)]
pub struct StateNow {
    pub state: CameraState,
    pub since: DateTime<Utc>,
    /// Why (the error of the last attempt, ...); empty when there is nothing to say.
    pub detail: String,
}

/// One camera's live figures.
#[derive(Debug)]
pub struct CameraStatus {
    pub id: String,
    /// Frames decoded from the source.
    pub frames_in: AtomicU64,
    /// Frames run through the recognizer.
    pub frames_recognised: AtomicU64,
    /// Frames dropped because recognition was behind (live sources only).
    pub frames_dropped: AtomicU64,
    /// Times the source was opened again after a failure.
    pub reconnects: AtomicU64,
    /// Capture time of the latest frame, Unix milliseconds; 0 before the first.
    last_frame_ms: AtomicI64,
    state: Mutex<StateNow>,
    /// The latest snapshot (JPEG), refreshed about once a second while frames arrive.
    snapshot: Mutex<Option<Arc<Vec<u8>>>>,
    /// When the latest snapshot was taken.
    snapshot_at: Mutex<Option<Instant>>,
    /// Frame rate and when each recent frame left the decoder.
    clock: Mutex<FrameClock>,
    /// How long each stage of this camera's pipeline took.
    pub latency: StageLatencies,
}

/// Frames between two looks at the frame rate, and the decode instants of the frames that may
/// still wait in the hand-off to recognition.
#[derive(Debug)]
struct FrameClock {
    /// Start of the current rate window, and `frames_in` then.
    mark: Instant,
    frames_at_mark: u64,
    /// Frames per second over the last complete window (about a second).
    fps: f64,
    /// (capture time in Unix ms, when the frame was counted in), oldest first.
    decoded: VecDeque<(i64, Instant)>,
}

/// Decode instants kept: more than the hand-off between capture and recognition holds.
const DECODED_KEPT: usize = 16;
/// Length of the window the frame rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Snapshots are taken at most this often.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// Snapshots wider than this are scaled down (by a whole factor) before encoding.
const SNAPSHOT_MAX_WIDTH: u32 = 800;

impl CameraStatus {
    #[must_use]
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            frames_in: AtomicU64::new(0),
            frames_recognised: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            last_frame_ms: AtomicI64::new(0),
            state: Mutex::new(StateNow {
                state: CameraState::Starting,
                since: Utc::now(),
                detail: String::new(),
            }),
            snapshot: Mutex::new(None),
            snapshot_at: Mutex::new(None),
            clock: Mutex::new(FrameClock {
                mark: Instant::now(),
                frames_at_mark: 0,
                fps: 0.0,
                decoded: VecDeque::with_capacity(DECODED_KEPT),
            }),
            latency: StageLatencies::default(),
        }
    }

    /// Moves to `state`; the time it began changes only when the state does.
    pub fn set_state(&self, state: CameraState, detail: &str) {
        let mut now = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.state != state {
            now.state = state;
            now.since = Utc::now();
        }
        now.detail = detail.to_string();
    }

    #[must_use]
    pub fn state(&self) -> StateNow {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts a decoded frame captured at `at` (called as the frame leaves the decoder).
    pub fn frame_in(&self, at: DateTime<Utc>) {
        let n = self.frames_in.fetch_add(1, Ordering::Relaxed) + 1;
        self.last_frame_ms
            .store(at.timestamp_millis(), Ordering::Relaxed);
        let now = Instant::now();
        let mut c = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        let window = now.duration_since(c.mark);
        if window >= RATE_WINDOW {
            c.fps = (n - c.frames_at_mark) as f64 / window.as_secs_f64();
            c.mark = now;
            c.frames_at_mark = n;
        }
        if c.decoded.len() == DECODED_KEPT {
            c.decoded.pop_front();
        }
        c.decoded.push_back((at.timestamp_millis(), now));
    }

    /// Frames in per second: over the last second or so while frames arrive, falling towards
    /// zero when they stop.
    #[must_use]
    pub fn fps(&self) -> f64 {
        let n = self.frames_in.load(Ordering::Relaxed);
        let c = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        let window = c.mark.elapsed();
        if window < 2 * RATE_WINDOW {
            c.fps
        } else {
            n.saturating_sub(c.frames_at_mark) as f64 / window.as_secs_f64()
        }
    }

    /// When the frame captured at `at` left the decoder (see [`frame_in`](Self::frame_in)),
    /// if it is among the last few counted in; forgets it and every frame before it.
    pub fn take_decoded(&self, at: DateTime<Utc>) -> Option<Instant> {
        let ms = at.timestamp_millis();
        let mut c = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        let i = c.decoded.iter().position(|(m, _)| *m == ms)?;
        let (_, when) = c.decoded[i];
        c.decoded.drain(..=i);
        Some(when)
    }

    /// Capture time of the latest frame.
    #[must_use]
    pub fn last_frame(&self) -> Option<DateTime<Utc>> {
        match self.last_frame_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    pub fn set_snapshot(&self, jpeg: Vec<u8>) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(jpeg));
    }

    /// Whether a new snapshot is due ([`SNAPSHOT_EVERY`] since the last); when it is, the
    /// caller is expected to take it (the next call says no for another interval).
    pub fn snapshot_due(&self) -> bool {
        let mut at = self
            .snapshot_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if at.is_some_and(|t| t.elapsed() < SNAPSHOT_EVERY) {
            return false;
        }
        *at = Some(Instant::now());
        true
    }

    /// Takes a snapshot of `frame` when one is due: scaled down to at most
    /// [`SNAPSHOT_MAX_WIDTH`] wide and encoded as JPEG. Costs a few milliseconds once a second.
    pub fn offer_snapshot(&self, frame: &RgbFrame) {
        if !self.snapshot_due() {
            return;
        }
        let (data, w, h) = scaled_down(frame, SNAPSHOT_MAX_WIDTH);
        match crate::evidence::jpeg(&data, w, h, 70) {
            Ok(jpeg) => self.set_snapshot(jpeg),
            Err(e) => tracing::warn!(camera = %self.id, error = %e, "Snapshot not made."),
        }
    }

    #[must_use]
    pub fn snapshot(&self) -> Option<Arc<Vec<u8>>> {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `frame` shrunk by the smallest whole factor that makes it at most `max_width` wide (every
/// n-th pixel of every n-th row), as packed RGB with its size.
fn scaled_down(frame: &RgbFrame, max_width: u32) -> (Vec<u8>, u32, u32) {
    let step = frame.width.div_ceil(max_width.max(1)).max(1);
    if step == 1 {
        return (frame.data.clone(), frame.width, frame.height);
    }
    let (w, h) = (frame.width / step, frame.height / step);
    let stride = frame.width as usize * 3;
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h as usize {
        let row = &frame.data[y * step as usize * stride..];
        for x in 0..w as usize {
            let p = x * step as usize * 3;
            out.extend_from_slice(&row[p..p + 3]);
        }
    }
    (out, w, h)
}

/// The stages a frame goes through, each timed per camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// From the frame leaving the decoder to recognition taking it (the hand-off).
    Wait,
    /// Vehicle and plate detection and plate reading.
    Recognise,
    /// One step of the vehicle tracker.
    Track,
    /// Recording a passage: rules, evidence images and the queue append (synced to disk).
    Record,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Wait, Stage::Recognise, Stage::Track, Stage::Record];

    /// Lower-case name, as in metrics labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Recognise => "recognise",
            Self::Track => "track",
            Self::Record => "record",
        }
    }
}

/// Upper bounds of the latency buckets, seconds (an overflow bucket follows).
pub const LATENCY_BOUNDS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with fixed buckets ([`LATENCY_BOUNDS_S`]), lock-free to observe.
#[derive(Debug)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_S.len() + 1],
    sum_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BOUNDS_S.len() + 1],
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// What a [`LatencyHistogram`] holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations in this bucket alone); the last bound is infinite.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_s: f64,
}

impl LatencyHistogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BOUNDS_S.partition_point(|b| *b < s);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_S
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.buckets)
            .map(|(b, n)| (b, n.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            sum_s: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// One histogram per [`Stage`].
#[derive(Debug, Default)]
pub struct StageLatencies {
    wait: LatencyHistogram,
    recognise: LatencyHistogram,
    track: LatencyHistogram,
    record: LatencyHistogram,
}

impl StageLatencies {
    #[must_use]
    pub fn get(&self, stage: Stage) -> &LatencyHistogram {
        match stage {
            Stage::Wait => &self.wait,
            Stage::Recognise => &self.recognise,
            Stage::Track => &self.track,
            Stage::Record => &self.record,
        }
    }

    pub fn observe(&self, stage: Stage, d: Duration) {
        self.get(stage).observe(d);
    }
}

/// Recorded events kept for the status page.
pub const RECENT_EVENTS: usize = 20;

/// A recorded event as the status page shows it.
#[derive(Debug, Clone)]
pub struct RecentEvent {
    pub seq: u64,
    pub event_id: Uuid,
    pub kind: EventKind,
    pub camera: String,
    pub captured_at: DateTime<Utc>,
    /// The plate text; empty when it could not be read (see `plate_status`).
    pub plate: String,
    /// `read`, `unreadable` or `absent`.
    pub plate_status: &'static str,
    pub vehicle: String,
    pub direction: Option<String>,
    /// For a violation: the rule and its reason.
    pub rule: Option<(String, String)>,
    /// The plate crop (JPEG) stored with the event, if any.
    pub plate_jpeg: Option<Arc<Vec<u8>>>,
}

impl RecentEvent {
    #[must_use]
    pub fn new(e: &Event, plate_jpeg: Option<Arc<Vec<u8>>>) -> Self {
        Self {
            seq: e.seq,
            event_id: e.event_id,
            kind: e.kind,
            camera: e.camera.clone(),
            captured_at: e.captured_at,
            plate: e.plate.text.clone(),
            plate_status: e.plate.status.as_str(),
            vehicle: e.vehicle.class.to_string(),
            direction: e.vehicle.direction.clone(),
            rule: e
                .violation
                .as_ref()
                .map(|v| (v.rule.clone(), v.reason.clone())),
            plate_jpeg,
        }
    }
}

/// The last [`RECENT_EVENTS`] events recorded, by every camera.
#[derive(Debug, Default)]
pub struct RecentEvents {
    list: Mutex<VecDeque<RecentEvent>>,
}

impl RecentEvents {
    pub fn push(&self, e: RecentEvent) {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if list.len() == RECENT_EVENTS {
            list.pop_front();
        }
        list.push_back(e);
    }

    /// Newest first.
    #[must_use]
    pub fn all(&self) -> Vec<RecentEvent> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .rev()
            .cloned()
            .collect()
    }

    /// The plate crop of the event with this sequence number, while it is kept.
    #[must_use]
    pub fn plate_jpeg(&self, seq: u64) -> Option<Arc<Vec<u8>>> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|e| e.seq == seq)
            .and_then(|e| e.plate_jpeg.clone())
    }
}

/// The cameras of a run, in configuration order.
#[derive(Debug, Default)]
pub struct Cameras {
    list: Mutex<Vec<Arc<CameraStatus>>>,
}

impl Cameras {
    /// The camera with this id, added if it is not there yet.
    pub fn get_or_add(&self, id: &str) -> Arc<CameraStatus> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = list.iter().find(|c| c.id == id) {
            return c.clone();
        }
        let c = Arc::new(CameraStatus::new(id));
        list.push(c.clone());
        c
    }

    #[must_use]
    pub fn all(&self) -> Vec<Arc<CameraStatus>> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_keeps_its_start_until_it_changes() {
        let c = CameraStatus::new("cam1");
        c.set_state(CameraState::Live, "");
        let since = c.state().since;
        std::thread::sleep(std::time::Duration::from_millis(5));
        c.set_state(CameraState::Live, "still");
        assert_eq!(c.state().since, since);
        c.set_state(CameraState::Reconnecting, "refused");
        assert!(c.state().since > since);
        assert_eq!(c.state().detail, "refused");
    }

    #[test]
    fn cameras_are_listed_once_in_the_order_added() {
        let cams = Cameras::default();
        cams.get_or_add("a");
        cams.get_or_add("b");
        cams.get_or_add("a").frame_in(Utc::now());
        let all = cams.all();
        assert_eq!(
            all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(all[0].frames_in.load(Ordering::Relaxed), 1);
        assert!(all[0].last_frame().is_some() && all[1].last_frame().is_none());
    }

    #[test]
    fn a_latency_falls_in_the_first_bucket_whose_bound_holds_it() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_mins(1));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), LATENCY_BOUNDS_S.len() + 1);
        let at = |bound: f64| {
            s.buckets
                .iter()
                .find(|(b, _)| b.to_bits() == bound.to_bits())
                .unwrap()
                .1
        };
        assert_eq!(at(0.0005), 1);
        assert_eq!(at(0.001), 1, "a bound is inclusive");
        assert_eq!(at(0.05), 1);
        assert_eq!(at(f64::INFINITY), 1);
        assert!((s.sum_s - 60.0313).abs() < 1e-9, "{}", s.sum_s);
    }

    #[test]
    fn a_frame_s_decode_instant_is_found_once_and_older_ones_are_forgotten() {
        let c = CameraStatus::new("cam1");
        let t0 = Utc::now();
        let times: Vec<_> = (0..3)
            .map(|i| t0 + chrono::Duration::milliseconds(40 * i))
            .collect();
        for t in &times {
            c.frame_in(*t);
        }
        assert!(c.take_decoded(times[1]).is_some());
        assert!(c.take_decoded(times[0]).is_none(), "dropped before frame 1");
        assert!(c.take_decoded(times[1]).is_none(), "taken once");
        assert!(c.take_decoded(times[2]).is_some());
    }

    #[test]
    fn the_frame_rate_is_measured_over_about_a_second() {
        let c = CameraStatus::new("cam1");
        assert!(c.fps().abs() < f64::EPSILON);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1100) {
            c.frame_in(Utc::now());
            std::thread::sleep(Duration::from_millis(10));
        }
        c.frame_in(Utc::now());
        let fps = c.fps();
        assert!((20.0..=110.0).contains(&fps), "{fps}");
    }

    #[test]
    fn a_snapshot_is_due_once_a_second_and_is_a_smaller_jpeg() {
        let c = CameraStatus::new("cam1");
        let frame = RgbFrame {
            width: 1280,
            height: 720,
            data: vec![90; 1280 * 720 * 3],
        };
        c.offer_snapshot(&frame);
        let first = c.snapshot().unwrap();
        let img = image::load_from_memory(&first).unwrap();
        assert_eq!((img.width(), img.height()), (640, 360));
        c.offer_snapshot(&frame);
        assert!(Arc::ptr_eq(&first, &c.snapshot().unwrap()), "not due yet");
        assert!(!c.snapshot_due());
    }

    #[test]
    fn recent_events_keep_the_last_ones_newest_first() {
        let recent = RecentEvents::default();
        for seq in 1..=(RECENT_EVENTS as u64 + 5) {
            recent.push(RecentEvent {
                seq,
                event_id: Uuid::now_v7(),
                kind: EventKind::Passage,
                camera: "cam1".into(),
                captured_at: Utc::now(),
                plate: format!("{seq:03}ABC01"),
                plate_status: "read",
                vehicle: "car".into(),
                direction: None,
                rule: None,
                plate_jpeg: Some(Arc::new(vec![seq as u8])),
            });
        }
        let all = recent.all();
        assert_eq!(all.len(), RECENT_EVENTS);
        assert_eq!(all[0].seq, RECENT_EVENTS as u64 + 5);
        assert_eq!(all.last().unwrap().seq, 6);
        assert_eq!(recent.plate_jpeg(7).as_deref(), Some(&vec![7u8]));
        assert!(recent.plate_jpeg(5).is_none(), "fell off");
    }
}
