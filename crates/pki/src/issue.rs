//! Making the CA, the broker's and the clients' certificates, the CRL, and the signing keys.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use time::{Duration, OffsetDateTime};

use crate::files::{KEY_MODE, PUBLIC_MODE, make_dir, read, read_private, write_new, write_public};
use crate::{
    BROKER_CN, BrokerFiles, CENTRAL_CN, COMMANDS_CN, CentralFiles, DeviceFiles, PkiError, TlsFiles,
    check_inventory,
};

/// Validity of the CA certificate.
const CA_DAYS: i64 = 3650;
/// Validity of the broker's and the clients' certificates.
const LEAF_DAYS: i64 = 730;
/// Certificates are valid from this long before they are made (clocks differ a little).
const BACKDATE: Duration = Duration::hours(1);

pub(crate) const FIX_INIT: &str = "run `anpr pki init --dir DIR` first";
const FIX_INIT_AGAIN: &str = "a PKI is already set up there: `anpr pki device` issues device identities from it; to start over, move the folder away (every identity it issued stops being trusted once the broker has the new CA)";
const FIX_COMMANDS: &str = "the command sender already has an identity: `anpr send-list` uses it as it is; to rotate it, move both files away, run `anpr pki commands` again, then revoke the old certificate with `anpr pki revoke --cert <old commands.tls.crt>` (docs/security.md)";
const FIX_DEVICE: &str = "this device already has an identity: to rotate it, move its folder under devices/ away, issue it again, then revoke the old certificate with `anpr pki revoke --cert <old folder>/<inventory>.tls.crt` (docs/security.md)";

