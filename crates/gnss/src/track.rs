//! The recent fixes, and the position at any capture time among them, without I/O.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::fix::{Fix, FixMode, KMH_PER_MPS, Position};

/// How the track keeps fixes and when it calls a gap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackSettings {
    /// Fixes kept, oldest dropped first (at 1 Hz, 600 is ten minutes).
    pub capacity: usize,
    /// Fixes further apart than this are a gap: no position is interpolated across it.
    pub max_gap: Duration,
}

impl Default for TrackSettings {
    fn default() -> Self {
        Self {
            capacity: 600,
            max_gap: Duration::from_secs(2),
        }
    }
}

/// Recent fixes in GNSS time order; see [`Track::position_at`].
#[derive(Debug, Clone)]
pub struct Track {
    settings: TrackSettings,
    fixes: VecDeque<Fix>,
    /// When the receiver last said it had no fix, if after the newest fix.
    lost_since: Option<DateTime<Utc>>,
}

fn ms(d: TimeDelta) -> u64 {
    d.num_milliseconds().unsigned_abs()
}

/// Interpolates an angle in degrees along the shorter way round the circle.
#[must_use]
pub fn lerp_angle(a: f64, b: f64, f: f64) -> f64 {
    let diff = (b - a + 540.0).rem_euclid(360.0) - 180.0;
    (a + diff * f).rem_euclid(360.0)
}

fn lerp(a: f64, b: f64, f: f64) -> f64 {
    a + (b - a) * f
}

