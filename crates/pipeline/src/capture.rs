//! The capture thread: frames of one camera's GStreamer pipeline into the bounded channel.
//!
//! A live camera never waits for recognition: a frame that finds the channel full is dropped
//! and counted. A file waits, so every frame of it is recognised.
//!
//! # Live cameras come back
//!
//! A live source (`rtsp://`, `v4l2://`, `live = true`) is opened again whenever it fails, for
//! as long as the device runs: an error posted by its pipeline, the end of its stream, or no
//! frame for `stall_timeout_s`. The waits between attempts follow [`backoff`] (from
//! `reconnect_min_s` doubling to `reconnect_max_s`, jittered). From the moment an outage is
//! seen until frames flow again it is the lasting `camera` fault of this camera (published on
//! the health channel at once) and the camera's state is `reconnecting`; when frames return,
//! the fault clears and the gap (last frame before, first frame after, frames lost at the
//! stream's rate, the first error) is queued as a `camera_gap` event and journaled in one
//! transaction (see `gap`). A camera whose frames stay identical, or stop while the source
//! stays open, for `frozen_after_s` is `frozen`: the same lasting `camera` fault until they
//! change ([`freeze`]). None of this stops another camera or the device; a live camera's thread
//! ends only when the device stops. A file ends at its end, and its failure ends its thread
//! with an error as before.
//!
//! # Capture time
//!
//! Each frame's capture time and its source (`camera-ntp`, `pipeline`, `system`) come from
//! `anpr_ingest`; the source in force is noted per camera ([`clock`]) so that an event built
//! later says which one its capture time came from.

pub(crate) mod backoff;
pub(crate) mod clock;
pub(crate) mod freeze;
mod gap;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use anpr_config::{Camera, Config};
use anpr_ingest::{Frame, FrameSource, Pulled, SourceOptions};
use anpr_types::CameraGap;
use anpr_uplink::FaultBoard;
use chrono::{DateTime, Utc};

use crate::DeviceCounters;
use crate::status::{CameraState, CameraStatus};
use backoff::Backoff;
use freeze::{FreezeChange, FreezeDetector, frame_hash};
use gap::LastFrame;

/// Fault code of a camera that is down or frozen (subject: the camera's id).
pub(crate) const CAMERA_FAULT: &str = "camera";
/// How long one pull waits for a frame before the thread looks at the clock and `stop`.
const POLL: Duration = Duration::from_millis(250);
/// How long opening a source may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// What a capture thread is given.
pub(crate) struct Capture {
    pub cfg: Arc<Config>,
    /// The device key a camera's gap event is signed with.
    pub signer: anpr_trust::SigningKey,
    pub cam: Camera,
    pub tx: SyncSender<Frame>,
    pub counters: Arc<DeviceCounters>,
    pub status: Arc<CameraStatus>,
    pub uplink: Arc<anpr_uplink::Counters>,
    pub stop: Arc<AtomicBool>,
    /// Busy while inside a GStreamer call (opening the source, waiting for a frame), for the
    /// watchdog: each of those calls has its own timeout, so one that outlasts it hangs.
    pub part: Arc<crate::watchdog::Part>,
    /// A mobile unit's GNSS receiver (the position of a gap event).
    pub gnss: Option<crate::gnss::DeviceGnss>,
}

/// Pulls frames until the device stops, a file ends or the recognition side hangs up. An
/// error (a file that fails) is the camera's fault, as the text reported for it; a live
/// camera never returns one.
pub(crate) fn capture_thread(c: &Capture) -> Result<(), String> {
    clock::watch_sync();
    let live = c
        .cam
        .live
        .unwrap_or_else(|| anpr_ingest::live_by_default(&c.cam.uri));
    let ended = if live {
        live_capture(c);
        Ok(())
    } else {
        file_capture(c)
    };
    c.status.set_state(CameraState::Ended, "");
    ended
}

fn source_options(cam: &Camera) -> SourceOptions {
    SourceOptions {
        live: cam.live,
        max_fps: cam.max_fps,
        open_timeout: OPEN_TIMEOUT,
        latency_ms: cam.latency_ms,
    }
}