/// A PKI on disk (see the crate's layout).
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Makes a new PKI in `dir` (created if missing): the CA, the broker's server certificate
    /// (SAN `localhost`, `127.0.0.1` and `broker_names`), an empty CRL, the central receiver's
    /// client certificate, the command sender's client certificate and the central side's
    /// signing keys. Fails, writing nothing, when `dir` already holds a PKI (or any of these
    /// keys) or a name is not a DNS name or an IP address.
    pub fn init(dir: &Path, broker_names: &[String]) -> Result<Self, PkiError> {
        let pki = Self {
            dir: dir.to_path_buf(),
        };
        let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        for name in broker_names {
            if !sans.contains(name) {
                sans.push(name.clone());
            }
        }
        let sans: Vec<SanType> = sans.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        let broker = pki.broker();
        let central = pki.central();
        let commands = pki.commands();
        for (what, path) in [
            ("CA key", pki.ca_key()),
            ("CA certificate", pki.ca_cert()),
            ("broker key", broker.key.clone()),
            ("central receiver's TLS key", central.tls.key.clone()),
            ("command sender's TLS key", commands.key.clone()),
            ("central side's signing key", central.signing_key.clone()),
        ] {
            if path.exists() {
                return Err(PkiError::Exists {
                    what,
                    path,
                    fix: FIX_INIT_AGAIN,
                });
            }
        }
        for d in [dir, &broker.dir, &central.dir, &central.device_keys] {
            make_dir(d)?;
        }

        let ca_key = new_key("the CA key")?;
        let ca_params = ca_params()?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(generate("the CA certificate"))?;
        write_new(
            "CA key",
            &pki.ca_key(),
            KEY_MODE,
            ca_key.serialize_pem().as_bytes(),
            FIX_INIT_AGAIN,
        )?;
        write_new(
            "CA certificate",
            &pki.ca_cert(),
            PUBLIC_MODE,
            ca_cert.pem().as_bytes(),
            FIX_INIT_AGAIN,
        )?;
        let issuer = Issuer::new(ca_params, ca_key);

        write_public("CA certificate", &broker.ca, ca_cert.pem().as_bytes())?;
        let mut params = leaf_params(BROKER_CN, ExtendedKeyUsagePurpose::ServerAuth)?;
        params.subject_alt_names = sans;
        issue(
            &issuer,
            &params,
            ("broker key", "broker certificate"),
            &broker.cert,
            &broker.key,
            FIX_INIT_AGAIN,
        )?;
        pki.write_crl(&issuer, &[])?;

        write_public("CA certificate", &central.tls.ca, ca_cert.pem().as_bytes())?;
        let params = leaf_params(CENTRAL_CN, ExtendedKeyUsagePurpose::ClientAuth)?;
        issue(
            &issuer,
            &params,
            (
                "central receiver's TLS key",
                "central receiver's certificate",
            ),
            &central.tls.cert,
            &central.tls.key,
            FIX_INIT_AGAIN,
        )?;
        let params = leaf_params(COMMANDS_CN, ExtendedKeyUsagePurpose::ClientAuth)?;
        issue(
            &issuer,
            &params,
            ("command sender's TLS key", "command sender's certificate"),
            &commands.cert,
            &commands.key,
            FIX_INIT_AGAIN,
        )?;
        anpr_trust::generate_signing_key(&central.signing_key, &central.signing_pub)?;
        Ok(pki)
    }

    /// The PKI in `dir`, made earlier by [`Pki::init`].
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let pki = Self {
            dir: dir.to_path_buf(),
        };
        for (what, path) in [("CA certificate", pki.ca_cert()), ("CA key", pki.ca_key())] {
            if !path.is_file() {
                return Err(PkiError::Missing {
                    what,
                    path,
                    fix: FIX_INIT,
                });
            }
        }
        Ok(pki)
    }

    /// The PKI's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate.
    #[must_use]
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// The list of revoked certificates (`serial inventory time`, one a line).
    fn revoked_list(&self) -> PathBuf {
        self.dir.join("revoked.txt")
    }

    /// The broker's files.
    #[must_use]
    pub fn broker(&self) -> BrokerFiles {
        let dir = self.dir.join("broker");
        BrokerFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("broker.crt"),
            key: dir.join("broker.key"),
            crl: dir.join("crl.pem"),
            dir,
        }
    }

    /// The central receiver's files.
    #[must_use]
    pub fn central(&self) -> CentralFiles {
        let dir = self.dir.join("central");
        CentralFiles {
            tls: TlsFiles {
                ca: dir.join("ca.crt"),
                cert: dir.join("central.tls.crt"),
                key: dir.join("central.tls.key"),
            },
            signing_key: dir.join("central.key"),
            signing_pub: dir.join("central.pub"),
            device_keys: dir.join("devices"),
            dir,
        }
    }

    /// The command sender's TLS files (CN [`COMMANDS_CN`], for `anpr send-list`), beside the
    /// central receiver's in `central/`, with the same CA certificate. Whether issued or not:
    /// a PKI made before this identity existed has none until [`Pki::issue_commands`].
    #[must_use]
    pub fn commands(&self) -> TlsFiles {
        let dir = self.dir.join("central");
        TlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("commands.tls.crt"),
            key: dir.join("commands.tls.key"),
        }
    }

    /// Issues the command sender's client certificate and key into a PKI that has none (one
    /// made before [`Pki::init`] issued it), and the copy of the CA certificate beside them if
    /// it is missing. Refuses, writing nothing, when its key or certificate exists.
    pub fn issue_commands(&self) -> Result<TlsFiles, PkiError> {
        let files = self.commands();
        for (what, path) in [
            ("command sender's TLS key", &files.key),
            ("command sender's certificate", &files.cert),
        ] {
            if path.exists() {
                return Err(PkiError::Exists {
                    what,
                    path: path.clone(),
                    fix: FIX_COMMANDS,
                });
            }
        }
        let issuer = self.issuer()?;
        make_dir(&self.central().dir)?;
        if !files.ca.exists() {
            write_public(
                "CA certificate",
                &files.ca,
                &read("CA certificate", &self.ca_cert(), FIX_INIT)?,
            )?;
        }
        let params = leaf_params(COMMANDS_CN, ExtendedKeyUsagePurpose::ClientAuth)?;
        issue(
            &issuer,
            &params,
            ("command sender's TLS key", "command sender's certificate"),
            &files.cert,
            &files.key,
            FIX_COMMANDS,
        )?;
        Ok(files)
    }

    /// Where the files of device `inventory` are (whether issued or not).
    pub fn device(&self, inventory: &str) -> Result<DeviceFiles, PkiError> {
        check_inventory(inventory)?;
        let dir = self.dir.join("devices").join(inventory);
        Ok(DeviceFiles {
            inventory: inventory.to_string(),
            tls: TlsFiles {
                ca: dir.join("ca.crt"),
                cert: dir.join(format!("{inventory}.tls.crt")),
                key: dir.join(format!("{inventory}.tls.key")),
            },
            signing_key: dir.join(format!("{inventory}.sign.key")),
            signing_pub: dir.join(format!("{inventory}.sign.pub")),
            central_pub: dir.join("central.pub"),
            dir,
        })
    }

    /// Issues the identity of device `inventory`: its client certificate (CN = inventory) and
    /// key, its signing key pair, copies of the CA certificate and of the central side's
    /// public key into its folder, and its public key into the central side's folder.
    /// Refuses a device that already has a key.
    pub fn issue_device(&self, inventory: &str) -> Result<DeviceFiles, PkiError> {
        let files = self.device(inventory)?;
        for (what, path) in [
            ("device TLS key", &files.tls.key),
            ("device signing key", &files.signing_key),
        ] {
            if path.exists() {
                return Err(PkiError::Exists {
                    what,
                    path: path.clone(),
                    fix: FIX_DEVICE,
                });
            }
        }
        let central = self.central();
        let central_pub = read(
            "central side's public signing key",
            &central.signing_pub,
            "the PKI is incomplete: make a new one with `anpr pki init`",
        )?;
        let issuer = self.issuer()?;
        make_dir(&files.dir)?;
        make_dir(&central.device_keys)?;
        write_public(
            "CA certificate",
            &files.tls.ca,
            &read("CA certificate", &self.ca_cert(), FIX_INIT)?,
        )?;
        let params = leaf_params(inventory, ExtendedKeyUsagePurpose::ClientAuth)?;
        issue(
            &issuer,
            &params,
            ("device TLS key", "device certificate"),
            &files.tls.cert,
            &files.tls.key,
            FIX_DEVICE,
        )?;
        anpr_trust::generate_signing_key(&files.signing_key, &files.signing_pub)?;
        write_public(
            "central side's public signing key",
            &files.central_pub,
            &central_pub,
        )?;
        write_public(
            "device public signing key",
            &central.device_keys.join(format!("{inventory}.pub")),
            &read("device public signing key", &files.signing_pub, FIX_DEVICE)?,
        )?;
        Ok(files)
    }

    /// Issues a client certificate with CN `common_name` (no other check on the name) into
    /// `cert` and `key`: for another central-side client the broker's ACL names.
    pub fn issue_client(&self, common_name: &str, cert: &Path, key: &Path) -> Result<(), PkiError> {
        if common_name.is_empty() {
            return Err(PkiError::BadInventory {
                inventory: String::new(),
                why: "it is empty",
            });
        }
        let issuer = self.issuer()?;
        let params = leaf_params(common_name, ExtendedKeyUsagePurpose::ClientAuth)?;
        issue(
            &issuer,
            &params,
            ("client TLS key", "client certificate"),
            cert,
            key,
            "move the old certificate and key away first",
        )
    }

    /// Revokes the TLS certificate of device `inventory` (the one in its folder): see
    /// [`Pki::revoke_certificate`].
    pub fn revoke_device(&self, inventory: &str) -> Result<PathBuf, PkiError> {
        self.revoke_certificate(&self.device(inventory)?.tls.cert)
    }

    /// Revokes the certificate in the file `cert` (one this CA issued, e.g. a device's old
    /// certificate moved away at a rotation): adds its serial number to the PKI's list and
    /// writes a new CRL for the broker (`broker/crl.pem`), which refuses the certificate once
    /// it has read the new CRL. Returns the CRL's path.
    pub fn revoke_certificate(&self, cert: &Path) -> Result<PathBuf, PkiError> {
        let pem = read(
            "certificate",
            cert,
            "nothing to revoke: no certificate was issued for this inventory from this PKI",
        )?;
        let ca = read("CA certificate", &self.ca_cert(), FIX_INIT)?;
        let (serial, label) = revocable(cert, &pem, &self.ca_cert(), &ca)?;
        let inventory = label.as_str();
        let list = self.revoked_list();
        let mut text = match std::fs::read_to_string(&list) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(PkiError::Read {
                    what: "list of revoked certificates",
                    path: list,
                    source,
                });
            }
        };
        let hex = serial.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        if !text
            .lines()
            .any(|l| l.split(' ').next() == Some(hex.as_str()))
        {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let _ = writeln!(text, "{hex} {inventory} {now}");
        }
        let revoked = parse_revoked(&list, &text)?;
        let issuer = self.issuer()?;
        write_public("list of revoked certificates", &list, text.as_bytes())?;
        self.write_crl(&issuer, &revoked)?;
        Ok(self.broker().crl)
    }

    /// Writes the CRL of the revoked certificates, valid as long as the CA.
    fn write_crl(
        &self,
        issuer: &Issuer<'_, KeyPair>,
        revoked: &[RevokedCertParams],
    ) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + Duration::days(CA_DAYS),
            crl_number: SerialNumber::from(revoked.len() as u64 + 1),
            issuing_distribution_point: None,
            revoked_certs: revoked.to_vec(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(issuer)
            .and_then(|c| c.pem())
            .map_err(generate("the certificate revocation list"))?;
        write_public(
            "certificate revocation list",
            &self.broker().crl,
            crl.as_bytes(),
        )
    }

    /// The CA as an issuer, from its certificate and key.
    pub(crate) fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let cert = read("CA certificate", &self.ca_cert(), FIX_INIT)?;
        let key = read_private("CA key", &self.ca_key(), FIX_INIT)?;
        let malformed = |what: &'static str, path: PathBuf| {
            move |e: rcgen::Error| PkiError::Malformed {
                what,
                path,
                message: e.to_string(),
            }
        };
        let key = KeyPair::from_pem(&String::from_utf8_lossy(&key))
            .map_err(malformed("CA key", self.ca_key()))?;
        Issuer::from_ca_cert_pem(&String::from_utf8_lossy(&cert), key)
            .map_err(malformed("CA certificate", self.ca_cert()))
    }
}

