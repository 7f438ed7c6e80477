//! The archive in PostgreSQL: schema and migration, the batch transaction (per-device advisory
//! locks, the chain check, events, violations, refusals, health), evidence rows, and the
//! queries the fleet report reads.

use std::borrow::Cow;

use anpr_central::Stored;
use anpr_central::chain::{Link, Neighbours};
use anpr_types::{Delivery, EventKind, Health};
use chrono::{DateTime, Utc};
use tokio_postgres::{Client, NoTls, Statement, Transaction};
use uuid::Uuid;

use crate::FleetError;

/// Migrations applied by this software; the archive's `anpr_schema.version`.
pub const SCHEMA_VERSION: i32 = 1;

/// Advisory lock held while the schema is created or migrated (the text `anprschm`).
const SCHEMA_LOCK: i64 = 0x616e_7072_7363_686d;

/// Longest refusal reason kept: the unique index over it must stay within a btree row.
const MAX_REASON: usize = 1024;

/// The schema, one entry per version. Never edit an entry that has shipped: add one.
const MIGRATIONS: [&str; 1] = [
    // 1: the single receiver's tables, images in the object store.
    "CREATE TABLE events (
        event_id TEXT PRIMARY KEY,
        inventory TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        plate_status TEXT NOT NULL,
        hash TEXT NOT NULL,
        prev_hash TEXT,
        captured_at TIMESTAMPTZ NOT NULL,
        sent_at TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        stored_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        delayed BOOLEAN NOT NULL,
        copies INTEGER NOT NULL DEFAULT 1,
        payload TEXT NOT NULL,
        UNIQUE (inventory, seq)
     );
     CREATE TABLE violations (
        event_id TEXT PRIMARY KEY,
        inventory TEXT NOT NULL,
        seq BIGINT NOT NULL,
        rule TEXT,
        rule_kind TEXT,
        reason TEXT,
        priority INTEGER,
        plate TEXT NOT NULL,
        vehicle_class TEXT NOT NULL,
        captured_at TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL
     );
     CREATE INDEX violations_dev_seq ON violations (inventory, seq);
     CREATE TABLE evidence (
        event_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        inventory TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size BIGINT NOT NULL,
        object_key TEXT NOT NULL,
        stored_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (event_id, kind)
     );
     CREATE INDEX evidence_inventory ON evidence (inventory);
     CREATE TABLE quarantine (
        id BIGSERIAL PRIMARY KEY,
        inventory TEXT NOT NULL,
        subject TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        copies INTEGER NOT NULL DEFAULT 1,
        payload TEXT NOT NULL,
        size BIGINT,
        UNIQUE (inventory, event_id, reason)
     );
     CREATE TABLE chain_breaks (
        id BIGSERIAL PRIMARY KEY,
        inventory TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        hash TEXT NOT NULL,
        reason TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        copies INTEGER NOT NULL DEFAULT 1,
        payload TEXT NOT NULL,
        UNIQUE (event_id, hash, reason)
     );
     CREATE INDEX chain_breaks_dev_seq ON chain_breaks (inventory, seq);
     CREATE TABLE health (
        inventory TEXT PRIMARY KEY,
        received_at TIMESTAMPTZ NOT NULL,
        payload TEXT NOT NULL
     );
     CREATE TABLE status (
        inventory TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        last_will BOOLEAN NOT NULL
     );
     CREATE TABLE faults (
        id BIGSERIAL PRIMARY KEY,
        inventory TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        payload TEXT NOT NULL
     );",
];

/// What one replica commits at once.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events that passed the gate, with when they arrived here.
    pub events: Vec<(Delivery, DateTime<Utc>)>,
    /// Messages refused before storage.
    pub quarantine: Vec<Quarantined>,
    /// Health messages (or last wills): device, text as it arrived, when.
    pub health: Vec<(String, String, DateTime<Utc>)>,
}

impl Batch {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.quarantine.is_empty() && self.health.is_empty()
    }
}

