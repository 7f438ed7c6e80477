//! Replay through a lossy link: the device reaches a real mosquitto through the signal-loss
//! simulator while it records a clip. The oracle: every event the device accepted reaches the
//! receiver, once after deduplication, with its original capture time and its sequence, and the
//! device's queue ends with nothing undelivered.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use anpr_netsim::{Condition, Proxy, Script};
use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_store::Store;
use anpr_testkit::Mosquitto;

use crate::util;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_through_resets_and_a_black_hole_all_arrive_once_with_their_capture_times()
{
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let manifest = write_clip_with(&manifest_with(3), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    // A black hole, a short window, then connections reset until the whole clip is recorded,
    // so that events are recorded while the link is down on a slow or a fast machine alike;
    // then the link comes back (a second proxy on the same port) for the replay.
    let script = Script::parse("up 2; blackhole 30; up 3; reset 3600").unwrap();
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], broker.port()));
    let proxy = Proxy::start(
        "127.0.0.1:0".parse().unwrap(),
        upstream,
        script,
        1.0,
        Duration::from_mins(5),
    )
    .await
    .unwrap();
    let config = util::write_config(
        dir.path(),
        "KZ-TEST-LOSS",
        clip.to_str().unwrap(),
        &util::Via::new(proxy.local_addr(), broker.pki()),
    );

    let link = proxy.local_addr();
    let device =
        tokio::spawn(async move { util::run_device(&config, Duration::from_mins(2)).await });
    let queue = dir.path().join("queue.sqlite");
    let vehicles = manifest.vehicles.len() as u64;
    assert!(
        util::wait_for(Duration::from_mins(4), || Store::open(&queue)
            .and_then(|s| s.stats())
            .is_ok_and(|s| s.last_seq >= vehicles)
            && proxy.condition() == Condition::Reset)
        .await,
        "the clip is recorded and the link is in its reset phase"
    );
    let conditions: Vec<Condition> = proxy.transitions().iter().map(|t| t.condition).collect();
    drop(proxy);
    let _back = util::reopen_link(link, upstream).await;
    let summary = device.await.unwrap();
    central.stop().await;
    assert!(conditions.contains(&Condition::Blackhole), "{conditions:?}");
    assert_eq!(summary.events, manifest.vehicles.len() as u64);

    let queued = Store::open(&dir.path().join("queue.sqlite")).unwrap();
    assert_eq!(
        queued.stats().unwrap().pending,
        0,
        "the queue ends with nothing undelivered"
    );
    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let got = receiver.events_of("KZ-TEST-LOSS").unwrap();
    let ids: HashSet<_> = got.iter().map(|d| d.event.event_id).collect();
    assert_eq!(ids.len(), got.len(), "stored once each");
    assert_eq!(
        got.len(),
        manifest.vehicles.len(),
        "every accepted event arrived"
    );
    let seqs: Vec<u64> = got.iter().map(|d| d.event.seq).collect();
    assert_eq!(
        seqs,
        (1..=got.len() as u64).collect::<Vec<_>>(),
        "order recoverable, no gaps"
    );
    assert!(receiver.report().unwrap()[0].gaps.is_empty());
    for d in &got {
        let stored = queued.get(d.event.seq).unwrap().unwrap();
        assert_eq!(stored.event_id, d.event.event_id);
        assert_eq!(
            stored.captured_at, d.event.captured_at,
            "the original capture time travels"
        );
        assert!(d.sent_at >= d.event.captured_at);
        let plate = &d.event.plate.text;
        assert!(
            manifest.vehicles.iter().any(|v| &v.plate == plate),
            "{plate}"
        );
    }
    assert!(
        got.iter().any(|d| d.delayed),
        "at least one event was recorded during an outage and replayed"
    );
}

/// libfaketime, which the setup installs: it lets a test step the wall clock of one process.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

