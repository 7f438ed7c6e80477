//! A frozen camera: frames that stop changing (a hung sensor behind a working encoder repeats
//! the same picture), or stop coming while the source stays open. Sans-IO: the caller gives
//! each frame's hash and the time, and is told when the camera freezes or thaws.

use std::time::Duration;

use anpr_types::RgbFrame;

/// Points sampled across and down a frame for its hash.
const GRID: (usize, usize) = (32, 18);

/// A cheap hash of a frame: FNV-1a over the exact values of a 32 x 18 grid of its pixels.
/// A live camera's sensor noise changes sampled values from frame to frame; a frozen picture
/// decodes to the same values every time.
pub(crate) fn frame_hash(frame: &RgbFrame) -> u64 {
    let (width, height) = (frame.width as usize, frame.height as usize);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    if width == 0 || height == 0 {
        return hash;
    }
    for gy in 0..GRID.1 {
        let row = (2 * gy + 1) * height / (2 * GRID.1);
        for gx in 0..GRID.0 {
            let col = (2 * gx + 1) * width / (2 * GRID.0);
            let at = (row * width + col) * 3;
            for byte in frame.data.get(at..at + 3).unwrap_or(&[]) {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    hash
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FreezeChange {
    /// Nothing new for `for_` (frames identical, or none).
    Froze { for_: Duration },
    /// A changed frame arrived.
    Thawed,
}

/// Watches one camera's frames.
#[derive(Debug, Clone)]
pub(crate) struct FreezeDetector {
    after: Duration,
    last_hash: Option<u64>,
    /// When the picture last changed (or watching began).
    changed_at: Option<Duration>,
    frozen: bool,
}

impl FreezeDetector {
    pub(crate) fn new(after: Duration) -> Self {
        Self {
            after,
            last_hash: None,
            changed_at: None,
            frozen: false,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// A frame with hash `hash` arrived at `now` (time since any fixed origin).
    pub(crate) fn frame(&mut self, now: Duration, hash: u64) -> Option<FreezeChange> {
        if self.last_hash != Some(hash) {
            self.last_hash = Some(hash);
            self.changed_at = Some(now);
            if self.frozen {
                self.frozen = false;
                return Some(FreezeChange::Thawed);
            }
            return None;
        }
        self.tick(now)
    }

    /// Time passed without a new frame.
    pub(crate) fn tick(&mut self, now: Duration) -> Option<FreezeChange> {
        let since = *self.changed_at.get_or_insert(now);
        let still = now.saturating_sub(since);
        if !self.frozen && still >= self.after {
            self.frozen = true;
            return Some(FreezeChange::Froze { for_: still });
        }
        None
    }

    /// The source was opened again: watching starts afresh (not frozen).
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn identical_frames_for_the_set_time_freeze_the_camera_and_a_change_thaws_it() {
        let mut d = FreezeDetector::new(ms(10_000));
        assert_eq!(d.frame(ms(0), 1), None);
        for t in (40..10_000).step_by(40) {
            assert_eq!(d.frame(ms(t), 1), None, "at {t} ms");
        }
        assert_eq!(
            d.frame(ms(10_000), 1),
            Some(FreezeChange::Froze { for_: ms(10_000) })
        );
        assert!(d.is_frozen());
        assert_eq!(d.frame(ms(10_040), 1), None, "said once");
        assert_eq!(d.frame(ms(10_080), 2), Some(FreezeChange::Thawed));
        assert!(!d.is_frozen());
        assert_eq!(d.frame(ms(10_120), 3), None);
    }

    #[test]
    fn changing_frames_never_freeze_the_camera() {
        let mut d = FreezeDetector::new(ms(2_000));
        for (i, t) in (0..60_000).step_by(40).enumerate() {
            assert_eq!(d.frame(ms(t), i as u64 % 3), None);
        }
    }

    #[test]
    fn no_frames_for_the_set_time_freeze_the_camera_too() {
        let mut d = FreezeDetector::new(ms(5_000));
        d.frame(ms(0), 9);
        assert_eq!(d.tick(ms(4_999)), None);
        assert_eq!(
            d.tick(ms(5_000)),
            Some(FreezeChange::Froze { for_: ms(5_000) })
        );
        assert_eq!(d.frame(ms(6_000), 10), Some(FreezeChange::Thawed));
    }

    #[test]
    fn a_reopened_source_is_watched_afresh() {
        let mut d = FreezeDetector::new(ms(1_000));
        d.frame(ms(0), 1);
        d.tick(ms(1_500));
        assert!(d.is_frozen());
        d.reset();
        assert!(!d.is_frozen());
        assert_eq!(
            d.frame(ms(2_000), 1),
            None,
            "the first frame after reopening"
        );
        assert_eq!(d.tick(ms(2_999)), None);
        assert!(d.tick(ms(3_000)).is_some());
    }

    #[test]
    fn the_hash_sees_a_change_of_one_sampled_pixel_and_ignores_the_rest() {
        let width = 320u32;
        let mut frame = RgbFrame {
            width,
            height: 180,
            data: vec![100; (width * 180 * 3) as usize],
        };
        let before = frame_hash(&frame);
        assert_eq!(before, frame_hash(&frame.clone()));
        // Pixel (0, 0) is not sampled; the first sampled one is at (5, 5).
        frame.data[0] = 7;
        assert_eq!(frame_hash(&frame), before);
        frame.data[(5 * width as usize + 5) * 3] = 101;
        assert_ne!(frame_hash(&frame), before);
    }
}
