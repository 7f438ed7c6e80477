//! Where the engines' binaries are.

use std::path::{Path, PathBuf};

use crate::ClusterError;

/// `nats-server`: `$ANPR_NATS_SERVER`, then `$ANPR_CACHE/bin` (or `~/.cache/anpr/bin`), then
/// `PATH`.
pub fn nats_server_binary() -> Result<PathBuf, ClusterError> {
    find("nats-server", "ANPR_NATS_SERVER")
}

/// `weed` (SeaweedFS): `$ANPR_WEED`, then `$ANPR_CACHE/bin` (or `~/.cache/anpr/bin`), then
/// `PATH`.
pub fn weed_binary() -> Result<PathBuf, ClusterError> {
    find("weed", "ANPR_WEED")
}

/// The directory of PostgreSQL's server programs (`initdb`, `postgres`, `pg_ctl`, `psql`):
/// `/usr/lib/postgresql/<version>/bin` of the highest version installed (the Debian layout).
pub fn postgres_bin_dir() -> Result<PathBuf, ClusterError> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                .then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| ClusterError::MissingBinary {
            what: "PostgreSQL (initdb, postgres)",
            looked: format!("{}/<version>/bin", root.display()),
        })
}

fn find(name: &'static str, var: &str) -> Result<PathBuf, ClusterError> {
    let mut looked = Vec::new();
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        looked.push(format!("${var}={}", p.display()));
    }
    let cache = std::env::var_os("ANPR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/anpr")));
    if let Some(cache) = cache {
        let p = cache.join("bin").join(name);
        if is_executable(&p) {
            return Ok(p);
        }
        looked.push(p.display().to_string());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if is_executable(&p) {
                return Ok(p);
            }
        }
        looked.push("PATH".to_string());
    }
    Err(ClusterError::MissingBinary {
        what: name,
        looked: looked.join(", "),
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
