//! The queue thread: the only place the uplink touches SQLite. A dedicated OS thread owns the
//! uplink's [`Store`] connection and serves requests sent over a channel, each answered on a
//! tokio oneshot, so fsynced commits and waits on the write lock (up to SQLite's busy timeout)
//! never run on the async runtime, beside the MQTT keepalive.
//!
//! - A request reads or writes what one pass of the session loop needs, in one round trip:
//!   [`QueueThread::fetch`] (the window's rows, ready images with their bytes, the queue's
//!   counters), [`QueueThread::acks`] (one transaction), [`QueueThread::attempts`] (one
//!   transaction), [`QueueThread::health`] (a clock jump to journal, then the figures and
//!   the journal's head).
//! - A row that cannot be read is quarantined here ([`Store::quarantine`]: journaled with what
//!   it held, taken out of delivery) and reported in [`Fetched::quarantined`]; the rows after
//!   it are read on.
//! - Between requests, once every [`CLEANUP_EVERY`] (the first one period after the thread
//!   starts), the thread removes the delivered rows whose retention is over
//!   ([`Store::expire`], journaled by the store; `docs/retention.md`). The clock it uses is
//!   the wall clock, or any other in tests.
//! - After any other error the connection is dropped and the next request opens a new one,
//!   so a queue that was unreachable (a missing directory, a full disk) is picked up again
//!   once it is back. A thread that panicked is replaced at the next request.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anpr_store::{AckOutcome, AckRef, Pending, PendingEvidence, QueueStats, Store, StoreError};
use anpr_types::Ack;
use tokio::sync::oneshot;

use crate::config::UplinkError;
use crate::health::{ClockStep, QueueSnapshot};
use crate::window::{Range, Wanted};

/// Corrupt rows quarantined in one read at most (the rest are found by the next read).
const QUARANTINE_PER_READ: usize = 16;
/// How long closing waits for the thread to finish its request.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How often the delivered rows past their retention are removed.
pub(crate) const CLEANUP_EVERY: Duration = Duration::from_hours(1);

/// When the queue thread runs the retention cleanup, and the clock it gives it.
#[derive(Clone, Copy)]
struct Cleanup {
    every: Duration,
    clock: fn() -> chrono::DateTime<chrono::Utc>,
}

impl Default for Cleanup {
    fn default() -> Self {
        Self {
            every: CLEANUP_EVERY,
            clock: chrono::Utc::now,
        }
    }
}

/// What one pass of the session loop reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fetch {
    pub wanted: Wanted,
    /// Count the evidence images not yet delivered (for the end of a drain).
    pub count_evidence: bool,
}

/// What the queue answered to a [`Fetch`].
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// The queue's counters, read after any quarantine.
    pub stats: QueueStats,
    pub live: Vec<Pending>,
    pub backlog: Vec<Pending>,
    /// Evidence images ready to go (their event is acknowledged), with their bytes.
    pub images: Vec<(PendingEvidence, Vec<u8>)>,
    /// Rows found unreadable and quarantined: sequence number, why.
    pub quarantined: Vec<(u64, String)>,
    /// Why the images could not be listed, if so; events are not held back by it.
    pub images_error: Option<String>,
    /// The images were listed without error (none may have been ready).
    pub images_listed: bool,
    /// Evidence images not yet delivered, when [`Fetch::count_evidence`] asked.
    pub pending_evidence: Option<u64>,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Job {
    Fetch(Fetch, Reply<Fetched>),
    Acks(Vec<Ack>, Reply<Vec<AckOutcome>>),
    Attempts(Vec<u64>, Reply<()>),
    Health(Option<ClockStep>, Reply<QueueSnapshot>),
}

