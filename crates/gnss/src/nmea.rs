//! Raw NMEA 0183 from a receiver on a serial line, without I/O.
//!
//! [`NmeaParser::push_line`] takes one sentence at a time. It reads `GGA`, `RMC`, `GSA` and
//! `VTG` from any talker (`GP`, `GN`, `GL`, `GA`, `BD`, ...). Every sentence must carry a
//! checksum (`*hh`), and it must match: a sentence without one, with a wrong one, or that does
//! not parse is an [`NmeaError`] for the caller to count, never a panic. Other well-formed
//! sentences (`GSV`, `TXT`, proprietary `$P...`) are checked and ignored.
//!
//! Sentences of one epoch (one fix time) are merged into one [`Fix`]: `GGA` and `RMC` carry the
//! time, `GSA` and `VTG` (which do not) belong to the epoch in progress. An epoch is handed out
//! as soon as it has both its `GGA` and its `RMC`, or when a sentence of a later time arrives.
//! The date comes from `RMC` (kept for epochs without one, and rolled over at midnight);
//! epochs before the first `RMC` cannot be dated and are dropped (counted as undated).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use nmea::ParseResult;
use nmea::sentences::FixType;
use nmea::sentences::gsa::GsaMode2;
use nmea::sentences::rmc::RmcStatusOfFix;

use crate::Observation;
use crate::fix::{Fix, FixMode, FixStatus, MPS_PER_KNOT};

/// Longest line taken as a sentence; NMEA allows 82 characters, some receivers send ~100.
pub const MAX_SENTENCE: usize = 120;

/// Why one line was not a usable sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NmeaError {
    #[error("not an NMEA sentence (it must start with '$' and end with '*hh'): {line:?}")]
    Framing { line: String },
    #[error(
        "NMEA checksum mismatch: the sentence says {found:02X}, its characters give {calculated:02X}; check the serial line's wiring, baud rate and noise: {line:?}"
    )]
    Checksum {
        found: u8,
        calculated: u8,
        line: String,
    },
    #[error("NMEA sentence of {len} characters is longer than {MAX_SENTENCE}")]
    TooLong { len: usize },
    #[error("NMEA sentence could not be parsed ({reason}): {line:?}")]
    Malformed { reason: String, line: String },
}

impl NmeaError {
    /// True for a checksum mismatch (counted apart from other malformed lines).
    #[must_use]
    pub fn is_checksum(&self) -> bool {
        matches!(self, NmeaError::Checksum { .. })
    }
}

/// Verifies the framing and checksum of one sentence (`$...*hh`, trailing CR/LF allowed) and
/// returns it without the line ending.
pub fn check_sentence(line: &str) -> Result<&str, NmeaError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_SENTENCE {
        return Err(NmeaError::TooLong { len: line.len() });
    }
    let framing = || NmeaError::Framing {
        line: line.to_owned(),
    };
    let body = line.strip_prefix('$').ok_or_else(framing)?;
    let (data, sum) = body.rsplit_once('*').ok_or_else(framing)?;
    if sum.len() != 2 || !data.is_ascii() {
        return Err(framing());
    }
    let found = u8::from_str_radix(sum, 16).map_err(|_| framing())?;
    let calculated = data.bytes().fold(0u8, |acc, b| acc ^ b);
    if found != calculated {
        return Err(NmeaError::Checksum {
            found,
            calculated,
            line: line.to_owned(),
        });
    }
    Ok(line)
}

/// Counters of what [`NmeaParser`] has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NmeaCounters {
    /// Sentences read (GGA, RMC, GSA, VTG).
    pub sentences: u64,
    /// Well-formed sentences of other types, ignored.
    pub ignored: u64,
    /// Epochs dropped because no RMC had given a date yet.
    pub undated: u64,
}

#[derive(Debug, Clone, Default)]
#[allow(clippy::struct_excessive_bools)] // one flag per sentence seen, and two states
struct Epoch {
    time: Option<NaiveTime>,
    date: Option<NaiveDate>,
    lat: Option<f64>,
    lon: Option<f64>,
    speed_knots: Option<f64>,
    track: Option<f64>,
    status: Option<FixStatus>,
    /// False once GGA's quality or RMC's status said the position is not valid.
    valid: bool,
    has_altitude: bool,
    satellites: Option<u32>,
    hdop: Option<f64>,
    gga: bool,
    rmc: bool,
    /// Stands for an epoch already handed out, so its late sentences are dropped.
    placeholder: bool,
}