/// A message refused before storage, kept with the reason; never acknowledged to its device.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// The inventory level of its subject.
    pub inventory: String,
    pub subject: String,
    /// The parsed event, when it was one (refused by the gate); `None` when refused unread.
    pub delivery: Option<Delivery>,
    /// The event id of an image's subject, for a message refused unread.
    pub event_id: Option<Uuid>,
    pub reason: String,
    /// Its size in bytes, for a message refused unread.
    pub size: Option<usize>,
    pub received_at: DateTime<Utc>,
}

/// One stored event, as the report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub inventory: String,
    pub seq: u64,
    pub event_id: Uuid,
    pub kind: String,
    pub hash: String,
    /// How many times it arrived (1 = once; more = duplicates, stored once).
    pub copies: u64,
    pub captured_at: DateTime<Utc>,
    /// When the replica took it from the queue.
    pub received_at: DateTime<Utc>,
    /// When its row was written (inside the batch's transaction, just before its commit).
    pub stored_at: DateTime<Utc>,
}

/// What the archive holds of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSummary {
    pub inventory: String,
    /// Events stored (distinct).
    pub events: u64,
    /// Deliveries of them (≥ events; the difference is the duplicates, stored once).
    pub copies: u64,
    /// Lowest and highest sequence number stored.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Evidence images stored.
    pub images: u64,
    /// Messages refused before storage (rows; each may count several copies).
    pub quarantined: u64,
    /// Events that broke the device's chain (rows).
    pub chain_breaks: u64,
}

/// Totals over the whole archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub devices: u64,
    pub events: u64,
    pub copies: u64,
    pub violations: u64,
    pub images: u64,
    pub quarantined: u64,
    pub chain_breaks: u64,
}

/// What an arriving image may become: see [`Archive::image_target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageTarget {
    /// Its event is not stored (yet).
    UnknownEvent,
    /// The event is another device's, names no image of this kind, or the bytes do not match
    /// its sha256 or size.
    Mismatch,
    /// Stored before (row committed, object in the store): acknowledge it again.
    Stored { seq: u64 },
    /// Store it: PUT the bytes, then [`Archive::record_image`].
    Store { seq: u64 },
}

/// The archive: one PostgreSQL connection and its prepared statements.
pub struct Archive {
    client: Client,
    st: Statements,
}

struct Statements {
    insert: Statement,
    copy: Statement,
    violation: Statement,
    chain_break: Statement,
    quarantine: Statement,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive").finish_non_exhaustive()
    }
}

fn pg(what: &'static str) -> impl Fn(tokio_postgres::Error) -> FleetError {
    move |source| {
        let detail = match source.as_db_error() {
            Some(db) => format!(": {} ({})", db.message(), db.code().code()),
            None => std::error::Error::source(&source)
                .map(|s| format!(": {s}"))
                .unwrap_or_default(),
        };
        FleetError::Postgres {
            what,
            source,
            detail,
        }
    }
}

