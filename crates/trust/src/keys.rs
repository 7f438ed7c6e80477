//! Key files: making a key pair, reading keys back, and refusing private keys others can read.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::TrustError;

/// Makes a new ed25519 key pair: the private key as PKCS#8 PEM at `private_pem` (created with
/// mode 0600, refused if the file exists), the public key as SPKI PEM at `public_pem` (mode
/// 0644, replaced if it exists). Missing parent directories are created (mode 0700 for the
/// private key's).
pub fn generate_signing_key(private_pem: &Path, public_pem: &Path) -> Result<(), TrustError> {
    if private_pem.exists() {
        return Err(TrustError::Exists {
            path: private_pem.to_path_buf(),
        });
    }
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| TrustError::Malformed {
            what: "private key",
            path: private_pem.to_path_buf(),
            format: "PKCS#8 PEM",
            message: e.to_string(),
        })?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| TrustError::Malformed {
            what: "public key",
            path: public_pem.to_path_buf(),
            format: "SPKI PEM",
            message: e.to_string(),
        })?;
    if let Some(dir) = private_pem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write("directory of the private key", dir))?;
    }
    if let Some(dir) = public_pem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write("directory of the public key", dir))?;
    }
    // create_new: never overwrite, and never follow a link planted there meanwhile.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(private_pem)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                TrustError::Exists {
                    path: private_pem.to_path_buf(),
                }
            } else {
                TrustError::Write {
                    what: "private key",
                    path: private_pem.to_path_buf(),
                    source,
                }
            }
        })?;
    file.write_all(private.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write("private key", private_pem))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(public_pem)
        .map_err(write("public key", public_pem))?;
    file.write_all(public.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write("public key", public_pem))?;
    Ok(())
}

/// Refuses a private key file whose mode lets the group or others read or write it.
pub fn check_private_key_mode(path: &Path) -> Result<(), TrustError> {
    let meta = std::fs::metadata(path).map_err(|source| read_error("private key", path, source))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TrustError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Reads a private key (PKCS#8 PEM) after checking that only its owner can read it.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, TrustError> {
    load_signing_key_as("private key", path)
}

/// As [`load_signing_key`], with `what` naming the key in errors (`device private key`, ...).
pub fn load_signing_key_as(what: &'static str, path: &Path) -> Result<SigningKey, TrustError> {
    check_private_key_mode(path).map_err(|e| match e {
        TrustError::Read { source, .. } => read_error(what, path, source),
        TrustError::Missing { .. } => TrustError::Missing {
            what,
            path: path.to_path_buf(),
        },
        e => e,
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| read_error(what, path, source))?;
    // The decoder's message says what is wrong with the encoding, never the key's bytes.
    SigningKey::from_pkcs8_pem(&text).map_err(|e| TrustError::Malformed {
        what,
        path: path.to_path_buf(),
        format: "PKCS#8 PEM ed25519 private key",
        message: e.to_string(),
    })
}

/// Reads a public key (SPKI PEM).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, TrustError> {
    load_verifying_key_as("public key", path)
}

/// As [`load_verifying_key`], with `what` naming the key in errors (`central public key`, ...).
pub fn load_verifying_key_as(what: &'static str, path: &Path) -> Result<VerifyingKey, TrustError> {
    let text = std::fs::read_to_string(path).map_err(|source| read_error(what, path, source))?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| TrustError::Malformed {
        what,
        path: path.to_path_buf(),
        format: "SPKI PEM ed25519 public key",
        message: e.to_string(),
    })
}

