//! What a receiver reports (a [`Fix`]) and what an event carries (a [`Position`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Kilometres per hour in one metre per second.
pub const KMH_PER_MPS: f64 = 3.6;
/// Metres per second in one knot.
pub const MPS_PER_KNOT: f64 = 1852.0 / 3600.0;

/// The receiver's fix dimension: none, 2D (no altitude, fewer satellites) or 3D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FixMode {
    /// No position: the receiver sees too few satellites (or says its output is invalid).
    #[serde(rename = "none")]
    None,
    /// A horizontal position only.
    #[serde(rename = "2d")]
    TwoD,
    /// A horizontal position and altitude.
    #[serde(rename = "3d")]
    ThreeD,
}

impl FixMode {
    /// `none`, `2d` or `3d`, as in the event.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FixMode::None => "none",
            FixMode::TwoD => "2d",
            FixMode::ThreeD => "3d",
        }
    }
}

/// How the receiver computed its fix (gpsd's TPV `status`, NMEA GGA's quality indicator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FixStatus {
    /// Plain GNSS.
    Gps,
    /// Differential corrections (SBAS, DGPS).
    Dgps,
    /// RTK with fixed integers.
    Rtk,
    /// RTK float.
    RtkFloat,
    /// Dead reckoning or estimated: not a measured position.
    Estimated,
    /// Entered by hand.
    Manual,
    /// A simulator's output.
    Simulated,
    /// Precise positioning service (military code) or a status this crate does not name.
    Other,
}

/// One fix as the receiver reported it: a measured position at a GNSS time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// GNSS time of the fix (UTC), from the receiver, not from the host clock.
    pub at: DateTime<Utc>,
    /// WGS84 latitude in degrees, -90..=90.
    pub lat: f64,
    /// WGS84 longitude in degrees, -180..=180.
    pub lon: f64,
    /// Ground speed in metres per second.
    pub speed_mps: Option<f64>,
    /// Course over ground, degrees clockwise from true north, 0..360.
    pub track_deg: Option<f64>,
    /// `2d` or `3d` (a fix always has a position; "no fix" is reported apart).
    pub mode: FixMode,
    pub status: Option<FixStatus>,
    /// Satellites used in the solution.
    pub satellites: Option<u32>,
    /// Horizontal dilution of precision (lower is better; above 5 is poor).
    pub hdop: Option<f64>,
}

impl Fix {
    /// Whether the coordinates are finite and on the globe.
    #[must_use]
    pub fn is_plausible(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
    }
}

/// Where the device was at an event's capture time: what the event carries.
///
/// Built by [`Track::position_at`](crate::Track::position_at). Exactly one of three cases:
/// - `interpolated`: fixes on both sides of the capture time, close enough together; the
///   position is the one between them at the capture time, and `at` is the capture time;
/// - `gap`: fixes on both sides, but further apart than the track's gap limit; the position is
///   the last fix before the capture time, unchanged, and `at` is that fix's time;
/// - `stale`: no fix at or after the capture time (yet); the position is the last fix, and `at`
///   is its time. `fix` is `none` when the receiver has since said it lost its fix.
///
/// Otherwise (a fix exactly at the capture time) all three flags are false. `age_ms` is always
/// the distance in milliseconds between the capture time and the nearest fix the position was
/// made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// WGS84 latitude in degrees.
    pub lat: f64,
    /// WGS84 longitude in degrees.
    pub lon: f64,
    /// Ground speed in km/h, when the receiver reported it.
    pub speed_kmh: Option<f64>,
    /// Course over ground in degrees clockwise from true north, 0..360.
    pub heading_deg: Option<f64>,
    /// `none`, `2d` or `3d`: the worse of the fixes used, or `none` when the receiver reported
    /// losing its fix after the last one.
    pub fix: FixMode,
    /// Satellites used (the fewer of the fixes used).
    pub satellites: Option<u32>,
    /// Horizontal dilution of precision (the worse of the fixes used).
    pub hdop: Option<f64>,
    /// GNSS time this position is for (see the type's doc).
    pub at: DateTime<Utc>,
    /// Milliseconds between the capture time and the nearest fix used.
    pub age_ms: u64,
    pub interpolated: bool,
    pub gap: bool,
    pub stale: bool,
}
