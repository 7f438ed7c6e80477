//! Acknowledgements: signed by the central receiver, checked by the device.
//!
//! The signed message is, byte for byte,
//!
//! ```text
//! anpr-ack/1\n<inventory>\n<seq>\n<event_id>\n<sha256>
//! ```
//!
//! with `seq` in decimal, `event_id` as a hyphenated lower-case UUID and `sha256` the lower-case
//! hex hash of what the receiver stored: the event's canonical form
//! ([`crate::event::event_hash`]), or the image's bytes for an image's ack. The first line
//! keeps an ack's signature from meaning anything in another context signed by the same key.

use anpr_types::Ack;
use uuid::Uuid;

use crate::{SignatureError, SigningKey, VerifyingKey, sign_hex, verify_hex};

/// First line of every signed acknowledgement.
pub const ACK_DOMAIN: &str = "anpr-ack/1";

/// The bytes an acknowledgement's signature covers.
#[must_use]
pub fn ack_message(inventory: &str, seq: u64, event_id: Uuid, sha256: &str) -> Vec<u8> {
    format!(
        "{ACK_DOMAIN}\n{inventory}\n{seq}\n{}\n{sha256}",
        event_id.hyphenated()
    )
    .into_bytes()
}

/// A signed acknowledgement of the event `event_id` / `seq` of `inventory` whose canonical
/// form hashes to `event_hash`.
#[must_use]
pub fn event_ack(
    key: &SigningKey,
    inventory: &str,
    seq: u64,
    event_id: Uuid,
    event_hash: &str,
) -> Ack {
    signed(key, inventory, seq, event_id, event_hash, None)
}

/// A signed acknowledgement of an evidence image (its sha256) of the event `event_id` / `seq`.
#[must_use]
pub fn image_ack(
    key: &SigningKey,
    inventory: &str,
    seq: u64,
    event_id: Uuid,
    image_sha256: &str,
) -> Ack {
    signed(
        key,
        inventory,
        seq,
        event_id,
        image_sha256,
        Some(image_sha256.to_string()),
    )
}

fn signed(
    key: &SigningKey,
    inventory: &str,
    seq: u64,
    event_id: Uuid,
    sha256: &str,
    evidence: Option<String>,
) -> Ack {
    Ack {
        event_id,
        seq,
        evidence,
        inventory: inventory.to_string(),
        sha256: sha256.to_string(),
        signature: Some(sign_hex(
            key,
            &ack_message(inventory, seq, event_id, sha256),
        )),
    }
}

/// Why a device refuses an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    #[error("it names device {found:?}, not this one ({expected})")]
    OtherDevice { expected: String, found: String },
    #[error("an image's ack whose sha256 is not the image's")]
    ImageMismatch,
    #[error("no sha256 of what the receiver stored")]
    NoHash,
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// Checks an acknowledgement that arrived for the device `inventory`: it names this device,
/// carries the hash of what was stored, and the central key signed exactly that. Whether the
/// hash is the one of the device's row is for the queue to say.
pub fn verify_ack(ack: &Ack, inventory: &str, central: &VerifyingKey) -> Result<(), AckError> {
    if ack.inventory != inventory {
        return Err(AckError::OtherDevice {
            expected: inventory.to_string(),
            found: ack.inventory.clone(),
        });
    }
    if ack.sha256.is_empty() {
        return Err(AckError::NoHash);
    }
    if ack.evidence.as_ref().is_some_and(|sha| *sha != ack.sha256) {
        return Err(AckError::ImageMismatch);
    }
    verify_hex(
        central,
        &ack_message(&ack.inventory, ack.seq, ack.event_id, &ack.sha256),
        ack.signature.as_deref(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_message_is_the_documented_text() {
        let id = Uuid::parse_str("01a22a28-1c6d-76c4-9042-0daaead2d583").unwrap();
        assert_eq!(
            String::from_utf8(ack_message("KZ-1", 42, id, "ab12")).unwrap(),
            "anpr-ack/1\nKZ-1\n42\n01a22a28-1c6d-76c4-9042-0daaead2d583\nab12"
        );
    }

    #[test]
    fn an_ack_verifies_only_unchanged_for_its_device_with_the_central_key() {
        let central = SigningKey::generate(&mut rand_core::OsRng);
        let vk = central.verifying_key();
        let id = Uuid::now_v7();
        let hash = crate::sha256_hex(b"event");
        let ack = event_ack(&central, "KZ-1", 7, id, &hash);
        verify_ack(&ack, "KZ-1", &vk).unwrap();
        // Through JSON, as it travels.
        let back: Ack = serde_json::from_slice(&serde_json::to_vec(&ack).unwrap()).unwrap();
        verify_ack(&back, "KZ-1", &vk).unwrap();

        assert!(matches!(
            verify_ack(&ack, "KZ-2", &vk),
            Err(AckError::OtherDevice { .. })
        ));
        for forged in [
            Ack {
                seq: 8,
                ..ack.clone()
            },
            Ack {
                event_id: Uuid::now_v7(),
                ..ack.clone()
            },
            Ack {
                sha256: crate::sha256_hex(b"other"),
                ..ack.clone()
            },
        ] {
            assert_eq!(
                verify_ack(&forged, "KZ-1", &vk),
                Err(AckError::Signature(SignatureError::Invalid))
            );
        }
        let unsigned = Ack {
            signature: None,
            ..ack.clone()
        };
        assert_eq!(
            verify_ack(&unsigned, "KZ-1", &vk),
            Err(AckError::Signature(SignatureError::Missing))
        );
        let mallory = SigningKey::generate(&mut rand_core::OsRng);
        let by_other_key = event_ack(&mallory, "KZ-1", 7, id, &hash);
        assert_eq!(
            verify_ack(&by_other_key, "KZ-1", &vk),
            Err(AckError::Signature(SignatureError::Invalid))
        );
        // An old-style ack (no inventory, hash or signature) parses and is refused.
        let old: Ack = serde_json::from_str(&format!(r#"{{"event_id":"{id}","seq":7}}"#)).unwrap();
        assert!(verify_ack(&old, "KZ-1", &vk).is_err());
    }

    #[test]
    fn an_image_ack_must_carry_the_image_sha_as_its_hash() {
        let central = SigningKey::generate(&mut rand_core::OsRng);
        let sha = crate::sha256_hex(b"jpeg");
        let ack = image_ack(&central, "KZ-1", 3, Uuid::now_v7(), &sha);
        verify_ack(&ack, "KZ-1", &central.verifying_key()).unwrap();
        let swapped = Ack {
            evidence: Some(crate::sha256_hex(b"other jpeg")),
            ..ack
        };
        assert_eq!(
            verify_ack(&swapped, "KZ-1", &central.verifying_key()),
            Err(AckError::ImageMismatch)
        );
    }
}
