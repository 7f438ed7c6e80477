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
