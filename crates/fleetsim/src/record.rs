//! Recording: the scheduler decides when each device sees a vehicle (a seeded passage every
//! 2–10 s, a violation in 20), and a small pool of threads appends the events to the queues.
//! Each device is always served by the same pool thread, so its appends never wait on each
//! other.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anpr_store::{NewEvidence, NewRecord, Store};
use anpr_types::{Event, EventKind, FrameRef, ViolationInfo};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::rng::Rng;
use crate::{Device, FleetConfig, FleetError};

/// What a queue committed: one event, with the sha256 of each of its images.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Recorded {
    pub seq: u64,
    pub event_id: Uuid,
    pub kind: EventKind,
    pub captured_at: DateTime<Utc>,
    /// `(kind, sha256)` of each image.
    pub images: Vec<(String, String)>,
}

/// One vehicle seen by device `device` at `at`.
pub(crate) struct Job {
    device: usize,
    at: DateTime<Utc>,
    violation: bool,
}

/// The append threads.
pub(crate) struct Pool {
    senders: Vec<mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Where the scheduler hands vehicles over.
#[derive(Clone)]
pub(crate) struct PoolSender(Vec<mpsc::Sender<Job>>);

impl PoolSender {
    fn send(&self, job: Job) {
        let _ = self.0[job.device % self.0.len()].send(job);
    }
}

impl Pool {
    pub fn start(devices: &Arc<Vec<Arc<Device>>>, threads: usize) -> Result<Self, FleetError> {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for t in 0..threads {
            let (tx, rx) = mpsc::channel::<Job>();
            let devices = devices.clone();
            let handle = std::thread::Builder::new()
                .name(format!("fleet-append-{t}"))
                .spawn(move || {
                    for job in rx {
                        append(&devices[job.device], &job);
                    }
                })
                .map_err(FleetError::Thread)?;
            senders.push(tx);
            handles.push(handle);
        }
        Ok(Self {
            senders,
            threads: handles,
        })
    }

    pub fn sender(&self) -> PoolSender {
        PoolSender(self.senders.clone())
    }

    /// Waits until every vehicle handed over is appended (the scheduler must be done).
    pub fn join(self) {
        drop(self.senders);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Appends the passage (and its violation with two images) in one transaction, and keeps
/// what the queue committed. A failure is counted and logged: it is a recording the device
/// could not make, not a loss of the delivery path.
fn append(device: &Device, job: &Job) {
    let mut store = match Store::open(&device.queue) {
        Ok(s) => s.with_signer(device.signer.clone()),
        Err(e) => {
            device.append_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(device = %device.inventory, error = %e, "Cannot open the simulated device's queue.");
            return;
        }
    };
    let passage_id = Uuid::now_v7();
    let passage = passage(&device.inventory, passage_id, job.at);
    let mut records = vec![NewRecord {
        build: Box::new({
            let p = passage.clone();
            move |seq| Event {
                seq,
                frame: FrameRef {
                    index: seq,
                    ..p.frame
                },
                ..p
            }
        }),
        evidence: Vec::new(),
    }];
    if job.violation {
        let violation_id = Uuid::now_v7();
        let evidence = crate::images::violation_images(&violation_id.to_string())
            .into_iter()
            .map(|(kind, data)| NewEvidence {
                kind,
                content_type: "image/jpeg".into(),
                data,
            })
            .collect();
        records.push(NewRecord {
            build: Box::new(move |seq| Event {
                event_id: violation_id,
                seq,
                kind: EventKind::Violation,
                violation: Some(ViolationInfo {
                    rule: "wanted".into(),
                    kind: "plate-list".into(),
                    reason: "wanted: simulated".into(),
                    priority: 1,
                    passage: passage_id,
                    passage_seq: seq - 1,
                    list: None,
                }),
                ..passage
            }),
            evidence,
        });
    }
    match store.append_batch(records) {
        Ok(events) => {
            let mut recorded = device
                .recorded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            recorded.extend(events.into_iter().map(|e| Recorded {
                seq: e.seq,
                event_id: e.event_id,
                kind: e.kind,
                captured_at: e.captured_at,
                images: e.evidence.into_iter().map(|r| (r.kind, r.sha256)).collect(),
            }));
        }
        Err(e) => {
            device.append_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(device = %device.inventory, error = %e, "The simulated device cannot append to its queue.");
        }
    }
}

/// A passage of device `inventory` as the recognizer records it (the plate made up from the
/// event id).
fn passage(inventory: &str, event_id: Uuid, at: DateTime<Utc>) -> Event {
    let n = event_id.as_u128();
    let letters: String = (0..3)
        .map(|k| char::from(b'A' + ((n >> (8 * k)) % 26) as u8))
        .collect();
    let mut event = Event {
        event_id,
        captured_at: at,
        ..anpr_types::sample::recorded_passage(inventory, 0)
    };
    event.device.site = "fleet-sim".into();
    event.clock.synced = true;
    event.plate.text = format!("{:03}{letters}01", (n >> 32) % 1000);
    event
}

/// Hands vehicles to the pool until the recording time is over or `recording` turns false:
/// device `i` first sees one at a random moment of its first interval, then one every
/// `interval.0..interval.1`.
pub(crate) async fn schedule(
    cfg: FleetConfig,
    devices: usize,
    pool: PoolSender,
    recording: Arc<AtomicBool>,
) {
    let mut rng = Rng::new(cfg.seed);
    let (lo, hi) = cfg.interval;
    let spread = hi.saturating_sub(lo);
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..devices)
        .map(|i| Reverse((start + hi.mul_f64(rng.unit()), i)))
        .collect();
    while let Some(Reverse((at, device))) = due.pop() {
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        if !recording.load(Ordering::SeqCst) {
            break;
        }
        pool.send(Job {
            device,
            at: Utc::now(),
            violation: rng.one_in(cfg.violation_one_in),
        });
        let next = lo + spread.mul_f64(rng.unit());
        due.push(Reverse((at + next.max(Duration::from_millis(1)), device)));
    }
}
