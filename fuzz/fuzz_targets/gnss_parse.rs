//! GNSS input as the device reads it (`anpr_gnss`): lines from gpsd (its JSON protocol,
//! `gpsd::GpsdSession`) and raw NMEA 0183 sentences from a serial receiver
//! (`nmea::NmeaParser`), each line fed to both, then into a position track.
//!
//! Invariants: no panic; a fix that comes out has coordinates on the globe; a position the
//! track gives for any time is finite, with its heading in 0..360 and exactly one of its
//! interpolated / gap / stale cases (or none, at a fix's own time).
#![no_main]

use anpr_gnss::gpsd::GpsdSession;
use anpr_gnss::nmea::NmeaParser;
use anpr_gnss::{Observation, Track, TrackSettings};
use libfuzzer_sys::fuzz_target;

fn check(track: &mut Track, obs: Option<Observation>) {
    match obs {
        Some(Observation::Fix(fix)) => {
            assert!(fix.is_plausible(), "implausible fix came out: {fix:?}");
            let at = fix.at;
            track.push(fix);
            for ms in [-1500, -500, 0, 250, 999, 5000] {
                let Some(t) = at.checked_add_signed(chrono::TimeDelta::milliseconds(ms)) else {
                    continue;
                };
                let Some(p) = track.position_at(t) else {
                    panic!("no position after a fix was pushed");
                };
                assert!(p.lat.is_finite() && p.lon.is_finite(), "{p:?}");
                assert!(
                    p.heading_deg.is_none_or(|h| (0.0..360.0).contains(&h)),
                    "{p:?}"
                );
                let cases = [p.interpolated, p.gap, p.stale]
                    .iter()
                    .filter(|c| **c)
                    .count();
                assert!(cases <= 1, "{p:?}");
            }
        }
        Some(Observation::NoFix { at }) => track.lost(at),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut gpsd = GpsdSession::new();
    let mut nmea = NmeaParser::new();
    let mut track = Track::new(TrackSettings {
        capacity: 8,
        ..TrackSettings::default()
    });
    for line in text.lines().take(64) {
        check(&mut track, gpsd.push_line(line).unwrap_or_default());
        match nmea.push_line(line) {
            Ok(obs) => check(&mut track, obs),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    let last = nmea.finish();
    check(&mut track, last);
});
