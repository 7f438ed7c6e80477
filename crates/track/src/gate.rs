//! Which frames of a stream go to recognition: all that a vehicle in view needs, few while
//! the road is empty.

/// Decides which frames of a stream go to recognition: one in `track_every` while a plate or a
/// vehicle is in view (and for `hold` frames after the last sighting), one in `idle_every` while
/// none is.
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
                // `index >= seen` here unless indices went back; never underflow on that.
                index.saturating_sub(seen).is_multiple_of(self.track_every)
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

#[cfg(test)]
mod tests {
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
