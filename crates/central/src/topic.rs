//! The topics the receiver takes, parsed strictly: `<prefix>/<inventory>/events`,
//! `<prefix>/<inventory>/health` and `<prefix>/<inventory>/evidence/<event_id>/<kind>`, where
//! the prefix is the receiver's own, the inventory one `anpr_trust::valid_inventory` accepts
//! (it names a key file), the event id a UUID and the image kind a short lower-case word.
//! Anything else is refused with the reason ([`TopicError`]): counted, quarantined, never
//! acknowledged. The broker's subscriptions already narrow what arrives; this holds when the
//! broker is configured otherwise.

use std::fmt;

use uuid::Uuid;

use crate::escape::escape;

/// What a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind<'a> {
    /// An event (a [`anpr_types::Delivery`] as JSON).
    Events,
    /// A health message, or the broker's last will.
    Health,
    /// An evidence image of the event `event_id`: `kind` is `overview`, `plate`, ….
    Evidence { event_id: Uuid, kind: &'a str },
}

/// A topic the receiver takes: the device it is of, and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic<'a> {
    pub inventory: &'a str,
    pub kind: TopicKind<'a>,
}

/// Longest evidence kind taken (the device's are `overview` and `plate`).
pub const MAX_EVIDENCE_KIND_LEN: usize = 32;

/// Why a topic is refused. Displayed, it quotes what came from outside escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// Not under the receiver's prefix.
    Prefix,
    /// No inventory level, or one that is no inventory number.
    Inventory(String),
    /// A kind the receiver does not take (`ack` and `cmd` are the central side's own).
    Kind(String),
    /// An evidence topic whose event id is not a UUID, whose kind is not a short lower-case
    /// word, or with levels missing or left over.
    Evidence(String),
    /// Levels after `events` or `health`.
    Extra,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Prefix => f.write_str("the topic is not under the receiver's prefix"),
            TopicError::Inventory(level) => write!(
                f,
                "the topic's inventory level \"{}\" is not an inventory number (1 to 64 letters, digits, '-', '_' or '.', not starting with '.')",
                escape(level)
            ),
            TopicError::Kind(kind) => write!(
                f,
                "the topic's kind \"{}\" is not one the receiver takes (events, evidence, health)",
                escape(kind)
            ),
            TopicError::Evidence(why) => {
                write!(f, "the evidence topic is malformed: {}", escape(why))
            }
            TopicError::Extra => f.write_str("the topic has levels after its kind"),
        }
    }
}

impl std::error::Error for TopicError {}

/// Parses `topic` as one the receiver takes under `prefix` (as configured: a trailing `/` is
/// ignored). Never panics, whatever the input.
pub fn parse<'a>(prefix: &str, topic: &'a str) -> Result<Topic<'a>, TopicError> {
    let prefix = prefix.trim_end_matches('/');
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(TopicError::Prefix)?;
    let mut levels = rest.split('/');
    let inventory = levels.next().unwrap_or_default();
    if !anpr_trust::valid_inventory(inventory) {
        return Err(TopicError::Inventory(truncated(inventory)));
    }
    let kind = levels.next().unwrap_or_default();
    let kind = match kind {
        "events" => TopicKind::Events,
        "health" => TopicKind::Health,
        "evidence" => {
            let (Some(id), Some(image)) = (levels.next(), levels.next()) else {
                return Err(TopicError::Evidence(
                    "expected evidence/<event_id>/<kind>".into(),
                ));
            };
            // Only the form the device writes (lower-case, hyphenated): one event, one topic.
            let event_id = Uuid::try_parse(id)
                .ok()
                .filter(|u| u.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == id)
                .ok_or_else(|| {
                    TopicError::Evidence(format!(
                        "event id \"{}\" is not a UUID in lower-case hyphenated form",
                        truncated(id)
                    ))
                })?;
            if image.is_empty()
                || image.len() > MAX_EVIDENCE_KIND_LEN
                || !image
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                return Err(TopicError::Evidence(format!(
                    "image kind \"{}\" is not 1 to {MAX_EVIDENCE_KIND_LEN} lower-case letters, digits, '-' or '_'",
                    truncated(image)
                )));
            }
            TopicKind::Evidence {
                event_id,
                kind: image,
            }
        }
        other => return Err(TopicError::Kind(truncated(other))),
    };
    if levels.next().is_some() {
        return Err(match kind {
            TopicKind::Evidence { .. } => {
                TopicError::Evidence("levels after evidence/<event_id>/<kind>".into())
            }
            _ => TopicError::Extra,
        });
    }
    Ok(Topic { inventory, kind })
}