fn both<T>(a: Option<T>, b: Option<T>, pick: impl Fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

impl Track {
    #[must_use]
    pub fn new(settings: TrackSettings) -> Self {
        Self {
            settings: TrackSettings {
                capacity: settings.capacity.max(2),
                ..settings
            },
            fixes: VecDeque::new(),
            lost_since: None,
        }
    }

    #[must_use]
    pub fn settings(&self) -> TrackSettings {
        self.settings
    }

    /// Fixes kept, oldest first.
    pub fn fixes(&self) -> impl Iterator<Item = &Fix> {
        self.fixes.iter()
    }

    /// The newest fix.
    #[must_use]
    pub fn last(&self) -> Option<&Fix> {
        self.fixes.back()
    }

    /// Adds a fix. A fix with the time of one already kept replaces it when it is at least as
    /// good (gpsd may report a 2D and then a 3D fix for one epoch); a fix older than the newest
    /// is put in its place. Implausible coordinates are dropped.
    pub fn push(&mut self, fix: Fix) {
        if !fix.is_plausible() || fix.mode == FixMode::None {
            return;
        }
        if self.lost_since.is_some_and(|t| t <= fix.at) {
            self.lost_since = None;
        }
        let i = self.fixes.partition_point(|f| f.at < fix.at);
        match self.fixes.get_mut(i) {
            Some(same) if same.at == fix.at => {
                if fix.mode >= same.mode {
                    *same = fix;
                }
            }
            _ => self.fixes.insert(i, fix),
        }
        while self.fixes.len() > self.settings.capacity {
            self.fixes.pop_front();
        }
    }

    /// The receiver said it has no fix at `at` (or now, when it gave no time).
    pub fn lost(&mut self, at: Option<DateTime<Utc>>) {
        let newest = self.fixes.back().map(|f| f.at);
        let at = at.or(newest);
        if let Some(at) = at
            && newest.is_none_or(|n| at >= n)
            && self.lost_since.is_none()
        {
            self.lost_since = Some(at);
        }
    }

    /// The position at GNSS time `t` (an event's capture time); None when no fix was ever kept.
    /// See [`Position`] for the cases.
    #[must_use]
    #[allow(clippy::many_single_char_names)]
    pub fn position_at(&self, t: DateTime<Utc>) -> Option<Position> {
        let i = self.fixes.partition_point(|f| f.at < t);
        let after = self.fixes.get(i);
        let before = i.checked_sub(1).and_then(|j| self.fixes.get(j));
        match (before, after) {
            (_, Some(a)) if a.at == t => Some(Self::exact(a, t, false, false)),
            (Some(b), Some(a)) => {
                let span = a.at - b.at;
                if span.to_std().is_ok_and(|s| s > self.settings.max_gap) {
                    let mut p = Self::exact(b, t, false, false);
                    p.gap = true;
                    return Some(p);
                }
                let f = (t - b.at).num_microseconds().unwrap_or(0) as f64
                    / span.num_microseconds().unwrap_or(1).max(1) as f64;
                Some(Position {
                    lat: lerp(b.lat, a.lat, f),
                    lon: lerp(b.lon, a.lon, f),
                    speed_kmh: both(b.speed_mps, a.speed_mps, |x, y| lerp(x, y, f))
                        .map(|v| v * KMH_PER_MPS),
                    heading_deg: both(b.track_deg, a.track_deg, |x, y| lerp_angle(x, y, f)),
                    fix: b.mode.min(a.mode),
                    satellites: both(b.satellites, a.satellites, u32::min),
                    hdop: both(b.hdop, a.hdop, f64::max),
                    at: t,
                    age_ms: ms(t - b.at).min(ms(a.at - t)),
                    interpolated: true,
                    gap: false,
                    stale: false,
                })
            }
            (Some(b), None) => {
                let mut p = Self::exact(b, t, true, false);
                if self.lost_since.is_some_and(|l| l <= t) {
                    p.fix = FixMode::None;
                }
                Some(p)
            }
            // Before the oldest fix kept: the oldest, marked stale.
            (None, Some(a)) => Some(Self::exact(a, t, true, false)),
            (None, None) => None,
        }
    }

    fn exact(f: &Fix, t: DateTime<Utc>, stale: bool, gap: bool) -> Position {
        Position {
            lat: f.lat,
            lon: f.lon,
            speed_kmh: f.speed_mps.map(|v| v * KMH_PER_MPS),
            heading_deg: f.track_deg,
            fix: f.mode,
            satellites: f.satellites,
            hdop: f.hdop,
            at: f.at,
            age_ms: ms(t - f.at),
            interpolated: false,
            gap,
            stale,
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact copies of a fix's values
mod tests {
    use super::*;
    use crate::fix::FixStatus;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_750_000_000_000 + ms).unwrap()
    }

    fn fix(ms: i64, lat: f64, lon: f64, track: f64) -> Fix {
        Fix {
            at: at(ms),
            lat,
            lon,
            speed_mps: Some(10.0),
            track_deg: Some(track),
            mode: FixMode::ThreeD,
            status: Some(FixStatus::Gps),
            satellites: Some(8),
            hdop: Some(0.9),
        }
    }

    #[test]
    fn interpolates_between_the_fixes_around_the_time() {
        let mut t = Track::new(TrackSettings::default());
        t.push(fix(0, 51.0, 71.0, 350.0));
        t.push(fix(1000, 51.001, 71.002, 10.0));
        let p = t.position_at(at(250)).unwrap();
        assert!((p.lat - 51.000_25).abs() < 1e-12);
        assert!((p.lon - 71.000_5).abs() < 1e-12);
        assert!(
            (p.heading_deg.unwrap() - 355.0).abs() < 1e-9,
            "{:?}",
            p.heading_deg
        );
        assert_eq!(p.speed_kmh, Some(36.0));
        assert!(p.interpolated && !p.gap && !p.stale);
        assert_eq!((p.at, p.age_ms), (at(250), 250));
        let p = t.position_at(at(1000)).unwrap();
        assert!(!p.interpolated && p.age_ms == 0 && p.lat == 51.001);
    }

    #[test]
    fn marks_a_gap_and_does_not_interpolate_across_it() {
        let mut t = Track::new(TrackSettings {
            max_gap: Duration::from_secs(2),
            capacity: 10,
        });
        t.push(fix(0, 51.0, 71.0, 0.0));
        t.push(fix(5000, 51.01, 71.0, 0.0));
        let p = t.position_at(at(3000)).unwrap();
        assert!(p.gap && !p.interpolated && !p.stale);
        assert_eq!((p.lat, p.at, p.age_ms), (51.0, at(0), 3000));
    }

    #[test]
    fn after_the_last_fix_gives_it_stale_with_its_age_and_a_lost_fix() {
        let mut t = Track::new(TrackSettings::default());
        assert_eq!(t.position_at(at(0)), None);
        t.push(fix(0, 51.0, 71.0, 0.0));
        let p = t.position_at(at(1500)).unwrap();
        assert!(p.stale && !p.gap && !p.interpolated);
        assert_eq!((p.age_ms, p.fix), (1500, FixMode::ThreeD));
        t.lost(Some(at(1000)));
        let p = t.position_at(at(1500)).unwrap();
        assert_eq!((p.fix, p.lat, p.age_ms), (FixMode::None, 51.0, 1500));
        assert_eq!(t.position_at(at(500)).unwrap().fix, FixMode::ThreeD);
        t.push(fix(2000, 51.0, 71.0, 0.0));
        assert_eq!(t.position_at(at(2500)).unwrap().fix, FixMode::ThreeD);
    }

    #[test]
    fn keeps_a_bounded_number_of_fixes_in_time_order() {
        let mut t = Track::new(TrackSettings {
            capacity: 3,
            max_gap: Duration::from_secs(2),
        });
        for ms in [3000, 1000, 2000, 4000, 0] {
            t.push(fix(ms, 51.0, 71.0, 0.0));
        }
        let times: Vec<_> = t.fixes().map(|f| f.at).collect();
        assert_eq!(times, vec![at(2000), at(3000), at(4000)]);
        let mut better = fix(3000, 52.0, 71.0, 0.0);
        t.push(better.clone());
        better.mode = FixMode::TwoD;
        better.lat = 53.0;
        t.push(better);
        assert_eq!(t.position_at(at(3000)).unwrap().lat, 52.0);
    }

    #[test]
    fn heading_takes_the_short_way_round() {
        assert!((lerp_angle(350.0, 10.0, 0.5) - 0.0).abs() < 1e-9);
        assert!((lerp_angle(10.0, 350.0, 0.25) - 5.0).abs() < 1e-9);
        assert!((lerp_angle(90.0, 180.0, 0.5) - 135.0).abs() < 1e-9);
    }
}
