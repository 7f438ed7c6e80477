//! gpsd's JSON protocol, without I/O.
//!
//! gpsd answers `?WATCH={"enable":true,"json":true,"pps":true};` with one JSON object per line,
//! named by its `class`. [`parse_line`] reads `VERSION`, `DEVICES`, `WATCH`, `TPV`, `SKY`,
//! `PPS`, `TOFF` and `ERROR` (the fields this crate uses; unknown fields are ignored, as gpsd
//! adds fields between releases), and returns [`GpsdMessage::Other`] for any other class. A line
//! that is not a JSON object with a `class`, or whose known fields have the wrong type or an
//! impossible value (a latitude of 200), is a [`GpsdError`], never a panic.
//!
//! [`GpsdSession`] turns messages into [`Observation`]s: a `TPV` with mode 2 or 3 and a position
//! is a [`Fix`] (satellites and HDOP from the latest `SKY`, which gpsd sends apart); a `TPV`
//! with mode 0 or 1 is "no fix"; `PPS` and `TOFF` are time marks for the clock.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::Observation;
use crate::clock::ClockReference;
use crate::fix::{Fix, FixMode, FixStatus};

/// Longest line accepted from gpsd (a `SKY` with 40 satellites is ~6 KiB).
pub const MAX_LINE: usize = 64 * 1024;

/// The command that starts gpsd's JSON stream (with PPS and TOFF time marks when gpsd has them).
pub const WATCH: &str = "?WATCH={\"enable\":true,\"json\":true,\"pps\":true};\n";

