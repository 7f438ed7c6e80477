//! A generated NMEA route with known truth, for tests (feature `route`; never in a device
//! build): a vehicle at 54 km/h turning steadily at 2°/s (a circle of 430 m radius) from
//! Astana, one fix a second (GGA, RMC and GSA each second, VTG and GSV every tenth), with
//! seconds left out (gaps) and GGA sentences with a wrong checksum and a position 1 km off
//! (malformed) where asked.
//!
//! Between fixes one second apart the chord of the 15 m arc is 7 cm from it, and NMEA's
//! 0.00001 minute is 2 cm: an interpolated position is within [`BOUND_M`] of the truth.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use crate::fix::MPS_PER_KNOT;
use crate::nmea::checksum;

pub const LAT0: f64 = 51.128;
pub const LON0: f64 = 71.4304;
pub const SPEED_MPS: f64 = 15.0;
pub const HEADING0_DEG: f64 = 30.0;
pub const TURN_DEG_PER_S: f64 = 2.0;
/// Metres in one degree of latitude (a sphere of 6371 km).
pub const METRES_PER_DEG: f64 = 6_371_000.0 * std::f64::consts::PI / 180.0;
/// How far an interpolated position may be from the truth, in metres.
pub const BOUND_M: f64 = 0.5;
/// Satellites used and HDOP every fix reports.
pub const SATELLITES: u32 = 8;
pub const HDOP: f64 = 0.9;

/// Which seconds of the route have fixes.
#[derive(Debug, Clone)]
pub struct Route {
    /// GNSS time of second 0.
    pub start: DateTime<Utc>,
    /// The last second written (from 0).
    pub last_second: i64,
    /// Seconds with no sentences at all.
    pub missing: Vec<i64>,
    /// Seconds preceded by a GGA with a wrong checksum (and a position 1 km off).
    pub malformed: Vec<i64>,
}

/// Metres between two (lat, lon) points near the route.
#[must_use]
pub fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
    let dn = (a.0 - b.0) * METRES_PER_DEG;
    let de = (a.1 - b.1) * METRES_PER_DEG * LAT0.to_radians().cos();
    dn.hypot(de)
}

fn sentence(body: &str) -> String {
    format!("${body}*{:02X}\r\n", checksum(body))
}

fn dm(v: f64, pos: char, neg: char, width: usize) -> String {
    let h = if v < 0.0 { neg } else { pos };
    let v = v.abs();
    let deg = v.trunc();
    format!("{:0width$}{:08.5},{h}", deg as u32, (v - deg) * 60.0)
}

impl Route {
    /// The truth `s` seconds after the start: (lat, lon, heading in degrees).
    #[must_use]
    pub fn truth(s: f64) -> (f64, f64, f64) {
        let w = TURN_DEG_PER_S.to_radians();
        let h0 = HEADING0_DEG.to_radians();
        let h = h0 + w * s;
        let north = SPEED_MPS / w * (h.sin() - h0.sin());
        let east = -SPEED_MPS / w * (h.cos() - h0.cos());
        let lat = LAT0 + north / METRES_PER_DEG;
        let lon = LON0 + east / (METRES_PER_DEG * LAT0.to_radians().cos());
        (lat, lon, h.to_degrees().rem_euclid(360.0))
    }

    /// The truth at GNSS time `t`.
    #[must_use]
    pub fn truth_at(&self, t: DateTime<Utc>) -> (f64, f64, f64) {
        Self::truth(self.seconds_at(t))
    }

    /// Seconds from the start to `t`.
    #[must_use]
    pub fn seconds_at(&self, t: DateTime<Utc>) -> f64 {
        (t - self.start).num_microseconds().unwrap_or(0) as f64 / 1e6
    }

    /// GNSS time of second `s`.
    #[must_use]
    pub fn time_of(&self, s: i64) -> DateTime<Utc> {
        self.start + TimeDelta::seconds(s)
    }

    /// Whether second `s` has a fix.
    #[must_use]
    pub fn has_fix(&self, s: i64) -> bool {
        (0..=self.last_second).contains(&s) && !self.missing.contains(&s)
    }