struct Worker {
    jobs: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

/// The uplink's handle on its queue thread.
pub(crate) struct QueueThread {
    path: PathBuf,
    worker: Option<Worker>,
    cleanup: Cleanup,
    /// Reads asked for so far ([`QueueThread::fetch`]).
    reads: u64,
}

impl QueueThread {
    /// The thread starts at the first request, and opens the queue at `path` then.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            worker: None,
            cleanup: Cleanup::default(),
            reads: 0,
        }
    }

    /// Reads what the window wants, quarantining unreadable rows on the way.
    pub async fn fetch(&mut self, fetch: Fetch) -> Result<Fetched, UplinkError> {
        self.reads += 1;
        self.call(|reply| Job::Fetch(fetch, reply)).await
    }

    /// Reads asked for so far.
    #[cfg(test)]
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Commits acknowledgements in one transaction; outcomes in the same order.
    pub async fn acks(&mut self, acks: Vec<Ack>) -> Result<Vec<AckOutcome>, UplinkError> {
        self.call(|reply| Job::Acks(acks, reply)).await
    }

    /// Counts one more sending attempt for each row, in one transaction.
    pub async fn attempts(&mut self, seqs: Vec<u64>) -> Result<(), UplinkError> {
        self.call(|reply| Job::Attempts(seqs, reply)).await
    }

    /// Journals `step` (if any), then reads the figures for a health message.
    pub async fn health(&mut self, step: Option<ClockStep>) -> Result<QueueSnapshot, UplinkError> {
        self.call(|reply| Job::Health(step, reply)).await
    }

    /// Ends the thread after its current request (waiting a few seconds at most).
    pub async fn close(mut self) {
        if let Some(w) = self.worker.take() {
            drop(w.jobs);
            let joined = tokio::task::spawn_blocking(move || w.thread.join());
            if tokio::time::timeout(CLOSE_WAIT, joined).await.is_err() {
                tracing::warn!("The uplink's queue thread is still busy; left to finish alone.");
            }
        }
    }

    async fn call<T>(&mut self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, UplinkError> {
        let (tx, rx) = oneshot::channel();
        let job = job(tx);
        let sent = self.worker()?.jobs.send(job);
        if sent.is_err() {
            self.worker = None;
            return Err(UplinkError::StoreThread);
        }
        if let Ok(answer) = rx.await {
            Ok(answer?)
        } else {
            // The thread dropped the request unanswered: it panicked. The next call starts
            // another.
            self.worker = None;
            Err(UplinkError::StoreThread)
        }
    }

    fn worker(&mut self) -> Result<&Worker, UplinkError> {
        if self.worker.as_ref().is_some_and(|w| w.thread.is_finished()) {
            self.worker = None;
        }
        if self.worker.is_none() {
            let (jobs, rx) = mpsc::channel();
            let path = self.path.clone();
            let cleanup = self.cleanup;
            let thread = std::thread::Builder::new()
                .name("uplink-queue".into())
                .spawn(move || serve(&path, &rx, cleanup))
                .map_err(|e| {
                    tracing::error!(error = %e, "Cannot start the uplink's queue thread.");
                    UplinkError::StoreThread
                })?;
            self.worker = Some(Worker { jobs, thread });
        }
        self.worker.as_ref().ok_or(UplinkError::StoreThread)
    }
}

/// The thread's loop: one request at a time until the handle is dropped.
fn serve(path: &std::path::Path, jobs: &mpsc::Receiver<Job>, cleanup: Cleanup) {
    let mut slot: Option<Store> = None;
    let mut next_cleanup = std::time::Instant::now() + cleanup.every;
    loop {
        let now = std::time::Instant::now();
        if now >= next_cleanup {
            // Due: run it before the next request, however busy the thread is.
            next_cleanup = now + cleanup.every;
            if let Err(e) = with_store(&mut slot, path, |s| s.expire((cleanup.clock)())) {
                tracing::warn!(error = %e, "The queue's retention cleanup failed; tried again at the next period.");
            }
            continue;
        }
        let job = match jobs.recv_timeout(next_cleanup - now) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match job {
            Job::Fetch(f, reply) => {
                let _ = reply.send(with_store(&mut slot, path, |s| fetch(s, &f)));
            }
            Job::Acks(acks, reply) => {
                // Signed by the central receiver (checked on arrival): each marks its row only
                // if the hash signed is the row's own (or, for an image, the image's sha256).
                let refs: Vec<AckRef<'_>> = acks
                    .iter()
                    .map(|a| AckRef {
                        event_id: a.event_id,
                        seq: a.seq,
                        image: a.evidence.as_deref(),
                        hash: Some(a.sha256.as_str()),
                    })
                    .collect();
                let _ = reply.send(with_store(&mut slot, path, |s| s.mark_acknowledged(&refs)));
            }
            Job::Attempts(seqs, reply) => {
                let _ = reply.send(with_store(&mut slot, path, |s| s.note_attempts(&seqs)));
            }
            Job::Health(step, reply) => {
                let _ = reply.send(with_store(&mut slot, path, |s| health(s, step)));
            }
        }
    }
}

/// Runs `f` on the open store, opening it first if needed; drops the connection after an
/// error that is not about one row, so the next request starts afresh.
fn with_store<T>(
    slot: &mut Option<Store>,
    path: &std::path::Path,
    f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let store = match slot {
        Some(s) => s,
        None => slot.insert(Store::open(path)?),
    };
    let result = f(store);
    if let Err(e) = &result
        && !matches!(e, StoreError::Corrupt { .. })
    {
        *slot = None;
    }
    result
}

