//! Property tests of what the receiver reads from devices: event payloads (a [`Delivery`] as
//! JSON, read lossily as UTF-8 the way `receiver.rs` does, then stored and reported on) and
//! health messages (`Receiver::store_health`). The same parsers have cargo-fuzz targets (`fuzz/fuzz_targets/event_receiver.rs`,
//! `health_receiver.rs`); these run a bounded number of cases in every `cargo test`.
//!
//! Invariants: a payload that parses re-serialises to JSON that parses to the same value;
//! storing what parsed never fails (a failure would stop the receiver) and a second copy is a
//! duplicate; the report can always be made; any other payload is refused without a panic.
//!
//! Topics (`anpr_central::topic::parse`, fuzzed by `fuzz/fuzz_targets/receiver_topic.rs`):
//! any string is parsed or refused without a panic; what parses is exactly the topic a device
//! builds with `anpr_types::Topics` from what was parsed; a topic built from valid parts parses
//! back to them; the reason of a refusal holds no control character.

use std::path::Path;

use anpr_central::Receiver;
use anpr_central::topic::{self, TopicKind};
use anpr_types::{Delivery, Health, Topics};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Value, json};

/// `cases` cases from a fixed seed unless `PROPTEST_RNG_SEED` gives one, so that a run in CI
/// is repeatable.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0xCE_27AA);
    }
    config
}

/// A passage as a device sends it.
fn passage() -> Value {
    json!({
        "schema": "anpr.event/1",
        "event_id": "01a22a28-1c6d-76c4-9042-0daaead2d583",
        "seq": 5,
        "device": {"inventory": "KZ-ICD-0001", "profile": "stationary", "site": "s1"},
        "camera": "cam1",
        "kind": "passage",
        "captured_at": "2026-11-30T01:52:55.616417376Z",
        "clock": {"source": "ntp", "synced": true},
        "position": {"lat": 43.238, "lon": 76.945},
        "vehicle": {"class": "truck", "confidence": 0.9, "box": [1, 2, 3, 4]},
        "plate": {"text": "777KZA02", "confidence": 0.9, "detection_confidence": 0.5,
                  "box": [1, 2, 3, 4], "country": "KZ", "status": "read"},
        "frame": {"index": 168, "width": 1280, "height": 720},
        "sent_at": "2026-11-30T01:52:56.1Z",
        "delayed": false
    })
}

fn receiver() -> Receiver {
    Receiver::open(Path::new(":memory:")).expect("an in-memory receiver opens")
}

/// Handles `bytes` as the receiver handles a publish on an events topic, and checks the
/// invariants; returns whether they parsed.
fn receive(rx: &mut Receiver, bytes: &[u8]) -> Result<bool, TestCaseError> {
    let raw = String::from_utf8_lossy(bytes);
    let Ok(d) = serde_json::from_str::<Delivery>(&raw) else {
        return Ok(false);
    };
    let text = serde_json::to_string(&d).expect("a delivery serialises");
    let again: Delivery = serde_json::from_str(&text).map_err(|e| {
        TestCaseError::fail(format!("re-serialised, it does not parse: {e}: {text}"))
    })?;
    prop_assert_eq!(&again, &d);
    let now = Utc::now();
    let new = rx.store(&d, now).expect("a delivery that parsed is stored");
    prop_assert!(
        !rx.store(&d, now).expect("stored again"),
        "a second copy is a duplicate"
    );
    if new {
        let listed = rx
            .events_of(&d.event.device.inventory)
            .expect("events listed");
        prop_assert!(listed.iter().any(|e| e.event.event_id == d.event.event_id));
    }
    for report in rx.report().expect("the report is made") {
        let _ = report.to_string();
    }
    Ok(true)
}

/// A time chrono can hold, from far past to far future.
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range")),
        (-8_334_601_228_800i64..8_210_266_876_799)
            .prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range")),
    ]
}