impl Epoch {
    fn placeholder(time: Option<NaiveTime>) -> Self {
        Epoch {
            time,
            gga: true,
            rmc: true,
            placeholder: true,
            ..Epoch::default()
        }
    }
}

/// Merges NMEA sentences into fixes; see the module doc.
#[derive(Debug, Default)]
pub struct NmeaParser {
    epoch: Option<Epoch>,
    /// Time of the last epoch handed out, so its late sentences are not a new epoch.
    done: Option<NaiveTime>,
    date: Option<NaiveDate>,
    last_time: Option<NaiveTime>,
    gsa_mode: Option<FixMode>,
    gsa_hdop: Option<f64>,
    gsa_satellites: Option<u32>,
    counters: NmeaCounters,
}

fn status_of(fix: FixType) -> Option<FixStatus> {
    Some(match fix {
        FixType::Invalid => return None,
        FixType::Gps => FixStatus::Gps,
        FixType::DGps => FixStatus::Dgps,
        FixType::Rtk => FixStatus::Rtk,
        FixType::FloatRtk => FixStatus::RtkFloat,
        FixType::Estimated => FixStatus::Estimated,
        FixType::Manual => FixStatus::Manual,
        FixType::Simulation => FixStatus::Simulated,
        FixType::Pps => FixStatus::Other,
    })
}

/// An f32 field as the f64 of its shortest decimal form (0.9, not 0.8999999761581421).
fn finite(v: Option<f32>) -> Option<f64> {
    v.filter(|v| v.is_finite())
        .and_then(|v| v.to_string().parse().ok())
}

impl NmeaParser {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn counters(&self) -> NmeaCounters {
        self.counters
    }

    /// Takes one line; returns an epoch's fix (or its lack) when one is complete.
    pub fn push_line(&mut self, line: &str) -> Result<Option<Observation>, NmeaError> {
        let line = check_sentence(line)?;
        if !is_read(line) {
            self.counters.ignored += 1;
            return Ok(None);
        }
        let parsed = match nmea::parse_str(line) {
            Ok(parsed) => parsed,
            Err(
                nmea::Error::DisabledSentence
                | nmea::Error::Unsupported(_)
                | nmea::Error::Unknown(_)
                | nmea::Error::UnknownTalkerId { .. },
            ) => {
                self.counters.ignored += 1;
                return Ok(None);
            }
            Err(e) => {
                return Err(NmeaError::Malformed {
                    reason: e.to_string(),
                    line: line.to_owned(),
                });
            }
        };
        self.counters.sentences += 1;
        match parsed {
            ParseResult::GGA(gga) => {
                let out = self.begin(gga.fix_time);
                let e = self.epoch.get_or_insert_with(Epoch::default);
                if e.gga {
                    return Ok(out);
                }
                e.gga = true;
                let quality = gga.fix_type.unwrap_or(FixType::Invalid);
                e.valid = e.valid && quality.is_valid();
                e.status = status_of(quality).or(e.status);
                e.lat = e.lat.or(gga.latitude);
                e.lon = e.lon.or(gga.longitude);
                e.satellites = gga.fix_satellites.or(e.satellites);
                e.hdop = finite(gga.hdop).or(e.hdop);
                e.has_altitude = gga.altitude.is_some();
                Ok(out.or_else(|| self.complete()))
            }
            ParseResult::RMC(rmc) => {
                let out = self.begin(rmc.fix_time);
                let e = self.epoch.get_or_insert_with(Epoch::default);
                if e.rmc {
                    return Ok(out);
                }
                e.rmc = true;
                e.valid = e.valid && rmc.status_of_fix != RmcStatusOfFix::Invalid;
                e.date = rmc.fix_date;
                e.lat = rmc.lat.or(e.lat);
                e.lon = rmc.lon.or(e.lon);
                e.speed_knots = finite(rmc.speed_over_ground).or(e.speed_knots);
                e.track = finite(rmc.true_course).or(e.track);
                Ok(out.or_else(|| self.complete()))
            }
            ParseResult::GSA(gsa) => {
                self.gsa_mode = Some(match gsa.mode2 {
                    GsaMode2::NoFix => FixMode::None,
                    GsaMode2::Fix2D => FixMode::TwoD,
                    GsaMode2::Fix3D => FixMode::ThreeD,
                });
                self.gsa_hdop = finite(gsa.hdop);
                self.gsa_satellites = Some(gsa.fix_sats_prn.len() as u32);
                Ok(None)
            }
            ParseResult::VTG(vtg) => {
                if let Some(e) = self.epoch.as_mut() {
                    e.speed_knots = e.speed_knots.or(finite(vtg.speed_over_ground));
                    e.track = e.track.or(finite(vtg.true_course));
                }
                Ok(None)
            }
            _ => {
                self.counters.ignored += 1;
                Ok(None)
            }
        }
    }