async fn clock_stepped_during_an_outage(step_s: i64) {
    assert!(
        std::path::Path::new(FAKETIME).is_file(),
        "{FAKETIME} is missing: run deploy/setup.sh (it installs the faketime package)"
    );
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let manifest = write_clip_with(&manifest_with(2), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let db = dir.path().join("central.sqlite");
    let central = util::Central::start(&broker, db.clone());
    // The link is down (nothing listens at the device's broker address) until the whole
    // clip is recorded, and the clock is stepped meanwhile; then the link comes up through
    // the simulator and the queue is replayed.
    let link = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let inv = "KZ-TEST-CLOCK";
    let config = util::write_config(
        dir.path(),
        inv,
        clip.to_str().unwrap(),
        &util::Via::new(link, broker.pki()),
    );
    // The device's wall clock, as libfaketime gives it: an offset read from this file.
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let mut device = tokio::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--drain-timeout",
            "90",
        ])
        .env("LD_PRELOAD", FAKETIME)
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    std::fs::write(&offset, format!("{step_s:+}\n")).unwrap();
    let stepped_at = chrono::Utc::now();
    let queue = dir.path().join("queue.sqlite");
    let vehicles = manifest.vehicles.len() as u64;
    assert!(
        util::wait_for(Duration::from_mins(3), || Store::open(&queue)
            .and_then(|s| s.stats())
            .is_ok_and(|s| s.last_seq >= vehicles))
        .await,
        "the clip is recorded during the outage"
    );
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], broker.port()));
    let _link = util::reopen_link(link, upstream).await;
    let status = tokio::time::timeout(Duration::from_mins(4), device.wait())
        .await
        .expect("the device finishes")
        .unwrap();
    assert!(status.success());
    let receiver = anpr_central::Receiver::open(&db).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(10), || receiver
            .health(inv)
            .unwrap()
            .is_some_and(|h| h.clock_jumps == 1))
        .await,
        "the device's health with the clock jump reached the receiver"
    );
    central.stop().await;

    let store = Store::open(&dir.path().join("queue.sqlite")).unwrap();
    let jumps: Vec<f64> = store
        .journal(0)
        .unwrap()
        .iter()
        .filter(|j| j.kind == "clock-jump")
        .map(|j| j.detail["step_s"].as_f64().unwrap())
        .collect();
    assert_eq!(jumps.len(), 1, "the jump is recorded once: {jumps:?}");
    assert!(
        (jumps[0] - step_s as f64).abs() < 3.0,
        "recorded step {} for a step of {step_s}",
        jumps[0]
    );
    util::assert_delivered_exactly(&dir.path().join("queue.sqlite"), &db, inv);
    let got = receiver.events_of(inv).unwrap();
    assert_eq!(got.len(), manifest.vehicles.len());
    // Capture times come from the stream's start and its frame timestamps, fixed before the
    // step; they stay in sequence order and within the real time of the run.
    for pair in got.windows(2) {
        assert!(pair[0].event.captured_at <= pair[1].event.captured_at);
    }
    for d in &got {
        assert!(d.event.captured_at <= stepped_at + chrono::Duration::seconds(60));
        assert!(d.delayed, "recorded during the outage");
        // Sent after the step: sent_at carries the stepped clock, captured_at is unchanged.
        let skew = (d.sent_at - d.event.captured_at).num_seconds();
        if step_s < 0 {
            assert!(
                skew < 0,
                "sent_at {} captured_at {}",
                d.sent_at,
                d.event.captured_at
            );
        } else {
            assert!(
                skew >= step_s,
                "sent_at {} captured_at {}",
                d.sent_at,
                d.event.captured_at
            );
        }
    }
    let report = &receiver.report().unwrap()[0];
    let health = report.health.as_ref().expect("health arrived");
    assert_eq!(health.clock_jumps, 1);
    assert!(
        receiver
            .faults(inv)
            .unwrap()
            .iter()
            .any(|h| h.faults.iter().any(|f| f.code == "clock-jump")),
        "the jump was reported as a fault"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_stepped_back_an_hour_during_an_outage_is_recorded_and_capture_times_stay_true()
 {
    clock_stepped_during_an_outage(-3600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_stepped_forward_during_an_outage_is_recorded_and_capture_times_stay_true() {
    clock_stepped_during_an_outage(600).await;
}