/// The advisory lock key of a device: the first 8 bytes of a sha256 over its inventory, the
/// same in every replica.
#[must_use]
pub(crate) fn device_lock(inventory: &str) -> i64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("anpr-fleet/device\n{inventory}").as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Text for a column: NUL, which PostgreSQL text cannot hold, becomes U+FFFD.
fn clean(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Archive {
    /// Connects to PostgreSQL at `url` (plain TCP) and brings the schema up to date: under an
    /// advisory lock, in one transaction, so replicas starting together migrate it once.
    pub async fn connect(url: &str) -> Result<Self, FleetError> {
        let (mut client, conn) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(pg("connect"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "PostgreSQL connection closed.");
            }
        });
        migrate(&mut client).await?;
        let st = Statements {
            insert: client
                .prepare(
                    "INSERT INTO events (event_id, inventory, seq, kind, plate_status, hash, prev_hash,
                        captured_at, sent_at, received_at, delayed, payload)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .await
                .map_err(pg("prepare"))?,
            copy: client
                .prepare("UPDATE events SET copies = copies + 1 WHERE event_id = $1")
                .await
                .map_err(pg("prepare"))?,
            violation: client
                .prepare(
                    "INSERT INTO violations (event_id, inventory, seq, rule, rule_kind, reason,
                        priority, plate, vehicle_class, captured_at, received_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (event_id) DO NOTHING",
                )
                .await
                .map_err(pg("prepare"))?,
            chain_break: client
                .prepare(
                    "INSERT INTO chain_breaks (inventory, seq, event_id, hash, reason, received_at, payload)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (event_id, hash, reason) DO UPDATE SET copies = chain_breaks.copies + 1",
                )
                .await
                .map_err(pg("prepare"))?,
            quarantine: client
                .prepare(
                    "INSERT INTO quarantine (inventory, subject, seq, event_id, reason, received_at, payload, size)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (inventory, event_id, reason) DO UPDATE SET copies = quarantine.copies + 1,
                        size = excluded.size",
                )
                .await
                .map_err(pg("prepare"))?,
        };
        Ok(Self { client, st })
    }

    /// Whether the connection is gone (the server restarted or the link broke): connect again.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Stores a batch in one transaction and returns what became of each of its events, in
    /// order. The devices of the batch are locked first (transaction-scoped advisory locks, in
    /// key order), so the chain check of a device's event sees every neighbour committed by
    /// another replica. A duplicate (same id, same hash) increments its copy count; an event
    /// that breaks its chain is recorded in `chain_breaks`. Signatures are checked before.
    pub async fn store_batch(&mut self, batch: &Batch) -> Result<Vec<Stored>, FleetError> {
        let mut keys: Vec<i64> = batch
            .events
            .iter()
            .map(|(d, _)| device_lock(&d.event.device.inventory))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let st = &self.st;
        let tx = self.client.transaction().await.map_err(pg("begin"))?;
        if !keys.is_empty() {
            tx.execute(
                "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::int8[]) AS k",
                &[&keys],
            )
            .await
            .map_err(pg("lock devices"))?;
        }
        let out = store_events(&tx, st, &batch.events).await?;
        for q in &batch.quarantine {
            let (seq, event_id, payload) = match &q.delivery {
                Some(d) => (
                    d.event.seq as i64,
                    d.event.event_id.to_string(),
                    serde_json::to_string(d).unwrap_or_default(),
                ),
                None => (
                    0,
                    q.event_id.map(|id| id.to_string()).unwrap_or_default(),
                    String::new(),
                ),
            };
            tx.execute(
                &st.quarantine,
                &[
                    &clean(cut(&q.inventory, 64)).as_ref(),
                    &clean(cut(&q.subject, 256)).as_ref(),
                    &seq,
                    &event_id,
                    &clean(cut(&q.reason, MAX_REASON)).as_ref(),
                    &q.received_at,
                    &payload,
                    &q.size.map(|s| s as i64),
                ],
            )
            .await
            .map_err(pg("quarantine"))?;
        }
        for (inventory, raw, at) in &batch.health {
            store_health(&tx, inventory, raw, *at).await?;
        }
        tx.commit().await.map_err(pg("commit"))?;
        Ok(out)
    }

    /// What an arriving image of the event `event_id` (its kind `kind`, bytes `data`), sent
    /// by device `inventory`, may become: checked against the committed event (of that device;
    /// its evidence list names the kind, sha256 and size) and against an image row committed
    /// before.
    pub async fn image_target(
        &self,
        inventory: &str,
        event_id: Uuid,
        kind: &str,
        data: &[u8],
    ) -> Result<ImageTarget, FleetError> {
        let id = event_id.to_string();
        let Some(row) = self
            .client
            .query_opt(
                "SELECT seq, inventory, payload FROM events WHERE event_id = $1",
                &[&id],
            )
            .await
            .map_err(pg("find an image's event"))?
        else {
            return Ok(ImageTarget::UnknownEvent);
        };
        let seq = row.get::<_, i64>(0) as u64;
        let owner: &str = row.get(1);
        if owner != inventory {
            return Ok(ImageTarget::Mismatch);
        }
        let event: Option<anpr_types::Event> = serde_json::from_str(row.get::<_, &str>(2)).ok();
        let Some(r) = event.and_then(|e| e.evidence.into_iter().find(|r| r.kind == kind)) else {
            return Ok(ImageTarget::Mismatch);
        };
        if r.sha256 != anpr_trust::sha256_hex(data) || r.size != data.len() as u64 {
            return Ok(ImageTarget::Mismatch);
        }
        let stored = self
            .client
            .query_opt(
                "SELECT 1 FROM evidence WHERE event_id = $1 AND kind = $2 AND sha256 = $3",
                &[&id, &kind, &r.sha256],
            )
            .await
            .map_err(pg("find an image"))?;
        Ok(if stored.is_some() {
            ImageTarget::Stored { seq }
        } else {
            ImageTarget::Store { seq }
        })
    }

    /// Records an image whose bytes are in the object store under `object_key` (committed on
    /// return; once per event and kind).
    pub async fn record_image(
        &self,
        event_id: Uuid,
        kind: &str,
        inventory: &str,
        sha256: &str,
        size: usize,
        object_key: &str,
    ) -> Result<(), FleetError> {
        self.client
            .execute(
                "INSERT INTO evidence (event_id, kind, inventory, sha256, size, object_key, stored_at)
                 VALUES ($1, $2, $3, $4, $5, $6, now()) ON CONFLICT (event_id, kind) DO NOTHING",
                &[
                    &event_id.to_string(),
                    &kind,
                    &inventory,
                    &sha256,
                    &(size as i64),
                    &object_key,
                ],
            )
            .await
            .map_err(pg("record an image"))?;
        Ok(())
    }

    /// Stored events of one device (or of all, `None`), by device and sequence number.
    pub async fn events(&self, inventory: Option<&str>) -> Result<Vec<StoredEvent>, FleetError> {
        let rows = self
            .client
            .query(
                "SELECT inventory, seq, event_id, kind, hash, copies, captured_at, received_at, stored_at
                 FROM events WHERE $1::text IS NULL OR inventory = $1 ORDER BY inventory, seq",
                &[&inventory],
            )
            .await
            .map_err(pg("read events"))?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                inventory: r.get(0),
                seq: r.get::<_, i64>(1) as u64,
                event_id: Uuid::parse_str(r.get(2)).unwrap_or_default(),
                kind: r.get(3),
                hash: r.get(4),
                copies: r.get::<_, i32>(5) as u64,
                captured_at: r.get(6),
                received_at: r.get(7),
                stored_at: r.get(8),
            })
            .collect())
    }

    /// The stored delivery of an event, as parsed and serialised again.
    pub async fn delivery(&self, event_id: Uuid) -> Result<Option<Delivery>, FleetError> {
        let row = self
            .client
            .query_opt(
                "SELECT payload FROM events WHERE event_id = $1",
                &[&event_id.to_string()],
            )
            .await
            .map_err(pg("read an event"))?;
        Ok(row.and_then(|r| serde_json::from_str(r.get::<_, &str>(0)).ok()))
    }

    /// The images stored of an event: kind, sha256 (the object's key), size.
    pub async fn images_of(
        &self,
        event_id: Uuid,
    ) -> Result<Vec<(String, String, u64)>, FleetError> {
        let rows = self
            .client
            .query(
                "SELECT kind, object_key, size FROM evidence WHERE event_id = $1 ORDER BY kind",
                &[&event_id.to_string()],
            )
            .await
            .map_err(pg("read images"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
            .collect())
    }

    /// Refused messages of a device: `quarantine` (refused before storage) or, with
    /// `chain_breaks` true, events that broke its chain; in sequence order.
    pub async fn refused_of(
        &self,
        inventory: &str,
        chain_breaks: bool,
    ) -> Result<Vec<anpr_central::Refused>, FleetError> {
        let sql = if chain_breaks {
            "SELECT inventory, seq, event_id, reason, received_at, copies, NULL::int8 FROM chain_breaks
             WHERE inventory = $1 ORDER BY seq, id"
        } else {
            "SELECT inventory, seq, event_id, reason, received_at, copies, size FROM quarantine
             WHERE inventory = $1 ORDER BY seq, id"
        };
        let rows = self
            .client
            .query(sql, &[&inventory])
            .await
            .map_err(pg("read refusals"))?;
        Ok(rows
            .iter()
            .map(|r| anpr_central::Refused {
                inventory: r.get(0),
                seq: r.get::<_, i64>(1) as u64,
                event_id: r.get(2),
                reason: r.get(3),
                received_at: r.get(4),
                copies: r.get::<_, i32>(5) as u64,
                size: r.get::<_, Option<i64>>(6).map(|n| n as u64),
            })
            .collect())
    }

    /// The last full health message of a device, if it sent one.
    pub async fn health(&self, inventory: &str) -> Result<Option<Health>, FleetError> {
        let row = self
            .client
            .query_opt(
                "SELECT payload FROM health WHERE inventory = $1",
                &[&inventory],
            )
            .await
            .map_err(pg("read health"))?;
        Ok(row.and_then(|r| serde_json::from_str(r.get::<_, &str>(0)).ok()))
    }

    /// What the archive holds of every device that has anything in it, by inventory.
    pub async fn summaries(&self) -> Result<Vec<DeviceSummary>, FleetError> {
        let rows = self
            .client
            .query(
                "WITH d AS (
                    SELECT inventory FROM events UNION SELECT inventory FROM quarantine
                    UNION SELECT inventory FROM chain_breaks),
                 e AS (SELECT inventory, count(*) n, sum(copies) c, min(seq) lo, max(seq) hi
                       FROM events GROUP BY inventory),
                 i AS (SELECT inventory, count(*) n FROM evidence GROUP BY inventory),
                 q AS (SELECT inventory, count(*) n FROM quarantine GROUP BY inventory),
                 b AS (SELECT inventory, count(*) n FROM chain_breaks GROUP BY inventory)
                 SELECT d.inventory, coalesce(e.n, 0), coalesce(e.c, 0)::int8, e.lo, e.hi,
                        coalesce(i.n, 0), coalesce(q.n, 0), coalesce(b.n, 0)
                 FROM d LEFT JOIN e USING (inventory) LEFT JOIN i USING (inventory)
                        LEFT JOIN q USING (inventory) LEFT JOIN b USING (inventory)
                 ORDER BY d.inventory",
                &[],
            )
            .await
            .map_err(pg("summarise devices"))?;
        Ok(rows
            .iter()
            .map(|r| DeviceSummary {
                inventory: r.get(0),
                events: r.get::<_, i64>(1) as u64,
                copies: r.get::<_, i64>(2) as u64,
                first_seq: r.get::<_, Option<i64>>(3).map(|n| n as u64),
                last_seq: r.get::<_, Option<i64>>(4).map(|n| n as u64),
                images: r.get::<_, i64>(5) as u64,
                quarantined: r.get::<_, i64>(6) as u64,
                chain_breaks: r.get::<_, i64>(7) as u64,
            })
            .collect())
    }

    /// Totals over the archive.
    pub async fn totals(&self) -> Result<Totals, FleetError> {
        let r = self
            .client
            .query_one(
                "SELECT (SELECT count(DISTINCT inventory) FROM events),
                        (SELECT count(*) FROM events),
                        (SELECT coalesce(sum(copies), 0)::int8 FROM events),
                        (SELECT count(*) FROM violations),
                        (SELECT count(*) FROM evidence),
                        (SELECT count(*) FROM quarantine),
                        (SELECT count(*) FROM chain_breaks)",
                &[],
            )
            .await
            .map_err(pg("count"))?;
        let n = |i| r.get::<_, i64>(i) as u64;
        Ok(Totals {
            devices: n(0),
            events: n(1),
            copies: n(2),
            violations: n(3),
            images: n(4),
            quarantined: n(5),
            chain_breaks: n(6),
        })
    }
}