    /// Hands out the epoch in progress (at the end of a stream).
    pub fn finish(&mut self) -> Option<Observation> {
        let e = self.epoch.take()?;
        self.emit(&e)
    }

    /// A sentence of time `time` arrived: closes the epoch in progress if it is older.
    fn begin(&mut self, time: Option<NaiveTime>) -> Option<Observation> {
        let out = match &self.epoch {
            Some(e) if e.time != time => {
                let e = self.epoch.take().unwrap_or_default();
                self.emit(&e)
            }
            _ => None,
        };
        if self.epoch.is_none() {
            self.epoch = Some(if time.is_some() && time == self.done {
                Epoch::placeholder(time)
            } else {
                Epoch {
                    time,
                    valid: true,
                    ..Epoch::default()
                }
            });
        }
        out
    }

    fn complete(&mut self) -> Option<Observation> {
        let ready = self.epoch.as_ref().is_some_and(|e| e.gga && e.rmc);
        if !ready {
            return None;
        }
        let e = self.epoch.take()?;
        self.done = e.time;
        // Late sentences of this time must not start a new epoch.
        self.epoch = Some(Epoch::placeholder(e.time));
        self.emit(&e)
    }

    fn emit(&mut self, e: &Epoch) -> Option<Observation> {
        if e.placeholder || (!e.gga && !e.rmc) {
            return None;
        }
        let time = e.time?;
        if let Some(date) = e.date {
            self.date = Some(date);
        } else if let (Some(date), Some(last)) = (self.date, self.last_time)
            && time < last
        {
            self.date = date.succ_opt();
        }
        self.last_time = Some(time);
        let Some(date) = self.date else {
            self.counters.undated += 1;
            return None;
        };
        let at = DateTime::<Utc>::from_naive_utc_and_offset(date.and_time(time), Utc);
        let mode = match self.gsa_mode {
            Some(mode) => mode,
            None if e.has_altitude => FixMode::ThreeD,
            None => FixMode::TwoD,
        };
        let (Some(lat), Some(lon)) = (e.lat, e.lon) else {
            return Some(Observation::NoFix { at: Some(at) });
        };
        if !e.valid || mode == FixMode::None {
            return Some(Observation::NoFix { at: Some(at) });
        }
        let fix = Fix {
            at,
            lat,
            lon,
            speed_mps: e.speed_knots.map(|k| k * MPS_PER_KNOT),
            track_deg: e.track.map(|t| t.rem_euclid(360.0)),
            mode,
            status: e.status,
            satellites: self
                .gsa_satellites
                .filter(|_| self.gsa_mode.is_some())
                .or(e.satellites),
            hdop: e.hdop.or(self.gsa_hdop),
        };
        if fix.is_plausible() {
            Some(Observation::Fix(fix))
        } else {
            None
        }
    }
}

/// The checksum a sentence body (between `$` and `*`) must carry; for generating test routes.
#[must_use]
pub fn checksum(body: &str) -> u8 {
    body.bytes().fold(0u8, |acc, b| acc ^ b)
}

