//! A development PKI for the MQTT link, and the client side of its TLS.
//!
//! # Contract
//!
//! - [`Pki::init`] makes, in one directory, a certificate authority (ECDSA P-256, self-signed,
//!   valid 10 years), the broker's server certificate (SAN `localhost`, `127.0.0.1` and the
//!   names given; extended key usage `serverAuth` only, so it cannot log in as a client) and
//!   the central receiver's client certificate (CN [`CENTRAL_CN`]), the command sender's
//!   client certificate (CN [`COMMANDS_CN`], for `anpr send-list`), with the central side's
//!   ed25519 signing key pair (through [`anpr_trust::generate_signing_key`]). Two central-side
//!   clients, two certificates: the broker makes the CN the client id, so a sender with the
//!   receiver's certificate would take over the receiver's session; and the broker's ACL
//!   gives each only what it does (the receiver reads events and writes acks, the sender only
//!   writes commands).
//! - [`Pki::issue_commands`] adds the command sender's certificate to a PKI made before it
//!   existed; it refuses when one is there.
//! - [`Pki::issue_device`] adds one device: a client certificate whose CN is the inventory
//!   number (the broker takes it as the user name its ACL is written for), and the device's
//!   ed25519 signing key pair; the public half is also put where the central receiver reads
//!   device keys from. Inventories are checked first ([`check_inventory`]): 1 to 64 letters,
//!   digits, `-` or `_`, and not a name of the central side (`anpr-…`).
//! - [`Pki::issue_post`] adds a transport control post (the second kind of receiver): a
//!   client certificate with CN `anpr-post-<id>`, its ed25519 key for its own
//!   acknowledgements, copies of its devices' public keys, and its block for the broker's ACL
//!   (`posts/<id>/acl`, to append to the shipped file: mosquitto has no wildcard users).
//! - Leaf certificates are valid 2 years; each has a random 127-bit serial number.
//!   [`Pki::revoke_device`] lists a device's certificate in the CRL the broker reads
//!   (`broker/crl.pem`, written empty at init, valid as long as the CA); `revoked.txt` keeps
//!   the list the CRL is made from.
//! - Private keys are created with mode 0600 in one step (`O_CREAT|O_EXCL` with the mode), so
//!   they are never readable by others, not even for a moment; an existing key is never
//!   overwritten (the call fails and says how to rotate). Key material never appears in a log
//!   line or an error message. Certificates and public keys are 0644; directories 0700.
//! - [`ClientTls::load`] reads a client's CA certificate, certificate and key, refuses a key
//!   that its group or others can read, and checks that the certificate belongs to the key, so
//!   a wrong file is a start error naming it instead of a TLS alert at every connection
//!   attempt. The rustls configuration it builds uses the `ring` provider.
//!
//! # On-disk layout
//!
//! One folder per party, holding exactly what is copied to that party:
//!
//! ```text
//! <dir>/ca.crt                      the CA certificate
//! <dir>/ca.key                      the CA key: keep it off the network (it makes new identities)
//! <dir>/revoked.txt                 serial, inventory and time of each revoked certificate
//! <dir>/broker/ca.crt, broker.crt, broker.key, crl.pem
//!                                   → the broker (deploy/mosquitto/anpr.conf names them)
//! <dir>/central/ca.crt, central.tls.crt, central.tls.key
//!                                   → the central receiver's TLS identity (CN anpr-central)
//! <dir>/central/commands.tls.crt, commands.tls.key
//!                                   → the command sender's TLS identity (CN anpr-commands,
//!                                     `anpr send-list`; with the same ca.crt)
//! <dir>/central/central.key, central.pub
//!                                   → the central side's signing key pair (acks, commands)
//! <dir>/central/devices/<inventory>.pub
//!                                   → each device's public signing key, for the receiver
//! <dir>/devices/<inventory>/ca.crt, <inventory>.tls.crt, <inventory>.tls.key,
//!                           <inventory>.sign.key, <inventory>.sign.pub, central.pub
//!                                   → the device
//! <dir>/posts/<id>/ca.crt, post.tls.crt, post.tls.key, post.key, post.pub, devices/, acl
//!                                   → control post <id> (`acl` → appended to the broker's)
//! ```
//!
//! # Crash behaviour
//!
//! Files are written one after the other, each synced. A crash part-way leaves some of them;
//! running the command again then fails on the first key that exists, naming it: remove the
//! half-made folder and run it again.

