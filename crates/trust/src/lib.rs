//! Who may say what: ed25519 keys on disk, signed events chained by hash, signed
//! acknowledgements and signed commands.
//!
//! # Contract
//!
//! - **Keys** ([`generate_signing_key`], [`load_signing_key`], [`load_verifying_key`]): a
//!   private key is a PKCS#8 PEM file created with mode 0600 (never readable by others, not
//!   even for a moment) and refused when its mode lets the group or others read it; a public
//!   key is an SPKI PEM file, mode 0644. A private key is never overwritten, and key material
//!   is never logged or put in an error message.
//! - **Events** ([`event`]): the canonical form of an event is its JSON serialisation by
//!   `serde_json` with `signature` left out (`anpr_types::Event`'s field order is fixed, so the
//!   bytes are deterministic from Rust to Rust). It covers every field, `prev_hash` and the
//!   sha256 of each evidence image included. The hash of an event is the lower-case hex sha256
//!   of those bytes; its signature is the device key's ed25519 signature over the same bytes,
//!   in lower-case hex. `prev_hash` is the hash of the device's previous event in sequence
//!   order ([`ZERO_HASH`] for the first), so the events form a chain: an edit changes one hash
//!   and breaks the link to the next event, a deleted event leaves a link that points at
//!   nothing.
//! - **Acknowledgements** ([`ack`]): the receiver signs
//!   `"anpr-ack/1\n" + inventory + "\n" + seq + "\n" + event_id + "\n" + sha256` with its own
//!   key, where `sha256` is the hash of the event it stored (or of the image, for an image's
//!   ack). The device marks nothing delivered without that signature over exactly its row.
//! - **Commands** ([`command`]): the central side signs
//!   `"anpr-cmd/1\n" + inventory + "\n" + canonical` with the same key, where `inventory` is
//!   the device the command is for and `canonical` the command's JSON as `serde_json` writes
//!   it with `signature` left out. The device acts on no command without that signature made
//!   for its own inventory; a command signed for another device, altered, or signed by another
//!   key is refused. Order is the command's business (its version), not the signature's.
//! - **Export bundles** ([`bundle`]): the device signs a bundle's manifest (every file's
//!   sha256, every event's hash) over `"anpr-bundle/1\n" + inventory + "\n" + manifest.json`
//!   with its own key; [`bundle::Bundle::check`] names every file, line or signature of a copy
//!   that does not match.
//! - **Walking a chain** ([`chain::Walk`]): the checks `anpr verify` runs on a device's queue
//!   or a receiver's database, row by row, naming the first row that does not match.

pub mod ack;
pub mod bundle;
pub mod chain;
pub mod command;
pub mod event;
mod keys;

use std::path::PathBuf;

pub use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
pub use keys::{
    DeviceKeys, check_private_key_mode, generate_signing_key, load_signing_key,
    load_signing_key_as, load_verifying_key, load_verifying_key_as, valid_inventory,
};

/// The `prev_hash` of a device's first event: 64 zeros.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Errors about keys: each names the file and says how to fix it. No key material is ever
/// part of one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error(
        "{what} {path} does not exist; {fix}",
        fix = fix_missing(.what, .path)
    )]
    Missing { what: &'static str, path: PathBuf },
    #[error("{what} {path} cannot be read: {source}; check its owner and mode")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what} {path} is not a valid {format} file ({message}); write a new one with `anpr pki`"
    )]
    Malformed {
        what: &'static str,
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error(
        "private key {path} can be read by others (mode {mode:o}); run `chmod 600 {path}` (and keep it owned by the user the service runs as)"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "private key {path} exists already and is not overwritten; to replace a key, move the old one away first (see docs/security.md, rotation)"
    )]
    Exists { path: PathBuf },
    #[error(
        "cannot write {what} {path}: {source}; check that the directory exists and is writable"
    )]
    Write {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "inventory {inventory:?} cannot name a key file: use letters, digits, '-', '_' and '.', not starting with '.', at most 64 characters"
    )]
    BadInventory { inventory: String },
}

fn fix_missing(what: &str, path: &std::path::Path) -> String {
    if what.contains("device") && what.contains("public") {
        format!(
            "copy the device's public key there (from `anpr pki device --inventory <inventory>`), named <inventory>.pub, as {}",
            path.display()
        )
    } else if what.contains("device") {
        "make the device's key with `anpr pki device --inventory <inventory>` and point `[security] device_key` at it".into()
    } else if what.contains("central") && what.contains("public") {
        "copy the central receiver's public key there (from `anpr pki central`) and point `[security] central_public_key` at it".into()
    } else if what.contains("central") {
        "make the central receiver's key with `anpr pki central` and pass it with --signing-key"
            .into()
    } else {
        "make the key with `anpr pki`".into()
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("no signature")]
    Missing,
    #[error("the signature is not 64 bytes of hex")]
    Malformed,
    #[error("the signature does not verify with the key")]
    Invalid,
}

/// Lower-case hex sha256 of `data`.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Parses a lower- or upper-case hex signature.
fn parse_signature(text: Option<&str>) -> Result<Signature, SignatureError> {
    let text = text.ok_or(SignatureError::Missing)?;
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| SignatureError::Malformed)?;
    Ok(Signature::from_bytes(&bytes))
}

/// Signs `message`, as lower-case hex.
fn sign_hex(key: &SigningKey, message: &[u8]) -> String {
    use ed25519_dalek::Signer;
    hex::encode(key.sign(message).to_bytes())
}

/// Checks a hex signature over `message` (strict verification: no malleable signatures).
fn verify_hex(
    key: &VerifyingKey,
    message: &[u8],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let sig = parse_signature(signature)?;
    key.verify_strict(message, &sig)
        .map_err(|_| SignatureError::Invalid)
}
