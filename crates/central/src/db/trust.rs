//! What the receiver refused and why: events not signed by their device's key (or arriving
//! under another device's topic, or from a device it has no key for) and messages refused
//! unread (over their size cap, or on a topic of another shape) in `quarantine`, events that
//! break their device's hash chain in `chain_breaks`, and how many messages the rate limit
//! dropped per device in `rate_limited`; all are listed in the report and none is
//! acknowledged. Also the walk of one device's stored chain ([`Receiver::verify`]).

use anpr_trust::VerifyingKey;
use anpr_trust::chain::{Mismatch, Report, Walk};
use anpr_trust::event::event_hash;
use anpr_types::{Delivery, Event};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::chain::Neighbours;

use super::{parse_ts, ts};
use crate::{CentralError, Receiver};

/// An event the receiver refused: not stored as its device's, not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The inventory of the topic it arrived on.
    pub inventory: String,
    pub seq: u64,
    pub event_id: String,
    pub reason: String,
    /// When it first arrived.
    pub received_at: DateTime<Utc>,
    /// How many times it arrived (the device sends an unacknowledged event again).
    pub copies: u64,
    /// For a message refused unread (`seq` 0): its size in bytes, the last time it arrived.
    pub size: Option<u64>,
}

/// How many messages of one device the rate limit dropped (unread, not acknowledged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    pub dropped: u64,
    /// When the first and the last of them arrived.
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

pub(crate) use crate::chain::Link;

