//! A live camera's outage as a record: the `camera_gap` event queued (and so delivered like
//! every event: in order, with its sequence number, until acknowledged) and the journal entry
//! beside it, both in one transaction.

use anpr_config::Config;
use anpr_store::Store;
use anpr_types::{CameraGap, EVENT_SCHEMA, Event, EventKind, EventPlate, EventVehicle, FrameRef};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The last frame a camera delivered before an outage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastFrame {
    pub captured_at: DateTime<Utc>,
    pub index: u64,
    pub size: (u32, u32),
    /// Frames per second the stream declared, or as measured between its last two frames.
    pub fps: Option<f64>,
}

/// What to add to the indices of a reopened source, whose first frame has `index` (a stream
/// counts from 0 again) and was captured at `at`, so that it follows `last` with the frames
/// lost in between counted.
pub(crate) fn index_offset(last: &LastFrame, index: u64, at: DateTime<Utc>) -> u64 {
    let lost = frames_lost(last.captured_at, at, last.fps);
    (last.index + 1 + lost).saturating_sub(index)
}

/// Frames a camera at `fps` would have delivered strictly between `from` and `to`.
pub(crate) fn frames_lost(from: DateTime<Utc>, to: DateTime<Utc>, fps: Option<f64>) -> u64 {
    let Some(fps) = fps.filter(|f| f.is_finite() && *f > 0.0) else {
        return 0;
    };
    let seconds = (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6;
    ((seconds * fps).round() - 1.0).max(0.0) as u64
}

/// The event of a gap: the camera, the gap, and the frame before it; no vehicle, no plate.
pub(crate) fn gap_event(
    cfg: &Config,
    gnss: Option<&crate::gnss::DeviceGnss>,
    camera: &str,
    last: &LastFrame,
    gap: CameraGap,
    seq: u64,
) -> Event {
    Event {
        schema: EVENT_SCHEMA.to_string(),
        event_id: Uuid::now_v7(),
        seq,
        device: crate::event::device_info(cfg),
        camera: camera.to_string(),
        kind: EventKind::CameraGap,
        captured_at: gap.from,
        clock: crate::event::clock_at(camera, gap.from, gnss),
        position: crate::event::position(cfg, gnss, gap.from),
        vehicle: EventVehicle::none(),
        plate: EventPlate::absent(),
        frame: FrameRef {
            index: last.index,
            width: last.size.0,
            height: last.size.1,
        },
        evidence: Vec::new(),
        track: None,
        violation: None,
        gap: Some(gap),
        custody: None,
        prev_hash: None,
        signature: None,
    }
}

/// Queues the gap's event (signed and chained like every event) and journals it
/// (`camera-gap`), in one transaction.
pub(crate) fn record(
    cfg: &Config,
    gnss: Option<&crate::gnss::DeviceGnss>,
    signer: &anpr_trust::SigningKey,
    camera: &str,
    last: &LastFrame,
    gap: &CameraGap,
) -> Result<Event, anpr_store::StoreError> {
    let mut store = Store::open(&cfg.storage.queue)?
        .with_quota(cfg.storage.quota_bytes())
        .with_signer(signer.clone());
    let detail = serde_json::json!({
        "camera": camera,
        "from": gap.from,
        "to": gap.to,
        "frames_lost": gap.frames_lost,
        "reason": gap.reason,
    });
    store.append_journaled(
        |seq| gap_event(cfg, gnss, camera, last, gap.clone(), seq),
        "camera-gap",
        &detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lost_are_those_the_frame_rate_puts_strictly_between_the_two_frames() {
        let t0 = Utc::now();
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        assert_eq!(frames_lost(t0, at(40), Some(25.0)), 0, "consecutive frames");
        assert_eq!(frames_lost(t0, at(80), Some(25.0)), 1);
        assert_eq!(frames_lost(t0, at(20_000), Some(25.0)), 499);
        assert_eq!(frames_lost(t0, at(20_000), None), 0, "no rate, no estimate");
        assert_eq!(frames_lost(at(100), t0, Some(25.0)), 0, "a clock step back");
        let last = LastFrame {
            captured_at: t0,
            index: 1000,
            size: (64, 48),
            fps: Some(25.0),
        };
        // A reopened stream counts from 0: its first frame, 2 s on, becomes index 1050.
        assert_eq!(index_offset(&last, 0, at(2000)), 1050);
        assert_eq!(3 + index_offset(&last, 3, at(2000)), 1050);
    }
}