prop_compose! {
    /// A passage with its identifying fields, texts, numbers and times drawn at random.
    fn delivery()(
        seq in prop_oneof![
            0u64..100,
            any::<u64>(),
            (i64::MAX as u64 - 2)..=(i64::MAX as u64 + 2),
            Just(u64::MAX),
        ],
        id in any::<u128>(),
        inventory in prop_oneof![Just("KZ-ICD-0001".to_string()), "\\PC{0,16}"],
        plate in "\\PC{0,12}",
        confidence in prop_oneof![0f32..=1.0, any::<f32>().prop_filter("finite", |f| f.is_finite())],
        lat in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        captured in time(),
        sent in time(),
        kind in prop_oneof![Just("passage"), Just("violation"), Just("camera_gap")],
        delayed in any::<bool>(),
    ) -> Value {
        let mut v = passage();
        v["seq"] = json!(seq);
        v["event_id"] = json!(uuid::Uuid::from_u128(id));
        v["device"]["inventory"] = json!(inventory);
        v["plate"]["text"] = json!(plate);
        v["plate"]["confidence"] = json!(confidence);
        v["position"]["lat"] = json!(lat);
        v["captured_at"] = json!(captured);
        v["sent_at"] = json!(sent);
        v["kind"] = json!(kind);
        v["delayed"] = json!(delayed);
        v
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn any_bytes_on_an_events_topic_are_stored_or_refused_never_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut rx = receiver();
        prop_assert!(!receive(&mut rx, &bytes)?, "random bytes are no delivery");
    }

    #[test]
    fn a_delivery_with_one_field_replaced_by_any_json_is_stored_or_refused(
        path in prop_oneof![
            Just(&["seq"][..]), Just(&["event_id"][..]), Just(&["captured_at"][..]),
            Just(&["kind"][..]), Just(&["device", "inventory"][..]), Just(&["plate", "box"][..]),
            Just(&["plate", "confidence"][..]), Just(&["vehicle", "box"][..]),
            Just(&["frame", "index"][..]), Just(&["evidence"][..]), Just(&["gap"][..]),
            Just(&["violation"][..]), Just(&["track"][..]), Just(&["prev_hash"][..]),
        ],
        value in prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            "\\PC{0,20}".prop_map(|s| json!(s)),
            Just(json!(null)),
            Just(json!([])),
            Just(json!({})),
            Just(json!([1, 2, 3, 4])),
            Just(json!("+262142-12-31T23:59:59Z")),
        ],
    ) {
        let mut v = passage();
        let (last, parents) = path.split_last().expect("a path");
        let mut at = &mut v;
        for p in parents {
            at = &mut at[*p];
        }
        at[*last] = value;
        let mut rx = receiver();
        receive(&mut rx, &serde_json::to_vec(&v).expect("json"))?;
    }

    #[test]
    fn generated_deliveries_round_trip_and_are_stored_and_reported(
        deliveries in proptest::collection::vec(delivery(), 1..4),
    ) {
        let mut rx = receiver();
        for d in &deliveries {
            let parsed = receive(&mut rx, &serde_json::to_vec(d).expect("json"))?;
            prop_assert!(parsed, "a generated delivery parses: {}", d);
        }
    }

    #[test]
    fn any_health_payload_is_kept_or_left_out_never_a_failure(
        inventory in "[^/+#]{0,16}",
        payload in prop_oneof![
            "\\PC{0,200}",
            (any::<u64>(), "\\PC{0,12}", time()).prop_map(|(n, s, at)| json!({
                "schema": "anpr.health/1", "status": s, "inventory": "KZ-ICD-0001", "at": at,
                "queue": {"pending_events": n, "pending_evidence": n, "bytes_used": n, "quota_bytes": n},
                "dropped": {"passages": n, "violations": 0, "passage_evidence": n, "violation_evidence": 0},
                "clock_jumps": n, "faults": [{"code": s, "message": s}]
            }).to_string()),
        ],
    ) {
        if let Ok(h) = serde_json::from_str::<Health>(&payload) {
            let text = serde_json::to_string(&h).expect("health serialises");
            prop_assert_eq!(serde_json::from_str::<Health>(&text).expect("parses again"), h);
        }
        let mut rx = receiver();
        rx.store_health(&inventory, &payload, Utc::now()).expect("health kept or left out");
        rx.health(&inventory).expect("health read");
        rx.status(&inventory).expect("status read");
        rx.report().expect("the report is made");
    }
}

