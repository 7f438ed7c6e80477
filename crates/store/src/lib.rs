//! The device's event queue: a SQLite database, the single source of truth for what was
//! recorded, what the central side has acknowledged, and what had to be dropped.
//!
//! # Contract
//!
//! - [`Store::append`] (and [`Store::append_batch`], one commit for many events) assigns the
//!   next per-device sequence numbers and commits the events with their evidence images in one
//!   transaction before it returns.
//! - Sequence numbers come from a counter in the database, never reused, also after rows are
//!   pruned or dropped: the central receiver can tell a gap from a pruned row.
//! - Evidence images are stored in the same transaction as their event, referenced from it by
//!   sha256 (computed here, so a reference always matches its bytes).
//! - A row is marked delivered only by [`Store::mark_delivered_batch`], called when the central
//!   receiver acknowledges that exact event id and sequence (and, for an image, its sha256).
//!   Nothing removes the obligation to deliver a row: an undelivered record (or one handed
//!   over in an export bundle and not yet acknowledged) is never deleted, by anything.
//! - Retention (`retention`, [`Store::set_retention`], [`Store::expire`]): a delivered row
//!   stays until its time is over: a violation, with its images (whose bytes are kept after
//!   their acknowledgement), at least `keep_violations_days` after capture; any other record
//!   until the hourly cleanup after `keep_passages_days`, or sooner under the quota. Rows are
//!   kept and removed in chronological order (by `seq`).
//! - Every deletion is journaled in the transaction that makes it, one row per batch:
//!   `pruned` (delivered rows removed, reason `retention` or `disk quota`, counts by kind,
//!   images, first and last seq) and `dropped-evidence` (images of undelivered passages
//!   released by the quota, count, first and last seq); each removed row leaves its hash in
//!   `removed`, so both chains still verify. An acknowledged image's bytes are released with
//!   the acknowledgement (its row stays, with its sha256 and `delivered_at`).
//! - Disk quota ([`Store::with_quota`]): before an append would take the database's pages in
//!   use over the quota, room is made in this order, oldest first within each step, until it
//!   fits: (1) delivered rows with all their images delivered or dropped (not a loss;
//!   violations only once `keep_violations_days` is over), (2) the images of undelivered
//!   passages not handed over in an export (a loss, counted in [`Store::drops`], journaled,
//!   raised by the uplink as `queue-quota`; the passage record stays). If that is not enough,
//!   a new passage or violation is refused with [`StoreError::QuotaFull`] (the transaction
//!   rolled back, nothing removed), which [`StoreError::is_disk_full`] reports like a full
//!   disk: the recognizer holds it in memory and raises `queue-full`. Camera gaps and custody
//!   records are always written.
//! - Custody journal (`custody`, rule 27 and annex 3): [`Store::custody_issue`] and
//!   [`Store::custody_return`] check the journal's open issue under the write lock and write a
//!   signed `custody` event (delivered like every event) with its journal entry in one
//!   transaction; a refused record ([`CustodyError`]) writes nothing. The journal is rendered
//!   as text lines ([`journal_text`]) and as the annex-3 HTML page ([`annex3_html`]), dates in
//!   the device's time zone, everything from the journal escaped.
//! - Export (`export`, [`Store::export`]): the undelivered rows (or a capture-time range)
//!   copied into a signed bundle, then, in one transaction, the rows marked handed over and the
//!   copy journaled as a custody record. A row handed over stays owed until acknowledged.
//! - The counts of [`Store::stats`] are kept in the `meta` table and changed in the same
//!   transaction as the rows they count, so they agree with the rows after any crash; reading
//!   them does not scan the queue.
//! - Append signal ([`append_signal`]): every commit that adds events (appends, custody
//!   records, export records) bumps, after the commit, a process-wide counter per queue
//!   file, so a reader in the same process (the uplink) learns of new rows without asking
//!   SQLite. Other processes' appends do not bump it: a reader relying on it still reads the
//!   queue now and then (the uplink once a second).
//!
//! # What is synced when
//!
//! Every connection runs in WAL mode with `synchronous=FULL` ([`open_durable`]): each commit
//! (an append batch, a batch of acknowledgements, a batch of sending attempts, a clock jump) is
//! written to the WAL file and fsynced before the call returns. Checkpoints into the main file
//! are SQLite's automatic ones; they move only committed pages.
//!
//! # Crash behaviour
//!
//! A crash or power loss mid-commit leaves a torn WAL tail, which SQLite ignores on the next
//! open: the transaction is rolled back as a whole. The event, its images, the counters and
//! any drops it caused are either all present or all absent, and an absent event was never
//! reported as accepted. An acknowledgement lost this way leaves its row pending, so it is sent
//! again (a duplicate the receiver deduplicates by event id, never a loss). A migration runs in
//! one transaction too: a crash during it leaves the file at its old version, migrated again
//! on the next open.
//!
//! # On-disk layout
//!
//! ```text
//! queue.sqlite (+ queue.sqlite-wal, queue.sqlite-shm while open)
//!   PRAGMA user_version   number of migrations applied (schema.rs); a newer file is refused
//!   events    seq INTEGER PRIMARY KEY          per-device sequence number
//!             event_id TEXT UNIQUE             UUIDv7
//!             kind TEXT                        'passage' | 'violation' | 'camera_gap'
//!                                              | 'custody'
//!             captured_at TEXT                 RFC 3339, UTC, microseconds
//!             payload TEXT                     the event as JSON (anpr.event/1)
//!             accepted_at TEXT
//!             attempts INTEGER                 sending attempts so far
//!             delivered_at TEXT NULL           set on the event's acknowledgement
//!             hash TEXT                        sha256 hex of the event's canonical form
//!             exported_at TEXT NULL, export_id TEXT NULL   handed over in that bundle
//!             index events_pending (seq) WHERE delivered_at IS NULL
//!   chain_head  id = 1, seq, hash              the last event appended
//!   removed   first_seq INTEGER PRIMARY KEY    a run of rows the queue removed itself,
//!             last_seq, last_hash NULL         with the hash of its last row (NULL: removed
//!                                              before hashes were kept)
//!   evidence  (seq, kind) PRIMARY KEY          kind: 'overview' | 'plate'
//!             sha256 TEXT, content_type TEXT, size INTEGER
//!             data BLOB NULL                   released on acknowledgement or drop
//!             delivered_at TEXT NULL, dropped_at TEXT NULL
//!             ready INTEGER                    1: its event is acknowledged, send it
//!             index evidence_pending (seq) WHERE not delivered and not dropped
//!             index evidence_ready (seq) WHERE ready and not delivered and not dropped
//!   meta      key TEXT PRIMARY KEY, value INTEGER
//!             next_seq                         next sequence number to assign
//!             events_present, events_pending   rows in `events`, and those undelivered
//!             dropped_passages, dropped_violations,
//!             dropped_passage_evidence, dropped_violation_evidence
//!             pruned_events                    delivered rows removed (quota or retention)
//!             clock_jumps
//!             keep_violations_days, keep_passages_days   the retention policy
//!   journal   id INTEGER PRIMARY KEY, at TEXT, kind TEXT, detail TEXT (JSON)
//!             kind: 'pruned' | 'dropped-evidence' | 'clock-jump' | 'camera-gap'
//!                   | 'quarantined-event' | 'custody-issue' | 'custody-return'
//!                   | 'custody-export' | 'retention-policy'
//!                   ('dropped-event', and a 'dropped-evidence' per image, were written by
//!                   versions whose quota deleted undelivered records)
//!             prev_hash TEXT, hash TEXT        the journal's chain (anpr_trust::chain)
//!             index journal_kind (kind, id)
//!   journal_head  id = 1, seq, hash            the last journal row written (seq: its id)
//! ```
//!
//! # Modules
//!
//! `schema` (tables and migrations), `append` (appends, batches, the quota), `retention`
//! (how long delivered rows stay, their removal and its journal),
//! `delivery` (pending rows, attempts, acknowledgements, counts), `evidence` (images),
//! `journal` (drops and clock jumps), `custody` (issue, return, the annex-3 table), `export`
//! (bundles of what could not go out live), `chain` (the hash chain and its walk), `sqlite`
//! (opening a connection, shared helpers).

