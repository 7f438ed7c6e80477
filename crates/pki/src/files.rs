//! Writing and reading the PKI's files with the modes the contract promises.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::PkiError;

/// Mode of private keys.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificates and public keys.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Creates `dir` and its missing parents with mode 0700.
pub(crate) fn make_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::Write {
            what: "directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `bytes` into the new file `path`, created with `mode` in the same call (never
/// readable by others for a moment) and never over an existing file (nor through a link
/// planted there), then synced.
pub(crate) fn write_new(
    what: &'static str,
    path: &Path,
    mode: u32,
    bytes: &[u8],
    fix: &'static str,
) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                PkiError::Exists {
                    what,
                    path: path.to_path_buf(),
                    fix,
                }
            } else {
                PkiError::Write {
                    what,
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| PkiError::Write {
            what,
            path: path.to_path_buf(),
            source,
        })
}

/// Writes a public file (a certificate or a public key), replacing what is there.
pub(crate) fn write_public(what: &'static str, path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        what,
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PUBLIC_MODE)
        .open(path)
        .map_err(err)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(err)
}

/// Reads a file; a missing one is [`PkiError::Missing`] with `fix`.
pub(crate) fn read(
    what: &'static str,
    path: &Path,
    fix: &'static str,
) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            PkiError::Missing {
                what,
                path: path.to_path_buf(),
                fix,
            }
        } else {
            PkiError::Read {
                what,
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Reads a private key after checking that neither its group nor others can read or write it.
pub(crate) fn read_private(
    what: &'static str,
    path: &Path,
    fix: &'static str,
) -> Result<Vec<u8>, PkiError> {
    let meta = std::fs::metadata(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            PkiError::Missing {
                what,
                path: path.to_path_buf(),
                fix,
            }
        } else {
            PkiError::Read {
                what,
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PkiError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    read(what, path, fix)
}
