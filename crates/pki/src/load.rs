//! The client side of mutual TLS: a rustls configuration from a client's three files,
//! checked when it is made.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::files::{read, read_private};
use crate::{PkiError, TlsFiles};

const FIX_FILES: &str = "copy it from the folder `anpr pki` wrote for this client, or fix the path in the configuration";

/// A client's TLS configuration (rustls with the ring provider): it trusts only the given CA
/// and logs in with the given certificate.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    files: TlsFiles,
    common_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.files.ca)
            .field("cert", &self.files.cert)
            .field("key", &self.files.key)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Reads and checks `files`: the CA file holds at least one certificate, the certificate
    /// file at least one, the key is a PEM private key that only its owner can read, and the
    /// certificate belongs to the key. Each failure names the file.
    pub fn load(files: &TlsFiles) -> Result<Self, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cas = certificates("CA certificate", &files.ca)?;
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots.add(ca).map_err(|e| PkiError::Malformed {
                what: "CA certificate",
                path: files.ca.clone(),
                message: e.to_string(),
            })?;
        }
        let chain = certificates("client certificate", &files.cert)?;
        let common_name = x509_parser::parse_x509_certificate(&chain[0])
            .ok()
            .and_then(|(_, cert)| {
                cert.subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok())
                    .map(str::to_string)
            });
        let pem = read_private("private key", &files.key, FIX_FILES)?;
        let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| PkiError::Malformed {
            what: "private key",
            path: files.key.clone(),
            message: format!("no PEM private key in it: {e}"),
        })?;
        let signer = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| PkiError::Malformed {
                what: "private key",
                path: files.key.clone(),
                message: e.to_string(),
            })?;
        rustls::sign::CertifiedKey::new(chain.clone(), signer)
            .keys_match()
            .map_err(|_| PkiError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_root_certificates(roots)
                    .with_client_auth_cert(chain, key)
            })
            .map_err(|e| PkiError::Malformed {
                what: "client certificate",
                path: files.cert.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            config: Arc::new(config),
            files: files.clone(),
            common_name,
        })
    }

    /// The rustls configuration, for `rumqttc::TlsConfiguration::Rustls`.
    #[must_use]
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The CN of the client's certificate: the user name, and so the client id, the broker
    /// gives it. `None` if the certificate has none.
    #[must_use]
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The files it was read from.
    #[must_use]
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// The certificates in the PEM file `path`; none is an error.
fn certificates(
    what: &'static str,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let pem = read(what, path, FIX_FILES)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Malformed {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Malformed {
            what,
            path: path.to_path_buf(),
            message: "it holds no `BEGIN CERTIFICATE` block".into(),
        });
    }
    Ok(certs)
}
