//! Replay through a lossy link: the device reaches a real mosquitto through the signal-loss
//! simulator while it records a clip. The oracle: every event the device accepted reaches the
//! receiver, once after deduplication, with its original capture time and its sequence, and the
//! device's queue ends with nothing undelivered.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use anpr::democlip;
use anpr_netsim::{Condition, Proxy, Script};
use anpr_store::Store;
use anpr_testkit::Mosquitto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_through_resets_and_a_black_hole_all_arrive_once_with_their_capture_times()
{
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let manifest = democlip::write_clip_with(&democlip::manifest_with(3), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let central = common::Central::start(broker.port(), dir.path().join("central.sqlite"));
    // Long outages, so that events are recorded while the link is down on a slow or a fast
    // machine alike; then the link stays up for the replay.
    let script = Script::parse("up 2; blackhole 30; up 3; reset 25; up 600").unwrap();
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
    let config = common::write_config(
        dir.path(),
        "KZ-TEST-LOSS",
        clip.to_str().unwrap(),
        &format!("mqtt://{}", proxy.local_addr()),
    );

    let summary = common::run_device(&config, Duration::from_mins(2)).await;
    central.stop().await;

    let conditions: Vec<Condition> = proxy.transitions().iter().map(|t| t.condition).collect();
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