mod files;
mod issue;
mod load;
mod post;

use std::path::PathBuf;

pub use issue::Pki;
pub use load::ClientTls;
pub use post::{POST_CN_PREFIX, PostFiles, post_acl, post_cn};

/// CN of the central receiver's client certificate; the broker's ACL grants this user the
/// central side's rights.
pub const CENTRAL_CN: &str = "anpr-central";
/// CN of the command sender's client certificate (`anpr send-list`); the broker's ACL lets
/// this user write commands and nothing else.
pub const COMMANDS_CN: &str = "anpr-commands";
/// CN of the broker's server certificate.
pub const BROKER_CN: &str = "anpr-broker";

/// Errors of the PKI: each names the file or the value and says how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error(
        "inventory number {inventory:?} cannot name a device certificate: {why}; use 1 to 64 letters, digits, '-' or '_' (the broker's ACL puts it into topic names)"
    )]
    BadInventory {
        inventory: String,
        why: &'static str,
    },
    #[error(
        "broker name {name:?} is neither a DNS name nor an IP address; give names such as broker.example.org or 10.0.0.5"
    )]
    BadName { name: String },
    #[error("{what} {path} already exists; {fix}")]
    Exists {
        what: &'static str,
        path: PathBuf,
        fix: &'static str,
    },
    #[error("{what} {path} does not exist; {fix}")]
    Missing {
        what: &'static str,
        path: PathBuf,
        fix: &'static str,
    },
    #[error("cannot read {what} {path}: {source}; check its owner and mode")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {what} {path}: {source}; check that its directory is writable")]
    Write {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what} {path} is not usable ({message}); copy it again from the folder `anpr pki` wrote, or issue a new one"
    )]
    Malformed {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error(
        "private key {path} can be read by its group or others (mode {mode:o}); run `chmod 600 {path}` and make it owned by the user the service runs as"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "certificate {cert} does not belong to the private key {key} (their public keys differ); copy the certificate and the key that `anpr pki` wrote together"
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot make {what}: {message}")]
    Generate { what: &'static str, message: String },
    #[error("signing keys: {0}")]
    Signing(#[from] anpr_trust::TrustError),
}

/// The three files of a TLS client identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate that issued the broker's certificate (the client trusts only it).
    pub ca: PathBuf,
    /// The client's certificate.
    pub cert: PathBuf,
    /// The client's private key.
    pub key: PathBuf,
}

/// What the broker needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFiles {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate revocation list (`crlfile`), empty until a device is revoked.
    pub crl: PathBuf,
}

/// What the central receiver needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralFiles {
    pub dir: PathBuf,
    pub tls: TlsFiles,
    /// The central side's ed25519 signing key (acks, commands).
    pub signing_key: PathBuf,
    /// Its public half, which every device holds.
    pub signing_pub: PathBuf,
    /// The devices' public signing keys, `<inventory>.pub`.
    pub device_keys: PathBuf,
}

/// What one device needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFiles {
    pub inventory: String,
    pub dir: PathBuf,
    pub tls: TlsFiles,
    /// The device's ed25519 signing key (events).
    pub signing_key: PathBuf,
    pub signing_pub: PathBuf,
    /// The central side's public signing key (to check acks and commands).
    pub central_pub: PathBuf,
}

/// Checks that `inventory` can be a certificate CN, an MQTT user name in the broker's ACL and
/// a topic level: 1 to 64 ASCII letters, digits, `-` or `_`, and not a name of the central
/// side (`anpr-…`: the CNs [`CENTRAL_CN`] and [`COMMANDS_CN`] carry the central side's
/// rights).
pub fn check_inventory(inventory: &str) -> Result<(), PkiError> {
    let bad = |why| {
        Err(PkiError::BadInventory {
            inventory: inventory.to_string(),
            why,
        })
    };
    if inventory.is_empty() {
        return bad("it is empty");
    }
    if inventory.len() > 64 {
        return bad("it is longer than 64 characters");
    }
    if !inventory
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return bad("it has a character other than a letter, a digit, '-' or '_'");
    }
    if inventory.to_ascii_lowercase().starts_with("anpr-") {
        return bad("names starting with `anpr-` are kept for the central side's identities");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
