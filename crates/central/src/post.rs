//! The transport control post: the second kind of receiver (docs/receivers.md).
//!
//! # Contract
//!
//! - A post subscribes, with a persistent session of its own (client id = its certificate's
//!   CN, `anpr-post-<id>`), to `<prefix>/<inventory>/events` and
//!   `<prefix>/<inventory>/evidence/+/+` of each device it watches (`+` for all). The broker's
//!   ACL (`anpr pki post` writes the post's block) lets it read only those devices' topics and
//!   write only `<prefix>/<inventory>/ack/post/<id>`.
//! - Every event that arrives goes through the same hygiene and the same signature check as
//!   at the Situational Center ([`crate::Gate`]); one refused is quarantined and never
//!   acknowledged. Of the events that pass, only the kinds the post takes (`violation` by
//!   default: plate-list hits are violations of kind `plate-list`) are stored, in the same
//!   schema and with the same deduplication by event id as the Situational Center's database;
//!   the others are only noted in the ledger. The evidence images of stored events are stored
//!   as there; images of events not kept are dropped unread (after the topic check).
//! - Every stored event and image is acknowledged on `<prefix>/<inventory>/ack/post/<id>`,
//!   signed with the post's own key in the same form as the Situational Center's acks. The
//!   device counts these and changes nothing for them: its delivery (what it resends) is keyed
//!   to the Situational Center's acknowledgements alone, so a post never makes a device send
//!   anything a second time. The post's zero loss comes from its broker session (QoS 1,
//!   `clean_session = false`: the broker keeps what arrives while the post is away).
//! - Gap report: every event that passed the signature check is noted in the ledger
//!   (`post_seen`: device, sequence number, event id, kind, what became of it). A device
//!   numbers all its events (passages too) in one sequence, so a sequence number between the
//!   first and the last seen that the post never saw is an event it cannot account for: its
//!   session lost it (the broker dropped queued messages), or the device never sent it (a
//!   passage dropped at its disk quota: the Situational Center's report shows the same gap).
//!   [`post_report`] lists those ranges per device. Events after the last one seen cannot be
//!   missed by the post until a later one arrives.
//! - Synced like the Situational Center's: each batch (what arrived in 20 ms, at most 256) is
//!   one transaction (`synchronous=FULL`) committed before its acknowledgements are queued; the
//!   ledger rows of a batch are a second transaction right after.
//!
//! # Crash behaviour
//!
//! The MQTT client answers the broker's QoS 1 delivery (PUBACK) when a message arrives, not
//! when it is committed, and the device resends only for the Situational Center: a post that
//! crashes loses what it had received and not yet committed (at most one batch). Its gap
//! report then names those sequence numbers once a later event of the device arrives; they
//! are in the Situational Center's database. A crash between the two transactions leaves
//! stored events the ledger does not list: reported as gaps too, erring on the side of
//! reporting.
//!
//! # On-disk layout
//!
//! The Situational Center's schema (see the crate's doc), holding only the kinds taken, plus
//!
//! ```text
//!   post_seen   (inventory, seq) PRIMARY KEY, event_id, kind, outcome ('stored' | 'skipped'
//!               | 'refused'), first_at, copies
//! ```

use std::collections::BTreeMap;

use anpr_types::{Ack, Delivery, EventKind};
use chrono::{DateTime, Utc};
use rusqlite::params;
use tokio::sync::{mpsc, watch};

use crate::limits::{Hygiene, Limits};
use crate::receiver::{Inbox, Side, check_prefix, send_ack, serve};
use crate::{CentralConfig, CentralError, ImageOutcome, Received, Receiver, Stored};

/// Settings of a control post.
#[derive(Debug, Clone)]
pub struct PostConfig {
    /// The link, the database, the post's signing key and the devices' public keys, as for
    /// the Situational Center (`client_id` is the post's CN, `anpr-post-<id>`).
    pub link: CentralConfig,
    /// The post's id: it acknowledges on `<prefix>/<inventory>/ack/post/<id>`.
    pub post_id: String,
    /// The devices it watches; empty for all the broker lets it read.
    pub devices: Vec<String>,
    /// The kinds of events it keeps (`violation` by default).
    pub kinds: Vec<EventKind>,
}

/// The topic a post acknowledges events of device `inventory` on.
#[must_use]
pub fn post_ack_topic(prefix: &str, inventory: &str, post_id: &str) -> String {
    format!(
        "{}/{inventory}/ack/post/{post_id}",
        prefix.trim_end_matches('/')
    )
}

