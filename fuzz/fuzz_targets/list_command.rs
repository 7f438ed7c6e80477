//! Command payloads on `<prefix>/<inventory>/cmd`: plate-list updates as the device applies
//! them (`Lists::apply`, which `crates/pipeline/src/commands.rs` calls through
//! `apply_and_keep`; the same checks without the file written).
//!
//! The lists trust the central key [`central`] for the device [`INVENTORY`]; the seeds in
//! `fuzz/corpus/list_command` are signed with it, so mutations of them reach every check.
//!
//! Invariants: no panic; a command that parses re-serialises to JSON that parses to the same
//! value; an accepted update is the list in force, with its version and entry count, and its
//! signature verifies; a refused one leaves the list in force unchanged and still makes a
//! fault. Since random bytes rarely carry a valid signature and the right SHA-256, each command
//! that parses is also sent again with its checksum corrected and signed afresh, so that its
//! CSV is checked too: that one is never refused for its signature or checksum. Signed for
//! another device, or by another key, it is always refused for its signature.
#![no_main]

use anpr_rules::{ListCommand, ListUpdateError, Lists};
use anpr_trust::SigningKey;
use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;

/// The device the commands are for.
const INVENTORY: &str = "KZ-FUZZ";

/// The central key the lists trust (the seeds are signed with it).
fn central() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn declared() -> Lists {
    let mut lists = Lists::new(Tz::Asia__Almaty, INVENTORY, central().verifying_key());
    lists.declare("wanted", 2);
    lists.declare("tolls", 5);
    lists
}

/// Applies `payload`, checking what the lists in force look like afterwards.
fn apply(lists: &Lists, payload: &[u8]) -> Result<(), ListUpdateError> {
    let before = lists.versions();
    match lists.apply(payload) {
        Ok(done) => {
            let cmd = ListCommand::parse(payload).expect("an accepted command parses");
            cmd.verify_signature(INVENTORY, &central().verifying_key())
                .expect("an accepted command is signed by the central key");
            let list = lists.get(&done.name).expect("an accepted list is in force");
            assert_eq!(list.version(), done.version, "the version put in force");
            assert_eq!(list.len(), done.entries, "the entries put in force");
            assert!(
                done.version > done.previous,
                "only newer versions are taken"
            );
            Ok(())
        }
        Err(e) => {
            assert_eq!(lists.versions(), before, "a refused update changes nothing");
            let fault = e.fault();
            assert!(!fault.message.is_empty());
            Err(e)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let lists = declared();
    let _ = apply(&lists, data);
    let Ok(cmd) = ListCommand::parse(data) else {
        return;
    };
    let json = cmd.to_json();
    let again = ListCommand::parse(&json).unwrap_or_else(|e| {
        panic!(
            "the re-serialised command does not parse ({e}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(again, cmd, "a command changes on a round trip");
    let sealed = ListCommand::signed(&cmd.name, cmd.version, &cmd.csv, INVENTORY, &central());
    let fresh = declared();
    if let Err(e @ (ListUpdateError::Checksum { .. } | ListUpdateError::Signature { .. })) =
        apply(&fresh, &sealed.to_json())
    {
        panic!("a command with its checksum corrected and signed afresh is refused: {e}");
    }
    let other_key = SigningKey::from_bytes(&[8; 32]);
    for forged in [
        ListCommand::signed(&cmd.name, cmd.version, &cmd.csv, "KZ-OTHER", &central()),
        ListCommand::signed(&cmd.name, cmd.version, &cmd.csv, INVENTORY, &other_key),
    ] {
        let refused = apply(&declared(), &forged.to_json());
        assert!(
            matches!(refused, Err(ListUpdateError::Signature { .. })),
            "a command signed for another device or by another key is not refused for its signature: {refused:?}"
        );
    }
});
