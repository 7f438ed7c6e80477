//! Event payloads as the central receiver handles them (`crates/central/src/receiver.rs`): the
//! bytes of a publish on `<prefix>/<inventory>/events`, read as UTF-8 (lossily), parsed as a
//! [`Delivery`], stored, and reported on.
//!
//! Invariants: no panic; a payload that parses re-serialises to JSON that parses to the same
//! value with the same canonical hash (what the chain and the signatures cover); checking its
//! signature against a device key is an answer, not a panic; storing a parsed delivery never fails (a failure would stop the receiver), storing it
//! again is a duplicate, and it is then listed among its device's events; the report, the
//! violations and the camera gaps of the device can be read.
#![no_main]

use anpr_types::Delivery;
use chrono::Utc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(delivery) = serde_json::from_str::<Delivery>(&raw) else {
        return;
    };
    let text = serde_json::to_string(&delivery).expect("a parsed delivery serialises");
    let again: Delivery = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the re-serialised delivery does not parse ({e}): {text}"));
    assert_eq!(again, delivery, "a delivery changes on a round trip");
    assert_eq!(
        anpr_trust::event::event_hash(&again.event),
        anpr_trust::event::event_hash(&delivery.event),
        "the canonical hash changes on a round trip"
    );
    let device = anpr_trust::SigningKey::from_bytes(&[9; 32]).verifying_key();
    let _ = anpr_trust::event::verify_event(&delivery.event, &device);

    let mut scratch = anpr_fuzz::scratch();
    let rx = &mut scratch.receiver;
    let now = Utc::now();
    let new = rx
        .store(&delivery, now)
        .expect("storing a delivery that parsed succeeds");
    let duplicate = rx
        .store(&delivery, now)
        .expect("storing a delivery again succeeds");
    assert!(!duplicate, "the second copy is a duplicate");
    let inventory = &delivery.event.device.inventory;
    let events = rx.events_of(inventory).expect("events can be listed");
    if new {
        assert!(
            events
                .iter()
                .any(|d| d.event.event_id == delivery.event.event_id),
            "a new event is listed among its device's events"
        );
    }
    rx.violations_of(inventory)
        .expect("violations can be listed");
    rx.camera_gaps_of(inventory)
        .expect("camera gaps can be listed");
    rx.arrival_delays(inventory).expect("delays can be listed");
    for report in rx.report().expect("the report can be made") {
        let _ = report.to_string();
    }
});
