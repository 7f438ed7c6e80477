//! `[security]`: the keys that make the device's records trustworthy.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Checker, ConfigError};

/// The device's signing key and the central receiver's public key. Both files are read when
/// the device starts (a missing or exposed key stops it there, naming the file and the fix);
/// loading the configuration only checks what the file itself says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// The device's ed25519 private key (PKCS#8 PEM, mode 0600), which signs every event it
    /// records; relative to the config file. Default: `keys/device.key`. Made with
    /// `anpr pki device --inventory <inventory>`.
    #[serde(default = "default_device_key")]
    pub device_key: PathBuf,
    /// The central receiver's ed25519 public key (SPKI PEM): an acknowledgement not signed by
    /// it marks nothing delivered. Relative to the config file. Default: `keys/central.pub`.
    #[serde(default = "default_central_public_key")]
    pub central_public_key: PathBuf,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            device_key: default_device_key(),
            central_public_key: default_central_public_key(),
        }
    }
}

fn default_device_key() -> PathBuf {
    PathBuf::from("keys/device.key")
}
fn default_central_public_key() -> PathBuf {
    PathBuf::from("keys/central.pub")
}

/// Whether `path` ends in `.<ext>`.
fn has_extension(path: &std::path::Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

impl Security {
    pub(crate) fn validate(&self, c: &Checker<'_>) -> Result<(), ConfigError> {
        if self.device_key.as_os_str().is_empty() {
            return Err(c.invalid(
                "security.device_key",
                "must name the device's private key file; leave the key out for keys/device.key beside the config",
            ));
        }
        if self.central_public_key.as_os_str().is_empty() {
            return Err(c.invalid(
                "security.central_public_key",
                "must name the central receiver's public key file; leave the key out for keys/central.pub beside the config",
            ));
        }
        if has_extension(&self.device_key, "pub") {
            return Err(c.invalid(
                "security.device_key",
                "names a public key (.pub); the device signs with its private key (device.key from `anpr pki device`)",
            ));
        }
        if has_extension(&self.central_public_key, "key") {
            return Err(c.invalid(
                "security.central_public_key",
                "names a private key (.key); the device needs only the central receiver's public key (central.pub), never its private key",
            ));
        }
        if self.device_key == self.central_public_key {
            return Err(c.invalid(
                "security.central_public_key",
                "is the same file as security.device_key; give the central receiver's public key",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{ConfigError, parse};

    use crate::tests::LAB_BASE as BASE;

    fn path() -> &'static Path {
        Path::new("/etc/anpr/device.toml")
    }

    #[test]
    fn the_keys_default_to_a_keys_folder_beside_the_config() {
        let cfg = parse(BASE, path()).unwrap();
        assert_eq!(
            cfg.security.device_key,
            Path::new("/etc/anpr/keys/device.key")
        );
        assert_eq!(
            cfg.security.central_public_key,
            Path::new("/etc/anpr/keys/central.pub")
        );
    }

    #[test]
    fn given_paths_are_taken_relative_to_the_config_file() {
        let text = format!(
            "{BASE}\n[security]\ndevice_key = \"k/dev.key\"\ncentral_public_key = \"/srv/central.pub\"\n"
        );
        let cfg = parse(&text, path()).unwrap();
        assert_eq!(cfg.security.device_key, Path::new("/etc/anpr/k/dev.key"));
        assert_eq!(
            cfg.security.central_public_key,
            Path::new("/srv/central.pub")
        );
    }

    #[test]
    fn swapped_or_empty_keys_are_refused_naming_the_key_its_line_and_the_fix() {
        for (lines, key, fix) in [
            (
                "device_key = \"central.pub\"",
                "security.device_key",
                "private key",
            ),
            (
                "central_public_key = \"central.key\"",
                "security.central_public_key",
                "public key",
            ),
            (
                "device_key = \"\"",
                "security.device_key",
                "keys/device.key",
            ),
            (
                "device_key = \"same\"\ncentral_public_key = \"same\"",
                "security.central_public_key",
                "same file",
            ),
        ] {
            let text = format!("{BASE}\n[security]\n{lines}\n");
            let err = parse(&text, path()).expect_err(lines);
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{msg}");
            assert!(msg.contains(key) && msg.contains(fix), "{msg}");
            let field = key.rsplit('.').next().unwrap();
            let line = text.lines().position(|l| l.starts_with(field)).unwrap() + 1;
            assert_eq!(err.line(), Some(line), "{msg}");
        }
    }

    #[test]
    fn an_unknown_key_in_the_section_is_refused() {
        let text = format!("{BASE}\n[security]\nsigning_key = \"x\"\n");
        let msg = parse(&text, path()).unwrap_err().to_string();
        assert!(msg.contains("signing_key"), "{msg}");
    }
}