/// Creates or migrates the schema in one transaction under [`SCHEMA_LOCK`].
async fn migrate(client: &mut Client) -> Result<(), FleetError> {
    let tx = client.transaction().await.map_err(pg("begin"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(pg("lock the schema"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS anpr_schema (version INTEGER NOT NULL)")
        .await
        .map_err(pg("create the schema table"))?;
    let found: i32 = tx
        .query_opt("SELECT version FROM anpr_schema", &[])
        .await
        .map_err(pg("read the schema version"))?
        .map_or(0, |r| r.get(0));
    if found > SCHEMA_VERSION {
        return Err(FleetError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql).await.map_err(pg("migrate"))?;
    }
    if found < SCHEMA_VERSION {
        tx.execute("DELETE FROM anpr_schema", &[])
            .await
            .map_err(pg("migrate"))?;
        tx.execute(
            "INSERT INTO anpr_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(pg("migrate"))?;
        tracing::info!(
            from = found,
            to = SCHEMA_VERSION,
            "Archive schema migrated."
        );
    }
    tx.commit().await.map_err(pg("commit the schema"))
}

/// What is known of a stored (or, earlier in the batch, accepted) event.
#[derive(Clone)]
struct Known {
    event_id: String,
    hash: String,
    prev_hash: Option<String>,
}

/// A write of the batch, its parameters owned until the pipeline has run.
enum Write {
    Insert {
        id: String,
        inv: String,
        seq: i64,
        kind: &'static str,
        plate_status: &'static str,
        hash: String,
        prev: Option<String>,
        captured_at: DateTime<Utc>,
        sent_at: DateTime<Utc>,
        received_at: DateTime<Utc>,
        delayed: bool,
        payload: String,
    },
    Violation {
        id: String,
        inv: String,
        seq: i64,
        rule: Option<String>,
        rule_kind: Option<String>,
        reason: Option<String>,
        priority: Option<i32>,
        plate: String,
        class: &'static str,
        captured_at: DateTime<Utc>,
        received_at: DateTime<Utc>,
    },
    Copy {
        id: String,
    },
    Break {
        inv: String,
        seq: i64,
        id: String,
        hash: String,
        reason: String,
        received_at: DateTime<Utc>,
        payload: String,
    },
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

impl Write {
    fn statement<'s>(&self, st: &'s Statements) -> &'s Statement {
        match self {
            Write::Insert { .. } => &st.insert,
            Write::Violation { .. } => &st.violation,
            Write::Copy { .. } => &st.copy,
            Write::Break { .. } => &st.chain_break,
        }
    }

    fn params(&self) -> Vec<Param<'_>> {
        match self {
            Write::Insert {
                id,
                inv,
                seq,
                kind,
                plate_status,
                hash,
                prev,
                captured_at,
                sent_at,
                received_at,
                delayed,
                payload,
            } => vec![
                id,
                inv,
                seq,
                kind,
                plate_status,
                hash,
                prev,
                captured_at,
                sent_at,
                received_at,
                delayed,
                payload,
            ],
            Write::Violation {
                id,
                inv,
                seq,
                rule,
                rule_kind,
                reason,
                priority,
                plate,
                class,
                captured_at,
                received_at,
            } => vec![
                id,
                inv,
                seq,
                rule,
                rule_kind,
                reason,
                priority,
                plate,
                class,
                captured_at,
                received_at,
            ],
            Write::Copy { id } => vec![id],
            Write::Break {
                inv,
                seq,
                id,
                hash,
                reason,
                received_at,
                payload,
            } => vec![inv, seq, id, hash, reason, received_at, payload],
        }
    }
}

/// Stores the events of a batch in its transaction (the devices locked): their stored
/// neighbours are read in one query, each event is judged by the single receiver's chain rule
/// against them and against the events before it in the batch, and the writes (rows, copy
/// counts, chain breaks) go to the server pipelined, in order.
async fn store_events(
    tx: &Transaction<'_>,
    st: &Statements,
    events: &[(Delivery, DateTime<Utc>)],
) -> Result<Vec<Stored>, FleetError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = events
        .iter()
        .map(|(d, _)| d.event.event_id.to_string())
        .collect();
    let mut invs: Vec<&str> = Vec::with_capacity(events.len() * 3);
    let mut seqs: Vec<i64> = Vec::with_capacity(events.len() * 3);
    for (d, _) in events {
        let seq = d.event.seq as i64;
        for s in [seq - 1, seq, seq.saturating_add(1)] {
            invs.push(&d.event.device.inventory);
            seqs.push(s);
        }
    }
    let rows = tx
        .query(
            "SELECT event_id, inventory, seq, hash, prev_hash FROM events WHERE event_id = ANY($1)
             UNION SELECT e.event_id, e.inventory, e.seq, e.hash, e.prev_hash
             FROM events e JOIN unnest($2::text[], $3::int8[]) AS k (inventory, seq)
               ON e.inventory = k.inventory AND e.seq = k.seq",
            &[&ids, &invs, &seqs],
        )
        .await
        .map_err(pg("read neighbours"))?;
    let mut by_id: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut by_seq: std::collections::HashMap<(String, i64), Known> =
        std::collections::HashMap::new();
    for r in &rows {
        let known = Known {
            event_id: r.get(0),
            hash: r.get(3),
            prev_hash: r.get(4),
        };
        by_id.insert(known.event_id.clone(), known.hash.clone());
        by_seq.insert((r.get(1), r.get(2)), known);
    }
    let mut out = Vec::with_capacity(events.len());
    let mut writes = Vec::with_capacity(events.len() + 8);
    for ((d, received_at), id) in events.iter().zip(ids) {
        let e = &d.event;
        let inv = e.device.inventory.clone();
        let seq = e.seq as i64;
        let hash = anpr_trust::event::event_hash(e);
        let key = |s: i64| (inv.clone(), s);
        let n = Neighbours {
            same_id: by_id.get(&id).map(|h| Some(h.clone())),
            same_seq: by_seq.get(&key(seq)).map(|k| k.event_id.clone()),
            previous: by_seq
                .get(&key(seq - 1))
                .map(|k| (Some(k.hash.clone()), k.prev_hash.is_none())),
            next_prev_hash: by_seq
                .get(&key(seq.saturating_add(1)))
                .map(|k| k.prev_hash.clone()),
        };
        match anpr_central::chain::link(e, &hash, &n) {
            Link::New => {}
            Link::Duplicate => {
                writes.push(Write::Copy { id });
                out.push(Stored::Duplicate { hash });
                continue;
            }
            Link::Break(reason) => {
                tracing::warn!(inventory = %inv, seq = e.seq, event_id = %id, reason = %anpr_central::escape(&reason), "Event breaks its device's hash chain: flagged, not stored, not acknowledged.");
                writes.push(Write::Break {
                    inv,
                    seq,
                    id,
                    hash,
                    reason: clean(&reason).into_owned(),
                    received_at: *received_at,
                    payload: serde_json::to_string(d).unwrap_or_default(),
                });
                out.push(Stored::Refused { reason });
                continue;
            }
        }
        by_id.insert(id.clone(), hash.clone());
        by_seq.insert(
            key(seq),
            Known {
                event_id: id.clone(),
                hash: hash.clone(),
                prev_hash: e.prev_hash.clone(),
            },
        );
        writes.push(Write::Insert {
            id: id.clone(),
            inv: inv.clone(),
            seq,
            kind: e.kind.as_str(),
            plate_status: e.plate.status.as_str(),
            hash: hash.clone(),
            prev: e.prev_hash.as_deref().map(|p| clean(p).into_owned()),
            captured_at: e.captured_at,
            sent_at: d.sent_at,
            received_at: *received_at,
            delayed: d.delayed,
            payload: serde_json::to_string(d).unwrap_or_default(),
        });
        if e.kind == EventKind::Violation {
            let v = e.violation.as_ref();
            writes.push(Write::Violation {
                id,
                inv,
                seq,
                rule: v.map(|v| clean(&v.rule).into_owned()),
                rule_kind: v.map(|v| clean(&v.kind).into_owned()),
                reason: v.map(|v| clean(&v.reason).into_owned()),
                priority: v.map(|v| i32::from(v.priority)),
                plate: clean(&e.plate.text).into_owned(),
                class: e.vehicle.class.as_str(),
                captured_at: e.captured_at,
                received_at: *received_at,
            });
        }
        out.push(Stored::New { hash });
    }
    // Pipelined on the one connection; the copy counts after the rows, so a copy of an event
    // inserted earlier in the batch finds its row.
    let (copies, rows): (Vec<&Write>, Vec<&Write>) =
        writes.iter().partition(|w| matches!(w, Write::Copy { .. }));
    for phase in [rows, copies] {
        futures_util::future::try_join_all(
            phase
                .into_iter()
                .map(|w| tx.execute_raw(w.statement(st), w.params())),
        )
        .await
        .map_err(pg("store events"))?;
    }
    Ok(out)
}

/// Keeps a health message in the batch's transaction: a full one becomes the device's health
/// and status (and is kept apart when it reports faults); one with only a status (the
/// broker's last will) changes the status alone; anything else is logged and left out.
async fn store_health(
    tx: &Transaction<'_>,
    inventory: &str,
    raw: &str,
    received_at: DateTime<Utc>,
) -> Result<(), FleetError> {
    let (status, at, last_will, full) = match serde_json::from_str::<Health>(raw) {
        Ok(h) => (h.status.clone(), h.at, false, Some(h)),
        Err(e) => {
            let status = serde_json::from_str::<serde_json::Value>(raw)
                .ok()
                .and_then(|v| v.get("status")?.as_str().map(str::to_string));
            let Some(status) = status else {
                tracing::warn!(inventory, error = %anpr_central::escape(&e.to_string()), "Health message that follows no schema left out.");
                return Ok(());
            };
            (status, received_at, true, None)
        }
    };
    tx.execute(
        "INSERT INTO status (inventory, status, at, received_at, last_will) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (inventory) DO UPDATE SET status = excluded.status, at = excluded.at,
            received_at = excluded.received_at, last_will = excluded.last_will",
        &[&inventory, &clean(cut(&status, 64)).as_ref(), &at, &received_at, &last_will],
    )
    .await
    .map_err(pg("store a status"))?;
    if let Some(h) = full {
        let payload = serde_json::to_string(&h).unwrap_or_default();
        tx.execute(
            "INSERT INTO health (inventory, received_at, payload) VALUES ($1, $2, $3)
             ON CONFLICT (inventory) DO UPDATE SET received_at = excluded.received_at, payload = excluded.payload",
            &[&inventory, &received_at, &payload],
        )
        .await
        .map_err(pg("store health"))?;
        if !h.faults.is_empty() {
            tx.execute(
                "INSERT INTO faults (inventory, received_at, payload) VALUES ($1, $2, $3)",
                &[&inventory, &received_at, &payload],
            )
            .await
            .map_err(pg("store a fault"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn device_locks_are_stable_and_distinct() {
        assert_eq!(super::device_lock("KZ-1"), super::device_lock("KZ-1"));
        assert_ne!(super::device_lock("KZ-1"), super::device_lock("KZ-2"));
        assert_eq!(super::clean("a\0b"), "a\u{fffd}b");
        assert_eq!(super::cut("éé", 3), "é");
    }
}
