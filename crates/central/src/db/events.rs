//! Events as they arrive, stored once per event id, and violations recorded apart from the
//! passages in the same transaction.

use anpr_types::{CameraGap, Delivery, EventKind, ListMatch, VehicleClass, ViolationInfo};
use chrono::{DateTime, Utc};
use rusqlite::{Row, params};
use uuid::Uuid;

use super::trust::Link;
use super::{parse_ts, ts};
use crate::{CentralError, Receiver};

/// What became of an event that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored now; `hash` is its hash (the sha256 of its canonical form), which the
    /// acknowledgement signs.
    New { hash: String },
    /// Stored before with the same hash (a copy sent again): acknowledge it again.
    Duplicate { hash: String },
    /// Not stored: it breaks its device's chain, or is other content under a stored event id
    /// or sequence number. Recorded in `chain_breaks` and reported; never acknowledged.
    Refused { reason: String },
}

impl Stored {
    /// The hash to acknowledge, unless refused.
    #[must_use]
    pub fn hash(&self) -> Option<&str> {
        match self {
            Stored::New { hash } | Stored::Duplicate { hash } => Some(hash),
            Stored::Refused { .. } => None,
        }
    }
}

/// A gap in a camera's frames, as its device reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedGap {
    /// Sequence number of the `camera_gap` event.
    pub seq: u64,
    pub camera: String,
    pub gap: CameraGap,
}

/// A violation as the receiver keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub inventory: String,
    pub seq: u64,
    pub event_id: Uuid,
    /// Plate text read (empty when the plate was not read).
    pub plate: String,
    pub vehicle_class: VehicleClass,
    pub captured_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// Rule, reason, priority, the passage it was found in and any list entry matched;
    /// `None` for a violation its device sent without them (older software).
    pub detail: Option<ViolationInfo>,
}

impl Receiver {
    /// Stores a delivery once; returns whether it was stored now (false for a copy of a stored
    /// event, and for one refused: see [`Receiver::store_batch`]).
    pub fn store(
        &mut self,
        d: &Delivery,
        received_at: DateTime<Utc>,
    ) -> Result<bool, CentralError> {
        Ok(matches!(
            self.store_batch(&[(d, received_at)])?[0],
            Stored::New { .. }
        ))
    }

