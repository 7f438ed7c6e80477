//! The wait before opening a failed source again: doubling from a first wait up to a cap, each
//! wait jittered to between half and all of it. Sans-IO: it says how long, the caller waits.

use std::time::Duration;

/// Reconnection schedule of one camera.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    /// Failures since the last success.
    failures: u32,
    /// xorshift64* state; never 0.
    rng: u64,
}

impl Backoff {
    /// A schedule from `min` doubling up to `max` (`max` is raised to `min` if below it);
    /// `seed` varies the jitter (cameras that fail together should not return together).
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
            rng: seed | 1,
        }
    }

    /// Failures since the last [`reset`](Self::reset).
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Counts one more failure and says how long to wait before the next attempt: the cap
    /// `min * 2^(failures - 1)` (at most `max`), jittered to between half of it and all of it.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let cap = self
            .min
            .checked_mul(1u32 << self.failures.min(20))
            .unwrap_or(self.max)
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = cap / 2;
        // A fraction in [0, 1) from the top 53 bits.
        let fraction = (self.random() >> 11) as f64 / (1u64 << 53) as f64;
        half + cap.saturating_sub(half).mul_f64(fraction)
    }

    /// Frames flow again: the next failure starts from `min`.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn waits_double_from_the_first_up_to_the_cap_each_between_half_and_all_of_it() {
        let mut b = Backoff::new(S, 30 * S, 7);
        let caps = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30];
        for (i, cap) in caps.iter().enumerate() {
            let cap = *cap * S;
            let w = b.next_wait();
            assert!(
                w >= cap / 2 && w <= cap,
                "attempt {}: {w:?} not within [{:?}, {cap:?}]",
                i + 1,
                cap / 2
            );
        }
        assert_eq!(b.failures(), 10);
    }

    #[test]
    fn a_success_starts_the_schedule_again() {
        let mut b = Backoff::new(S, 30 * S, 3);
        for _ in 0..8 {
            b.next_wait();
        }
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.next_wait() <= S);
    }

    #[test]
    fn the_schedule_never_passes_its_cap_however_long_the_outage() {
        let mut b = Backoff::new(Duration::from_millis(100), 5 * S, 11);
        for _ in 0..10_000 {
            assert!(b.next_wait() <= 5 * S);
        }
        assert_eq!(b.failures(), 10_000);
    }

    #[test]
    fn jitter_spreads_cameras_that_fail_together() {
        let waits = |seed| {
            let mut b = Backoff::new(S, 30 * S, seed);
            (0..6).map(|_| b.next_wait()).collect::<Vec<_>>()
        };
        assert_ne!(waits(1), waits(2));
        assert_eq!(waits(5), waits(5), "the same seed, the same schedule");
        // Over many draws the jitter uses the whole range, not one point of it.
        let mut b = Backoff::new(10 * S, 10 * S, 99);
        let draws: Vec<Duration> = (0..1000).map(|_| b.next_wait()).collect();
        let (lo, hi) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
        assert!(
            *lo < Duration::from_secs(6) && *hi > Duration::from_secs(9),
            "{lo:?}..{hi:?}"
        );
    }

    #[test]
    fn a_cap_below_the_first_wait_is_raised_to_it() {
        let mut b = Backoff::new(4 * S, S, 1);
        let w = b.next_wait();
        assert!(w >= 2 * S && w <= 4 * S, "{w:?}");
    }
}