/// Why one line from gpsd could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GpsdError {
    #[error("gpsd sent a line that is not a JSON object with a class ({reason}): {line:?}")]
    Json { reason: String, line: String },
    #[error("gpsd sent a TPV with an impossible position (lat {lat}, lon {lon})")]
    Position { lat: String, lon: String },
    #[error("gpsd sent a line of {len} bytes, longer than {MAX_LINE}")]
    TooLong { len: usize },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Version {
    #[serde(default)]
    pub release: String,
    #[serde(default)]
    pub proto_major: u32,
    #[serde(default)]
    pub proto_minor: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Device {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Devices {
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Watch {
    #[serde(default)]
    pub enable: bool,
    #[serde(default)]
    pub json: bool,
}

/// Time-position-velocity report.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tpv {
    #[serde(default)]
    pub device: Option<String>,
    /// 0 unknown, 1 no fix, 2 2D, 3 3D.
    #[serde(default)]
    pub mode: u8,
    /// 0 unknown, 1 GPS, 2 DGPS, 3 RTK fixed, 4 RTK float, 5 dead reckoning, 6 GNSS + DR,
    /// 7 time only, 8 simulated, 9 P(Y). Absent in gpsd before 3.20 and for plain fixes.
    #[serde(default)]
    pub status: Option<u8>,
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    /// Metres per second.
    #[serde(default)]
    pub speed: Option<f64>,
    /// Degrees from true north.
    #[serde(default)]
    pub track: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Satellite {
    #[serde(default)]
    pub used: bool,
}

/// Sky view: satellites and dilution of precision.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Sky {
    #[serde(default)]
    pub hdop: Option<f64>,
    /// Satellites used (gpsd 3.22 and later); else counted from `satellites`.
    #[serde(default, rename = "uSat")]
    pub used: Option<u32>,
    #[serde(default)]
    pub satellites: Vec<Satellite>,
}

impl Sky {
    #[must_use]
    pub fn satellites_used(&self) -> Option<u32> {
        self.used.or_else(|| {
            (!self.satellites.is_empty())
                .then(|| self.satellites.iter().filter(|s| s.used).count() as u32)
        })
    }
}

/// `PPS` and `TOFF`: the GNSS time (`real`) a host clock time (`clock`) corresponded to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TimeMark {
    pub real_sec: i64,
    pub real_nsec: i64,
    pub clock_sec: i64,
    pub clock_nsec: i64,
}

impl TimeMark {
    /// (GNSS time, host clock time), or None when out of range.
    #[must_use]
    pub fn times(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let to = |s: i64, ns: i64| {
            let ns = u32::try_from(ns).ok().filter(|ns| *ns < 1_000_000_000)?;
            DateTime::<Utc>::from_timestamp(s, ns)
        };
        Some((
            to(self.real_sec, self.real_nsec)?,
            to(self.clock_sec, self.clock_nsec)?,
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorMessage {
    #[serde(default)]
    pub message: String,
}

/// One line from gpsd.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "class")]
#[non_exhaustive]
pub enum GpsdMessage {
    #[serde(rename = "VERSION")]
    Version(Version),
    #[serde(rename = "DEVICES")]
    Devices(Devices),
    #[serde(rename = "WATCH")]
    Watch(Watch),
    #[serde(rename = "TPV")]
    Tpv(Tpv),
    #[serde(rename = "SKY")]
    Sky(Sky),
    #[serde(rename = "PPS")]
    Pps(TimeMark),
    #[serde(rename = "TOFF")]
    Toff(TimeMark),
    #[serde(rename = "ERROR")]
    Error(ErrorMessage),
    /// A class this crate does not read (`DEVICE`, `GST`, `ATT`, `POLL`, ...).
    #[serde(other)]
    Other,
}

/// Parses one line of gpsd's output.
pub fn parse_line(line: &str) -> Result<GpsdMessage, GpsdError> {
    let line = line.trim();
    if line.len() > MAX_LINE {
        return Err(GpsdError::TooLong { len: line.len() });
    }
    let msg: GpsdMessage = serde_json::from_str(line).map_err(|e| GpsdError::Json {
        reason: e.to_string(),
        line: line.chars().take(200).collect(),
    })?;
    if let GpsdMessage::Tpv(tpv) = &msg {
        let bad_lat = tpv
            .lat
            .is_some_and(|v| !v.is_finite() || !(-90.0..=90.0).contains(&v));
        let bad_lon = tpv
            .lon
            .is_some_and(|v| !v.is_finite() || !(-180.0..=180.0).contains(&v));
        if bad_lat || bad_lon {
            return Err(GpsdError::Position {
                lat: format!("{:?}", tpv.lat),
                lon: format!("{:?}", tpv.lon),
            });
        }
    }
    Ok(msg)
}

fn status_of(status: Option<u8>) -> Option<FixStatus> {
    Some(match status? {
        1 => FixStatus::Gps,
        2 => FixStatus::Dgps,
        3 => FixStatus::Rtk,
        4 => FixStatus::RtkFloat,
        5 | 6 => FixStatus::Estimated,
        8 => FixStatus::Simulated,
        0 => return None,
        _ => FixStatus::Other,
    })
}

/// Turns gpsd's messages into observations; see the module doc.
#[derive(Debug, Default)]
pub struct GpsdSession {
    sky: Option<Sky>,
}

impl GpsdSession {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one line from gpsd.
    pub fn push_line(&mut self, line: &str) -> Result<Option<Observation>, GpsdError> {
        let msg = parse_line(line)?;
        Ok(self.push(msg))
    }

    /// Takes one parsed message.
    pub fn push(&mut self, msg: GpsdMessage) -> Option<Observation> {
        match msg {
            GpsdMessage::Version(v) => Some(Observation::Connected { release: v.release }),
            GpsdMessage::Sky(sky) => {
                self.sky = Some(sky);
                None
            }
            GpsdMessage::Tpv(tpv) => {
                let mode = match tpv.mode {
                    2 => FixMode::TwoD,
                    3 => FixMode::ThreeD,
                    _ => return Some(Observation::NoFix { at: tpv.time }),
                };
                let (Some(at), Some(lat), Some(lon)) = (tpv.time, tpv.lat, tpv.lon) else {
                    return Some(Observation::NoFix { at: tpv.time });
                };
                let fix = Fix {
                    at,
                    lat,
                    lon,
                    speed_mps: tpv.speed.filter(|v| v.is_finite()),
                    track_deg: tpv
                        .track
                        .filter(|v| v.is_finite())
                        .map(|t| t.rem_euclid(360.0)),
                    mode,
                    status: status_of(tpv.status).or(Some(FixStatus::Gps)),
                    satellites: self.sky.as_ref().and_then(Sky::satellites_used),
                    hdop: self
                        .sky
                        .as_ref()
                        .and_then(|s| s.hdop)
                        .filter(|v| v.is_finite()),
                };
                Some(Observation::Fix(fix))
            }
            GpsdMessage::Pps(mark) => mark.times().map(|(gnss, host)| Observation::TimeMark {
                gnss,
                host,
                reference: ClockReference::Pps,
            }),
            GpsdMessage::Toff(mark) => mark.times().map(|(gnss, host)| Observation::TimeMark {
                gnss,
                host,
                reference: ClockReference::Toff,
            }),
            GpsdMessage::Error(e) => Some(Observation::ReceiverError { message: e.message }),
            GpsdMessage::Devices(_) | GpsdMessage::Watch(_) | GpsdMessage::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_tpv_with_the_latest_sky() {
        let mut s = GpsdSession::new();
        let sky = r#"{"class":"SKY","device":"/dev/pts/1","hdop":0.90,"nSat":8,"uSat":7,"satellites":[]}"#;
        assert_eq!(s.push_line(sky), Ok(None));
        let tpv = r#"{"class":"TPV","device":"/dev/pts/1","mode":3,"time":"2025-06-15T12:00:16.000Z","ept":0.005,"lat":51.1016,"lon":71.4,"track":370.0,"speed":11.112,"newfield":[1,2]}"#;
        let Some(Observation::Fix(f)) = s.push_line(tpv).unwrap() else {
            panic!("no fix")
        };
        assert_eq!(f.at.to_rfc3339(), "2025-06-15T12:00:16+00:00");
        assert_eq!((f.lat, f.lon), (51.1016, 71.4));
        assert_eq!(f.track_deg, Some(10.0));
        assert_eq!(f.speed_mps, Some(11.112));
        assert_eq!(f.mode, FixMode::ThreeD);
        assert_eq!(f.satellites, Some(7));
        assert_eq!(f.hdop, Some(0.9));
    }

    #[test]
    fn counts_used_satellites_when_usat_is_absent() {
        let sky: Sky = serde_json::from_str(
            r#"{"satellites":[{"PRN":1,"used":true},{"PRN":2,"used":false},{"PRN":3,"used":true}]}"#,
        )
        .unwrap();
        assert_eq!(sky.satellites_used(), Some(2));
    }

    #[test]
    fn a_tpv_without_a_fix_is_no_fix() {
        let mut s = GpsdSession::new();
        let out = s.push_line(r#"{"class":"TPV","mode":1,"time":"2025-06-15T12:00:16.000Z"}"#);
        assert!(
            matches!(out, Ok(Some(Observation::NoFix { at: Some(_) }))),
            "{out:?}"
        );
        let out = s.push_line(r#"{"class":"TPV","mode":0}"#);
        assert!(
            matches!(out, Ok(Some(Observation::NoFix { at: None }))),
            "{out:?}"
        );
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn reads_the_other_classes_and_ignores_unknown_ones() {
        let v = parse_line(
            r#"{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}"#,
        );
        assert!(
            matches!(v, Ok(GpsdMessage::Version(Version { proto_major: 3, .. }))),
            "{v:?}"
        );
        let d = parse_line(
            r#"{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyUSB0"}]}"#,
        );
        assert!(
            matches!(d, Ok(GpsdMessage::Devices(ref d)) if d.devices.len() == 1),
            "{d:?}"
        );
        let w = parse_line(r#"{"class":"WATCH","enable":true,"json":true}"#);
        assert!(matches!(
            w,
            Ok(GpsdMessage::Watch(Watch {
                enable: true,
                json: true
            }))
        ));
        assert_eq!(
            parse_line(r#"{"class":"GST","rms":1.0}"#),
            Ok(GpsdMessage::Other)
        );
        let e = parse_line(r#"{"class":"ERROR","message":"Unrecognized request '?FOO'"}"#);
        assert!(matches!(e, Ok(GpsdMessage::Error(_))));
        let toff = r#"{"class":"TOFF","device":"/dev/pts/1","real_sec":1749988810, "real_nsec":0,"clock_sec":1749988810,"clock_nsec":35483444}"#;
        let mut s = GpsdSession::new();
        let Some(Observation::TimeMark {
            gnss,
            host,
            reference,
        }) = s.push_line(toff).unwrap()
        else {
            panic!("no time mark")
        };
        assert_eq!(reference, ClockReference::Toff);
        assert_eq!((host - gnss).num_milliseconds(), 35);
    }

    #[test]
    fn refuses_what_is_not_gpsd_json() {
        assert!(parse_line("").is_err());
        assert!(parse_line("{}").is_err());
        assert!(parse_line(r#"{"class":"TPV","mode":"three"}"#).is_err());
        assert!(parse_line(r#"{"class":"TPV","mode":3,"lat":200.0,"lon":0.0}"#).is_err());
        assert!(parse_line(r#"{"class":"PPS","real_sec":1}"#).is_err());
        let mut s = GpsdSession::new();
        let pps = r#"{"class":"PPS","real_sec":1,"real_nsec":-5,"clock_sec":1,"clock_nsec":0}"#;
        assert_eq!(s.push_line(pps), Ok(None));
    }
}