mod append;
mod chain;
mod custody;
mod delivery;
mod evidence;
mod export;
mod journal;
mod retention;
mod schema;
mod sqlite;
mod status;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rusqlite::Connection;

pub use anpr_trust::SigningKey;
pub use append::NewRecord;
pub use chain::{VerifyReport, verify_queue};
pub use custody::{
    ANNEX3_COLUMNS, AnnexRow, CustodyEntry, CustodyError, annex3_html, annex3_rows, journal_line,
    journal_text, local_time,
};
pub use delivery::{AckOutcome, AckRef, Pending, QueueStats};
pub use evidence::{NewEvidence, PendingEvidence, sha256_hex};
pub use export::{ExportError, ExportOptions, ExportSummary};
pub use journal::JournalEntry;
pub use retention::{Pruned, Retention};
pub use schema::{Migration, MigrationError, migrate};
pub use sqlite::open_durable;
pub use status::OldestPending;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "queue database {path} cannot be opened: {source}; check that the directory exists and is writable"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "queue database {path} has schema version {found}, newer than this software ({supported}); upgrade the software"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("queue database {path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "queue database {path} has schema version {found}, older than this software ({supported}); start the device once (`anpr run` migrates it), then verify it"
    )]
    TooOld {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("stored event {seq} is not valid JSON: {message}")]
    Corrupt { seq: u64, message: String },
    #[error(
        "queue database {path} is at its quota ({quota} bytes, {used} in use) and every record in it is undelivered or exported and not yet acknowledged, so none may be deleted; restore the link to the central receiver (or export the data and import it there), or raise storage.quota_mb"
    )]
    QuotaFull {
        path: PathBuf,
        quota: u64,
        used: u64,
    },
}