/// A SAN entry: an IP address or a DNS name.
fn san(name: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = name.parse() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        return Err(PkiError::BadName {
            name: name.to_string(),
        });
    }
    name.to_string()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|_| PkiError::BadName {
            name: name.to_string(),
        })
}

fn generate(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |e| PkiError::Generate {
        what,
        message: e.to_string(),
    }
}

fn new_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(generate(what))
}

/// A random positive serial number of 16 bytes.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Generate {
            what: "a serial number",
            message: "the system's random number generator failed".into(),
        })?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ANPR");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    p.distinguished_name = name("ANPR development CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(CA_DAYS);
    p.serial_number = Some(random_serial()?);
    Ok(p)
}

pub(crate) fn leaf_params(
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Result<CertificateParams, PkiError> {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    p.distinguished_name = name(common_name);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![usage];
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(LEAF_DAYS);
    p.serial_number = Some(random_serial()?);
    Ok(p)
}

/// Makes a key and a certificate for it signed by `issuer`; writes the key (0600, new) and
/// then the certificate (0644, new).
pub(crate) fn issue(
    issuer: &Issuer<'_, KeyPair>,
    params: &CertificateParams,
    (key_what, cert_what): (&'static str, &'static str),
    cert_path: &Path,
    key_path: &Path,
    fix: &'static str,
) -> Result<(), PkiError> {
    let key = new_key("a key")?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(generate("a certificate"))?;
    write_new(
        key_what,
        key_path,
        KEY_MODE,
        key.serialize_pem().as_bytes(),
        fix,
    )?;
    write_new(
        cert_what,
        cert_path,
        PUBLIC_MODE,
        cert.pem().as_bytes(),
        fix,
    )
}

/// The serial number and CN of the certificate in `pem` (read from `path`), checked to be
/// issued by the CA in `ca_pem` (read from `ca_path`).
fn revocable(
    path: &Path,
    pem: &[u8],
    ca_path: &Path,
    ca_pem: &[u8],
) -> Result<(Vec<u8>, String), PkiError> {
    let malformed = |what, path: &Path, message: String| PkiError::Malformed {
        what,
        path: path.to_path_buf(),
        message,
    };
    let (_, cert_pem) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| malformed("certificate", path, e.to_string()))?;
    let cert = cert_pem
        .parse_x509()
        .map_err(|e| malformed("certificate", path, e.to_string()))?;
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca_pem)
        .map_err(|e| malformed("CA certificate", ca_path, e.to_string()))?;
    let ca = ca_pem
        .parse_x509()
        .map_err(|e| malformed("CA certificate", ca_path, e.to_string()))?;
    if cert.issuer().as_raw() != ca.subject().as_raw()
        || cert.verify_signature(Some(ca.public_key())).is_err()
    {
        return Err(malformed(
            "certificate",
            path,
            format!(
                "it was not issued by this PKI's CA {} (its issuer is {})",
                ca_path.display(),
                cert.issuer()
            ),
        ));
    }
    let label = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("-")
        .replace(' ', "_");
    Ok((cert.tbs_certificate.raw_serial().to_vec(), label))
}

/// The revoked certificates listed in `text` (`serial-hex inventory unix-time` lines).
fn parse_revoked(path: &Path, text: &str) -> Result<Vec<RevokedCertParams>, PkiError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let bad = || PkiError::Malformed {
                what: "list of revoked certificates",
                path: path.to_path_buf(),
                message: format!("the line {line:?} is not `serial inventory unix-time`"),
            };
            let mut parts = line.split(' ');
            let (Some(hex), Some(_), Some(at)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad());
            };
            if hex.len() % 2 != 0 {
                return Err(bad());
            }
            let serial = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| bad())?;
            let at = at
                .parse::<i64>()
                .ok()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                .ok_or_else(bad)?;
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: at,
                reason_code: None,
                invalidity_date: None,
            })
        })
        .collect()
}