fn fetch(store: &mut Store, f: &Fetch) -> Result<Fetched, StoreError> {
    let mut out = Fetched::default();
    out.live = read(store, f.wanted.live, &mut out.quarantined)?;
    out.backlog = read(store, f.wanted.backlog, &mut out.quarantined)?;
    if f.wanted.images > 0 {
        let skip = &f.wanted.images_in_flight;
        match store.pending_evidence(0, f.wanted.images + skip.len()) {
            Ok(list) => {
                out.images_listed = true;
                for image in list
                    .into_iter()
                    .filter(|i| !skip.iter().any(|(s, sha)| *s == i.seq && *sha == i.sha256))
                    .take(f.wanted.images)
                {
                    if let Some(data) = store.evidence(image.seq, &image.kind)? {
                        out.images.push((image, data));
                    }
                }
            }
            Err(e @ StoreError::Corrupt { .. }) => out.images_error = Some(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    out.stats = store.stats()?;
    if f.count_evidence {
        out.pending_evidence = Some(store.pending_evidence_count()?);
    }
    Ok(out)
}

/// The undelivered rows of `range`, quarantining rows that cannot be read on the way.
fn read(
    store: &mut Store,
    range: Option<Range>,
    quarantined: &mut Vec<(u64, String)>,
) -> Result<Vec<Pending>, StoreError> {
    let Some(r) = range else {
        return Ok(Vec::new());
    };
    for _ in 0..QUARANTINE_PER_READ {
        match store.pending(r.after, r.limit) {
            Ok(mut rows) => {
                if let Some(below) = r.below {
                    rows.retain(|p| p.seq < below);
                }
                return Ok(rows);
            }
            Err(StoreError::Corrupt { seq, message }) => {
                if !store.quarantine(seq, &message)? {
                    // Nothing to take out (it went meanwhile): an error, retried later.
                    return Err(StoreError::Corrupt { seq, message });
                }
                quarantined.push((seq, message));
            }
            Err(e) => return Err(e),
        }
    }
    // Many unreadable rows in a row: the next read goes on from here.
    Ok(Vec::new())
}

fn health(store: &mut Store, step: Option<ClockStep>) -> Result<QueueSnapshot, StoreError> {
    if let Some(s) = step {
        store.record_clock_jump(s.before, s.after, s.step_s)?;
    }
    Ok(QueueSnapshot {
        pending_events: store.pending_count()?,
        pending_evidence: store.pending_evidence_count()?,
        bytes_used: store.bytes_used()?,
        drops: store.drops()?,
        clock_jumps: store.clock_jumps()?,
        journal_head: store.journal_head()?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event as the recognizer would record it (built from its JSON form, so fields
    /// added later with a default need no change here).
    pub(crate) fn event(seq: u64) -> anpr_types::Event {
        serde_json::from_value(serde_json::json!({
            "schema": anpr_types::EVENT_SCHEMA,
            "event_id": uuid::Uuid::now_v7(),
            "seq": seq,
            "device": {"inventory": "KZ-TEST", "profile": "stationary", "site": ""},
            "camera": "cam1",
            "kind": "passage",
            "captured_at": chrono::Utc::now(),
            "clock": {"source": "system", "synced": false},
            "position": null,
            "vehicle": {"class": "car", "confidence": 0.9, "box": null, "direction": null, "lane": null},
            "plate": {"text": format!("{seq:03}ABC01"), "confidence": 0.95,
                      "detection_confidence": 0.8, "box": [100, 150, 120, 26], "status": "read"},
            "frame": {"index": seq, "width": 640, "height": 480},
        }))
        .expect("the test event follows the schema")
    }

    /// A queue of `n` events in a temporary directory.
    pub(crate) fn queue_with(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let mut s = Store::open(&path).unwrap();
        for _ in 0..n {
            s.append(event).unwrap();
        }
        (dir, path)
    }

    #[tokio::test]
    async fn the_thread_removes_delivered_rows_past_their_retention_between_requests() {
        let (_dir, path) = queue_with(3);
        {
            let mut s = Store::open(&path).unwrap();
            let e = s.get(1).unwrap().unwrap();
            s.mark_delivered(e.event_id, 1).unwrap();
        }
        let mut q = QueueThread::new(path.clone());
        q.cleanup = Cleanup {
            every: Duration::from_millis(50),
            clock: || chrono::Utc::now() + chrono::TimeDelta::days(1),
        };
        assert_eq!(q.fetch(Fetch::default()).await.unwrap().stats.total, 3);
        let mut total = 3;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            total = q.fetch(Fetch::default()).await.unwrap().stats.total;
            if total == 2 {
                break;
            }
        }
        assert_eq!(
            total, 2,
            "the delivered row went, the undelivered ones stay"
        );
        let s = Store::open(&path).unwrap();
        assert_eq!(s.journal(0).unwrap().last().unwrap().kind, "pruned");
        q.close().await;
    }

    fn corrupt(path: &std::path::Path, seq: u64) {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute(
                "UPDATE events SET payload = 'cut short' WHERE seq = ?1",
                [seq as i64],
            )
            .unwrap();
    }

    fn live(after: u64, limit: usize) -> Fetch {
        Fetch {
            wanted: Wanted {
                live: Some(Range {
                    after,
                    limit,
                    below: None,
                }),
                ..Wanted::default()
            },
            count_evidence: true,
        }
    }

    #[tokio::test]
    async fn unreadable_rows_are_quarantined_and_the_rows_after_them_read_on() {
        let (_dir, path) = queue_with(4);
        corrupt(&path, 2);
        corrupt(&path, 3);
        let mut q = QueueThread::new(path.clone());
        let got = q.fetch(live(0, 10)).await.unwrap();
        assert_eq!(got.live.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(
            got.quarantined.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!((got.stats.pending, got.stats.last_seq), (2, 4));
        assert_eq!(got.pending_evidence, Some(0));
        q.close().await;
    }

    #[tokio::test]
    async fn a_backlog_read_stops_at_the_first_live_row() {
        let (_dir, path) = queue_with(5);
        let mut q = QueueThread::new(path);
        let f = Fetch {
            wanted: Wanted {
                backlog: Some(Range {
                    after: 1,
                    limit: 10,
                    below: Some(4),
                }),
                ..Wanted::default()
            },
            count_evidence: false,
        };
        let got = q.fetch(f).await.unwrap();
        assert_eq!(
            got.backlog.iter().map(|p| p.seq).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(got.pending_evidence, None);
        q.close().await;
    }

    #[tokio::test]
    async fn a_queue_that_cannot_be_opened_is_an_error_and_is_opened_once_it_can_be() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later").join("q.sqlite");
        let mut q = QueueThread::new(path.clone());
        let err = q.fetch(live(0, 1)).await.unwrap_err();
        assert!(
            matches!(err, UplinkError::Store(StoreError::Open { .. })),
            "{err}"
        );
        std::fs::create_dir(dir.path().join("later")).unwrap();
        let got = q.fetch(live(0, 1)).await.unwrap();
        assert_eq!(got.stats, QueueStats::default());
        assert!(path.is_file());
        q.close().await;
    }

    #[tokio::test]
    async fn acks_attempts_and_health_go_through_the_thread() {
        let (_dir, path) = queue_with(2);
        let mut q = QueueThread::new(path.clone());
        let rows = q.fetch(live(0, 10)).await.unwrap().live;
        q.attempts(vec![1, 2]).await.unwrap();
        let ack = |p: &Pending, sha256: String| Ack {
            event_id: p.event_id,
            seq: p.seq,
            evidence: None,
            inventory: "KZ-TEST".into(),
            sha256,
            signature: None,
        };
        let right = |p: &Pending| ack(p, anpr_trust::event::event_hash(&p.event));
        // The hash of another content for this row marks nothing.
        let other = ack(&rows[0], anpr_trust::sha256_hex(b"another event"));
        let out = q
            .acks(vec![other, right(&rows[0]), right(&rows[0])])
            .await
            .unwrap();
        assert_eq!(
            out,
            [
                AckOutcome::Unknown,
                AckOutcome::Marked,
                AckOutcome::AlreadyDelivered
            ]
        );
        let now = chrono::Utc::now();
        let snap = q
            .health(Some(ClockStep {
                before: now - chrono::Duration::seconds(60),
                after: now,
                step_s: 60.0,
            }))
            .await
            .unwrap();
        assert_eq!((snap.pending_events, snap.clock_jumps), (1, 1));
        assert_eq!(
            snap.journal_head,
            Store::open(&path).unwrap().journal_head().unwrap(),
            "the head of the journal, the clock jump included"
        );
        assert_eq!(snap.journal_head.as_ref().map(|h| h.seq), Some(1));
        let left = q.fetch(live(0, 10)).await.unwrap().live;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].attempts, 1);
        q.close().await;
    }
}
