//! The capture thread: frames of one camera's GStreamer pipeline into the bounded channel.
//!
//! A live camera never waits for recognition: a frame that finds the channel full is dropped
//! and counted. A file waits, so every frame of it is recognised.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use anpr_config::Camera;
use anpr_ingest::{Frame, FrameSource};

use crate::DeviceCounters;
use crate::status::{CameraState, CameraStatus};

/// Pulls frames until the source ends, `stop` is set or the recognition side hangs up; an
/// error is the camera's fault, as the text reported for it.
// The thread owns what it is given for its whole life.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn capture_thread(
    cam: Camera,
    tx: SyncSender<Frame>,
    counters: &DeviceCounters,
    status: &CameraStatus,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut source = FrameSource::open(
        &cam.id,
        &cam.uri,
        cam.live,
        cam.max_fps,
        Duration::from_secs(15),
    )
    .map_err(|e| {
        status.set_state(CameraState::Reconnecting, &e.to_string());
        e.to_string()
    })?;
    status.set_state(CameraState::Live, "");
    let live = source.is_live();
    while !stop.load(Ordering::Relaxed) {
        match source.next_frame(Duration::from_secs(10)) {
            Ok(Some(frame)) => {
                status.frame_in(frame.captured_at);
                if live {
                    match tx.try_send(frame) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
                            status.frames_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(TrySendError::Disconnected(_)) => break,
                    }
                } else if tx.send(frame).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                status.set_state(CameraState::Reconnecting, &e.to_string());
                return Err(e.to_string());
            }
        }
    }
    status.set_state(CameraState::Ended, "");
    Ok(())
}
