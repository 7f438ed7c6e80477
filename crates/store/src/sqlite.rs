//! How the appliance opens a SQLite database, and the small helpers every module of the
//! queue shares.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::StoreError;

/// Opens a SQLite database the way every durable table of the appliance wants it: WAL
/// journal, `synchronous=FULL` (each commit is synced to disk), and a 10 s wait on locks.
///
/// Switching a new file to WAL takes an exclusive lock, for which SQLite does not wait on its
/// own; when another connection is creating or writing the same new file at that moment, the
/// switch is tried again until the wait runs out.
pub fn open_durable(path: &Path) -> Result<Connection, rusqlite::Error> {
    let wait = Duration::from_secs(10);
    let conn = Connection::open(path)?;
    conn.busy_timeout(wait)?;
    let deadline = Instant::now() + wait;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Makes the queue at `path` readable by its owner only: a new file is created with mode 0600
/// before SQLite opens it (SQLite gives its `-wal` and `-shm` files the mode of the database
/// file), and an existing file, `-wal` or `-shm` that lets the group or others in is tightened
/// to 0600, logged once (the next open finds it tight). A file that cannot be tightened (owned
/// by another user) is logged and left as it is: the queue still opens.
#[cfg(unix)]
pub(crate) fn owner_only(path: &Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    // Fails when it is already there (or cannot be created: SQLite says why when it opens it).
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .is_ok()
    {
        return;
    }
    let mut tightened = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        let others = mode & 0o077;
        if others == 0 {
            continue;
        }
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => tightened.push(format!("{} (was {mode:o})", file.display())),
            Err(e) => tracing::warn!(
                file = %file.display(),
                mode = format!("{mode:o}"),
                error = %e,
                "The queue file can be read by others and cannot be made owner-only; run `chmod 600` on it."
            ),
        }
    }
    if !tightened.is_empty() {
        tracing::warn!(
            files = tightened.join(", "),
            "The queue files could be read by others; made readable by their owner only (mode 600)."
        );
    }
}

#[cfg(not(unix))]
pub(crate) fn owner_only(_path: &Path) {}

/// Maps SQLite errors on the queue at `path` to [`StoreError::Sql`].
pub(crate) fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sql {
        path: path.to_path_buf(),
        source,
    }
}

/// A time as stored: RFC 3339, UTC, microseconds.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Rows of a query selecting an integer and three texts.
pub(crate) fn rows4(
    conn: &Connection,
    query: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<(u64, String, String, String)>> {
    let mut stmt = conn.prepare_cached(query)?;
    let rows = stmt.query_map(args, |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    rows.collect()
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use crate::Store;
    use crate::tests::event;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn with(path: &Path, suffix: &str) -> std::path::PathBuf {
        format!("{}{suffix}", path.display()).into()
    }

    #[test]
    fn a_new_queue_and_its_wal_and_shm_are_readable_by_the_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let mut s = Store::open(&path).unwrap();
        s.append(event).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(mode(&with(&path, suffix)), 0o600, "{suffix}");
        }
    }

    #[test]
    fn an_existing_queue_readable_by_others_is_tightened_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        {
            let mut s = Store::open(&path).unwrap();
            s.append(event).unwrap();
            // Held open so the -wal and -shm stay while their modes are loosened.
            for suffix in ["", "-wal", "-shm"] {
                std::fs::set_permissions(
                    with(&path, suffix),
                    std::fs::Permissions::from_mode(0o644),
                )
                .unwrap();
            }
            let again = Store::open(&path).unwrap();
            for suffix in ["", "-wal", "-shm"] {
                assert_eq!(mode(&with(&path, suffix)), 0o600, "{suffix}");
            }
            assert_eq!(again.stats().unwrap().total, 1, "the queue opens as it was");
        }
    }
}
