//! GNSS time as a clock source, without I/O.
//!
//! The host clock is compared with GNSS time at every time mark: a `PPS` pulse (gpsd's `PPS`,
//! sub-millisecond), a serial time offset (gpsd's `TOFF`: the host time the first character of
//! the fix's sentence arrived, a few milliseconds late), or a fix time against the host time the
//! fix was received (TPV or NMEA, late by the receiver's output delay, up to a few hundred
//! milliseconds). A coarser mark does not replace a finer one taken within the last
//! [`PREFER_FINER`].
//!
//! [`GnssClock::reading`] gives the offset of GNSS time from the host clock and the age of the
//! last sync, for an event's `clock`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A finer time reference is kept over a coarser one for this long.
pub const PREFER_FINER: Duration = Duration::from_secs(10);

/// What the last sync was measured against, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockReference {
    /// A pulse-per-second edge (gpsd `PPS`).
    Pps,
    /// The arrival of a fix's first character (gpsd `TOFF`).
    Toff,
    /// A fix time against the time it was received (gpsd `TPV`, NMEA `RMC`/`GGA`).
    Fix,
}

/// The clock as an event carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockReading {
    /// Always `gnss`.
    pub source: String,
    /// `pps`, `toff` or `fix`.
    pub reference: ClockReference,
    /// Whether the last sync is younger than the clock's limit.
    pub synced: bool,
    /// GNSS time minus host clock time, in milliseconds, at the last sync.
    pub offset_ms: f64,
    /// Milliseconds since the last sync, by the host clock.
    pub age_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sync {
    reference: ClockReference,
    offset_ms: f64,
    host: DateTime<Utc>,
}

/// The last comparison of the host clock with GNSS time.
#[derive(Debug, Clone)]
pub struct GnssClock {
    max_age: Duration,
    last: Option<Sync>,
}

impl GnssClock {
    /// A clock that counts as synced for `max_age` after each sync.
    #[must_use]
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            last: None,
        }
    }

    /// GNSS time `gnss` corresponded to host time `host`.
    pub fn observe(&mut self, gnss: DateTime<Utc>, host: DateTime<Utc>, reference: ClockReference) {
        if let Some(last) = self.last {
            let recent = (host - last.host).to_std().is_ok_and(|d| d < PREFER_FINER);
            if reference > last.reference && recent {
                return;
            }
        }
        let offset_ms = (gnss - host)
            .num_microseconds()
            .map_or(f64::NAN, |us| us as f64 / 1000.0);
        if offset_ms.is_finite() {
            self.last = Some(Sync {
                reference,
                offset_ms,
                host,
            });
        }
    }

    /// The clock at host time `now`; None before the first sync.
    #[must_use]
    pub fn reading(&self, now: DateTime<Utc>) -> Option<ClockReading> {
        let last = self.last?;
        let age = (now - last.host).to_std().unwrap_or_default();
        Some(ClockReading {
            source: "gnss".to_owned(),
            reference: last.reference,
            synced: age <= self.max_age,
            offset_ms: last.offset_ms,
            age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_750_000_000_000 + ms).unwrap()
    }

    #[test]
    fn gives_offset_and_age_and_prefers_pps() {
        let mut c = GnssClock::new(Duration::from_secs(30));
        assert_eq!(c.reading(at(0)), None);
        c.observe(at(1000), at(1250), ClockReference::Fix);
        let r = c.reading(at(2000)).unwrap();
        assert_eq!(
            (r.reference, r.offset_ms, r.age_ms, r.synced),
            (ClockReference::Fix, -250.0, 750, true)
        );
        c.observe(
            at(2000),
            at(2000) + chrono::TimeDelta::microseconds(300),
            ClockReference::Pps,
        );
        c.observe(at(3000), at(3200), ClockReference::Fix);
        let r = c.reading(at(3500)).unwrap();
        assert_eq!((r.reference, r.offset_ms), (ClockReference::Pps, -0.3));
        // Without a pulse for longer than PREFER_FINER, fix times take over again.
        c.observe(at(20_000), at(20_100), ClockReference::Fix);
        assert_eq!(
            c.reading(at(20_100)).unwrap().reference,
            ClockReference::Fix
        );
        assert!(!c.reading(at(60_000)).unwrap().synced);
    }
}
