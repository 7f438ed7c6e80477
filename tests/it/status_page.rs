//! The device's status page and `/metrics`, served beside a real run on a generated clip (real
//! models, mosquitto, the reference receiver): scraped over plain HTTP and opened in headless
//! Chromium, and compared with the device's own counters, its queue and what the receiver
//! stored. Loopback only; every wait is bounded.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anpr_pipeline::status::CameraState;
use anpr_pipeline::{DeviceCounters, RunOptions};
use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_store::Store;
use anpr_testkit::Mosquitto;
use anpr_types::EventKind;

use crate::util;

/// A GET over a plain TCP connection: (status line, headers, body).
fn get(addr: SocketAddr, path: &str) -> (String, String, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let body = raw[split + 4..].to_vec();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let (status, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    (status.to_string(), headers.to_ascii_lowercase(), body)
}

async fn get_async(addr: SocketAddr, path: &'static str) -> (String, String, Vec<u8>) {
    tokio::task::spawn_blocking(move || get(addr, path))
        .await
        .unwrap()
}

/// `name{labels}` → value of every sample of an OpenMetrics text.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, headers, body) = get_async(addr, "/metrics").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        headers.contains("content-type: application/openmetrics-text"),
        "{headers}"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    samples(&text)
}

fn metric(m: &HashMap<String, f64>, key: &str) -> u64 {
    let v = m
        .get(key)
        .unwrap_or_else(|| panic!("{key} is not in the metrics: {:?}", m.keys()));
    *v as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_and_metrics_show_in_a_browser_and_a_scrape_what_the_device_holds() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let manifest = write_clip_with(&manifest_with(3), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    let inv = "KZ-TEST-STATUS";
    let config = util::write_config(dir.path(), inv, clip.to_str().unwrap(), &broker);
    let cfg = anpr_config::load(&config).unwrap();
    assert!(
        cfg.status.listen_addr().unwrap().ip().is_loopback(),
        "loopback by default"
    );

    // The device and its status server on a free loopback port, sharing its counters.
    let counters = Arc::new(DeviceCounters::default());
    let uplink = Arc::new(anpr_uplink::Counters::default());
    let server = anpr_status::StatusServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let status = server.spawn(anpr_status::Sources::new(
        &cfg,
        counters.clone(),
        uplink.clone(),
    ));
    let addr = status.addr;
    let queue = cfg.storage.queue.clone();
    let device = tokio::spawn(anpr_pipeline::run(
        cfg,
        RunOptions {
            drain_timeout: Duration::from_secs(30),
            delivered: None,
            counters: counters.clone(),
            uplink: uplink.clone(),
        },
    ));

    // (a) While it runs: a scrape lies between the device's figures read before and after it.
    assert!(
        util::wait_for(Duration::from_mins(2), || counters
            .events
            .load(Ordering::Relaxed)
            >= 1)
        .await,
        "a passage was recorded"
    );
    let cam = counters.cameras.get_or_add("cam1");
    let store = Store::open(&queue).unwrap();
    let read = || {
        (
            cam.frames_in.load(Ordering::Relaxed),
            counters.events.load(Ordering::Relaxed),
            uplink.acked.load(Ordering::Relaxed),
            store.stats().unwrap().last_seq,
        )
    };
    let before = read();
    let live = scrape(addr).await;
    let after = read();
    for (key, lo, hi) in [
        (
            r#"anpr_camera_frames_in_total{camera="cam1"}"#,
            before.0,
            after.0,
        ),
        ("anpr_events_recorded_total", before.1, after.1),
        ("anpr_uplink_events_acked_total", before.2, after.2),
        ("anpr_queue_events_accepted_total", before.3, after.3),
    ] {
        let v = metric(&live, key);
        assert!(
            (lo..=hi).contains(&v),
            "{key} = {v}, not within {lo}..={hi}"
        );
    }

    let summary = device.await.unwrap().unwrap();
    assert!(
        summary.camera_errors.is_empty(),
        "{:?}",
        summary.camera_errors
    );
    central.stop().await;

    // A fault that holds, one that came and went, both raised through the device's board.
    uplink
        .faults
        .set("status-test", "cam1", "raised by the test <b>&</b>");
    uplink
        .faults
        .set("status-test-gone", "cam1", "came for a moment");
    assert!(
        uplink
            .faults
            .clear("status-test-gone", "cam1", "went again")
    );

    // (b) After the run, with the server still up: the figures equal the device's.
    let m = scrape(addr).await;
    let stats = store.stats().unwrap();
    assert_eq!(
        metric(&m, r#"anpr_camera_frames_in_total{camera="cam1"}"#),
        cam.frames_in.load(Ordering::Relaxed)
    );
    assert_eq!(
        cam.frames_in.load(Ordering::Relaxed),
        manifest.frames,
        "every frame of the file came in"
    );
    assert_eq!(
        metric(&m, r#"anpr_camera_frames_recognised_total{camera="cam1"}"#),
        cam.frames_recognised.load(Ordering::Relaxed)
    );
    assert_eq!(
        cam.frames_recognised.load(Ordering::Relaxed),
        summary.frames,
        "one camera: its recognised frames are the device's"
    );
    assert_eq!(
        metric(
            &m,
            r#"anpr_stage_latency_seconds_count{camera="cam1",stage="recognise"}"#
        ),
        summary.frames,
        "each recognised frame timed once"
    );
    assert_eq!(
        metric(
            &m,
            r#"anpr_stage_latency_seconds_count{camera="cam1",stage="wait"}"#
        ),
        manifest.frames,
        "each frame handed over timed once"
    );
    assert_eq!(
        metric(&m, r#"anpr_camera_frames_dropped_total{camera="cam1"}"#),
        cam.frames_dropped.load(Ordering::Relaxed)
    );
    assert_eq!(cam.state().state, CameraState::Ended);
    assert_eq!(
        metric(&m, r#"anpr_camera_state{camera="cam1",state="ended"}"#),
        1
    );
    assert_eq!(
        metric(&m, r#"anpr_camera_state{camera="cam1",state="live"}"#),
        0
    );
    assert_eq!(metric(&m, "anpr_frames_recognised_total"), summary.frames);
    assert_eq!(metric(&m, "anpr_events_recorded_total"), summary.events);
    assert_eq!(
        metric(&m, "anpr_events_recorded_total"),
        counters.events.load(Ordering::Relaxed)
    );
    assert_eq!(
        metric(
            &m,
            "anpr_stage_latency_seconds_count{camera=\"cam1\",stage=\"record\"}"
        ),
        summary.events,
        "each passage recorded timed once (no violations here)"
    );
    assert_eq!(
        metric(&m, "anpr_uplink_events_acked_total"),
        uplink.acked.load(Ordering::Relaxed)
    );
    assert_eq!(metric(&m, "anpr_queue_up"), 1);
    assert_eq!(metric(&m, "anpr_queue_pending_events"), stats.pending);
    assert_eq!(
        metric(&m, "anpr_queue_pending_evidence"),
        store.pending_evidence_count().unwrap()
    );
    assert_eq!(
        metric(&m, "anpr_queue_events_accepted_total"),
        stats.last_seq
    );
    assert_eq!(
        metric(&m, "anpr_queue_events_delivered_total"),
        stats.delivered + store.pruned().unwrap()
    );
    assert_eq!(
        metric(&m, r#"anpr_queue_events_dropped_total{kind="passage"}"#),
        store.drops().unwrap().passages
    );
    assert_eq!(
        metric(&m, "anpr_queue_oldest_pending_age_seconds") == 0,
        store.oldest_pending().unwrap().is_none()
    );
    assert_eq!(metric(&m, r#"anpr_faults_active{code="status-test"}"#), 1);
    assert!(!m.contains_key(r#"anpr_faults_active{code="status-test-gone"}"#));

    // (c) The page in a real browser shows the same.
    let dom = util::chromium_dom(status.url.clone()).await;
    assert!(
        dom.contains(r#"data-camera="cam1">ended</span>"#),
        "camera cam1 and its state: {dom}"
    );
    assert!(
        dom.contains(r#"<img src="/camera/cam1/snapshot.jpg""#),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(
            r#"<td id="backlog-events">{}</td>"#,
            stats.pending
        )),
        "backlog figure: {dom}"
    );
    assert!(
        dom.contains(&format!(
            r#"<td id="delivered">{}</td>"#,
            stats.delivered + store.pruned().unwrap()
        )),
        "{dom}"
    );
    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let stored = receiver.events_of(inv).unwrap();
    assert_eq!(stored.len(), manifest.vehicles.len(), "{stored:#?}");
    for d in &stored {
        let e = &d.event;
        assert_eq!(e.kind, EventKind::Passage);
        assert!(
            dom.contains(&format!(
                r#"<tr class="event passage" data-seq="{}">"#,
                e.seq
            )),
            "row of event {}: {dom}",
            e.seq
        );
        assert!(
            dom.contains(&format!(r#"<td class="plate">{}</td>"#, e.plate.text)),
            "plate {} on the page: {dom}",
            e.plate.text
        );
        // The crop shown is the plate image the receiver stored for that event.
        let (status_line, headers, crop) = get(addr, &format!("/event/{}/plate.jpg", e.seq));
        assert!(status_line.contains(" 200 "), "{status_line}");
        assert!(headers.contains("content-type: image/jpeg"), "{headers}");
        let stored_crop = receiver.image(e.event_id, "plate").unwrap().unwrap();
        assert_eq!(
            anpr_store::sha256_hex(&crop),
            anpr_store::sha256_hex(&stored_crop),
            "plate crop of {}",
            e.plate.text
        );
    }
    assert!(
        dom.contains(r#"<tr class="fault" data-code="status-test">"#),
        "the fault now: {dom}"
    );
    assert!(
        dom.contains("raised by the test &lt;b&gt;&amp;&lt;/b&gt;"),
        "its message, as text: {dom}"
    );
    assert!(!dom.contains("<b>&amp;</b>"), "no markup from a message");
    assert!(
        !dom.contains(r#"<tr class="fault" data-code="status-test-gone">"#),
        "a cleared fault is not listed as present"
    );
    let history = &dom[dom.find(r#"id="fault-history""#).expect("a fault history")..];
    for (code, what, message) in [
        ("status-test", "raised", "raised by the test"),
        ("status-test-gone", "raised", "came for a moment"),
        ("status-test-gone", "cleared", "went again"),
    ] {
        let row = history.split(r#"<tr class="change""#).find(|r| {
            r.contains(&format!(r#"data-code="{code}""#))
                && r.contains(&format!(">{what}<"))
                && r.contains(message)
        });
        assert!(row.is_some(), "{what} {code} in the history: {history}");
    }

    // The snapshot is a JPEG of the camera; an unknown camera has none.
    let (status_line, _, jpeg) = get(addr, "/camera/cam1/snapshot.jpg");
    assert!(status_line.contains(" 200 "), "{status_line}");
    assert!(image::load_from_memory(&jpeg).is_ok());
    let (status_line, _, _) = get(addr, "/camera/nope/snapshot.jpg");
    assert!(status_line.contains(" 404 "), "{status_line}");
    drop(status);
}
