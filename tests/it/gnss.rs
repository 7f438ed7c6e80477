//! A mobile unit through the real pipeline: gpsd (started by `gpsfake`, Debian packages `gpsd`
//! and `gpsd-clients`) plays a generated NMEA route (`anpr_gnss::route`) while the device
//! reads the demo clip, delivering over TLS to the reference receiver.
//!
//! Time: the file's capture clock is `system` (the host clock when the file was opened, plus
//! each frame's timestamp), and gpsd reports the times written in the sentences. So the route
//! is written in host time: from 60 s before the test starts to 60 s after, played fast
//! (a sentence every 15 ms, all of it within ~6 s of the device connecting), so that every fix
//! around a capture time is in the device's track before the passage is recorded; the fixes
//! are "from the future" for the host clock, which is why the event's clock reports the
//! offset it measured rather than applying it.
//!
//! The route leaves out two seconds in every six (fixes 3 s apart: a gap, past
//! `max_gap_s = 2`, then three seconds of fixes a second apart), and has a GGA with a wrong
//! checksum and a position 1 km off in each stretch of fixes. The clip has four vehicles 2 s
//! apart, so their capture times (whenever the file opens) span a whole period of the
//! pattern and fall both inside gaps and between close fixes. Each passage's position is
//! checked against the route's truth at its `captured_at`: within 0.5 m, with speed, heading,
//! satellites and HDOP, when the fixes around it are a second apart; marked `gap`, with the
//! last fix before it and its age, when they are not. gpsd is killed once the route has been
//! read and the first passage recorded: the `gnss` fault is raised (and reaches the receiver
//! in health), and the passages after it are still recorded, with their positions.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anpr_gnss::route::{BOUND_M, Gpsfake, HDOP, Route, SATELLITES, SPEED_MPS, metres};
use anpr_pipeline::{DeviceCounters, RunOptions};
use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_testkit::Mosquitto;
use anpr_types::GnssFix;
use chrono::{DurationRound, TimeDelta, Utc};

use crate::util;