impl StoreError {
    /// Whether the disk (or the database's page limit) is full: nothing new can be stored until
    /// space returns, and what is stored is untouched (SQLite rolls the transaction back).
    /// SQLite reports a write that fails with ENOSPC as `SQLITE_FULL`.
    #[must_use]
    /// The queue's quota reached with nothing deletable ([`StoreError::QuotaFull`]) counts
    /// too: it is a full disk of the size the configuration gave the queue.
    pub fn is_disk_full(&self) -> bool {
        let source = match self {
            Self::Open { source, .. } | Self::Sql { source, .. } => source,
            Self::QuotaFull { .. } => return true,
            Self::TooNew { .. } | Self::TooOld { .. } | Self::Corrupt { .. } => return false,
        };
        matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DiskFull)
        )
    }
}

impl StoreError {
    /// Whether this is the queue's quota reached with every record in it still owed
    /// ([`StoreError::QuotaFull`]), not the disk itself.
    #[must_use]
    pub fn is_quota_full(&self) -> bool {
        matches!(self, Self::QuotaFull { .. })
    }
}

/// The SQLite queue. One connection; open several (one per thread) on the same file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    quota: Option<u64>,
    /// The device key events are signed with at append ([`Store::with_signer`]).
    signer: Option<SigningKey>,
    /// This file's append signal ([`append_signal`]).
    appended: Arc<AtomicU64>,
}

/// The append signal of the queue file at `path`: a counter shared by every [`Store`] of
/// this process on that file, bumped after each commit that adds events (appends, custody
/// records, export records). Reading it costs one atomic load: a reader that loaded it
/// before reading the queue knows that no event was added in this process since while it
/// is unchanged. Events added by other processes (`anpr custody`, `anpr export`) do not bump
/// it. The file is named by its canonical path where its directory exists (else as given,
/// made absolute), so two spellings of one path share a signal.
#[must_use]
pub fn append_signal(path: &Path) -> Arc<AtomicU64> {
    static SIGNALS: OnceLock<Mutex<HashMap<PathBuf, Weak<AtomicU64>>>> = OnceLock::new();
    let key = signal_key(path);
    let mut map = SIGNALS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(signal) = map.get(&key).and_then(Weak::upgrade) {
        return signal;
    }
    // Forget the files nobody watches or writes any more.
    map.retain(|_, w| w.strong_count() > 0);
    let signal = Arc::new(AtomicU64::new(0));
    map.insert(key, Arc::downgrade(&signal));
    signal
}

fn signal_key(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

impl Store {
    /// Opens (creating if needed, with mode 0600) the queue at `path` and migrates its schema.
    /// A queue file, `-wal` or `-shm` readable by others is made owner-only first. No quota.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        sqlite::owner_only(path);
        let mut conn = open_durable(path).map_err(open)?;
        schema::migrate_queue(&mut conn, path)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            quota: None,
            signer: None,
            appended: append_signal(path),
        })
    }

    /// Signs every event appended from now on with the device key `key` (the device always
    /// does; a queue without a signer appends chained but unsigned events, which a receiver
    /// refuses: for tests of the queue alone).
    #[must_use]
    pub fn with_signer(mut self, key: SigningKey) -> Self {
        self.signer = Some(key);
        self
    }

    /// Sets the disk quota in bytes (pages of the database in use); `None` for no quota.
    #[must_use]
    pub fn with_quota(mut self, quota: Option<u64>) -> Self {
        self.quota = quota;
        self
    }

    /// The quota set with [`Store::with_quota`].
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    /// Caps the database at its present size (`true`) or lifts the cap (`false`) for this
    /// connection, as SQLite's `max_page_count`: a write that needs a new page then fails as
    /// it would on a full disk ([`StoreError::is_disk_full`]). For fault-injection tests of
    /// the disk-full path; the device never caps itself.
    pub fn cap_at_present_size(&self, cap: bool) -> Result<(), StoreError> {
        let pages: i64 = if cap {
            self.conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(self.sql())?
        } else {
            // SQLite's own default upper limit.
            4_294_967_294
        };
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(self.sql())
    }

    /// Starts a transaction that takes the write lock at once (so two writers queue up on the
    /// lock wait instead of failing when a read would have to be upgraded).
    fn begin_write(&mut self) -> Result<(rusqlite::Transaction<'_>, &Path), StoreError> {
        let Self { conn, path, .. } = self;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite::sql_error(path))?;
        Ok((tx, path))
    }

    /// Says that a commit added events ([`append_signal`]).
    fn bump_appended(&self) {
        self.appended.fetch_add(1, Ordering::Release);
    }

    /// Maps SQLite errors on this queue to [`StoreError::Sql`].
    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sqlite::sql_error(&self.path)
    }
}
