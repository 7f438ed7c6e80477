//! Topics as the central receiver takes them (`anpr_central::topic::parse`, then the
//! receiver's checks before it reads a message, `anpr_central::limits::Hygiene::admit`): the
//! topic of a publish (UTF-8, as MQTT requires) under the prefix `anpr/v1`, with events,
//! health and evidence (`evidence/<event_id>/<kind>`) topics.
//!
//! Invariants: no panic; a topic that parses is exactly the one a device builds with
//! `anpr_types::Topics` from what was parsed, under an inventory `anpr_trust::valid_inventory`
//! accepts and, for an image, a kind of 1 to 32 lower-case letters, digits, `-` or `_`; a
//! refusal's reason holds no control character and is bounded (under 1,000 bytes); the inventory level a refused
//! topic is recorded under is at most 64 bytes; the receiver's checks take, drop or refuse it
//! without a panic, and take only what parses.
#![no_main]

use std::time::Instant;

use anpr_central::limits::{Admission, Hygiene, Limits};
use anpr_central::topic::{self, TopicKind};
use anpr_types::Topics;
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "anpr/v1";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match topic::parse(PREFIX, text) {
        Ok(t) => {
            assert!(anpr_trust::valid_inventory(t.inventory), "{t:?}");
            let topics = Topics::new(PREFIX, t.inventory);
            let rebuilt = match t.kind {
                TopicKind::Events => topics.events(),
                TopicKind::Health => topics.health(),
                TopicKind::Evidence { event_id, kind } => {
                    assert!(
                        (1..=32).contains(&kind.len())
                            && kind.bytes().all(|b| b.is_ascii_lowercase()
                                || b.is_ascii_digit()
                                || b == b'-'
                                || b == b'_'),
                        "{kind:?}"
                    );
                    topics.evidence(event_id, kind)
                }
            };
            assert_eq!(rebuilt, text, "a parsed topic is the one a device builds");
        }
        Err(e) => {
            let why = e.to_string();
            assert!(!why.chars().any(char::is_control), "{why:?}");
            // The quoted level is at most 64 bytes, each written as at most 10 characters.
            assert!(why.len() < 1000, "{why:?}");
        }
    }
    assert!(topic::inventory_level(PREFIX, text).len() <= 64);
    let mut hygiene = Hygiene::new(PREFIX, Limits::default());
    let admitted = hygiene.admit(text, data.len(), Instant::now(), chrono::Utc::now());
    if let Admission::Take(t) = admitted {
        assert_eq!(Ok(t), topic::parse(PREFIX, text));
    }
});
