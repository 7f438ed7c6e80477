//! Every figure the page and the metrics show, read at one moment into plain data, so both are
//! rendered from the same values and tested without a running device.

use std::path::Path;
use std::sync::atomic::Ordering;

use anpr_pipeline::status::{HistogramSnapshot, RecentEvent, Stage, StateNow};
use anpr_store::{OldestPending, QueueStats, Store, StoreError};
use anpr_types::{Drops, Fault};
use anpr_uplink::FaultRecord;
use chrono::{DateTime, Utc};

use crate::Sources;

/// One camera's figures.
#[derive(Debug, Clone)]
pub struct CameraFigures {
    pub id: String,
    pub state: StateNow,
    pub frames_in: u64,
    pub frames_recognised: u64,
    pub frames_dropped: u64,
    pub reconnects: u64,
    pub fps: f64,
    /// Capture time of the latest frame.
    pub last_frame: Option<DateTime<Utc>>,
    pub has_snapshot: bool,
    /// Latency of each stage, in [`Stage::ALL`] order.
    pub latency: Vec<(Stage, HistogramSnapshot)>,
}

/// The queue's figures.
#[derive(Debug, Clone, Default)]
pub struct QueueFigures {
    pub stats: QueueStats,
    /// Evidence images not yet delivered (nor dropped).
    pub pending_evidence: u64,
    pub oldest_pending: Option<OldestPending>,
    /// Undelivered events and images dropped by the disk quota, ever.
    pub drops: Drops,
    /// Delivered events removed to make room (not a loss).
    pub pruned: u64,
    /// Bytes of the database in use (the quota's measure).
    pub bytes_used: u64,
}

impl QueueFigures {
    /// Events ever acknowledged by the central receiver: those still present and those pruned.
    #[must_use]
    pub fn delivered_total(&self) -> u64 {
        self.stats.delivered + self.pruned
    }

    /// Reads the queue at `path` (a blocking call: a connection of its own, counters and one
    /// indexed row).
    pub fn read(path: &Path) -> Result<Self, StoreError> {
        let store = Store::open(path)?;
        Ok(Self {
            stats: store.stats()?,
            pending_evidence: store.pending_evidence_count()?,
            oldest_pending: store.oldest_pending()?,
            drops: store.drops()?,
            pruned: store.pruned()?,
            bytes_used: store.bytes_used()?,
        })
    }
}

/// The device's counters (this run), as plain numbers.
#[derive(Debug, Clone, Default)]
pub struct DeviceFigures {
    pub frames_recognised: u64,
    pub frames_skipped: u64,
    pub plate_reads: u64,
    /// Of which confirmed from one view as their track's known text.
    pub plates_confirmed: u64,
    pub events: u64,
    pub violations: u64,
    pub recognition_restarts: u64,
    pub list_updates: u64,
    pub list_updates_refused: u64,
}

/// The link's counters (this run).
#[derive(Debug, Clone, Default)]
pub struct LinkFigures {
    pub connected: bool,
    /// `host:port` of the broker the link is on or trying (`[uplink] broker`, or one of
    /// `failover` after a move).
    pub broker: String,
    pub published: u64,
    pub acked: u64,
    pub resent: u64,
    pub connection_errors: u64,
    pub images_published: u64,
    pub images_acked: u64,
    pub health_published: u64,
    /// Acknowledgements refused for a missing or bad signature (or naming another device).
    pub bad_acks: u64,
}

/// Everything shown, read at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub taken_at: DateTime<Utc>,
    pub inventory: String,
    pub site: String,
    pub time_zone: anpr_config::Tz,
    pub cameras: Vec<CameraFigures>,
    pub device: DeviceFigures,
    pub link: LinkFigures,
    /// The queue, or why it could not be read.
    pub queue: Result<QueueFigures, String>,
    pub quota_bytes: Option<u64>,
    /// Faults present now, oldest first.
    pub faults: Vec<Fault>,
    /// Raises and clears, oldest first.
    pub history: Vec<FaultRecord>,
    /// Recent events, newest first.
    pub recent: Vec<RecentEvent>,
    /// A mobile unit's GNSS receiver; None on a stationary unit.
    pub gnss: Option<anpr_pipeline::GnssView>,
}

impl Snapshot {
    /// Reads everything but the queue from `s`; `queue` is read by the caller (on a blocking
    /// thread).
    #[must_use]
    pub fn take(s: &Sources, queue: Result<QueueFigures, String>) -> Self {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let d = &s.device;
        let u = &s.uplink;
        let cameras = d
            .cameras
            .all()
            .iter()
            .map(|c| CameraFigures {
                id: c.id.clone(),
                state: c.state(),
                frames_in: load(&c.frames_in),
                frames_recognised: load(&c.frames_recognised),
                frames_dropped: load(&c.frames_dropped),
                reconnects: load(&c.reconnects),
                fps: c.fps(),
                last_frame: c.last_frame(),
                has_snapshot: c.snapshot().is_some(),
                latency: Stage::ALL
                    .iter()
                    .map(|st| (*st, c.latency.get(*st).snapshot()))
                    .collect(),
            })
            .collect();
        Self {
            taken_at: Utc::now(),
            inventory: s.inventory.clone(),
            site: s.site.clone(),
            time_zone: s.time_zone,
            cameras,
            device: DeviceFigures {
                frames_recognised: load(&d.frames),
                frames_skipped: load(&d.frames_skipped),
                plate_reads: load(&d.plate_reads),
                plates_confirmed: load(&d.plates_confirmed),
                events: load(&d.events),
                violations: load(&d.violations),
                recognition_restarts: load(&d.recognition_restarts),
                list_updates: load(&d.list_updates),
                list_updates_refused: load(&d.list_updates_refused),
            },
            link: LinkFigures {
                connected: u.connected.load(Ordering::Relaxed),
                broker: u.broker(),
                published: load(&u.published),
                acked: load(&u.acked),
                resent: load(&u.resent),
                connection_errors: load(&u.connection_errors),
                images_published: load(&u.images_published),
                images_acked: load(&u.images_acked),
                health_published: load(&u.health_published),
                bad_acks: load(&u.bad_acks),
            },
            queue,
            quota_bytes: s.quota_bytes,
            faults: u.faults.active(),
            history: u.faults.history(),
            recent: d.recent.all(),
            gnss: d.gnss.view(),
        }
    }

    /// Seconds from `at` to when the snapshot was taken (0 for a time after it).
    #[must_use]
    pub fn age_s(&self, at: DateTime<Utc>) -> f64 {
        ((self.taken_at - at).num_milliseconds() as f64 / 1000.0).max(0.0)
    }
}