    /// The fixes around GNSS time `t` (the last at or before it, the first after it), in
    /// seconds.
    #[must_use]
    pub fn fixes_around(&self, t: DateTime<Utc>) -> (Option<i64>, Option<i64>) {
        let s = self.seconds_at(t);
        let floor = s.floor() as i64;
        let before = (0..=floor.min(self.last_second))
            .rev()
            .find(|k| self.has_fix(*k));
        let after = ((floor + 1).max(0)..=self.last_second).find(|k| self.has_fix(*k));
        (before, after)
    }

    /// The route as NMEA text, and how many lines it has.
    #[must_use]
    pub fn nmea(&self) -> (String, usize) {
        let mut out = String::new();
        let knots = SPEED_MPS / MPS_PER_KNOT;
        for s in 0..=self.last_second {
            if !self.has_fix(s) {
                continue;
            }
            let (lat, lon, heading) = Self::truth(s as f64);
            let t = self.time_of(s);
            let time = t.format("%H%M%S.00");
            let (la, lo) = (dm(lat, 'N', 'S', 2), dm(lon, 'E', 'W', 3));
            if self.malformed.contains(&s) {
                let (la, lo) = (dm(lat + 0.009, 'N', 'S', 2), dm(lon, 'E', 'W', 3));
                let body = format!("GPGGA,{time},{la},{lo},1,08,0.9,350.0,M,0.0,M,,");
                let bad = checksum(&body) ^ 0x5A;
                let _ = write!(out, "${body}*{bad:02X}\r\n");
            }
            out.push_str(&sentence(&format!(
                "GPGGA,{time},{la},{lo},1,{SATELLITES:02},{HDOP:.1},350.0,M,0.0,M,,"
            )));
            out.push_str(&sentence(&format!(
                "GPRMC,{time},A,{la},{lo},{knots:.3},{heading:.2},{},,,A",
                t.format("%d%m%y")
            )));
            out.push_str(&sentence(
                "GPGSA,A,3,01,02,03,04,05,06,07,08,,,,,1.5,0.9,1.2",
            ));
            if s % 10 == 0 {
                out.push_str(&sentence(&format!(
                    "GPVTG,{heading:.2},T,,M,{knots:.3},N,{:.3},K,A",
                    SPEED_MPS * 3.6
                )));
                out.push_str(&sentence(
                    "GPGSV,2,1,08,01,40,083,46,02,17,308,41,03,07,344,39,04,22,228,45",
                ));
                out.push_str(&sentence(
                    "GPGSV,2,2,08,05,40,083,46,06,17,308,41,07,07,344,39,08,22,228,45",
                ));
            }
        }
        let lines = out.lines().count();
        (out, lines)
    }
}

/// gpsfake (Debian package `gpsd-clients`; it starts a `gpsd` of its own on `port`) playing
/// the NMEA log at `log` once, one sentence every `cycle_s` seconds, from when the first
/// client connects; in a process group of their own, both killed by [`Gpsfake::kill`] or on
/// drop.
#[derive(Debug)]
pub struct Gpsfake {
    child: Child,
}

impl Gpsfake {
    /// Starts gpsfake; panics naming the packages to install when it cannot be run.
    #[must_use]
    pub fn start(port: u16, log: &Path, cycle_s: f64) -> Self {
        let path = format!(
            "/usr/sbin:/sbin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("gpsfake")
            .args([
                "-P",
                &port.to_string(),
                "-1",
                "-q",
                "-c",
                &cycle_s.to_string(),
                "-W",
                "30",
            ])
            .arg(log)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run gpsfake ({e}): install the Debian packages gpsd, gpsd-tools and \
                     gpsd-clients (deploy/setup.sh does)"
                )
            });
        Self { child }
    }

    /// Stops gpsfake and its gpsd (TERM, then KILL), waiting up to a few seconds.
    pub fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        for signal in ["-TERM", "-KILL"] {
            let _ = Command::new("kill").args([signal, "--", &group]).status();
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                if let Ok(Some(_)) = self.child.try_wait() {
                    // Let gpsd (same group) go too.
                    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Gpsfake {
    fn drop(&mut self) {
        self.kill();
    }
}
