//! Unit tests of the metrics encoding and the page, on a snapshot made by hand.
// The figures compared are whole numbers written out and parsed back: exact on purpose.
#![allow(clippy::float_cmp)]

use std::sync::Arc;

use anpr_pipeline::status::{CameraState, LatencyHistogram, RecentEvent, Stage, StateNow};
use anpr_store::{OldestPending, QueueStats};
use anpr_types::{Drops, EventKind, Fault};
use anpr_uplink::FaultRecord;
use chrono::{Duration, Utc};

use crate::snapshot::{CameraFigures, DeviceFigures, LinkFigures, QueueFigures, Snapshot};
use crate::{encode_metrics, escape, render_page};

fn camera(id: &str, state: CameraState) -> CameraFigures {
    let recognise = LatencyHistogram::default();
    for ms in [3, 40, 40] {
        recognise.observe(std::time::Duration::from_millis(ms));
    }
    CameraFigures {
        id: id.to_string(),
        state: StateNow {
            state,
            since: Utc::now(),
            detail: "refused <again>".into(),
        },
        frames_in: 120,
        frames_recognised: 30,
        frames_dropped: 2,
        reconnects: 1,
        fps: 24.5,
        last_frame: Some(Utc::now() - Duration::seconds(3)),
        has_snapshot: true,
        latency: Stage::ALL
            .iter()
            .map(|s| {
                let h = if *s == Stage::Recognise {
                    recognise.snapshot()
                } else {
                    LatencyHistogram::default().snapshot()
                };
                (*s, h)
            })
            .collect(),
    }
}

#[test]
fn a_mobile_unit_shows_its_gnss_fix_on_the_page_and_in_the_metrics() {
    let mut snap = snapshot();
    assert!(
        !render_page(&snap).contains("id=\"gnss\""),
        "stationary: no GNSS"
    );
    snap.gnss = Some(anpr_pipeline::GnssView {
        source: "gpsd 127.0.0.1:2947".into(),
        fix: "3d",
        satellites: Some(9),
        hdop: Some(0.8),
        last_fix_at: Some(snap.taken_at),
        fix_age_s: Some(0.4),
        lat: Some(51.128),
        lon: Some(71.4304),
        malformed: 2,
        disconnects: 1,
    });
    let page = render_page(&snap);
    assert!(page.contains("id=\"gnss-fix\" class=\"ok\">3d<"), "{page}");
    assert!(page.contains("id=\"gnss-satellites\">9 / 0.8<"), "{page}");
    let metrics = encode_metrics(snap).unwrap();
    assert!(metrics.contains("anpr_gnss_fix 3"), "{metrics}");
    assert!(metrics.contains("anpr_gnss_satellites 9"), "{metrics}");
}

fn snapshot() -> Snapshot {
    let now = Utc::now();
    Snapshot {
        taken_at: now,
        inventory: "KZ-<b>1</b>".into(),
        site: "A2 & km 12".into(),
        time_zone: anpr_config::Tz::Asia__Almaty,
        cameras: vec![camera("cam1", CameraState::Live)],
        device: DeviceFigures {
            frames_recognised: 30,
            plate_reads: 12,
            plates_confirmed: 9,
            events: 5,
            violations: 1,
            ..DeviceFigures::default()
        },
        link: LinkFigures {
            connected: true,
            broker: "10.0.0.2:8883".into(),
            published: 6,
            acked: 4,
            bad_acks: 3,
            ..LinkFigures::default()
        },
        queue: Ok(QueueFigures {
            stats: QueueStats {
                total: 9,
                pending: 4,
                delivered: 5,
                last_seq: 11,
            },
            pending_evidence: 7,
            oldest_pending: Some(OldestPending {
                seq: 8,
                captured_at: now - Duration::seconds(90),
            }),
            drops: Drops {
                passages: 2,
                ..Drops::default()
            },
            pruned: 3,
            bytes_used: 1 << 20,
        }),
        quota_bytes: Some(64 << 20),
        faults: vec![
            Fault::new("clock-jump", "the clock stepped"),
            Fault {
                code: "camera".into(),
                message: "cam1 <script>alert(1)</script>".into(),
                subject: Some("cam1".into()),
                since: Some(now),
            },
            Fault::new("clock-jump", "again"),
        ],
        history: vec![FaultRecord {
            at: now,
            code: "camera".into(),
            subject: Some("cam1".into()),
            message: "cam1 \"down\"".into(),
            raised: true,
        }],
        recent: vec![RecentEvent {
            seq: 11,
            event_id: uuid::Uuid::now_v7(),
            kind: EventKind::Violation,
            camera: "cam1".into(),
            captured_at: now,
            plate: "123<ABC>01".into(),
            plate_status: "read",
            vehicle: "car".into(),
            direction: Some("towards".into()),
            rule: Some(("wanted".into(), "stolen & 'hot'".into())),
            plate_jpeg: Some(Arc::new(vec![0xff, 0xd8])),
        }],
        gnss: None,
    }
}

