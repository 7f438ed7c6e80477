#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, client::WebPkiServerVerifier};

use super::*;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

fn roots(ca: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(cert(ca)).unwrap();
    Arc::new(roots)
}

/// Verifies `client` as the broker would: chained to `ca`, usable for client authentication,
/// not revoked by `crls`.
fn verify_client(
    ca: &Path,
    client: &Path,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<(), rustls::Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
        .with_crls(crls)
        .build()
        .unwrap();
    verifier
        .verify_client_cert(&cert(client), &[], UnixTime::now())
        .map(|_| ())
}

fn common_name(path: &Path) -> String {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_device_certificate_verifies_against_the_ca_and_names_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), &[]).unwrap();
    let device = pki.issue_device("KZ-ICD-0001").unwrap();
    verify_client(&pki.ca_cert(), &device.tls.cert, Vec::new()).unwrap();
    assert_eq!(common_name(&device.tls.cert), "KZ-ICD-0001");
    assert_eq!(common_name(&pki.central().tls.cert), CENTRAL_CN);
    verify_client(&pki.ca_cert(), &pki.central().tls.cert, Vec::new()).unwrap();
    // The command sender has its own client identity beside the receiver's.
    assert_eq!(common_name(&pki.commands().cert), COMMANDS_CN);
    verify_client(&pki.ca_cert(), &pki.commands().cert, Vec::new()).unwrap();
    assert_eq!(pki.commands().ca, pki.central().tls.ca);
    assert_eq!(
        pki.commands().cert.parent(),
        Some(pki.central().dir.as_path())
    );
    // The broker's certificate is a server certificate only: it cannot log in as a client.
    assert!(verify_client(&pki.ca_cert(), &pki.broker().cert, Vec::new()).is_err());
    // The device's folder holds what the device needs, and the receiver has its public key.
    assert_eq!(
        std::fs::read(&device.tls.ca).unwrap(),
        std::fs::read(pki.ca_cert()).unwrap()
    );
    assert_eq!(
        std::fs::read(&device.central_pub).unwrap(),
        std::fs::read(&pki.central().signing_pub).unwrap()
    );
    assert_eq!(
        std::fs::read(pki.central().device_keys.join("KZ-ICD-0001.pub")).unwrap(),
        std::fs::read(&device.signing_pub).unwrap()
    );
}

#[test]
fn a_certificate_from_another_ca_does_not_verify() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let ours = Pki::init(ours.path(), &[]).unwrap();
    let theirs = Pki::init(theirs.path(), &[]).unwrap();
    let forged = theirs.issue_device("KZ-ICD-0001").unwrap();
    assert!(verify_client(&ours.ca_cert(), &forged.tls.cert, Vec::new()).is_err());
}

#[test]
fn the_broker_certificate_is_valid_for_loopback_and_the_names_given() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(
        dir.path(),
        &["broker.example.org".into(), "10.1.2.3".into()],
    )
    .unwrap();
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(&pki.ca_cert()), provider())
        .build()
        .unwrap();
    let server = cert(&pki.broker().cert);
    for name in ["localhost", "127.0.0.1", "broker.example.org", "10.1.2.3"] {
        verifier
            .verify_server_cert(
                &server,
                &[],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(
        verifier
            .verify_server_cert(
                &server,
                &[],
                &ServerName::try_from("other.example.org").unwrap(),
                &[],
                UnixTime::now()
            )
            .is_err()
    );
    assert!(matches!(
        Pki::init(tempfile::tempdir().unwrap().path(), &["bad name".into()]),
        Err(PkiError::BadName { .. })
    ));
}

#[test]
fn private_keys_are_0600_and_certificates_0644() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), &[]).unwrap();
    let device = pki.issue_device("KZ-1").unwrap();
    for key in [
        dir.path().join("ca.key"),
        pki.broker().key,
        pki.central().tls.key,
        pki.commands().key,
        pki.central().signing_key,
        device.tls.key.clone(),
        device.signing_key.clone(),
    ] {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
    for public in [
        pki.ca_cert(),
        pki.broker().cert,
        pki.broker().crl,
        pki.commands().cert,
        device.tls.cert,
        device.tls.ca,
    ] {
        assert_eq!(mode(&public), 0o644, "{}", public.display());
    }
    assert_eq!(mode(&device.dir), 0o700);
}

