//! Device health: the last full health message, the latest status apart from it (so the
//! broker's last will does not erase the counters), and every message that reported a fault.

use anpr_types::Health;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{parse_ts, ts};
use crate::escape::Escaped;
use crate::{CentralError, Receiver};

/// Whether a device is online, as last said by it or, for its last will, by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// `online` or `offline`.
    pub status: String,
    /// When it was said: the device's clock for a health message, the receiver's arrival
    /// time for a last will (which carries no time).
    pub at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// True when this is the broker's last will: the device lost its connection without
    /// saying goodbye.
    pub last_will: bool,
}

/// The `status` of a message that is not a full health message (a last will), if it has one.
pub(crate) fn status_of(raw: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()?
        .get("status")?
        .as_str()
        .map(str::to_string)
}

impl Receiver {
    /// Keeps a health message of a device, in one transaction. A full health message becomes
    /// the device's health and status, and is kept apart too when it reports a fault; a
    /// message with only a status (the broker's last will) changes the status alone. Anything
    /// else is logged and left out. What is kept of a full message is the message as parsed,
    /// serialised again, not the text that arrived.
    pub fn store_health(
        &mut self,
        inventory: &str,
        raw: &str,
        received_at: DateTime<Utc>,
    ) -> Result<(), CentralError> {
        let path = self.path.clone();
        let db = move |source| CentralError::Db {
            path: path.clone(),
            source,
        };
        let at = ts(received_at);
        let (status, said_at, last_will, full) = match serde_json::from_str::<Health>(raw) {
            Ok(h) => (h.status.clone(), ts(h.at), false, Some(h)),
            Err(e) => {
                let Some(status) = status_of(raw) else {
                    tracing::warn!(inventory = %Escaped(inventory), error = %Escaped(&e.to_string()), "Health message that follows no schema left out.");
                    return Ok(());
                };
                (status, at.clone(), true, None)
            }
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&db)?;
        tx.execute(
            "INSERT INTO status (inventory, status, at, received_at, last_will) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(inventory) DO UPDATE SET status = excluded.status, at = excluded.at,
               received_at = excluded.received_at, last_will = excluded.last_will",
            params![inventory, status, said_at, at, last_will],
        )
        .map_err(&db)?;
        if let Some(h) = full {
            let payload = serde_json::to_string(&h).unwrap_or_default();
            tx.execute(
                "INSERT INTO health (inventory, received_at, payload) VALUES (?1, ?2, ?3)
                 ON CONFLICT(inventory) DO UPDATE SET received_at = excluded.received_at, payload = excluded.payload",
                params![inventory, at, payload],
            )
            .map_err(&db)?;
            if !h.faults.is_empty() {
                tx.execute(
                    "INSERT INTO faults (inventory, received_at, payload) VALUES (?1, ?2, ?3)",
                    params![inventory, at, payload],
                )
                .map_err(&db)?;
            }
        }
        tx.commit().map_err(&db)
    }

