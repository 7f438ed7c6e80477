//! Position and time from a GNSS receiver, for the events of a mobile unit.
//!
//! # Contract
//!
//! - **Sources.** Fixes come from gpsd ([`run_gpsd`]: TCP, default `127.0.0.1:2947`, gpsd's
//!   JSON protocol) or straight from a receiver's NMEA 0183 output ([`spawn_nmea_reader`]: a
//!   serial device or any file read line by line). Both feed one [`Gnss`] handle.
//! - **Outside input never panics.** Every line is parsed by sans-IO code ([`gpsd`],
//!   [`nmea`]): a malformed line, a wrong NMEA checksum or an impossible coordinate is counted
//!   ([`Counters`]) and dropped; unknown gpsd classes and NMEA sentence types are ignored.
//! - **Position per event.** [`Gnss::position_at`] answers for a capture time from the recent
//!   fixes (bounded: [`TrackSettings::capacity`]): interpolated between the two fixes around
//!   it (linear in lat/lon, heading on the circle), the last fix before it flagged `gap` when
//!   those two are further apart than [`TrackSettings::max_gap`], or the last fix flagged
//!   `stale` with its age when no fix at or after it has arrived (yet). Times are GNSS times;
//!   the caller converts a capture time taken by the host clock with [`Gnss::clock`]'s offset
//!   if it needs to (the difference is milliseconds once the host clock is disciplined).
//! - **Clock.** Every PPS pulse, TOFF and fix compares the host clock with GNSS time
//!   ([`clock`]); [`Gnss::clock`] names the reference and the age of the last sync.
//! - **Faults.** A source that cannot be reached or read raises one `gnss` [`FaultChange`] on
//!   the channel given to it, and clears it when data flows again (gpsd: its `VERSION`
//!   greeting; serial: the first line read). It retries on its own with jittered backoff,
//!   capped ([`Backoff`]); nothing else stops: events are recorded without position
//!   meanwhile, the track then answering `stale`.
//! - **No persistence.** Fixes live in memory only; a restart starts with an empty track.
//!
//! # Modules
//!
//! `fix` (what a receiver reports, what an event carries), `nmea` and `gpsd` (parsers and
//! session state, no I/O), `track` (recent fixes, interpolation), `clock` (GNSS time against
//! the host clock), `io` (the gpsd client task and the NMEA reader thread), `route` (feature
//! `route`: a generated NMEA route with known truth, for tests).

pub mod clock;
pub mod fix;
pub mod gpsd;
mod io;
pub mod nmea;
#[cfg(feature = "route")]
pub mod route;
pub mod track;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use clock::{ClockReading, ClockReference, GnssClock};
pub use fix::{Fix, FixMode, FixStatus, Position};
pub use io::{Backoff, GpsdSettings, NmeaSettings, run_gpsd, spawn_nmea_reader};
pub use track::{Track, TrackSettings};

/// The fault code this crate raises and clears.
pub const FAULT_CODE: &str = "gnss";

/// What one line from a source meant, once parsed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Observation {
    /// A position fix.
    Fix(Fix),
    /// The receiver says it has no fix (at this GNSS time, when it gave one).
    NoFix { at: Option<DateTime<Utc>> },
    /// GNSS time `gnss` corresponded to host clock time `host`.
    TimeMark {
        gnss: DateTime<Utc>,
        host: DateTime<Utc>,
        reference: ClockReference,
    },
    /// gpsd greeted the client (its `VERSION`).
    Connected { release: String },
    /// gpsd reported an error (its `ERROR`), e.g. a refused command.
    ReceiverError { message: String },
}

/// A `gnss` fault raised or cleared, for the device's fault board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultChange {
    /// Always [`FAULT_CODE`].
    pub code: &'static str,
    /// The source: `gpsd 127.0.0.1:2947` or the serial device's path.
    pub subject: String,
    /// What went wrong and what to check (empty when cleared).
    pub message: String,
    /// False when the fault cleared.
    pub raised: bool,
}

/// What the sources have read so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Lines read from all sources.
    pub lines: u64,
    /// Fixes added to the track.
    pub fixes: u64,
    /// "No fix" reports.
    pub no_fix: u64,
    /// Lines that did not parse (NMEA framing or fields, gpsd JSON), checksum errors included.
    pub malformed: u64,
    /// NMEA sentences whose checksum did not match (also counted in `malformed`).
    pub bad_checksum: u64,
    /// `ERROR` messages from gpsd.
    pub receiver_errors: u64,
    /// Connections (gpsd) or opens (serial) that failed or dropped.
    pub disconnects: u64,
}

#[derive(Debug)]
struct State {
    track: Track,
    clock: GnssClock,
    counters: Counters,
}

/// The shared position and clock state every source writes and the pipeline reads; cheap to
/// clone. Locks are held for microseconds, never across I/O.
#[derive(Debug, Clone)]
pub struct Gnss {
    state: Arc<Mutex<State>>,
}

impl Gnss {
    /// An empty track; the clock counts as synced for `clock_max_age` after each sync.
    #[must_use]
    pub fn new(track: TrackSettings, clock_max_age: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                track: Track::new(track),
                clock: GnssClock::new(clock_max_age),
                counters: Counters::default(),
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// The position at GNSS time `t`; None until a first fix.
    #[must_use]
    pub fn position_at(&self, t: DateTime<Utc>) -> Option<Position> {
        self.with(|s| s.track.position_at(t))
    }

    /// The newest fix.
    #[must_use]
    pub fn last_fix(&self) -> Option<Fix> {
        self.with(|s| s.track.last().cloned())
    }

    /// The clock at host time `now`; None before the first sync.
    #[must_use]
    pub fn clock(&self, now: DateTime<Utc>) -> Option<ClockReading> {
        self.with(|s| s.clock.reading(now))
    }

    #[must_use]
    pub fn counters(&self) -> Counters {
        self.with(|s| s.counters)
    }

    /// Records what a line meant; `received` is the host time it arrived.
    pub fn observe(&self, obs: &Observation, received: DateTime<Utc>) {
        self.with(|s| {
            s.counters.lines += 1;
            match obs {
                Observation::Fix(fix) => {
                    s.counters.fixes += 1;
                    s.clock.observe(fix.at, received, ClockReference::Fix);
                    s.track.push(fix.clone());
                }
                Observation::NoFix { at } => {
                    s.counters.no_fix += 1;
                    s.track.lost(*at);
                }
                Observation::TimeMark {
                    gnss,
                    host,
                    reference,
                } => {
                    s.clock.observe(*gnss, *host, *reference);
                }
                Observation::ReceiverError { .. } => s.counters.receiver_errors += 1,
                Observation::Connected { .. } => {}
            }
        });
    }

    /// Counts a line that carried nothing (an ignored class or sentence).
    pub fn count_line(&self) {
        self.with(|s| s.counters.lines += 1);
    }

    /// Counts a line that did not parse.
    pub fn count_malformed(&self, bad_checksum: bool) {
        self.with(|s| {
            s.counters.lines += 1;
            s.counters.malformed += 1;
            if bad_checksum {
                s.counters.bad_checksum += 1;
            }
        });
    }

    fn count_disconnect(&self) {
        self.with(|s| s.counters.disconnects += 1);
    }
}