#[test]
fn nothing_is_overwritten_init_and_issue_refuse_and_keep_the_old_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), &[]).unwrap();
    let ca_key = std::fs::read(dir.path().join("ca.key")).unwrap();
    let err = Pki::init(dir.path(), &[]).unwrap_err();
    assert!(matches!(err, PkiError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("ca.key"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), ca_key);

    let device = pki.issue_device("KZ-1").unwrap();
    let key = std::fs::read(&device.tls.key).unwrap();
    let err = pki.issue_device("KZ-1").unwrap_err();
    assert!(matches!(err, PkiError::Exists { .. }), "{err}");
    assert!(
        err.to_string().contains("KZ-1.tls.key") && err.to_string().contains("rotate"),
        "{err}"
    );
    assert_eq!(std::fs::read(&device.tls.key).unwrap(), key);
}

#[test]
fn init_refuses_writing_nothing_when_only_the_command_senders_key_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let central = dir.path().join("central");
    std::fs::create_dir_all(&central).unwrap();
    std::fs::write(central.join("commands.tls.key"), b"kept").unwrap();
    let err = Pki::init(dir.path(), &[]).unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::Exists {
                what: "command sender's TLS key",
                ..
            }
        ),
        "{err}"
    );
    assert!(!dir.path().join("ca.key").exists());
    assert_eq!(
        std::fs::read(central.join("commands.tls.key")).unwrap(),
        b"kept"
    );
}

#[test]
fn a_pki_made_before_the_command_sender_gets_its_certificate_once_and_nothing_else_changes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), &[]).unwrap();
    // As a PKI made before `anpr pki init` issued the command sender's identity.
    let files = pki.commands();
    std::fs::remove_file(&files.key).unwrap();
    std::fs::remove_file(&files.cert).unwrap();
    std::fs::remove_file(&files.ca).unwrap();
    let receiver_key = std::fs::read(&pki.central().tls.key).unwrap();
    let issued = Pki::open(dir.path()).unwrap().issue_commands().unwrap();
    assert_eq!(issued, files);
    assert_eq!(common_name(&issued.cert), COMMANDS_CN);
    verify_client(&pki.ca_cert(), &issued.cert, Vec::new()).unwrap();
    assert_eq!(mode(&issued.key), 0o600);
    assert_eq!(
        std::fs::read(&issued.ca).unwrap(),
        std::fs::read(pki.ca_cert()).unwrap()
    );
    ClientTls::load(&issued).unwrap();
    assert_eq!(
        std::fs::read(&pki.central().tls.key).unwrap(),
        receiver_key,
        "the receiver's key is untouched"
    );
    // Once there, it is never issued over.
    let key = std::fs::read(&issued.key).unwrap();
    let err = pki.issue_commands().unwrap_err();
    assert!(matches!(err, PkiError::Exists { .. }), "{err}");
    assert!(
        err.to_string().contains("commands.tls.key") && err.to_string().contains("rotate"),
        "{err}"
    );
    assert_eq!(std::fs::read(&issued.key).unwrap(), key);
}