    /// Stores deliveries in one transaction (one sync to disk); returns what became of each.
    /// A duplicate (same event id, same hash) only increments the stored copy count. An event
    /// that breaks its device's hash chain, or is other content under a stored event id or
    /// sequence number, is not stored but recorded in `chain_breaks` ([`Stored::Refused`]).
    /// A new violation is also recorded in the violations table. Signatures are not checked
    /// here: the receiver checks them before ([`crate::run`]).
    ///
    /// What is stored is the delivery as parsed, serialised again (`serde_json`), not the text
    /// that arrived: whitespace, duplicate keys, unknown fields and escapes of the original
    /// are gone, and the event's part is the same canonical form its hash and signature cover.
    pub fn store_batch(
        &mut self,
        items: &[(&Delivery, DateTime<Utc>)],
    ) -> Result<Vec<Stored>, CentralError> {
        let path = self.path.clone();
        let db = move |source| CentralError::Db {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&db)?;
        let mut out = Vec::with_capacity(items.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (event_id, inventory, seq, captured_at, sent_at, received_at, delayed, payload, kind, plate_status, hash, prev_hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(&db)?;
            let mut copy = tx
                .prepare_cached("UPDATE events SET copies = copies + 1 WHERE event_id = ?1")
                .map_err(&db)?;
            let mut violation = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO violations (event_id, inventory, seq, rule, rule_kind, reason,
                        priority, passage_event_id, passage_seq, list_name, list_version, list_entry,
                        list_fuzzy, plate, vehicle_class, captured_at, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                )
                .map_err(&db)?;
            for (d, received_at) in items {
                let e = &d.event;
                let id = e.event_id.to_string();
                let hash = anpr_trust::event::event_hash(e);
                match super::trust::link(&tx, e, &hash).map_err(&db)? {
                    Link::New => {}
                    Link::Duplicate => {
                        copy.execute(params![id]).map_err(&db)?;
                        out.push(Stored::Duplicate { hash });
                        continue;
                    }
                    Link::Break(reason) => {
                        tracing::warn!(inventory = ?e.device.inventory, seq = e.seq, event_id = %id, reason = %crate::escape::Escaped(&reason), "Event breaks its device's hash chain: flagged, not stored, not acknowledged.");
                        super::trust::flag_break(&tx, d, &hash, &reason, *received_at)
                            .map_err(&db)?;
                        out.push(Stored::Refused { reason });
                        continue;
                    }
                }
                insert
                    .execute(params![
                        id,
                        e.device.inventory,
                        e.seq as i64,
                        ts(e.captured_at),
                        ts(d.sent_at),
                        ts(*received_at),
                        d.delayed,
                        serde_json::to_string(d).unwrap_or_default(),
                        kind_str(e.kind),
                        e.plate.status.as_str(),
                        hash,
                        e.prev_hash
                    ])
                    .map_err(&db)?;
                if e.kind == EventKind::Violation {
                    let v = e.violation.as_ref();
                    let list = v.and_then(|v| v.list.as_ref());
                    violation
                        .execute(params![
                            id,
                            e.device.inventory,
                            e.seq as i64,
                            v.map(|v| &v.rule),
                            v.map(|v| &v.kind),
                            v.map(|v| &v.reason),
                            v.map(|v| v.priority),
                            v.map(|v| v.passage.to_string()),
                            v.map(|v| v.passage_seq as i64),
                            list.map(|l| &l.name),
                            list.map(|l| l.version as i64),
                            list.map(|l| &l.entry),
                            list.map(|l| l.fuzzy),
                            e.plate.text,
                            e.vehicle.class.as_str(),
                            ts(e.captured_at),
                            ts(*received_at)
                        ])
                        .map_err(&db)?;
                }
                out.push(Stored::New { hash });
            }
        }
        tx.commit().map_err(&db)?;
        Ok(out)
    }

    /// Stored event payloads of one device in sequence order.
    pub fn events_of(&self, inventory: &str) -> Result<Vec<Delivery>, CentralError> {
        self.payloads(
            "SELECT payload FROM events WHERE inventory = ?1 ORDER BY seq",
            inventory,
        )
    }

    /// The camera gaps one device reported (`camera_gap` events), in sequence order.
    pub fn camera_gaps_of(&self, inventory: &str) -> Result<Vec<ReportedGap>, CentralError> {
        let deliveries: Vec<Delivery> = self.payloads(
            "SELECT payload FROM events WHERE inventory = ?1 AND kind = 'camera_gap' ORDER BY seq",
            inventory,
        )?;
        Ok(deliveries
            .into_iter()
            .filter_map(|d| {
                let e = d.event;
                e.gap.map(|gap| ReportedGap {
                    seq: e.seq,
                    camera: e.camera,
                    gap,
                })
            })
            .collect())
    }

    /// Violations of one device in sequence order.
    pub fn violations_of(&self, inventory: &str) -> Result<Vec<Violation>, CentralError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT event_id, inventory, seq, rule, rule_kind, reason, priority, passage_event_id,
                        passage_seq, list_name, list_version, list_entry, list_fuzzy, plate,
                        vehicle_class, captured_at, received_at
                 FROM violations WHERE inventory = ?1 ORDER BY seq",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![inventory], violation_row)
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Seconds from capture to storage here, per sequence number, for one device.
    pub fn arrival_delays(&self, inventory: &str) -> Result<Vec<(u64, f64)>, CentralError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, captured_at, received_at FROM events WHERE inventory = ?1 ORDER BY seq")
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![inventory], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, cap, rec) = row.map_err(self.db())?;
            if let (Ok(c), Ok(r)) = (
                DateTime::parse_from_rfc3339(&cap),
                DateTime::parse_from_rfc3339(&rec),
            ) {
                out.push((
                    seq,
                    (r - c).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6,
                ));
            }
        }
        Ok(out)
    }
}

pub(crate) fn kind_str(kind: EventKind) -> &'static str {
    kind.as_str()
}