/// What a control post can say of one device: what it received and what it cannot account
/// for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostReport {
    pub inventory: String,
    /// First and last sequence number seen (any kind); `None` when nothing arrived.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Distinct events seen (any kind) that passed the signature check.
    pub seen: u64,
    /// Events kept, per kind (`violation`, ...).
    pub stored: BTreeMap<String, u64>,
    /// Copies beyond the first (redeliveries), all kinds.
    pub duplicates: u64,
    /// Sequence numbers between the first and the last seen that never arrived: inclusive
    /// ranges. Empty when every event is accounted for.
    pub unaccounted: Vec<(u64, u64)>,
    /// Events refused by the signature check (kept in quarantine).
    pub refused: u64,
}

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS post_seen (
    inventory TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    first_at TEXT NOT NULL,
    copies INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (inventory, seq))";

/// Opens a post's database (the receiver's schema plus the ledger).
pub fn open_post_db(path: &std::path::Path) -> Result<Receiver, CentralError> {
    let r = Receiver::open(path)?;
    r.conn.execute_batch(LEDGER).map_err(r.db())?;
    Ok(r)
}

/// The gap report of every device a post's database at `path` has seen, by inventory.
pub fn post_report(path: &std::path::Path) -> Result<Vec<PostReport>, CentralError> {
    let r = open_post_db(path)?;
    let db = r.db();
    let mut stmt = r
        .conn
        .prepare(
            "SELECT inventory, seq, kind, outcome, copies FROM post_seen ORDER BY inventory, seq",
        )
        .map_err(&db)?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .map_err(&db)?;
    let mut out: Vec<PostReport> = Vec::new();
    for row in rows {
        let (inventory, seq, kind, outcome, copies) = row.map_err(&db)?;
        let seq = u64::try_from(seq).unwrap_or(0);
        if out.last().is_none_or(|r| r.inventory != inventory) {
            out.push(PostReport {
                inventory: inventory.clone(),
                first_seq: Some(seq),
                last_seq: None,
                seen: 0,
                stored: BTreeMap::new(),
                duplicates: 0,
                unaccounted: Vec::new(),
                refused: 0,
            });
        }
        let rep = out.last_mut().expect("pushed above");
        if let Some(last) = rep.last_seq
            && seq > last.saturating_add(1)
        {
            rep.unaccounted.push((last + 1, seq - 1));
        }
        rep.last_seq = Some(seq);
        rep.seen += 1;
        rep.duplicates += u64::try_from(copies - 1).unwrap_or(0);
        if outcome == "stored" {
            *rep.stored.entry(kind).or_default() += 1;
        }
    }
    drop(stmt);
    for rep in &mut out {
        rep.refused = r.quarantined_of(&rep.inventory)?.len() as u64;
    }
    Ok(out)
}

/// Runs a control post until `stop` turns true; each stored event is also sent on `events`.
pub async fn run_post(
    cfg: PostConfig,
    stop: watch::Receiver<bool>,
    events: Option<mpsc::UnboundedSender<Received>>,
) -> Result<(), CentralError> {
    let link = &cfg.link;
    check_prefix(&link.prefix)?;
    let receiver = open_post_db(&link.db)?;
    let prefix = link.prefix.trim_end_matches('/').to_string();
    let levels: Vec<String> = if cfg.devices.is_empty() {
        vec!["+".into()]
    } else {
        cfg.devices.clone()
    };
    let filters: Vec<String> = levels
        .iter()
        .flat_map(|d| {
            [
                format!("{prefix}/{d}/events"),
                format!("{prefix}/{d}/evidence/+/+"),
            ]
        })
        .collect();
    let hygiene = Hygiene::new(&prefix, Limits::default());
    let (inbox, eventloop) = Inbox::open(link, receiver, hygiene, filters, events)?;
    let post = Post {
        cfg: &cfg,
        prefix: &prefix,
    };
    serve(&post, inbox, eventloop, stop).await
}

/// A control post's side of the link: takes the watched devices' events and images, keeps
/// the kinds it takes, and acknowledges on its own path.
struct Post<'a> {
    cfg: &'a PostConfig,
    prefix: &'a str,
}

impl Post<'_> {
    /// Sends `ack` to device `inventory` on the post's path; one that cannot be queued is only
    /// logged (the device changes nothing for it).
    fn ack(&self, inbox: &Inbox, inventory: &str, ack: &Ack) {
        let topic = post_ack_topic(self.prefix, inventory, &self.cfg.post_id);
        if !send_ack(&inbox.client, topic, ack) {
            tracing::warn!(
                "Control post acknowledgement could not be queued (it is informational)."
            );
        }
    }
}

