//! Acknowledgement payloads as the device handles them on `<prefix>/<inventory>/ack`: parsed
//! (`serde_json::from_slice::<Ack>`, `crates/uplink/src/session.rs`) and checked against the
//! central receiver's key (`anpr_trust::ack::verify_ack`).
//!
//! Invariants: no panic; an ack that parses re-serialises to JSON that parses to the same
//! value; one that verifies names this device, carries a hash, and still verifies after the
//! round trip. The key is a fixed test key (seed 7s), so that the seed corpus can hold an ack
//! it really signed and the fuzzer explores both outcomes.
#![no_main]

use anpr_trust::SigningKey;
use anpr_trust::ack::verify_ack;
use anpr_types::Ack;
use libfuzzer_sys::fuzz_target;

const INVENTORY: &str = "KZ-ICD-0001";

fuzz_target!(|data: &[u8]| {
    let Ok(ack) = serde_json::from_slice::<Ack>(data) else {
        return;
    };
    let bytes = serde_json::to_vec(&ack).expect("a parsed ack serialises");
    let again: Ack = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "the re-serialised ack does not parse ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(again, ack, "an ack changes on a round trip");
    let central = SigningKey::from_bytes(&[7; 32]).verifying_key();
    match verify_ack(&ack, INVENTORY, &central) {
        Ok(()) => {
            assert_eq!(ack.inventory, INVENTORY);
            assert!(!ack.sha256.is_empty());
            assert!(verify_ack(&again, INVENTORY, &central).is_ok());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