/// One row of `violations`, in the column order of [`Receiver::violations_of`].
fn violation_row(r: &Row<'_>) -> rusqlite::Result<Violation> {
    let uuid = |s: Option<String>| s.and_then(|s| Uuid::parse_str(&s).ok()).unwrap_or_default();
    let rule: Option<String> = r.get(3)?;
    let list_name: Option<String> = r.get(9)?;
    let list = match list_name {
        Some(name) => Some(ListMatch {
            name,
            version: r.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
            entry: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
            fuzzy: r.get::<_, Option<bool>>(12)?.unwrap_or(false),
        }),
        None => None,
    };
    let detail = match rule {
        Some(rule) => Some(ViolationInfo {
            rule,
            kind: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            reason: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
            priority: r.get::<_, Option<u8>>(6)?.unwrap_or(9),
            passage: uuid(r.get(7)?),
            passage_seq: r.get::<_, Option<i64>>(8)?.unwrap_or(0) as u64,
            list,
        }),
        None => None,
    };
    let class: String = r.get(14)?;
    Ok(Violation {
        event_id: uuid(r.get(0)?),
        inventory: r.get(1)?,
        seq: r.get::<_, i64>(2)? as u64,
        plate: r.get(13)?,
        vehicle_class: serde_json::from_value(serde_json::Value::String(class))
            .unwrap_or(VehicleClass::Unknown),
        captured_at: parse_ts(&r.get::<_, String>(15)?),
        received_at: parse_ts(&r.get::<_, String>(16)?),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use anpr_types::{EventKind, VehicleClass, ViolationInfo};
    use chrono::Utc;

    use crate::Receiver;
    use crate::db::tests::{delivery, violation};

    #[test]
    fn a_duplicate_delivery_is_stored_once_and_counted_as_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let d = delivery("INV-A", 1, EventKind::Passage);
        assert!(r.store(&d, Utc::now()).unwrap());
        assert!(!r.store(&d, Utc::now()).unwrap());
        let copies: i64 = r
            .conn
            .query_row("SELECT copies FROM events", [], |row| row.get(0))
            .unwrap();
        assert_eq!(copies, 2);
        assert_eq!(r.events_of("INV-A").unwrap(), vec![d]);
    }

    #[test]
    fn what_is_stored_is_the_parsed_event_serialised_again_not_the_text_that_arrived() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let d = delivery("INV-A", 1, EventKind::Passage);
        let canonical = serde_json::to_string(&d).unwrap();
        // As it might arrive: spaced out, an unknown field, an escaped letter, and a control
        // character in a field the receiver does not know.
        let mut v: serde_json::Value = serde_json::from_str(&canonical).unwrap();
        v["injected"] = serde_json::json!("\u{1b}[31m\n");
        let sent = serde_json::to_string_pretty(&v)
            .unwrap()
            .replace("\"INV-A\"", "\"\\u0049NV-A\"");
        let parsed: anpr_types::Delivery = serde_json::from_str(&sent).unwrap();
        assert!(r.store(&parsed, Utc::now()).unwrap());
        let stored: String = r
            .conn
            .query_row("SELECT payload FROM events", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stored, canonical);
        assert_eq!(r.verify("INV-A", None, |_, _| {}).unwrap().mismatch, None);
    }

    #[test]
    fn violations_are_recorded_apart_from_passages_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let passage = delivery("INV-A", 1, EventKind::Passage);
        let mut ban = violation("INV-A", 2, &passage, "truck-ban", "vehicle-type-ban", None);
        ban.event.vehicle.class = VehicleClass::Truck;
        let hot = violation(
            "INV-A",
            3,
            &passage,
            "hotlist",
            "plate-list",
            Some(("wanted", 7, "123ABC01", false)),
        );
        let other = violation("INV-B", 1, &passage, "no-plate", "plate-missing", None);
        let batch: Vec<_> = [&passage, &ban, &hot, &ban, &other]
            .into_iter()
            .map(|d| (d, Utc::now()))
            .collect();
        let fresh: Vec<bool> = r
            .store_batch(&batch)
            .unwrap()
            .iter()
            .map(|s| matches!(s, crate::Stored::New { .. }))
            .collect();
        assert_eq!(fresh, vec![true, true, true, false, true]);
        // A later duplicate of a violation is not recorded again either.
        assert!(!r.store(&hot, Utc::now()).unwrap());

        let got = r.violations_of("INV-A").unwrap();
        assert_eq!(got.iter().map(|v| v.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(got[0].vehicle_class, VehicleClass::Truck);
        assert_eq!(got[0].event_id, ban.event.event_id);
        assert_eq!(got[0].captured_at, ban.event.captured_at);
        assert_eq!(got[0].detail, ban.event.violation);
        let ViolationInfo {
            passage: found_in,
            passage_seq,
            list,
            ..
        } = got[1].detail.clone().unwrap();
        assert_eq!((found_in, passage_seq), (passage.event.event_id, 1));
        let list = list.unwrap();
        assert_eq!(
            (list.name.as_str(), list.version, list.fuzzy),
            ("wanted", 7, false)
        );
        assert_eq!(r.violations_of("INV-B").unwrap().len(), 1);
        assert!(r.violations_of("INV-C").unwrap().is_empty());
    }
}
