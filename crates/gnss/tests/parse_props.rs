//! Property tests of the two parsers of outside input: no input makes them panic, and a valid
//! sentence gives back the fields it was written with.

use anpr_gnss::gpsd::{GpsdSession, parse_line};
use anpr_gnss::nmea::{NmeaParser, checksum};
use anpr_gnss::{FixMode, Observation};
use proptest::prelude::*;

fn sentence(body: &str) -> String {
    format!("${body}*{:02X}", checksum(body))
}

fn dm(v: f64, pos: char, neg: char, width: usize) -> (String, char) {
    let h = if v < 0.0 { neg } else { pos };
    let v = v.abs();
    let deg = v.trunc();
    let min = (v - deg) * 60.0;
    (format!("{:0width$}{:08.5}", deg as u32, min), h)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn nmea_never_panics_on_any_line(line in "\\PC{0,120}") {
        let mut p = NmeaParser::new();
        let _ = p.push_line(&line);
        let _ = p.push_line(&format!("${line}"));
        let _ = p.finish();
    }

    #[test]
    fn nmea_never_panics_on_framed_garbage(
        talker in "[A-Z]{2}",
        kind in prop::sample::select(vec!["GGA", "RMC", "GSA", "VTG", "GSV", "ZDA"]),
        fields in prop::collection::vec("[0-9A-Z.,+-]{0,12}", 0..16),
    ) {
        let mut p = NmeaParser::new();
        let line = sentence(&format!("{talker}{kind},{}", fields.join(",")));
        let _ = p.push_line(&line);
        let _ = p.finish();
    }

    #[test]
    fn nmea_refuses_a_changed_character(index in 1usize..60, with in "[0-9A-Z,.]") {
        let good = sentence("GPGGA,120001.00,5107.68000,N,07125.82400,E,1,07,0.9,350.0,M,0.0,M,,");
        let body_end = good.len() - 3;
        let index = index.min(body_end - 1);
        let mut bytes = good.clone().into_bytes();
        bytes[index] = with.as_bytes()[0];
        let changed = String::from_utf8(bytes).unwrap();
        prop_assume!(changed != good);
        let mut p = NmeaParser::new();
        prop_assert!(p.push_line(&changed).is_err());
    }

    #[test]
    fn nmea_round_trips_a_valid_fix(
        lat in -89.99f64..89.99,
        lon in -179.99f64..179.99,
        knots in 0.0f64..300.0,
        course in 0.0f64..359.9,
        secs in 0u32..86_399,
        sats in 4u32..24,
        hdop in 0.5f64..9.9,
        talker in prop::sample::select(vec!["GP", "GN", "GL", "GA", "BD"]),
    ) {
        let time = format!("{:02}{:02}{:02}.00", secs / 3600, secs / 60 % 60, secs % 60);
        let (la, lh) = dm(lat, 'N', 'S', 2);
        let (lo, oh) = dm(lon, 'E', 'W', 3);
        let mut p = NmeaParser::new();
        let gga = sentence(&format!(
            "{talker}GGA,{time},{la},{lh},{lo},{oh},1,{sats:02},{hdop:.1},350.0,M,0.0,M,,"
        ));
        let rmc = sentence(&format!(
            "{talker}RMC,{time},A,{la},{lh},{lo},{oh},{knots:.3},{course:.2},150625,,,A"
        ));
        prop_assert_eq!(p.push_line(&gga), Ok(None));
        let Ok(Some(Observation::Fix(f))) = p.push_line(&rmc) else {
            return Err(TestCaseError::fail(format!("no fix from {gga} {rmc}")));
        };
        // 0.00001 minute is under 2e-7 degrees; f32 fields keep ~7 digits.
        prop_assert!((f.lat - lat).abs() < 1e-6, "{} vs {}", f.lat, lat);
        prop_assert!((f.lon - lon).abs() < 1e-6, "{} vs {}", f.lon, lon);
        prop_assert!((f.speed_mps.unwrap() / anpr_gnss::fix::MPS_PER_KNOT - knots).abs() < 0.01);
        prop_assert!((f.track_deg.unwrap() - course).abs() < 0.01);
        prop_assert_eq!(f.satellites, Some(sats));
        prop_assert!((f.hdop.unwrap() - hdop).abs() < 0.051);
        prop_assert_eq!(f.mode, FixMode::ThreeD);
        prop_assert_eq!(f.at.format("%H%M%S").to_string(), time[..6].to_string());
    }

    #[test]
    fn gpsd_never_panics_on_any_line(line in "\\PC{0,200}") {
        let _ = parse_line(&line);
        let _ = GpsdSession::new().push_line(&line);
    }

    #[test]
    fn gpsd_never_panics_on_json_shaped_lines(
        class in prop::sample::select(vec!["TPV", "SKY", "PPS", "TOFF", "VERSION", "DEVICES", "WATCH", "ERROR", "X"]),
        key in prop::sample::select(vec!["mode", "time", "lat", "lon", "speed", "track", "hdop", "uSat", "real_sec", "real_nsec", "clock_sec", "clock_nsec", "satellites", "devices"]),
        value in prop_oneof![
            Just("null".to_owned()), Just("1e309".to_owned()), Just("-1".to_owned()),
            Just("\"2025-13-40T99:00:00Z\"".to_owned()), Just("[{}]".to_owned()),
            any::<i64>().prop_map(|v| v.to_string()), any::<f64>().prop_map(|v| format!("{v:?}")),
        ],
    ) {
        let line = format!(r#"{{"class":"{class}","{key}":{value},"mode":3,"lat":1.0,"lon":2.0,"time":"2025-06-15T12:00:00Z"}}"#);
        let _ = GpsdSession::new().push_line(&line);
    }

    #[test]
    fn gpsd_round_trips_a_tpv(
        lat in -90.0f64..90.0,
        lon in -180.0f64..180.0,
        speed in 0.0f64..100.0,
        track in 0.0f64..360.0,
        mode in 2u8..=3,
        ms in 0i64..4_000_000_000_000,
    ) {
        let at = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let line = serde_json::json!({
            "class": "TPV", "mode": mode, "time": at.to_rfc3339(), "lat": lat, "lon": lon,
            "speed": speed, "track": track,
        })
        .to_string();
        let Ok(Some(Observation::Fix(f))) = GpsdSession::new().push_line(&line) else {
            return Err(TestCaseError::fail(format!("no fix from {line}")));
        };
        prop_assert_eq!((f.at, f.lat, f.lon, f.speed_mps), (at, lat, lon, Some(speed)));
        prop_assert_eq!(f.mode, if mode == 2 { FixMode::TwoD } else { FixMode::ThreeD });
        prop_assert!((f.track_deg.unwrap() - track.rem_euclid(360.0)).abs() < 1e-9);
    }
}