/// The inventory level of `topic` under `prefix` as far as it goes (at most 64 bytes, cut at
/// a character boundary), whatever its shape: what a refused topic is recorded under.
#[must_use]
pub fn inventory_level<'a>(prefix: &str, topic: &'a str) -> &'a str {
    let prefix = prefix.trim_end_matches('/');
    let level = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .map_or("", |r| r.split('/').next().unwrap_or_default());
    cut(level, 64)
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A level quoted in an error: at most 64 bytes of it.
fn truncated(s: &str) -> String {
    let c = cut(s, 64);
    if c.len() < s.len() {
        format!("{c}…")
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::{Topic, TopicError, TopicKind, inventory_level, parse};

    const P: &str = "anpr/v1";

    #[test]
    fn the_three_kinds_the_receiver_takes_are_parsed() {
        assert_eq!(
            parse(P, "anpr/v1/KZ-ICD-0001/events"),
            Ok(Topic {
                inventory: "KZ-ICD-0001",
                kind: TopicKind::Events
            })
        );
        assert_eq!(
            parse("anpr/v1/", "anpr/v1/KZ-ICD-0001/health").map(|t| t.kind),
            Ok(TopicKind::Health)
        );
        let id = Uuid::now_v7();
        assert_eq!(
            parse(P, &format!("anpr/v1/KZ-ICD-0001/evidence/{id}/overview")).map(|t| t.kind),
            Ok(TopicKind::Evidence {
                event_id: id,
                kind: "overview"
            })
        );
    }

    #[test]
    fn topics_of_another_shape_are_refused_with_the_reason() {
        let id = Uuid::now_v7();
        for (topic, want) in [
            ("anpr/v2/KZ-1/events", "not under the receiver's prefix"),
            ("anpr/v1", "not under the receiver's prefix"),
            ("anpr/v1x/KZ-1/events", "not under the receiver's prefix"),
            ("anpr/v1//events", "inventory level \"\""),
            ("anpr/v1/$SYS/events", "is not an inventory number"),
            ("anpr/v1/.hidden/events", "is not an inventory number"),
            ("anpr/v1/a b/events", "is not an inventory number"),
            ("anpr/v1/KZ-1", "kind \"\""),
            ("anpr/v1/KZ-1/ack", "kind \"ack\" is not one"),
            ("anpr/v1/KZ-1/cmd", "kind \"cmd\""),
            ("anpr/v1/KZ-1/events/more", "levels after its kind"),
            ("anpr/v1/KZ-1/health/", "levels after its kind"),
            (
                "anpr/v1/KZ-1/evidence",
                "expected evidence/<event_id>/<kind>",
            ),
            (
                "anpr/v1/KZ-1/evidence/x/overview",
                "event id \"x\" is not a UUID",
            ),
            (
                "anpr/v1/KZ-1/evidence/0191A0E0-0000-7000-8000-000000000000/plate",
                "lower-case hyphenated",
            ),
            (
                "anpr/v1/KZ-1/evidence/0191a0e000007000800000000000000f/plate",
                "lower-case hyphenated",
            ),
        ] {
            let err = parse(P, topic).expect_err(topic).to_string();
            assert!(err.contains(want), "{topic}: {err}");
        }
        for kind in [
            "",
            "Overview",
            "a/b",
            "x".repeat(33).as_str(),
            "pl\u{1b}ate",
        ] {
            let topic = format!("anpr/v1/KZ-1/evidence/{id}/{kind}");
            assert!(
                matches!(parse(P, &topic), Err(TopicError::Evidence(_))),
                "{topic:?}"
            );
        }
        let long = "A".repeat(65);
        assert!(parse(P, &format!("anpr/v1/{long}/events")).is_err());
        assert!(parse(P, &format!("anpr/v1/{}/events", &long[..64])).is_ok());
    }

    #[test]
    fn what_a_refused_topic_quotes_is_escaped_and_cut() {
        let err = parse(P, "anpr/v1/KZ\x1b[31m\n/events")
            .unwrap_err()
            .to_string();
        assert!(err.contains("KZ\\u{1b}[31m\\n"), "{err}");
        assert!(!err.contains('\x1b') && !err.contains('\n'), "{err}");
        let err = parse(P, &format!("anpr/v1/{}/events", "é".repeat(100)))
            .unwrap_err()
            .to_string();
        assert!(err.contains('…') && err.len() < 300, "{err}");
        assert_eq!(inventory_level(P, "anpr/v1/KZ-1/x/y"), "KZ-1");
        assert_eq!(inventory_level(P, "other/KZ-1/events"), "");
        assert_eq!(
            inventory_level(P, &format!("anpr/v1/{}", "é".repeat(100))).len(),
            64
        );
    }
}