/// `name{labels}` → value of every sample.
fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn every_figure_of_a_snapshot_is_encoded_with_its_labels() {
    let text = encode_metrics(snapshot()).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = samples(&text);
    let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("{k} missing in\n{text}"));
    assert_eq!(get(r#"anpr_camera_frames_in_total{camera="cam1"}"#), 120.0);
    assert_eq!(
        get(r#"anpr_camera_frames_recognised_total{camera="cam1"}"#),
        30.0
    );
    assert_eq!(
        get(r#"anpr_camera_frames_dropped_total{camera="cam1"}"#),
        2.0
    );
    assert_eq!(get(r#"anpr_camera_reconnects_total{camera="cam1"}"#), 1.0);
    assert_eq!(get(r#"anpr_camera_fps{camera="cam1"}"#), 24.5);
    let age = get(r#"anpr_camera_last_frame_age_seconds{camera="cam1"}"#);
    assert!((2.9..=3.1).contains(&age), "{age}");
    assert_eq!(get(r#"anpr_camera_state{camera="cam1",state="live"}"#), 1.0);
    assert_eq!(
        get(r#"anpr_camera_state{camera="cam1",state="reconnecting"}"#),
        0.0
    );
    let bucket = |le: &str| {
        get(&format!(
            r#"anpr_stage_latency_seconds_bucket{{le="{le}",camera="cam1",stage="recognise"}}"#
        ))
    };
    assert_eq!(bucket("0.0025"), 0.0);
    assert_eq!(bucket("0.005"), 1.0);
    assert_eq!(bucket("0.05"), 3.0, "buckets are cumulative");
    assert_eq!(bucket("+Inf"), 3.0);
    assert_eq!(
        get(r#"anpr_stage_latency_seconds_count{camera="cam1",stage="recognise"}"#),
        3.0
    );
    let sum = get(r#"anpr_stage_latency_seconds_sum{camera="cam1",stage="recognise"}"#);
    assert!((sum - 0.083).abs() < 1e-9, "{sum}");
    assert_eq!(
        get(r#"anpr_stage_latency_seconds_count{camera="cam1",stage="wait"}"#),
        0.0
    );
    assert_eq!(get("anpr_plate_reads_total"), 12.0);
    assert_eq!(get("anpr_plates_confirmed_total"), 9.0);
    assert_eq!(get("anpr_events_recorded_total"), 5.0);
    assert_eq!(get("anpr_violations_recorded_total"), 1.0);
    assert_eq!(get("anpr_uplink_connected"), 1.0);
    assert_eq!(get("anpr_uplink_events_acked_total"), 4.0);
    assert_eq!(get("anpr_uplink_bad_acks_total"), 3.0);
    assert_eq!(get("anpr_queue_up"), 1.0);
    assert_eq!(get("anpr_queue_pending_events"), 4.0);
    assert_eq!(get("anpr_queue_pending_evidence"), 7.0);
    assert_eq!(get("anpr_queue_events_accepted_total"), 11.0);
    assert_eq!(
        get("anpr_queue_events_delivered_total"),
        8.0,
        "present and pruned"
    );
    assert_eq!(
        get(r#"anpr_queue_events_dropped_total{kind="passage"}"#),
        2.0
    );
    assert_eq!(
        get(r#"anpr_queue_evidence_dropped_total{kind="violation"}"#),
        0.0
    );
    let oldest = get("anpr_queue_oldest_pending_age_seconds");
    assert!((89.9..=90.1).contains(&oldest), "{oldest}");
    assert_eq!(get("anpr_queue_bytes"), f64::from(1 << 20));
    assert_eq!(get("anpr_queue_quota_bytes"), f64::from(64 << 20));
    assert_eq!(get(r#"anpr_faults_active{code="clock-jump"}"#), 2.0);
    assert_eq!(get(r#"anpr_faults_active{code="camera"}"#), 1.0);
    assert!(text.contains("# TYPE anpr_stage_latency_seconds histogram"));
    assert!(text.contains("# TYPE anpr_camera_frames_in counter"));
}

#[test]
fn a_queue_that_cannot_be_read_is_reported_and_the_rest_still_encoded() {
    let mut snap = snapshot();
    snap.queue = Err("disk I/O error".into());
    snap.cameras[0].last_frame = None;
    let text = encode_metrics(snap).unwrap();
    let s = samples(&text);
    assert_eq!(s["anpr_queue_up"], 0.0);
    assert!(!s.contains_key("anpr_queue_pending_events"));
    assert!(
        !s.keys()
            .any(|k| k.starts_with("anpr_camera_last_frame_age_seconds{")),
        "no age before the first frame"
    );
    assert_eq!(s[r#"anpr_camera_frames_in_total{camera="cam1"}"#], 120.0);
}

#[test]
fn label_values_are_escaped_in_the_exposition() {
    let mut snap = snapshot();
    snap.cameras = vec![camera("gate \"north\"\\1", CameraState::Reconnecting)];
    let text = encode_metrics(snap).unwrap();
    assert!(
        text.contains(r#"anpr_camera_frames_in_total{camera="gate \"north\"\\1"} 120"#),
        "{text}"
    );
}

#[test]
fn escape_replaces_every_character_html_gives_a_meaning() {
    assert_eq!(
        escape(r#"<a href="x" title='y'>&amp;</a>"#),
        "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
    );
    assert_eq!(escape("123ABC01 Алматы"), "123ABC01 Алматы");
}

#[test]
fn the_page_escapes_every_value_from_the_device() {
    let html = render_page(&snapshot());
    for raw in [
        "<b>1</b>",
        "<script>",
        "<ABC>",
        "refused <again>",
        "cam1 \"down\"",
        "'hot'",
        "A2 & km",
    ] {
        assert!(!html.contains(raw), "{raw} left unescaped");
    }
    for escaped in [
        "KZ-&lt;b&gt;1&lt;/b&gt;",
        "cam1 &lt;script&gt;alert(1)&lt;/script&gt;",
        "123&lt;ABC&gt;01",
        "refused &lt;again&gt;",
        "cam1 &quot;down&quot;",
        "stolen &amp; &#39;hot&#39;",
        "A2 &amp; km 12",
    ] {
        assert!(html.contains(escaped), "{escaped} missing");
    }
    assert!(!html.contains("<script"), "no script at all");
}

#[test]
fn the_page_shows_cameras_backlog_recent_events_and_faults() {
    let html = render_page(&snapshot());
    assert!(html.contains(r#"<meta http-equiv="refresh" content="5">"#));
    assert!(html.contains(r#"<span class="state ok" data-camera="cam1">live</span>"#));
    assert!(html.contains(r#"<img src="/camera/cam1/snapshot.jpg""#));
    assert!(html.contains(r#"<td id="link-state" class="ok">connected</td>"#));
    assert!(html.contains(r#"<td id="link-broker">10.0.0.2:8883</td>"#));
    assert!(
        html.contains(r#"<td id="bad-acks" class="bad">3</td>"#),
        "refused acknowledgements shown, marked bad: {html}"
    );
    assert!(html.contains(r#"<td id="backlog-events">4</td>"#));
    assert!(html.contains(r#"<td id="backlog-evidence">7</td>"#));
    assert!(html.contains(r#"<td id="backlog-oldest">#8 captured "#));
    assert!(html.contains("(1 min 30 s ago)"), "{html}");
    assert!(html.contains(r#"<td id="delivered">8</td>"#));
    assert!(html.contains(r#"<tr class="event violation" data-seq="11">"#));
    assert!(html.contains(r#"src="/event/11/plate.jpg""#));
    assert!(html.contains(r#"<tr class="fault" data-code="camera">"#));
    assert!(html.contains(r#"<tr class="change" data-code="camera">"#));
    assert!(html.contains("95% within 50 ms (3 timed)"), "{html}");
    // Almaty's local time, with its zone.
    assert!(html.contains("+05"), "{html}");
}

#[test]
fn no_refused_acknowledgement_is_shown_as_zero_and_not_marked_bad() {
    let mut snap = snapshot();
    snap.link.bad_acks = 0;
    assert!(render_page(&snap).contains(r#"<td id="bad-acks">0</td>"#));
    let s = samples(&encode_metrics(snap).unwrap());
    assert_eq!(s["anpr_uplink_bad_acks_total"], 0.0);
}

#[test]
fn a_camera_id_is_percent_encoded_in_urls() {
    let mut snap = snapshot();
    snap.cameras = vec![camera("gate 1/north?", CameraState::Frozen)];
    let html = render_page(&snap);
    assert!(
        html.contains(r#"src="/camera/gate%201%2Fnorth%3F/snapshot.jpg""#),
        "{html}"
    );
    assert!(html.contains(r#"<span class="state bad" data-camera="gate 1/north?">frozen</span>"#));
}