#[test]
fn inventories_are_letters_digits_dashes_and_underscores_and_not_the_central_side() {
    for good in ["KZ-ICD-0001", "a", "dev_7", &"x".repeat(64)] {
        check_inventory(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "",
        "KZ/1",
        "KZ+1",
        "KZ#",
        "a b",
        "KZ.1",
        "ÄÖ",
        "anpr-central",
        "anpr-commands",
        "ANPR-x",
        &"x".repeat(65),
    ] {
        assert!(
            matches!(check_inventory(bad), Err(PkiError::BadInventory { .. })),
            "{bad:?} accepted"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), &[]).unwrap();
    assert!(pki.issue_device("../escape").is_err());
    assert!(!dir.path().join("escape").exists());
}

#[test]
fn a_client_loads_its_own_files_and_a_wrong_key_missing_key_or_open_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), &[]).unwrap();
    let device = pki.issue_device("KZ-1").unwrap();
    assert_eq!(
        ClientTls::load(&device.tls).unwrap().common_name(),
        Some("KZ-1")
    );
    assert_eq!(
        ClientTls::load(&pki.central().tls).unwrap().common_name(),
        Some(CENTRAL_CN)
    );
    assert_eq!(
        ClientTls::load(&pki.commands()).unwrap().common_name(),
        Some(COMMANDS_CN)
    );

    let wrong = TlsFiles {
        key: pki.central().tls.key,
        ..device.tls.clone()
    };
    let err = ClientTls::load(&wrong).unwrap_err();
    assert!(matches!(err, PkiError::Mismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("KZ-1.tls.crt") && err.to_string().contains("central.tls.key"),
        "{err}"
    );

    let missing = TlsFiles {
        key: dir.path().join("nowhere.key"),
        ..device.tls.clone()
    };
    let err = ClientTls::load(&missing).unwrap_err();
    assert!(err.to_string().contains("nowhere.key"), "{err}");

    std::fs::set_permissions(&device.tls.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = ClientTls::load(&device.tls).unwrap_err();
    assert!(
        matches!(err, PkiError::Exposed { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");

    let not_a_cert = TlsFiles {
        ca: device.tls.key.clone(),
        ..pki.central().tls
    };
    let err = ClientTls::load(&not_a_cert).unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::Malformed {
                what: "CA certificate",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_revoked_device_certificate_is_refused_by_the_crl_and_the_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), &[]).unwrap();
    let lost = pki.issue_device("KZ-LOST").unwrap();
    let kept = pki.issue_device("KZ-KEPT").unwrap();
    let crl =
        |pki: &Pki| vec![CertificateRevocationListDer::from_pem_file(pki.broker().crl).unwrap()];
    verify_client(&pki.ca_cert(), &lost.tls.cert, crl(&pki)).unwrap();
    assert_eq!(pki.revoke_device("KZ-LOST").unwrap(), pki.broker().crl);
    // Revoking twice lists it once.
    pki.revoke_device("KZ-LOST").unwrap();
    let list = std::fs::read_to_string(dir.path().join("revoked.txt")).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    let err = verify_client(&pki.ca_cert(), &lost.tls.cert, crl(&pki)).unwrap_err();
    assert!(err.to_string().to_lowercase().contains("revoked"), "{err}");
    verify_client(&pki.ca_cert(), &kept.tls.cert, crl(&pki)).unwrap();
    assert!(pki.revoke_device("KZ-NEVER").is_err());

    // A rotation: the old folder moved away, a new identity issued, the old one revoked by
    // its file; the new one still verifies.
    let old = dir.path().join("KZ-KEPT.old");
    std::fs::rename(&kept.dir, &old).unwrap();
    let new = pki.issue_device("KZ-KEPT").unwrap();
    pki.revoke_certificate(&old.join("KZ-KEPT.tls.crt"))
        .unwrap();
    assert!(verify_client(&pki.ca_cert(), &old.join("KZ-KEPT.tls.crt"), crl(&pki)).is_err());
    verify_client(&pki.ca_cert(), &new.tls.cert, crl(&pki)).unwrap();
    // Another CA's certificate is not listed in ours.
    let theirs = tempfile::tempdir().unwrap();
    let theirs = Pki::init(theirs.path(), &[]).unwrap();
    let foreign = theirs.issue_device("KZ-X").unwrap();
    let err = pki.revoke_certificate(&foreign.tls.cert).unwrap_err();
    assert!(
        err.to_string().contains("not issued by this PKI's CA"),
        "{err}"
    );
}

#[test]
fn a_control_post_gets_its_cn_keys_device_keys_and_acl_block_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"), &[]).unwrap();
    // A device not issued yet cannot be given to a post: nothing is written.
    let err = pki
        .issue_post("P1", &["KZ-1".into()], "anpr/v1")
        .unwrap_err();
    assert!(err.to_string().contains("issue the device first"), "{err}");
    assert!(!pki.post("P1").unwrap().tls.key.exists());
    pki.issue_device("KZ-1").unwrap();
    let p = pki.issue_post("P1", &["KZ-1".into()], "anpr/v1").unwrap();
    assert_eq!(common_name(&p.tls.cert), "anpr-post-P1");
    assert_eq!(mode(&p.tls.key), 0o600);
    assert_eq!(mode(&p.signing_key), 0o600);
    assert_eq!(
        std::fs::read(p.device_keys.join("KZ-1.pub")).unwrap(),
        std::fs::read(pki.central().device_keys.join("KZ-1.pub")).unwrap()
    );
    let acl = std::fs::read_to_string(&p.acl).unwrap();
    assert_eq!(acl, post_acl("P1", &["KZ-1".into()], "anpr/v1"));
    let key = std::fs::read(&p.tls.key).unwrap();
    assert!(matches!(
        pki.issue_post("P1", &[], "anpr/v1"),
        Err(PkiError::Exists { .. })
    ));
    assert_eq!(std::fs::read(&p.tls.key).unwrap(), key, "never overwritten");
    assert!(matches!(
        pki.issue_post("anpr-central", &[], "anpr/v1"),
        Err(PkiError::BadInventory { .. })
    ));
}
