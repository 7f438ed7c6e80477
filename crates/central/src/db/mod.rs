//! The receiver's database: one connection, its schema and migrations (`schema`), and one
//! file per kind of record it keeps: events and violations, evidence images, health, and what
//! it refused (`trust`: quarantine and chain breaks, and the walk of a stored chain), and the
//! archive's retention (`retention`: the periodic purge by capture time and its record).

mod events;
mod evidence;
mod health;
pub mod retention;
mod schema;
#[cfg(test)]
pub(crate) mod tests;
mod trust;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::CentralError;

pub use events::{ReportedGap, Stored, Violation};
pub use evidence::ImageOutcome;
pub use health::DeviceStatus;
pub use trust::{RateLimited, Refused};

/// The receiver's database.
pub struct Receiver {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl Receiver {
    /// Opens (creating if needed) the receiver database and brings its schema up to date;
    /// files written before the schema was versioned open and are migrated in place.
    pub fn open(path: &Path) -> Result<Self, CentralError> {
        let db = |source| CentralError::Db {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = anpr_store::open_durable(path).map_err(db)?;
        schema::migrate(&mut conn, path)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Maps SQLite errors on this database to [`CentralError::Db`].
    pub(crate) fn db(&self) -> impl Fn(rusqlite::Error) -> CentralError + '_ {
        move |source| CentralError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// The JSON payloads a query selects for one device, parsed; ones that do not parse (an
    /// older or foreign schema) are left out.
    fn payloads<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        inventory: &str,
    ) -> Result<Vec<T>, CentralError> {
        let mut stmt = self.conn.prepare(query).map_err(self.db())?;
        let rows = stmt
            .query_map(params![inventory], |r| r.get::<_, String>(0))
            .map_err(self.db())?;
        let mut out = Vec::new();
        for raw in rows {
            if let Ok(v) = serde_json::from_str(&raw.map_err(self.db())?) {
                out.push(v);
            }
        }
        Ok(out)
    }
}

/// A time as stored: RFC 3339, UTC, microseconds.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A stored time read back (the Unix epoch if it does not parse, which a time written here
/// always does).
pub(crate) fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}