/// How the event `e` (hash `hash`) fits what is stored of its device: its stored neighbours
/// are read in the transaction `tx` and judged by [`crate::chain::link`]. A neighbour is read
/// only when the decision needs it.
pub(crate) fn link(tx: &Transaction<'_>, e: &Event, hash: &str) -> rusqlite::Result<Link> {
    let id = e.event_id.to_string();
    let inv = &e.device.inventory;
    let seq = e.seq as i64;
    let mut n = Neighbours {
        same_id: tx
            .prepare_cached("SELECT hash FROM events WHERE event_id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?,
        ..Neighbours::default()
    };
    if n.same_id.is_none() {
        n.same_seq = tx
            .prepare_cached("SELECT event_id FROM events WHERE inventory = ?1 AND seq = ?2")?
            .query_row(params![inv, seq], |r| r.get(0))
            .optional()?;
    }
    if n.same_id.is_none() && n.same_seq.is_none() {
        if e.prev_hash.is_some() && seq > 1 {
            n.previous = tx
                .prepare_cached(
                    "SELECT hash, prev_hash IS NULL FROM events WHERE inventory = ?1 AND seq = ?2",
                )?
                .query_row(params![inv, seq - 1], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
        }
        // The sequence number comes from outside: the last one possible has no successor.
        if let Some(next) = seq.checked_add(1) {
            n.next_prev_hash = tx
                .prepare_cached("SELECT prev_hash FROM events WHERE inventory = ?1 AND seq = ?2")?
                .query_row(params![inv, next], |r| r.get(0))
                .optional()?;
        }
    }
    Ok(crate::chain::link(e, hash, &n))
}

/// Records an event that breaks its device's chain (once per event, hash and reason; a copy
/// arriving again is counted).
pub(crate) fn flag_break(
    tx: &Transaction<'_>,
    d: &Delivery,
    hash: &str,
    reason: &str,
    received_at: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let e = &d.event;
    tx.prepare_cached(
        "INSERT INTO chain_breaks (inventory, seq, event_id, hash, reason, received_at, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (event_id, hash, reason) DO UPDATE SET copies = copies + 1",
    )?
    .execute(params![
        e.device.inventory,
        e.seq as i64,
        e.event_id.to_string(),
        hash,
        reason,
        ts(received_at),
        serde_json::to_string(d).unwrap_or_default()
    ])?;
    Ok(())
}

/// Migration 3: hash and prev_hash of every stored event; of several events stored under one
/// device and sequence number, the first received stays and the others move to
/// `chain_breaks`; then `(inventory, seq)` becomes unique.
pub(crate) fn hash_stored_events(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let rows: Vec<(String, String, i64, String, String)> = tx
        .prepare(
            "SELECT event_id, inventory, seq, received_at, payload FROM events
             ORDER BY inventory, seq, received_at, rowid",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut last: Option<(String, i64)> = None;
    for (id, inv, seq, received_at, payload) in rows {
        let d: Option<Delivery> = serde_json::from_str(&payload).ok();
        let hash = d.as_ref().map(|d| event_hash(&d.event));
        let key = (inv.clone(), seq);
        if last.as_ref() == Some(&key) {
            tx.execute(
                "INSERT OR IGNORE INTO chain_breaks (inventory, seq, event_id, hash, reason, received_at, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    inv,
                    seq,
                    id,
                    hash.clone().unwrap_or_default(),
                    format!("a second event id for sequence number {seq} (found when the schema was upgraded)"),
                    received_at,
                    payload
                ],
            )?;
            tx.execute("DELETE FROM violations WHERE event_id = ?1", params![id])?;
            tx.execute("DELETE FROM events WHERE event_id = ?1", params![id])?;
            continue;
        }
        tx.execute(
            "UPDATE events SET hash = ?1, prev_hash = ?2 WHERE event_id = ?3",
            params![hash, d.and_then(|d| d.event.prev_hash), id],
        )?;
        last = Some(key);
    }
    tx.execute_batch("CREATE UNIQUE INDEX events_dev_seq_unique ON events(inventory, seq);")
}

impl Receiver {
    /// Records an event refused before storage (`reason`: not signed by its device's key, an
    /// unknown device, another device's topic), once per device, event id and reason; a copy
    /// arriving again is counted. Nothing is acknowledged.
    pub fn quarantine(
        &mut self,
        topic_inventory: &str,
        topic: &str,
        d: &Delivery,
        reason: &str,
        received_at: DateTime<Utc>,
    ) -> Result<(), CentralError> {
        self.conn
            .prepare_cached(
                "INSERT INTO quarantine (inventory, topic, seq, event_id, reason, received_at, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (inventory, event_id, reason) DO UPDATE SET copies = copies + 1",
            )
            .and_then(|mut st| {
                st.execute(params![
                    topic_inventory,
                    topic,
                    d.event.seq as i64,
                    d.event.event_id.to_string(),
                    reason,
                    ts(received_at),
                    serde_json::to_string(d).unwrap_or_default()
                ])
            })
            .map_err(self.db())?;
        Ok(())
    }

    /// Records a message refused unread (`reason`: over its size cap, or on a topic of
    /// another shape) under the inventory of its topic, with its size and without its
    /// payload; once per inventory, event id (of an image's topic; empty otherwise) and
    /// reason, a copy arriving again is counted and its size kept.
    pub fn quarantine_unread(
        &mut self,
        topic_inventory: &str,
        topic: &str,
        event_id: Option<uuid::Uuid>,
        reason: &str,
        size: usize,
        received_at: DateTime<Utc>,
    ) -> Result<(), CentralError> {
        self.conn
            .prepare_cached(
                "INSERT INTO quarantine (inventory, topic, seq, event_id, reason, received_at, payload, size)
                 VALUES (?1, ?2, 0, ?3, ?4, ?5, '', ?6)
                 ON CONFLICT (inventory, event_id, reason) DO UPDATE SET copies = copies + 1, size = excluded.size",
            )
            .and_then(|mut st| {
                st.execute(params![
                    topic_inventory,
                    topic,
                    event_id.map(|id| id.to_string()).unwrap_or_default(),
                    reason,
                    ts(received_at),
                    size as i64
                ])
            })
            .map_err(self.db())?;
        Ok(())
    }

    /// Adds what the rate limit dropped per device (`dropped`: count, first and last
    /// arrival) to the counts kept, in one transaction.
    pub fn add_rate_limited(
        &mut self,
        dropped: &std::collections::HashMap<String, crate::limits::Dropped>,
    ) -> Result<(), CentralError> {
        if dropped.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let db = move |source| CentralError::Db {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&db)?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO rate_limited (inventory, dropped, first_at, last_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (inventory) DO UPDATE SET dropped = dropped + excluded.dropped,
                       last_at = excluded.last_at",
                )
                .map_err(&db)?;
            for (inventory, d) in dropped {
                st.execute(params![inventory, d.count as i64, ts(d.first), ts(d.last)])
                    .map_err(&db)?;
            }
        }
        tx.commit().map_err(&db)
    }

    /// How many messages of device `inventory` the rate limit dropped, if any.
    pub fn rate_limited_of(&self, inventory: &str) -> Result<Option<RateLimited>, CentralError> {
        self.conn
            .query_row(
                "SELECT dropped, first_at, last_at FROM rate_limited WHERE inventory = ?1",
                params![inventory],
                |r| {
                    Ok(RateLimited {
                        dropped: r.get::<_, i64>(0)? as u64,
                        first_at: parse_ts(&r.get::<_, String>(1)?),
                        last_at: parse_ts(&r.get::<_, String>(2)?),
                    })
                },
            )
            .optional()
            .map_err(self.db())
    }

    /// Events of device `inventory` refused before storage, in sequence order (messages
    /// refused unread first, as sequence 0).
    pub fn quarantined_of(&self, inventory: &str) -> Result<Vec<Refused>, CentralError> {
        self.refused("quarantine", inventory)
    }

    /// Events of device `inventory` that broke its chain, in sequence order.
    pub fn chain_breaks_of(&self, inventory: &str) -> Result<Vec<Refused>, CentralError> {
        self.refused("chain_breaks", inventory)
    }

    fn refused(&self, table: &str, inventory: &str) -> Result<Vec<Refused>, CentralError> {
        let size = if table == "quarantine" {
            "size"
        } else {
            "NULL"
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT inventory, seq, event_id, reason, received_at, copies, {size} FROM {table}
                 WHERE inventory = ?1 ORDER BY seq, id"
            ))
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![inventory], |r| {
                Ok(Refused {
                    inventory: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    event_id: r.get(2)?,
                    reason: r.get(3)?,
                    received_at: parse_ts(&r.get::<_, String>(4)?),
                    copies: r.get::<_, i64>(5)? as u64,
                    size: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Inventories that have only refused or dropped messages here (no event stored).
    pub(crate) fn refused_inventories(&self) -> Result<Vec<String>, CentralError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT inventory FROM quarantine UNION SELECT inventory FROM chain_breaks
                 UNION SELECT inventory FROM rate_limited
                 EXCEPT SELECT inventory FROM events ORDER BY 1",
            )
            .map_err(self.db())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Walks the stored events of device `inventory` in sequence order: each event's hash
    /// recomputed and compared with the one recorded on arrival, each link to a stored
    /// previous event checked, each signature checked with `key` when given, each evidence
    /// image hashed again. Sequence numbers never received are listed as gaps (a device drops
    /// under its quota, and the link across a gap cannot be checked). Stops at the first
    /// event that does not match. `progress(done, total)` is called every 10,000 events.
    pub fn verify(
        &self,
        inventory: &str,
        key: Option<&VerifyingKey>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Report, CentralError> {
        let total: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE inventory = ?1",
                params![inventory],
                |r| r.get(0),
            )
            .map_err(self.db())?;
        let mut images = self
            .conn
            .prepare("SELECT kind, sha256, data FROM evidence WHERE event_id = ?1 ORDER BY kind")
            .map_err(self.db())?;
        let mut stmt = self
            .conn
            .prepare("SELECT seq, hash, payload FROM events WHERE inventory = ?1 ORDER BY seq")
            .map_err(self.db())?;
        let mut rows = stmt.query(params![inventory]).map_err(self.db())?;
        let mut walk = Walk::new(key, false);
        let mut report = Report {
            signatures_checked: key.is_some(),
            ..Report::default()
        };
        let mismatch = 'walk: {
            while let Some(r) = rows.next().map_err(self.db())? {
                let seq = r.get::<_, i64>(0).map_err(self.db())? as u64;
                let stored: Option<String> = r.get(1).map_err(self.db())?;
                let payload: String = r.get(2).map_err(self.db())?;
                report.last_seq = seq;
                let Ok(d) = serde_json::from_str::<Delivery>(&payload) else {
                    break 'walk Some(Mismatch {
                        seq,
                        what: "its stored payload is not a valid event: edited".into(),
                    });
                };
                if let Err(m) = walk.row(seq, stored.as_deref(), &d.event) {
                    break 'walk Some(m);
                }
                let found: Vec<(String, String, Vec<u8>)> = images
                    .query_map(params![d.event.event_id.to_string()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .and_then(Iterator::collect)
                    .map_err(self.db())?;
                for (kind, sha, data) in found {
                    report.images += 1;
                    let named = d
                        .event
                        .evidence
                        .iter()
                        .any(|e| e.kind == kind && e.sha256 == sha);
                    if !named || anpr_trust::sha256_hex(&data) != sha {
                        break 'walk Some(Mismatch {
                            seq,
                            what: format!(
                                "its stored {kind} image is not the one the event names (sha256 and bytes): replaced or edited"
                            ),
                        });
                    }
                }
                if walk.rows.is_multiple_of(10_000) {
                    progress(walk.rows, total as u64);
                }
            }
            None
        };
        report.rows = walk.rows;
        report.legacy = walk.legacy;
        report.gaps = std::mem::take(&mut walk.gaps);
        report.mismatch = mismatch;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use anpr_trust::SigningKey;
    use anpr_trust::event::{event_hash, sign_event};
    use anpr_types::{Delivery, EventKind};
    use chrono::Utc;

    use crate::db::tests::delivery;
    use crate::{Receiver, Stored};

    /// `n` signed, chained deliveries of device `inventory`.
    pub(crate) fn chain(key: &SigningKey, inventory: &str, n: u64) -> Vec<Delivery> {
        let mut prev = anpr_trust::ZERO_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut d = delivery(inventory, seq, EventKind::Passage);
                d.event.prev_hash = Some(prev.clone());
                prev = sign_event(&mut d.event, key);
                d
            })
            .collect()
    }

    fn store(r: &mut Receiver, d: &Delivery) -> Stored {
        r.store_batch(&[(d, Utc::now())]).unwrap()[0].clone()
    }

    #[test]
    fn events_out_of_order_join_the_chain_and_a_verify_walk_passes() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let c = chain(&key, "INV-A", 5);
        // Live overtakes the backlog: 5, 1, 3, 2 (4 never arrives).
        for i in [4, 0, 2, 1] {
            assert!(matches!(store(&mut r, &c[i]), Stored::New { .. }), "{i}");
        }
        assert!(matches!(
            store(&mut r, &c[2]),
            Stored::Duplicate { hash } if hash == event_hash(&c[2].event)
        ));
        let report = r
            .verify("INV-A", Some(&key.verifying_key()), |_, _| {})
            .unwrap();
        assert_eq!(report.mismatch, None, "{report:?}");
        assert_eq!((report.rows, report.gaps.clone()), (4, vec![(4, 4)]));
        assert!(r.chain_breaks_of("INV-A").unwrap().is_empty());
    }

    #[test]
    fn an_edited_event_breaks_the_chain_with_either_neighbour_and_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let c = chain(&key, "INV-A", 4);
        // Event 2 edited and signed again (as with a stolen device key): its prev_hash still
        // names event 1, but its hash is not what the stored event 3 names.
        let mut edited = c[1].clone();
        edited.event.plate.text = "777KZA02".into();
        sign_event(&mut edited.event, &key);
        store(&mut r, &c[0]);
        store(&mut r, &c[2]);
        let Stored::Refused { reason } = store(&mut r, &edited) else {
            panic!("an edited event is refused");
        };
        assert!(
            reason.contains("prev_hash") && reason.contains("event 3"),
            "{reason}"
        );
        // Arriving again is one more copy of the same flag.
        store(&mut r, &edited);
        let breaks = r.chain_breaks_of("INV-A").unwrap();
        assert_eq!(breaks.len(), 1);
        assert_eq!((breaks[0].seq, breaks[0].copies), (2, 2));
        assert!(
            r.report().unwrap()[0]
                .to_string()
                .contains("CHAIN BREAKS 1")
        );
        // The real event 2 still fits both neighbours.
        assert!(matches!(store(&mut r, &c[1]), Stored::New { .. }));
        // A later event whose prev_hash names something else than the stored 4th's.
        let mut stray = delivery("INV-A", 5, EventKind::Passage);
        stray.event.prev_hash = Some(anpr_trust::sha256_hex(b"elsewhere"));
        sign_event(&mut stray.event, &key);
        store(&mut r, &c[3]);
        assert!(matches!(store(&mut r, &stray), Stored::Refused { .. }));
    }

    #[test]
    fn a_second_event_id_under_a_stored_sequence_or_new_content_under_a_stored_id_is_a_break() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let c = chain(&key, "INV-A", 2);
        store(&mut r, &c[0]);
        let mut other = c[0].clone();
        other.event.event_id = uuid::Uuid::now_v7();
        sign_event(&mut other.event, &key);
        let Stored::Refused { reason } = store(&mut r, &other) else {
            panic!("a second id for seq 1 is refused");
        };
        assert!(reason.contains("second event id"), "{reason}");
        let mut changed = c[0].clone();
        changed.event.vehicle.confidence = 0.5;
        sign_event(&mut changed.event, &key);
        let Stored::Refused { reason } = store(&mut r, &changed) else {
            panic!("other content under a stored id is refused");
        };
        assert!(reason.contains("other content"), "{reason}");
        assert_eq!(r.events_of("INV-A").unwrap(), vec![c[0].clone()]);
        assert_eq!(r.chain_breaks_of("INV-A").unwrap().len(), 2);
    }

    #[test]
    fn a_stored_event_edited_in_the_database_is_named_by_verify() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let key = SigningKey::generate(&mut rand_core::OsRng);
        for d in chain(&key, "INV-A", 3) {
            store(&mut r, &d);
        }
        r.conn
            .execute(
                "UPDATE events SET payload = json_set(payload, '$.plate.text', 'X') WHERE seq = 2",
                [],
            )
            .unwrap();
        for k in [Some(key.verifying_key()), None] {
            let m = r.verify("INV-A", k.as_ref(), |_, _| {}).unwrap().mismatch;
            assert_eq!(m.map(|m| m.seq), Some(2));
        }
    }

    #[test]
    fn quarantined_events_are_listed_once_with_their_copies_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let d = delivery("INV-Q", 3, EventKind::Passage);
        for _ in 0..3 {
            r.quarantine(
                "INV-Q",
                "anpr/v1/INV-Q/events",
                &d,
                "no signature",
                Utc::now(),
            )
            .unwrap();
        }
        let q = r.quarantined_of("INV-Q").unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!((q[0].seq, q[0].copies), (3, 3));
        let report = r.report().unwrap();
        assert_eq!(
            report.len(),
            1,
            "a device with only refused events is reported"
        );
        let line = report[0].to_string();
        assert!(
            line.contains("QUARANTINED 1") && line.contains("seq 3: no signature"),
            "{line}"
        );
        assert!(r.events_of("INV-Q").unwrap().is_empty());
    }
    #[test]
    fn messages_refused_unread_are_kept_with_their_size_and_no_payload_and_drops_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let why = "events payload over the receiver's cap of 262144 bytes: refused unread";
        for size in [300_000, 400_000] {
            r.quarantine_unread("INV-Q", "anpr/v1/INV-Q/events", None, why, size, Utc::now())
                .unwrap();
        }
        let q = r.quarantined_of("INV-Q").unwrap();
        assert_eq!(
            q.len(),
            1,
            "one row per reason: a flood does not grow the table"
        );
        assert_eq!((q[0].seq, q[0].copies, q[0].size), (0, 2, Some(400_000)));
        let payload: String = r
            .conn
            .query_row("SELECT payload FROM quarantine", [], |row| row.get(0))
            .unwrap();
        assert_eq!(payload, "", "the bytes are not kept");

        let t = Utc::now();
        let mut dropped = std::collections::HashMap::new();
        dropped.insert(
            "INV-Q".to_string(),
            crate::limits::Dropped {
                count: 40,
                first: t,
                last: t,
            },
        );
        r.add_rate_limited(&dropped).unwrap();
        r.add_rate_limited(&dropped).unwrap();
        assert_eq!(r.rate_limited_of("INV-Q").unwrap().unwrap().dropped, 80);
        assert_eq!(r.rate_limited_of("INV-R").unwrap(), None);
        let line = r.report().unwrap()[0].to_string();
        assert!(
            line.contains("QUARANTINED 1 (not stored, not acknowledged: events payload over")
                && line.contains("(400000 bytes)")
                && line.contains("RATE-LIMITED 80 messages dropped unread"),
            "{line}"
        );
    }
}
