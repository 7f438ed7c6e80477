//! A generated NMEA route with known truth, played by a real gpsd (`gpsfake`, Debian packages
//! `gpsd` and `gpsd-clients`, installed by deploy/setup.sh) and read straight from the file.
//!
//! The route (`anpr_gnss::route`): a vehicle at 54 km/h turning steadily at 2°/s (a circle of 430 m radius) from
//! Astana, one fix a second for 96 s (GGA, RMC and GSA each second, VTG and GSV now and then),
//! with one GGA whose checksum is wrong (and whose position is 1 km off) at second 65, and no
//! sentences at all from second 75 to 80. gpsfake plays it at one sentence every 20 ms (`-c
//! 0.02`), so the whole route takes ~6 s; gpsd reads nothing for its first second or two
//! (it opens the pseudo-terminal when the client arrives), so seconds 0-59 are a lead-in that
//! is not checked.
//!
//! Bound: the interpolated position is within 0.5 m of the truth (the chord of a 15 m arc of
//! a 430 m circle is 7 cm from it; NMEA's 0.00001 minute is 2 cm), speed within 0.5 km/h,
//! heading within 0.5°.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anpr_gnss::route::{BOUND_M, Gpsfake, Route, SPEED_MPS, metres};
use anpr_gnss::{
    FaultChange, FixMode, Gnss, GpsdSettings, NmeaSettings, TrackSettings, run_gpsd,
    spawn_nmea_reader,
};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, watch};

const LAST_SECOND: i64 = 95;
const GAP: std::ops::RangeInclusive<i64> = 75..=80;
const MALFORMED_AT: i64 = 65;

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-15T12:00:00Z")
        .unwrap()
        .to_utc()
}

/// The truth at `s` seconds after the start: (lat, lon, heading in degrees).
fn truth(s: f64) -> (f64, f64, f64) {
    Route::truth(s)
}

/// The route as NMEA text, and how many lines it has.
fn route() -> (String, usize) {
    Route {
        start: start(),
        last_second: LAST_SECOND,
        missing: GAP.collect(),
        malformed: vec![MALFORMED_AT],
    }
    .nmea()
}

