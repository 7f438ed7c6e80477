//! Commands from the central side (on `<prefix>/<inventory>/cmd/…`): signed by the central key,
//! checked by the device before it acts on one.
//!
//! The signed message is, byte for byte,
//!
//! ```text
//! anpr-cmd/1\n<inventory>\n<canonical>
//! ```
//!
//! where `inventory` is the device the command is for (the one in its topic) and `canonical`
//! the command's canonical form: its JSON as `serde_json` writes the command's type (fields in
//! their fixed order, no spaces) with the `signature` field left out. Which fields a command
//! has is for its type to say (`anpr_rules::ListCommand` for plate-list updates); this module
//! only signs and checks bytes.
//!
//! The first line keeps a command's signature from meaning anything in another context signed
//! by the same key (an acknowledgement starts with `anpr-ack/1`). The second binds the command
//! to one device: a command signed for device A does not verify on device B, so whoever can
//! publish on B's topic cannot replay there what the central side sent to A. An inventory
//! never holds a line break ([`crate::valid_inventory`]), so the message reads one way only.
//! The signature says nothing about order: the command's own version does, and the device
//! refuses a version that is not above the one in force.

use crate::{SignatureError, SigningKey, VerifyingKey, sign_hex, verify_hex};

/// First line of every signed command.
pub const COMMAND_DOMAIN: &str = "anpr-cmd/1";

/// The bytes a command's signature covers: the command in canonical form (`canonical`) for
/// device `inventory`.
#[must_use]
pub fn command_message(inventory: &str, canonical: &[u8]) -> Vec<u8> {
    let mut message =
        Vec::with_capacity(COMMAND_DOMAIN.len() + inventory.len() + canonical.len() + 2);
    message.extend_from_slice(COMMAND_DOMAIN.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(inventory.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(canonical);
    message
}

/// Signs the command whose canonical form is `canonical` for device `inventory` with the
/// central key; the signature in lower-case hex.
#[must_use]
pub fn sign(key: &SigningKey, inventory: &str, canonical: &[u8]) -> String {
    sign_hex(key, &command_message(inventory, canonical))
}

/// Checks that the central key `central` signed the command whose canonical form is
/// `canonical` for device `inventory` (strict ed25519 verification; the hex in either case).
pub fn verify(
    central: &VerifyingKey,
    inventory: &str,
    canonical: &[u8],
    signature: &str,
) -> Result<(), SignatureError> {
    if signature.is_empty() {
        return Err(SignatureError::Missing);
    }
    verify_hex(
        central,
        &command_message(inventory, canonical),
        Some(signature),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMAND: &[u8] = br#"{"type":"plate-list","name":"wanted","version":7}"#;

    fn central() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    #[test]
    fn the_signed_message_is_the_documented_text() {
        assert_eq!(
            String::from_utf8(command_message("KZ-1", COMMAND)).unwrap(),
            "anpr-cmd/1\nKZ-1\n{\"type\":\"plate-list\",\"name\":\"wanted\",\"version\":7}"
        );
    }

    #[test]
    fn a_command_verifies_with_the_central_key_for_its_device() {
        let key = central();
        let sig = sign(&key, "KZ-1", COMMAND);
        assert_eq!(sig.len(), 128);
        assert_eq!(sig, sig.to_lowercase());
        verify(&key.verifying_key(), "KZ-1", COMMAND, &sig).unwrap();
        verify(&key.verifying_key(), "KZ-1", COMMAND, &sig.to_uppercase()).unwrap();
    }

    #[test]
    fn a_command_for_another_device_altered_or_signed_by_another_key_is_refused() {
        let key = central();
        let vk = key.verifying_key();
        let sig = sign(&key, "KZ-1", COMMAND);
        assert_eq!(
            verify(&vk, "KZ-2", COMMAND, &sig),
            Err(SignatureError::Invalid),
            "signed for another device"
        );
        for i in 0..COMMAND.len() {
            let mut flipped = COMMAND.to_vec();
            flipped[i] ^= 1;
            assert_eq!(
                verify(&vk, "KZ-1", &flipped, &sig),
                Err(SignatureError::Invalid),
                "byte {i} flipped"
            );
        }
        let mut bad = sig.clone().into_bytes();
        bad[10] = if bad[10] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            verify(&vk, "KZ-1", COMMAND, std::str::from_utf8(&bad).unwrap()),
            Err(SignatureError::Invalid),
            "a signature with one digit changed"
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            verify(&vk, "KZ-1", COMMAND, &sign(&other, "KZ-1", COMMAND)),
            Err(SignatureError::Invalid),
            "signed by another key"
        );
        // An acknowledgement's signature by the same key means nothing as a command's.
        let ack = crate::ack::ack_message("KZ-1", 7, uuid::Uuid::nil(), "ab");
        let ack_sig = sign_hex(&key, &ack);
        assert_eq!(
            verify(&vk, "KZ-1", &ack, &ack_sig),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn a_missing_or_malformed_signature_is_refused() {
        let vk = central().verifying_key();
        assert_eq!(
            verify(&vk, "KZ-1", COMMAND, ""),
            Err(SignatureError::Missing)
        );
        for bad in ["zz", "abcd", &"0".repeat(127), &"g".repeat(128)] {
            assert_eq!(
                verify(&vk, "KZ-1", COMMAND, bad),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