fn write<'a>(what: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> TrustError + 'a {
    move |source| TrustError::Write {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn read_error(what: &'static str, path: &Path, source: std::io::Error) -> TrustError {
    if source.kind() == std::io::ErrorKind::NotFound {
        TrustError::Missing {
            what,
            path: path.to_path_buf(),
        }
    } else {
        TrustError::Read {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Whether `inventory` may name a file (`<inventory>.pub`) and a topic level: letters, digits,
/// `-`, `_` and `.`, not starting with `.`, 1 to 64 characters.
#[must_use]
pub fn valid_inventory(inventory: &str) -> bool {
    !inventory.is_empty()
        && inventory.len() <= 64
        && !inventory.starts_with('.')
        && inventory
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The public keys of the devices a receiver trusts: `<dir>/<inventory>.pub`, read when first
/// needed and kept; a device not found is looked for again on its next event, so a key added
/// while the receiver runs is picked up.
#[derive(Debug)]
pub struct DeviceKeys {
    dir: PathBuf,
    known: Mutex<HashMap<String, VerifyingKey>>,
}

impl DeviceKeys {
    /// Keys under `dir`; the directory must exist.
    pub fn open(dir: &Path) -> Result<Self, TrustError> {
        if !dir.is_dir() {
            return Err(TrustError::Missing {
                what: "directory of device public keys",
                path: dir.to_path_buf(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            known: Mutex::new(HashMap::new()),
        })
    }

    /// The directory the keys are read from.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The public key of the device `inventory`.
    pub fn get(&self, inventory: &str) -> Result<VerifyingKey, TrustError> {
        if !valid_inventory(inventory) {
            return Err(TrustError::BadInventory {
                inventory: inventory.to_string(),
            });
        }
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = known.get(inventory) {
            return Ok(*k);
        }
        let key = load_verifying_key_as(
            "device public key",
            &self.dir.join(format!("{inventory}.pub")),
        )?;
        known.insert(inventory.to_string(), key);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_generated_pair_loads_back_with_private_0600_and_public_0644() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("k/dev.key"), dir.path().join("k/dev.pub"));
        generate_signing_key(&private, &public).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&private), 0o600);
        assert_eq!(mode(&public), 0o644);
        let sk = load_signing_key(&private).unwrap();
        let vk = load_verifying_key(&public).unwrap();
        assert_eq!(sk.verifying_key(), vk);
        assert!(
            std::fs::read_to_string(&private)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(
            std::fs::read_to_string(&public)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
    }

    #[test]
    fn an_existing_private_key_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("dev.key"), dir.path().join("dev.pub"));
        generate_signing_key(&private, &public).unwrap();
        let before = std::fs::read(&private).unwrap();
        let err = generate_signing_key(&private, &public).unwrap_err();
        assert!(matches!(err, TrustError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("not overwritten"), "{err}");
        assert_eq!(std::fs::read(&private).unwrap(), before);
    }

    #[test]
    fn a_private_key_others_can_read_is_refused_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("dev.key"), dir.path().join("dev.pub"));
        generate_signing_key(&private, &public).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&private, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = load_signing_key(&private).unwrap_err();
            assert!(matches!(err, TrustError::Exposed { .. }), "{mode:o}: {err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("chmod 600 {}", private.display())),
                "{text}"
            );
        }
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o400)).unwrap();
        load_signing_key(&private).unwrap();
    }

    #[test]
    fn missing_and_malformed_key_files_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        let err = load_signing_key_as("device private key", &missing).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&missing.display().to_string())
                && text.contains("anpr pki device --inventory"),
            "{text}"
        );
        let bad = dir.path().join("bad.pub");
        std::fs::write(
            &bad,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let err = load_verifying_key(&bad).unwrap_err();
        assert!(matches!(err, TrustError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("bad.pub"), "{err}");
    }

    #[test]
    fn device_keys_are_found_by_inventory_and_odd_inventories_cannot_name_files() {
        let dir = tempfile::tempdir().unwrap();
        generate_signing_key(&dir.path().join("a.key"), &dir.path().join("KZ-1.pub")).unwrap();
        let keys = DeviceKeys::open(dir.path()).unwrap();
        keys.get("KZ-1").unwrap();
        assert!(matches!(
            keys.get("KZ-2").unwrap_err(),
            TrustError::Missing { .. }
        ));
        for bad in ["", "../a", ".hidden", "a/b", "x+y", &"z".repeat(65)] {
            assert!(
                matches!(keys.get(bad).unwrap_err(), TrustError::BadInventory { .. }),
                "{bad}"
            );
        }
        // Added while running: found on the next look.
        generate_signing_key(&dir.path().join("b.key"), &dir.path().join("KZ-2.pub")).unwrap();
        keys.get("KZ-2").unwrap();
    }
}
