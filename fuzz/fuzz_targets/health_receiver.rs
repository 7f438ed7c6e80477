//! Health messages as the central receiver handles them: the inventory taken from the topic
//! (here the input's first line) and the payload read as UTF-8 (lossily), kept by
//! `Receiver::store_health`.
//!
//! Invariants: no panic; keeping a health message never fails (a failure would stop the
//! receiver); a payload that parses as [`Health`] re-serialises to the same value; what was
//! kept can be read back and reported on.
#![no_main]

use anpr_types::Health;
use chrono::Utc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(0);
    let (topic_part, payload) = data.split_at(split);
    // A topic level holds no `/`, `+` or `#` and is UTF-8 (MQTT requires it).
    let Ok(inventory) = std::str::from_utf8(topic_part) else {
        return;
    };
    if inventory.contains(['/', '+', '#']) {
        return;
    }
    let raw = String::from_utf8_lossy(payload.strip_prefix(b"\n").unwrap_or(payload));
    if let Ok(health) = serde_json::from_str::<Health>(&raw) {
        let text = serde_json::to_string(&health).expect("a parsed health message serialises");
        let again: Health = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("the re-serialised health message does not parse ({e}): {text}")
        });
        assert_eq!(again, health, "a health message changes on a round trip");
    }
    let mut scratch = anpr_fuzz::scratch();
    let rx = &mut scratch.receiver;
    rx.store_health(inventory, &raw, Utc::now())
        .expect("keeping a health message succeeds");
    rx.health(inventory).expect("the health can be read");
    rx.status(inventory).expect("the status can be read");
    rx.faults(inventory).expect("the faults can be read");
    for report in rx.report().expect("the report can be made") {
        let _ = report.to_string();
    }
});