/// Checks the positions `gnss` gives against the truth.
fn check_positions(gnss: &Gnss, via: &str) {
    let fixes = gnss.last_fix().expect("no fix at all");
    assert_eq!(
        fixes.at,
        start() + TimeDelta::seconds(LAST_SECOND),
        "{via}: route not read to its end"
    );
    for s in [62.5, 64.25, 65.5, 70.75, 84.5, 90.1, 94.9] {
        let t = start() + TimeDelta::microseconds((s * 1e6) as i64);
        let p = gnss
            .position_at(t)
            .unwrap_or_else(|| panic!("{via}: no position at {s}"));
        let (lat, lon, heading) = truth(s);
        let off = metres((p.lat, p.lon), (lat, lon));
        assert!(
            p.interpolated && !p.gap && !p.stale,
            "{via}: at {s} s expected an interpolated position, got {p:?}"
        );
        assert!(
            off < BOUND_M,
            "{via}: at {s} s the position is {off:.3} m from the truth: {p:?}"
        );
        let speed = p.speed_kmh.expect("speed");
        assert!(
            (speed - SPEED_MPS * 3.6).abs() < 0.5,
            "{via}: speed {speed} at {s}"
        );
        let dh = (p.heading_deg.expect("heading") - heading + 540.0).rem_euclid(360.0) - 180.0;
        assert!(dh.abs() < 0.5, "{via}: heading off by {dh}° at {s}");
        assert_eq!(p.fix, FixMode::ThreeD, "{via}");
        assert_eq!(p.satellites, Some(8), "{via}");
        assert!((p.hdop.expect("hdop") - 0.9).abs() < 1e-6, "{via}");
        assert_eq!(p.at, t);
    }
    // Inside the gap: the last fix before it, flagged.
    let t = start() + TimeDelta::milliseconds(77_500);
    let p = gnss.position_at(t).expect("position in the gap");
    assert!(p.gap && !p.interpolated, "{via}: gap not marked: {p:?}");
    assert_eq!(
        (p.at, p.age_ms),
        (start() + TimeDelta::seconds(74), 3500),
        "{via}"
    );
    // After the end: the last fix, stale, with its age.
    let p = gnss
        .position_at(start() + TimeDelta::seconds(LAST_SECOND + 2))
        .expect("stale");
    assert!(p.stale && p.age_ms == 2000, "{via}: {p:?}");
    // No fix anywhere near the malformed sentence's position.
    let (lat, lon, _) = truth(MALFORMED_AT as f64);
    let p = gnss
        .position_at(start() + TimeDelta::seconds(MALFORMED_AT))
        .expect("fix");
    assert!(
        metres((p.lat, p.lon), (lat, lon)) < BOUND_M,
        "{via}: malformed GGA used: {p:?}"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn next_fault(
    rx: &mut mpsc::UnboundedReceiver<FaultChange>,
    within: Duration,
) -> FaultChange {
    tokio::time::timeout(within, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no fault change within {within:?}"))
        .expect("fault channel closed")
}

async fn wait_until(what: &str, within: Duration, cond: impl Fn() -> bool) {
    let until = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < until,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpsd_route_gives_true_positions_marks_the_gap_and_faults_while_gpsd_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("route.nmea");
    let (text, lines) = route();
    std::fs::write(&log, &text).unwrap();
    let settings = TrackSettings {
        capacity: 600,
        max_gap: Duration::from_secs(2),
    };

    // The same route straight from the file, as from a serial receiver.
    let direct = Gnss::new(settings, Duration::from_secs(30));
    let (ftx, mut serial_faults) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let reader =
        spawn_nmea_reader(NmeaSettings::new(&log), direct.clone(), ftx, stop.clone()).unwrap();
    wait_until("reading the file", Duration::from_secs(5), || {
        direct.counters().lines == lines as u64
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let c = direct.counters();
    assert_eq!((c.malformed, c.bad_checksum), (1, 1), "{c:?}");
    assert!(
        serial_faults.try_recv().is_err(),
        "a readable file raised a fault"
    );
    check_positions(&direct, "serial");

    // Through gpsd.
    let started = Instant::now();
    let port = free_port();
    let mut fake = Gpsfake::start(port, &log, 0.02);
    let gnss = Gnss::new(settings, Duration::from_secs(30));
    let (ftx, mut faults) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let gpsd = GpsdSettings {
        addr: format!("127.0.0.1:{port}"),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(2),
    };
    let client = tokio::spawn(run_gpsd(gpsd, gnss.clone(), ftx, stop_rx));
    let end = start() + TimeDelta::seconds(LAST_SECOND);
    wait_until("gpsd playing the route", Duration::from_secs(20), || {
        gnss.last_fix().is_some_and(|f| f.at == end)
    })
    .await;
    let first = gnss.position_at(start()).expect("fixes").at;
    assert!(
        first < start() + TimeDelta::seconds(62),
        "gpsd's first fix came at {first}, after the first checked time: the lead-in is too short"
    );
    check_positions(&gnss, "gpsd");
    let clock = gnss.clock(Utc::now()).expect("clock synced from gpsd");
    assert_eq!(clock.source, "gnss");
    assert!(clock.synced && clock.age_ms < 20_000, "{clock:?}");
    // gpsd was not there for the client's first tries: that fault cleared.
    let mut raised = false;
    while let Ok(change) = faults.try_recv() {
        assert_eq!(change.code, "gnss");
        raised = change.raised;
    }
    assert!(!raised, "the gnss fault is still raised while gpsd answers");

    // gpsd disappears: a fault, while the track keeps what it had.
    fake.kill();
    let change = next_fault(&mut faults, Duration::from_secs(5)).await;
    assert!(
        change.raised && change.subject.contains(&port.to_string()),
        "{change:?}"
    );
    assert!(gnss.position_at(end).is_some());
    // gpsd comes back on the same port: the fault clears.
    let mut fake = Gpsfake::start(port, &log, 0.02);
    let change = next_fault(&mut faults, Duration::from_secs(10)).await;
    assert!(!change.raised, "{change:?}");
    assert!(gnss.counters().disconnects >= 1);

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), client)
        .await
        .expect("client stops")
        .unwrap();
    fake.kill();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