/// The topic a device builds for what `t` says it carries.
fn rebuilt(prefix: &str, t: &topic::Topic<'_>) -> String {
    let topics = Topics::new(prefix, t.inventory);
    match t.kind {
        TopicKind::Events => topics.events(),
        TopicKind::Health => topics.health(),
        TopicKind::Evidence { event_id, kind } => topics.evidence(event_id, kind),
    }
}

/// A topic: mostly near the real shape (a valid or broken prefix, inventory, kind and
/// evidence levels), sometimes any text.
fn topic_text() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        4 => Just("anpr/v1".to_string()),
        1 => "[a-z/$+#]{0,10}",
    ];
    let inventory = prop_oneof![
        3 => "[A-Za-z0-9._-]{1,70}",
        1 => "\\PC{0,12}",
        1 => Just(String::new()),
    ];
    let kind = prop_oneof![
        Just("events".to_string()),
        Just("health".to_string()),
        Just("ack".to_string()),
        any::<u128>().prop_map(|id| format!("evidence/{}/overview", uuid::Uuid::from_u128(id))),
        (any::<u128>(), "[a-zA-Z0-9_/-]{0,40}")
            .prop_map(|(id, k)| format!("evidence/{}/{k}", uuid::Uuid::from_u128(id))),
        "[a-z]{0,8}(/[a-z0-9-]{0,40}){0,3}",
    ];
    prop_oneof![
        6 => (prefix, inventory, kind).prop_map(|(p, i, k)| format!("{p}/{i}/{k}")),
        1 => "\\PC{0,80}",
        1 => "[a-z/]{0,30}",
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_topic_is_parsed_to_what_a_device_would_build_or_refused_never_a_panic(
        text in topic_text(),
    ) {
        match topic::parse("anpr/v1", &text) {
            Ok(t) => {
                prop_assert!(anpr_trust::valid_inventory(t.inventory), "{:?}", t);
                prop_assert_eq!(rebuilt("anpr/v1", &t), text.clone());
            }
            Err(e) => {
                let why = e.to_string();
                prop_assert!(!why.chars().any(char::is_control), "{:?}", why);
                prop_assert!(why.len() < 1000, "{:?}", why);
            }
        }
        let level = topic::inventory_level("anpr/v1", &text);
        prop_assert!(level.len() <= 64);
    }

    #[test]
    fn a_topic_built_from_valid_parts_parses_back_to_them(
        prefix in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
        inventory in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}",
        id in any::<u128>(),
        image in "[a-z0-9_-]{1,32}",
    ) {
        prop_assert!(Topics::prefix_problem(&prefix).is_none());
        let topics = Topics::new(&prefix, &inventory);
        let event_id = uuid::Uuid::from_u128(id);
        for (text, kind) in [
            (topics.events(), TopicKind::Events),
            (topics.health(), TopicKind::Health),
            (topics.evidence(event_id, &image), TopicKind::Evidence { event_id, kind: &image }),
        ] {
            let t = topic::parse(&prefix, &text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(t.inventory, inventory.as_str());
            prop_assert_eq!(t.kind, kind);
        }
        // The device's other topics are not the receiver's.
        prop_assert!(topic::parse(&prefix, &topics.ack()).is_err());
        prop_assert!(topic::parse(&prefix, &topics.cmd()).is_err());
    }
}