/// Whether a checked sentence is one this parser reads: `$ttGGA`, `$ttRMC`, `$ttGSA` or
/// `$ttVTG` with any two-letter talker (proprietary `$P...` sentences are not).
fn is_read(line: &str) -> bool {
    let address = line[1..].split(',').next().unwrap_or_default();
    address.len() == 5
        && !address.starts_with('P')
        && matches!(address.get(2..), Some("GGA" | "RMC" | "GSA" | "VTG"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(body: &str) -> String {
        format!("${body}*{:02X}", checksum(body))
    }

    fn fix(obs: Option<Observation>) -> Fix {
        match obs {
            Some(Observation::Fix(f)) => f,
            other => panic!("expected a fix, got {other:?}"),
        }
    }

    #[test]
    fn merges_gga_rmc_and_gsa_of_one_epoch_into_a_fix() {
        let mut p = NmeaParser::new();
        assert_eq!(
            p.push_line(&sentence("GPGSA,A,3,01,02,03,04,05,,,,,,,,1.8,1.1,1.4")),
            Ok(None)
        );
        assert_eq!(
            p.push_line(&sentence(
                "GNGGA,120001.00,5107.6800,N,07125.8240,E,1,07,0.9,350.0,M,0.0,M,,"
            )),
            Ok(None)
        );
        let f = fix(p
            .push_line(&sentence(
                "GNRMC,120001.00,A,5107.6800,N,07125.8240,E,19.44,45.0,150625,,,A",
            ))
            .unwrap());
        assert_eq!(f.at.to_rfc3339(), "2025-06-15T12:00:01+00:00");
        assert!((f.lat - 51.128).abs() < 1e-9, "{}", f.lat);
        assert!((f.lon - 71.4304).abs() < 1e-9, "{}", f.lon);
        assert!((f.speed_mps.unwrap() - 10.0).abs() < 0.01);
        assert_eq!(f.track_deg, Some(45.0));
        assert_eq!(f.mode, FixMode::ThreeD);
        assert_eq!(f.status, Some(FixStatus::Gps));
        assert_eq!(f.satellites, Some(5));
        assert!((f.hdop.unwrap() - 0.9).abs() < 1e-6);
        // A late VTG of the same epoch starts nothing new.
        assert_eq!(
            p.push_line(&sentence("GPVTG,45.0,T,,M,19.44,N,36.0,K,A")),
            Ok(None)
        );
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn refuses_a_wrong_checksum_and_a_missing_one() {
        let mut p = NmeaParser::new();
        let good = sentence("GPGGA,120001.00,5107.6800,N,07125.8240,E,1,07,0.9,350.0,M,0.0,M,,");
        let bad = format!("{}00", &good[..good.len() - 2]);
        let err = p.push_line(&bad).unwrap_err();
        assert!(err.is_checksum(), "{err}");
        let bare = &good[..good.len() - 3];
        assert!(matches!(p.push_line(bare), Err(NmeaError::Framing { .. })));
        assert!(matches!(
            p.push_line("garbage"),
            Err(NmeaError::Framing { .. })
        ));
    }

    #[test]
    fn a_well_formed_sentence_with_bad_fields_is_malformed() {
        let mut p = NmeaParser::new();
        let err = p
            .push_line(&sentence("GPGGA,12x001,51,Q,7,E,1,07,0.9,350.0,M,0.0,M,,"))
            .unwrap_err();
        assert!(matches!(err, NmeaError::Malformed { .. }), "{err}");
    }

    #[test]
    fn ignores_other_sentences_and_reports_a_lost_fix() {
        let mut p = NmeaParser::new();
        assert_eq!(
            p.push_line(&sentence("GPGSV,1,1,01,01,40,083,46")),
            Ok(None)
        );
        assert_eq!(p.push_line(&sentence("PUBX,00,foo")), Ok(None));
        assert_eq!(p.counters().ignored, 2);
        p.push_line(&sentence("GPRMC,235959.00,V,,,,,,,150625,,,N"))
            .unwrap();
        let out = p
            .push_line(&sentence("GPGGA,235959.00,,,,,0,00,99.99,,,,,,"))
            .unwrap();
        assert!(matches!(out, Some(Observation::NoFix { .. })), "{out:?}");
        // Past midnight without an RMC date yet: the day rolls over.
        p.push_line(&sentence(
            "GPGGA,000000.00,5107.6800,N,07125.8240,E,1,07,0.9,350.0,M,0.0,M,,",
        ))
        .unwrap();
        let f = fix(p.finish());
        assert_eq!(f.at.to_rfc3339(), "2025-06-16T00:00:00+00:00");
    }

    #[test]
    fn drops_epochs_before_the_first_date() {
        let mut p = NmeaParser::new();
        p.push_line(&sentence(
            "GPGGA,120000.00,5107.6800,N,07125.8240,E,1,07,0.9,350.0,M,0.0,M,,",
        ))
        .unwrap();
        assert_eq!(p.finish(), None);
        assert_eq!(p.counters().undated, 1);
    }
}