impl Side for Post<'_> {
    const NAME: &'static str = "Control post";
    const STORES_HEALTH: bool = false;
    const QUARANTINES_UNREAD: bool = false;

    fn subscribed(&self, filters: &[String]) {
        tracing::info!(post = %self.cfg.post_id, filters = ?filters, "Control post subscribed.");
    }

    fn watches(&self, inventory: &str) -> bool {
        let devices = &self.cfg.devices;
        devices.is_empty() || devices.iter().any(|d| d == inventory)
    }

    fn image_stored(&self, inbox: &Inbox, inventory: &str, ack: &Ack) {
        self.ack(inbox, inventory, ack);
    }

    fn image_left(&self, event_id: uuid::Uuid, kind: &str, outcome: &ImageOutcome) {
        // An image of an event this post does not keep (a passage): dropped.
        if matches!(outcome, ImageOutcome::Mismatch) {
            tracing::warn!(%event_id, kind, "Evidence image does not match its event's sha256 or size; not kept.");
        }
    }

    /// Stores the kinds the post keeps, acknowledges them on the post's path, and notes every
    /// event of the batch in the ledger.
    fn commit(&self, inbox: &mut Inbox) -> Result<(), CentralError> {
        let (keep, skip): (Vec<_>, Vec<_>) = inbox
            .batch
            .drain(..)
            .partition(|(d, _)| self.cfg.kinds.contains(&d.event.kind));
        let items: Vec<(&Delivery, DateTime<Utc>)> = keep.iter().map(|(d, t)| (d, *t)).collect();
        let outcomes = inbox.receiver.store_batch(&items)?;
        let mut ledger: Vec<(&Delivery, DateTime<Utc>, &'static str)> = Vec::new();
        for ((d, received_at), stored) in keep.iter().zip(&outcomes) {
            let Some(hash) = stored.hash() else {
                ledger.push((d, *received_at, "refused"));
                continue;
            };
            ledger.push((d, *received_at, "stored"));
            self.ack(
                inbox,
                &d.event.device.inventory,
                &inbox.gate.event_ack(d, hash),
            );
            if let Some(tx) = &inbox.events {
                let _ = tx.send(Received {
                    delivery: d.clone(),
                    received_at: *received_at,
                    new: matches!(stored, Stored::New { .. }),
                });
            }
        }
        for (d, received_at) in &skip {
            ledger.push((d, *received_at, "skipped"));
        }
        note(&mut inbox.receiver, &ledger)
    }
}

/// Notes deliveries in the ledger, one transaction: a sequence number seen again counts a
/// copy.
fn note(
    receiver: &mut Receiver,
    items: &[(&Delivery, DateTime<Utc>, &'static str)],
) -> Result<(), CentralError> {
    let path = receiver.path.clone();
    let db = move |source| CentralError::Db {
        path: path.clone(),
        source,
    };
    let tx = receiver.conn.transaction().map_err(&db)?;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO post_seen (inventory, seq, event_id, kind, outcome, first_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (inventory, seq) DO UPDATE SET copies = copies + 1",
            )
            .map_err(&db)?;
        for (d, at, outcome) in items {
            let e = &d.event;
            stmt.execute(params![
                e.device.inventory,
                e.seq as i64,
                e.event_id.to_string(),
                e.kind.as_str(),
                outcome,
                crate::db::ts(*at),
            ])
            .map_err(&db)?;
        }
    }
    tx.commit().map_err(&db)
}

#[cfg(test)]
mod tests {
    use anpr_types::{Delivery, EventKind};
    use chrono::Utc;

    #[test]
    fn the_gap_report_names_every_sequence_number_never_seen_between_the_first_and_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("post.sqlite");
        let mut r = super::open_post_db(&path).unwrap();
        let delivery = |seq: u64, kind: EventKind| crate::db::tests::delivery("KZ-1", seq, kind);
        let ds: Vec<Delivery> = [
            (3, EventKind::Passage),
            (4, EventKind::Violation),
            (7, EventKind::Passage),
            (8, EventKind::Passage),
            (11, EventKind::Violation),
        ]
        .into_iter()
        .map(|(s, k)| delivery(s, k))
        .collect();
        let now = Utc::now();
        let items: Vec<_> = ds
            .iter()
            .map(|d| {
                let outcome = if d.event.kind == EventKind::Violation {
                    "stored"
                } else {
                    "skipped"
                };
                (d, now, outcome)
            })
            .collect();
        super::note(&mut r, &items).unwrap();
        // A second copy of seq 7 is a duplicate, not a new event.
        super::note(&mut r, &[(&ds[2], now, "skipped")]).unwrap();
        let report = super::post_report(&path).unwrap();
        assert_eq!(report.len(), 1);
        let rep = &report[0];
        assert_eq!((rep.first_seq, rep.last_seq), (Some(3), Some(11)));
        assert_eq!(rep.seen, 5);
        assert_eq!(rep.duplicates, 1);
        assert_eq!(rep.unaccounted, [(5, 6), (9, 10)]);
        assert_eq!(rep.stored.get("violation"), Some(&2));
        assert_eq!(rep.stored.get("passage"), None);
    }
}