    /// The last full health message of a device, if it sent one in the current schema. A
    /// last will that came after it does not replace it: see [`Receiver::status`].
    pub fn health(&self, inventory: &str) -> Result<Option<Health>, CentralError> {
        let raw: Option<String> = self
            .conn
            .query_row(
                "SELECT payload FROM health WHERE inventory = ?1",
                params![inventory],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// The latest status of a device, from its health or from its last will.
    pub fn status(&self, inventory: &str) -> Result<Option<DeviceStatus>, CentralError> {
        self.conn
            .query_row(
                "SELECT status, at, received_at, last_will FROM status WHERE inventory = ?1",
                params![inventory],
                |r| {
                    Ok(DeviceStatus {
                        status: r.get(0)?,
                        at: parse_ts(&r.get::<_, String>(1)?),
                        received_at: parse_ts(&r.get::<_, String>(2)?),
                        last_will: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(self.db())
    }

    /// Health messages of a device that reported faults, oldest first.
    pub fn faults(&self, inventory: &str) -> Result<Vec<Health>, CentralError> {
        self.payloads(
            "SELECT payload FROM faults WHERE inventory = ?1 ORDER BY id",
            inventory,
        )
    }
}

#[cfg(test)]
mod tests {
    use anpr_types::Fault;
    use chrono::{Duration, Utc};

    use crate::Receiver;
    use crate::db::tests::health;

    #[test]
    fn the_last_will_changes_the_status_and_keeps_the_last_full_health() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let mut h = health("INV-A", "online");
        h.clock_jumps = 2;
        let t0 = Utc::now();
        r.store_health("INV-A", &serde_json::to_string(&h).unwrap(), t0)
            .unwrap();
        let s = r.status("INV-A").unwrap().unwrap();
        assert_eq!(
            (s.status.as_str(), s.last_will, s.at),
            ("online", false, h.at)
        );

        let t1 = t0 + Duration::seconds(30);
        r.store_health("INV-A", r#"{"status":"offline"}"#, t1)
            .unwrap();
        assert_eq!(r.health("INV-A").unwrap(), Some(h.clone()), "health kept");
        let s = r.status("INV-A").unwrap().unwrap();
        assert_eq!(s.status, "offline");
        assert!(s.last_will);
        assert_eq!(s.at.timestamp_micros(), t1.timestamp_micros());

        // Back online: a full message replaces both.
        let mut back = health("INV-A", "online");
        back.clock_jumps = 3;
        r.store_health("INV-A", &serde_json::to_string(&back).unwrap(), t1)
            .unwrap();
        assert_eq!(r.health("INV-A").unwrap().unwrap().clock_jumps, 3);
        assert!(!r.status("INV-A").unwrap().unwrap().last_will);
    }

    #[test]
    fn health_that_follows_no_schema_is_left_out_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let h = health("INV-A", "online");
        r.store_health("INV-A", &serde_json::to_string(&h).unwrap(), Utc::now())
            .unwrap();
        for junk in ["not json", "{}", r#"{"status": 5}"#] {
            r.store_health("INV-A", junk, Utc::now()).unwrap();
        }
        assert_eq!(r.health("INV-A").unwrap(), Some(h));
        assert_eq!(r.status("INV-A").unwrap().unwrap().status, "online");
        assert_eq!(r.status("INV-B").unwrap(), None);
    }

    #[test]
    fn health_is_kept_as_parsed_and_serialised_again_not_as_it_arrived() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let mut h = health("INV-A", "online");
        h.faults = vec![Fault::new("clock-jump", "m")];
        let canonical = serde_json::to_string(&h).unwrap();
        // The same message with spaces, an unknown field and an escaped letter.
        let mut v: serde_json::Value = serde_json::from_str(&canonical).unwrap();
        v["extra"] = serde_json::json!("\u{1b}[31m");
        let sent = serde_json::to_string_pretty(&v)
            .unwrap()
            .replace("\"online\"", "\"\\u006fnline\"");
        r.store_health("INV-A", &sent, Utc::now()).unwrap();
        for table in ["health", "faults"] {
            let stored: String = r
                .conn
                .query_row(&format!("SELECT payload FROM {table}"), [], |row| {
                    row.get(0)
                })
                .unwrap();
            assert_eq!(stored, canonical, "{table}");
        }
    }

    #[test]
    fn every_health_message_with_a_fault_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let mut h = health("INV-A", "online");
        for code in ["queue-quota", "clock-jump"] {
            h.faults = vec![Fault::new(code, "m")];
            r.store_health("INV-A", &serde_json::to_string(&h).unwrap(), Utc::now())
                .unwrap();
        }
        h.faults.clear();
        r.store_health("INV-A", &serde_json::to_string(&h).unwrap(), Utc::now())
            .unwrap();
        let codes: Vec<String> = r
            .faults("INV-A")
            .unwrap()
            .into_iter()
            .map(|h| h.faults[0].code.clone())
            .collect();
        assert_eq!(codes, vec!["queue-quota", "clock-jump"]);
        assert!(r.health("INV-A").unwrap().unwrap().faults.is_empty());
    }
}