/// A file (or a source configured `live = false`): opened once, read to its end.
fn file_capture(c: &Capture) -> Result<(), String> {
    let opened = {
        let _busy = c.part.busy();
        FrameSource::open_with(&c.cam.id, &c.cam.uri, &source_options(&c.cam))
    };
    let mut source = opened.map_err(|e| {
        c.status
            .set_state(CameraState::Reconnecting, &e.to_string());
        e.to_string()
    })?;
    c.status.set_state(CameraState::Live, "");
    while !c.stop.load(Ordering::Relaxed) {
        let next = {
            let _busy = c.part.busy();
            source.next_frame(Duration::from_secs(10))
        };
        match next {
            Ok(Some(frame)) => {
                clock::note(&c.cam.id, frame.captured_at, frame.clock);
                c.status.frame_in(frame.captured_at);
                if c.tx.send(frame).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                c.status
                    .set_state(CameraState::Reconnecting, &e.to_string());
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

/// An outage in progress.
struct Outage {
    /// The first error seen.
    reason: String,
}

/// A live camera's life: open, pull, and on any failure raise the fault, wait and open again.
struct Live<'a> {
    c: &'a Capture,
    faults: &'a FaultBoard,
    backoff: Backoff,
    freeze: FreezeDetector,
    outage: Option<Outage>,
    last: Option<LastFrame>,
    /// The clock the freeze detector runs on.
    origin: Instant,
    /// Added to the index of each frame of the source open now, so that a camera's frame
    /// indices keep rising across reopenings (a reopened stream counts from 0 again) and leave
    /// room for the frames lost in the outage: the tracker and the frame gate count in indices.
    index_offset: u64,
    /// No frame has come yet from the source open now.
    fresh_source: bool,
}

fn live_capture(c: &Capture) {
    let cam = &c.cam;
    let seed = cam.id.bytes().fold(u64::from(std::process::id()), |h, b| {
        h.rotate_left(5) ^ u64::from(b)
    }) ^ u64::from(Utc::now().timestamp_subsec_nanos());
    let mut live = Live {
        c,
        faults: &c.uplink.faults,
        backoff: Backoff::new(
            Duration::from_secs_f64(cam.reconnect_min_s),
            Duration::from_secs_f64(cam.reconnect_max_s),
            seed,
        ),
        freeze: FreezeDetector::new(Duration::from_secs_f64(cam.frozen_after_s)),
        outage: None,
        last: None,
        origin: Instant::now(),
        index_offset: 0,
        fresh_source: true,
    };
    let mut opened_before = false;
    while !c.stop.load(Ordering::Relaxed) {
        let opened = {
            let _busy = c.part.busy();
            FrameSource::open_with(&cam.id, &cam.uri, &source_options(cam))
        };
        match opened {
            Ok(source) => {
                if opened_before && live.outage.is_some() {
                    c.status.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                opened_before = true;
                if !live.pump(source) {
                    break;
                }
            }
            Err(e) => live.begin_outage(&e.to_string()),
        }
        if c.stop.load(Ordering::Relaxed) {
            break;
        }
        let wait = live.backoff.next_wait();
        tracing::warn!(camera = %cam.id, attempt = live.backoff.failures(), wait_s = wait.as_secs_f64(), "Camera down; opening it again after a pause.");
        sleep_unless_stopped(wait, &c.stop);
    }
    live.stopped();
}

/// Sleeps `d`, or less when `stop` is set meanwhile.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(POLL));
    }
}

impl Live<'_> {
    fn id(&self) -> &str {
        &self.c.cam.id
    }

    /// Pulls frames from an open source until it fails (an outage has begun: `true`, open it
    /// again) or the device stops or recognition hangs up (`false`).
    fn pump(&mut self, mut source: FrameSource) -> bool {
        let stall = Duration::from_secs_f64(self.c.cam.stall_timeout_s);
        let mut last_frame = Instant::now();
        self.freeze.reset();
        self.fresh_source = true;
        while !self.c.stop.load(Ordering::Relaxed) {
            let pulled = {
                let _busy = self.c.part.busy();
                source.pull(POLL)
            };
            match pulled {
                Ok(Pulled::Frame(frame)) => {
                    last_frame = Instant::now();
                    let fps = source.frame_rate();
                    if !self.frame(*frame, fps) {
                        return false;
                    }
                }
                Ok(Pulled::Nothing) => {
                    let waited = last_frame.elapsed();
                    if waited >= stall {
                        self.begin_outage(&format!(
                            "no frame for {:.1} s; the stream has stalled",
                            waited.as_secs_f64()
                        ));
                        return true;
                    }
                    let change = self.freeze.tick(self.origin.elapsed());
                    self.freeze_changed(change);
                }
                Ok(Pulled::End) => {
                    self.begin_outage("the stream ended");
                    return true;
                }
                Err(e) => {
                    self.begin_outage(&e.to_string());
                    return true;
                }
            }
        }
        false
    }

    /// A frame arrived: ends an outage, watches for a freeze, hands the frame on. `false` when
    /// recognition has hung up.
    fn frame(&mut self, mut frame: Frame, fps: Option<f64>) -> bool {
        let c = self.c;
        if std::mem::take(&mut self.fresh_source)
            && let Some(last) = &self.last
        {
            self.index_offset = gap::index_offset(last, frame.index, frame.captured_at);
        }
        frame.index += self.index_offset;
        if let Some(outage) = self.outage.take() {
            self.end_outage(&outage, &frame);
        } else if c.status.state().state == CameraState::Starting {
            c.status.set_state(CameraState::Live, "");
        }
        let change = self
            .freeze
            .frame(self.origin.elapsed(), frame_hash(&frame.image));
        self.freeze_changed(change);
        clock::note(self.id(), frame.captured_at, frame.clock);
        c.status.frame_in(frame.captured_at);
        let measured = self
            .last
            .map(|l| {
                (frame.captured_at - l.captured_at)
                    .num_microseconds()
                    .unwrap_or(0)
            })
            .filter(|us| *us > 0)
            .map(|us| 1e6 / us as f64);
        self.last = Some(LastFrame {
            captured_at: frame.captured_at,
            index: frame.index,
            size: (frame.image.width, frame.image.height),
            fps: fps.or(measured),
        });
        match c.tx.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                c.counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
                c.status.frames_dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    fn freeze_changed(&mut self, change: Option<FreezeChange>) {
        let c = self.c;
        match change {
            Some(FreezeChange::Froze { for_ }) => {
                let message = format!(
                    "camera {}: frozen: no new picture for {:.0} s (frames identical or none while the stream stays open)",
                    self.id(),
                    for_.as_secs_f64()
                );
                tracing::error!(camera = %self.id(), seconds = for_.as_secs_f64(), "Camera frozen.");
                c.status.set_state(CameraState::Frozen, &message);
                self.faults.set(CAMERA_FAULT, self.id(), &message);
            }
            Some(FreezeChange::Thawed) => {
                c.status.set_state(CameraState::Live, "");
                self.faults.clear(
                    CAMERA_FAULT,
                    self.id(),
                    &format!("camera {}: the picture changes again", self.id()),
                );
            }
            None => {}
        }
    }

    /// The source failed: raised at once (the first time) as the camera's lasting fault.
    fn begin_outage(&mut self, reason: &str) {
        let c = self.c;
        c.status.set_state(CameraState::Reconnecting, reason);
        if self.outage.is_some() {
            tracing::debug!(camera = %self.id(), error = %reason, "Camera still down.");
            return;
        }
        c.counters.camera_faults.fetch_add(1, Ordering::Relaxed);
        // Ingest errors already name the camera.
        let prefix = format!("camera {}: ", self.id());
        let message = format!(
            "{prefix}down: {}; opening it again with backoff",
            reason.strip_prefix(&prefix).unwrap_or(reason)
        );
        tracing::error!(camera = %self.id(), error = %reason, "Camera down.");
        self.faults.set(CAMERA_FAULT, self.id(), &message);
        self.outage = Some(Outage {
            reason: reason.to_string(),
        });
    }

    /// Frames flow again: the fault clears, the gap is recorded.
    fn end_outage(&mut self, outage: &Outage, first: &Frame) {
        let c = self.c;
        c.status.set_state(CameraState::Live, "");
        self.backoff.reset();
        self.faults.clear(
            CAMERA_FAULT,
            self.id(),
            &format!("camera {}: frames flow again", self.id()),
        );
        self.record_gap(first.captured_at, &outage.reason);
    }

    /// The device stops: an outage still open is recorded up to now.
    fn stopped(&mut self) {
        if let Some(outage) = self.outage.take() {
            let reason = format!("{}; still down when the device stopped", outage.reason);
            self.record_gap(Utc::now(), &reason);
        }
    }

    /// Queues and journals the gap since the last frame (none if the camera never delivered).
    fn record_gap(&self, to: DateTime<Utc>, reason: &str) {
        let Some(last) = self.last else {
            return;
        };
        let gap = CameraGap {
            from: last.captured_at,
            to,
            frames_lost: gap::frames_lost(last.captured_at, to, last.fps),
            reason: reason.to_string(),
        };
        match gap::record(
            &self.c.cfg,
            self.c.gnss.as_ref(),
            &self.c.signer,
            self.id(),
            &last,
            &gap,
        ) {
            Ok(e) => {
                tracing::info!(camera = %self.id(), seq = e.seq, seconds = (to - last.captured_at).num_milliseconds() as f64 / 1000.0, frames_lost = gap.frames_lost, "Camera gap recorded.");
            }
            Err(e) => {
                let message = format!(
                    "camera {}: its gap from {} to {} could not be recorded: {e}",
                    self.id(),
                    gap.from,
                    gap.to
                );
                self.c.uplink.raise_fault("camera-gap", &message);
            }
        }
    }
}