const INVENTORY: &str = "KZ-TEST-GNSS";
const FPS: u64 = 25;
/// Empty road before the first vehicle (the clip's vehicles follow 2 s apart).
const LEAD_S: u64 = 2;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mobile_unit_s_passages_carry_the_route_s_position_at_their_capture_time_mark_fix_gaps_and_recording_goes_on_without_gpsd()
 {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();

    // The clip's four vehicles, 2 s apart, after 2 s of empty road.
    let mut manifest = manifest_with(4);
    for v in &mut manifest.vehicles {
        v.first_frame += LEAD_S * FPS;
        v.last_frame += LEAD_S * FPS;
    }
    manifest.frames += LEAD_S * FPS;
    let clip = dir.path().join("clip.mp4");
    let manifest = write_clip_with(&manifest, &clip).unwrap();

    // The route, in host time, from 60 s ago; seconds 6k+1 and 6k+2 left out.
    let t0 = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::seconds(60);
    let route = Route {
        start: t0,
        last_second: 120,
        missing: (0..=120).filter(|s| (1..=2).contains(&(s % 6))).collect(),
        malformed: (0..=120).filter(|s| s % 6 == 4).collect(),
    };
    let log = dir.path().join("route.nmea");
    std::fs::write(&log, route.nmea().0).unwrap();
    let port = free_port();

    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    let config = util::write_config(dir.path(), INVENTORY, clip.to_str().unwrap(), &broker);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "profile = \"stationary\"\nsite = \"test-site\"\ncoordinates = [51.1, 71.4]\n",
        "profile = \"mobile\"\n",
    );
    assert!(text.contains("profile = \"mobile\""), "{text}");
    std::fs::write(
        &config,
        format!(
            "{text}\n[gnss]\nsource = \"gpsd\"\ngpsd = \"127.0.0.1:{port}\"\nmax_gap_s = 2\n\
             stale_after_s = 60\nuse_for_clock = true\n"
        ),
    )
    .unwrap();
    let cfg = anpr_config::load(&config).unwrap();
    let counters = Arc::new(DeviceCounters::default());
    let uplink = Arc::new(anpr_uplink::Counters::default());
    let device = tokio::spawn(anpr_pipeline::run(
        cfg,
        RunOptions {
            drain_timeout: Duration::from_secs(20),
            delivered: None,
            counters: counters.clone(),
            uplink: uplink.clone(),
        },
    ));
    // gpsfake plays the log from when gpsd opens its device, which it does when the first
    // client arrives (what is played before anyone listens is lost): it starts once the device
    // is trying to connect, and the first seconds of the route are a lead-in.
    let mut gpsfake = Gpsfake::start(port, &log, 0.015);

    // The whole route read, and a passage recorded: gpsd goes.
    let end = route.time_of(route.last_second);
    let read = util::wait_for(Duration::from_secs(30), || {
        counters
            .gnss
            .view()
            .is_some_and(|v| v.last_fix_at == Some(end))
    })
    .await;
    assert!(
        read,
        "the device did not read the route: {:?}",
        counters.gnss.view()
    );
    let subject = format!("gpsd 127.0.0.1:{port}");
    assert!(
        !uplink.faults.is_set("gnss", &subject),
        "a gnss fault while gpsd answers: {:?}",
        uplink.faults.active()
    );
    assert!(
        util::wait_for(Duration::from_secs(30), || counters
            .events
            .load(Ordering::Relaxed)
            >= 1)
        .await,
        "no passage recorded"
    );
    let view = counters.gnss.view().unwrap();
    // gpsd itself drops the sentences with a wrong checksum (the positions below show that
    // their 1 km offset was never used).
    assert_eq!(
        (view.fix, view.satellites),
        ("3d", Some(SATELLITES)),
        "{view:?}"
    );
    gpsfake.kill();
    let recorded_before_kill = counters.events.load(Ordering::Relaxed);
    assert!(
        util::wait_for(Duration::from_secs(5), || uplink
            .faults
            .is_set("gnss", &subject))
        .await,
        "no gnss fault after gpsd went: {:?}",
        uplink.faults.active()
    );

    let summary = device.await.unwrap().unwrap();
    central.stop().await;
    assert!(
        summary.camera_errors.is_empty(),
        "{:?}",
        summary.camera_errors
    );
    assert!(
        summary.events > recorded_before_kill,
        "recording went on after gpsd went ({recorded_before_kill} before, {} in all)",
        summary.events
    );

    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let got = receiver.events_of(INVENTORY).unwrap();
    assert_eq!(
        got.len(),
        manifest.vehicles.len(),
        "one event per vehicle: {got:#?}"
    );
    let (mut in_gap, mut between) = (0, 0);
    for d in &got {
        let e = &d.event;
        let p = e
            .position
            .unwrap_or_else(|| panic!("{}: no position", e.plate.text));
        let c = e.captured_at;
        assert_eq!(e.device.profile, "mobile");
        assert_eq!(p.fix, Some(GnssFix::ThreeD), "{}: {p:?}", e.plate.text);
        let (before, after) = route.fixes_around(c);
        let (before, after) = (before.unwrap(), after.unwrap());
        if after - before > 2 {
            in_gap += 1;
            let fix_at = route.time_of(before);
            let (lat, lon, _) = Route::truth(before as f64);
            assert!(
                p.gap && !p.interpolated && !p.stale,
                "{}: {p:?}",
                e.plate.text
            );
            assert_eq!(p.at, Some(fix_at), "the last fix before the gap");
            assert_eq!(p.age_ms, Some((c - fix_at).num_milliseconds() as u64));
            assert!(metres((p.lat, p.lon), (lat, lon)) < BOUND_M, "{p:?}");
        } else {
            between += 1;
            let (lat, lon, heading) = route.truth_at(c);
            let off = metres((p.lat, p.lon), (lat, lon));
            assert!(
                off < BOUND_M,
                "{}: {off:.3} m from the truth at {c}: {p:?}",
                e.plate.text
            );
            assert!(!p.gap && !p.stale, "{p:?}");
            let speed = p.speed_kmh.unwrap();
            assert!((speed - SPEED_MPS * 3.6).abs() < 0.5, "speed {speed}");
            let dh = (p.heading_deg.unwrap() - heading + 540.0).rem_euclid(360.0) - 180.0;
            assert!(dh.abs() < 0.5, "heading off by {dh}°");
            assert_eq!(p.satellites, Some(SATELLITES));
            assert!((p.hdop.unwrap() - HDOP).abs() < 1e-6);
            assert!(p.age_ms.unwrap() <= 500, "{p:?}");
        }
        // GNSS was compared with the host clock within stale_after_s: the clock says gnss.
        let clock = &e.clock;
        assert_eq!(
            (clock.source.as_str(), clock.synced),
            ("gnss", true),
            "{clock:?}"
        );
        assert!(clock.sync_age_ms.unwrap() < 60_000, "{clock:?}");
        assert!(
            clock.offset_ms.is_some() && clock.reference.is_some(),
            "{clock:?}"
        );
    }
    assert!(
        in_gap >= 1 && between >= 1,
        "the clip's capture times fall both in gaps and between close fixes ({in_gap} in gaps, {between} between)"
    );

    // The fault reached the receiver in the device's health, and the history has it.
    let report = receiver.report().unwrap();
    let health = report[0]
        .health
        .as_ref()
        .expect("the device's health arrived");
    assert!(
        health.faults.iter().any(|f| f.code == "gnss"),
        "{:?}",
        health.faults
    );
    assert!(
        uplink
            .faults
            .history()
            .iter()
            .any(|r| r.code == "gnss" && r.raised),
        "{:?}",
        uplink.faults.history()
    );
    drop(gpsfake);
    assert!(
        started.elapsed() < Duration::from_mins(1),
        "took {:?}",
        started.elapsed()
    );
}
