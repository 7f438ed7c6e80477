//! The model files and the ONNX Runtime library, checked against pinned sha256 before they are
//! loaded.
//!
//! Contract: [`verify`] reads each file whole once, hashes it with sha256, and compares the hash
//! with the file's pin: the one given by the caller (the config's `[models.sha256]`) when there
//! is one, else the line for the file in `SHA256SUMS` of the models directory (as `sha256sum`
//! writes it; `models/fetch.sh` writes it after installing the files). A file whose hash differs
//! from its pin, or that has no pin, is an error naming the file, both hashes where known, and
//! the fix; nothing is loaded then. What passes is returned as [`ModelHash`]es, which the
//! device reports in its health messages.
//!
//! What this protects against, honestly: a model or library that is not the one fetched
//! (a truncated copy, a disk error, a file copied from another version or another machine, a
//! file swapped while the device was off). It does not protect against someone who can write
//! both the files and `SHA256SUMS` (or the config); and the file is hashed, then opened again by
//! ONNX Runtime, so a file replaced in between is not caught.

use std::io::Read;
use std::path::{Path, PathBuf};

use anpr_types::ModelHash;
use sha2::{Digest, Sha256};

use crate::VisionError;

/// The file of pins in the models directory.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// One file to check before it is loaded.
#[derive(Debug, Clone)]
pub struct PinnedFile {
    /// What it is: `plate_detector`, `plate_reader`, `vehicle_detector`, `vehicle_types`,
    /// `onnxruntime`.
    pub name: String,
    pub path: PathBuf,
    /// The pin given by the configuration (it takes precedence over `SHA256SUMS`).
    pub pin: Option<String>,
}

/// The sha256 of a file's bytes, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, VisionError> {
    let read = |e: std::io::Error| VisionError::ModelRead {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The pins of `SHA256SUMS` in `dir`: (file name as written, lower-case hash). An absent file
/// is no pins; a line that is not `HASH  NAME` is an error naming the file and its line.
fn read_sums(dir: &Path) -> Result<Vec<(String, String)>, VisionError> {
    let path = dir.join(SUMS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(VisionError::ModelRead {
                path,
                message: e.to_string(),
            });
        }
    };
    let mut sums = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line.split_once(' ').and_then(|(hash, rest)| {
            // `sha256sum` writes two spaces, or a space and `*` in binary mode.
            let name = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
            (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty())
                .then(|| (name.to_string(), hash.to_ascii_lowercase()))
        });
        match parsed {
            Some(entry) => sums.push(entry),
            None => {
                return Err(VisionError::ModelRead {
                    path,
                    message: format!(
                        "line {} is not `SHA256  FILE` as sha256sum writes it; run models/fetch.sh to write it again",
                        i + 1
                    ),
                });
            }
        }
    }
    Ok(sums)
}

/// Checks every file against its pin (see the module doc); the hashes of all, in the order
/// given, when every one matches.
pub fn verify(dir: &Path, files: &[PinnedFile]) -> Result<Vec<ModelHash>, VisionError> {
    let sums = read_sums(dir)?;
    let sums_path = dir.join(SUMS_FILE);
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        if !f.path.is_file() {
            return Err(VisionError::ModelMissing {
                path: f.path.clone(),
            });
        }
        let actual = sha256_file(&f.path)?;
        let listed = f
            .path
            .strip_prefix(dir)
            .ok()
            .and_then(|rel| {
                let rel = rel.to_string_lossy();
                sums.iter().find(|(name, _)| {
                    name == rel.as_ref() || name.strip_prefix("./") == Some(rel.as_ref())
                })
            })
            .map(|(_, hash)| hash.clone());
        let (expected, pinned_in) = match (&f.pin, listed) {
            (Some(pin), _) => (
                pin.to_ascii_lowercase(),
                format!("[models.sha256] {}", f.name),
            ),
            (None, Some(hash)) => (hash, sums_path.display().to_string()),
            (None, None) => {
                return Err(VisionError::ModelUnpinned {
                    path: f.path.clone(),
                    name: f.name.clone(),
                    actual,
                    sums: sums_path,
                });
            }
        };
        if actual != expected {
            return Err(VisionError::ModelHashMismatch {
                path: f.path.clone(),
                expected,
                actual,
                pinned_in,
            });
        }
        out.push(ModelHash {
            name: f.name.clone(),
            sha256: actual,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn file(name: &str, path: PathBuf) -> PinnedFile {
        PinnedFile {
            name: name.into(),
            path,
            pin: None,
        }
    }

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn files_matching_sha256sums_pass_and_a_tampered_byte_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let model = write(dir.path(), "plate_detector.onnx", b"model bytes");
        let lib = write(dir.path(), "libonnxruntime.so", b"");
        let model_hash = sha256_file(&model).unwrap();
        std::fs::write(
            dir.path().join(SUMS_FILE),
            format!("{model_hash}  plate_detector.onnx\n{EMPTY} *libonnxruntime.so\n"),
        )
        .unwrap();
        let files = [
            file("plate_detector", model.clone()),
            file("onnxruntime", lib),
        ];
        let hashes = verify(dir.path(), &files).unwrap();
        assert_eq!(hashes[0].name, "plate_detector");
        assert_eq!(hashes[0].sha256, model_hash);
        assert_eq!(hashes[1].sha256, EMPTY);

        std::fs::write(&model, b"model bytez").unwrap();
        let err = verify(dir.path(), &files).expect_err("tampered");
        let msg = err.to_string();
        assert!(
            matches!(err, VisionError::ModelHashMismatch { .. }),
            "{msg}"
        );
        assert!(
            msg.contains("plate_detector.onnx")
                && msg.contains(&model_hash)
                && msg.contains(SUMS_FILE)
                && msg.contains("models/fetch.sh"),
            "{msg}"
        );
    }

    #[test]
    fn a_pin_in_the_config_takes_precedence_and_a_file_without_any_pin_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lib = write(dir.path(), "libonnxruntime.so", b"");
        let wrong = "0".repeat(64);
        std::fs::write(
            dir.path().join(SUMS_FILE),
            format!("{wrong}  libonnxruntime.so\n"),
        )
        .unwrap();
        let pinned = PinnedFile {
            pin: Some(EMPTY.to_ascii_uppercase()),
            ..file("onnxruntime", lib.clone())
        };
        assert!(verify(dir.path(), std::slice::from_ref(&pinned)).is_ok());
        let err = verify(
            dir.path(),
            &[PinnedFile {
                pin: Some(wrong.clone()),
                ..pinned
            }],
        )
        .expect_err("config pin differs");
        assert!(
            err.to_string().contains("[models.sha256] onnxruntime"),
            "{err}"
        );

        std::fs::remove_file(dir.path().join(SUMS_FILE)).unwrap();
        let err = verify(dir.path(), &[file("onnxruntime", lib)]).expect_err("no pin");
        let msg = err.to_string();
        assert!(matches!(err, VisionError::ModelUnpinned { .. }), "{msg}");
        assert!(
            msg.contains("libonnxruntime.so") && msg.contains(EMPTY),
            "{msg}"
        );

        std::fs::write(dir.path().join(SUMS_FILE), "not a sum\n").unwrap();
        let msg = verify(dir.path(), &[]).expect_err("malformed").to_string();
        assert!(
            msg.contains("SHA256SUMS") && msg.contains("line 1"),
            "{msg}"
        );
    }
}
