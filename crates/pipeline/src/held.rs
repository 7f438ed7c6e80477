//! Passages held in memory while the queue's disk is full.
//!
//! A full disk must not stop recognition nor lose what is stored: SQLite rolls the failed
//! transaction back, so the queue is as it was. The passages that could not be written are
//! held here, in order, and written first once space returns (tried again at most once a
//! second); the lasting `disk-full` fault says how many are held and how many had to be let go.
//! At most [`HELD_MAX`] are held (each keeps its evidence frames); beyond that the oldest go,
//! counted in the fault.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anpr_store::StoreError;
use anpr_uplink::FaultBoard;

/// Passages held at most while the disk is full (each holds a few decoded frames).
pub(crate) const HELD_MAX: usize = 32;
/// How often writing is tried again while the disk is full.
const RETRY: Duration = Duration::from_secs(1);
/// Fault code of a full disk.
pub(crate) const DISK_FULL: &str = "disk-full";
/// Fault code of the queue's quota reached with every record in it still owed (nothing may
/// be deleted to make room: `docs/retention.md`); held the same way as a full disk.
pub(crate) const QUEUE_FULL: &str = "queue-full";

/// One camera's passages waiting for disk space.
pub(crate) struct Held<P> {
    camera: String,
    queue: VecDeque<P>,
    /// Passages let go because too many were held.
    dropped: u64,
    /// When writing last failed for lack of space; `None` while the disk takes writes.
    full_since: Option<Instant>,
    /// The fault raised while full: [`DISK_FULL`] or [`QUEUE_FULL`].
    code: &'static str,
    last_try: Option<Instant>,
}

impl<P> Held<P> {
    pub(crate) fn new(camera: &str) -> Self {
        Self {
            camera: camera.to_string(),
            queue: VecDeque::new(),
            dropped: 0,
            full_since: None,
            code: DISK_FULL,
            last_try: None,
        }
    }

    /// Passages waiting now.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Records `new` after whatever is held, oldest first, with `record`. A full disk holds
    /// them (and raises or updates the fault); any other error is returned, with the passages
    /// not yet written still held.
    pub(crate) fn commit(
        &mut self,
        new: Vec<P>,
        now: Instant,
        faults: &FaultBoard,
        mut record: impl FnMut(&P) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.queue.extend(new);
        if self.queue.is_empty() {
            return Ok(());
        }
        if self.full_since.is_some() && self.last_try.is_some_and(|t| now - t < RETRY) {
            self.bound(faults);
            return Ok(());
        }
        self.last_try = Some(now);
        while let Some(p) = self.queue.front() {
            match record(p) {
                Ok(()) => {
                    self.queue.pop_front();
                }
                Err(e) if e.is_disk_full() => {
                    let code = if e.is_quota_full() {
                        QUEUE_FULL
                    } else {
                        DISK_FULL
                    };
                    if self.full_since.is_some() && code != self.code {
                        faults.clear(self.code, &self.camera, "the queue is still full");
                    }
                    self.code = code;
                    if self.full_since.is_none() {
                        self.full_since = Some(now);
                        tracing::error!(camera = %self.camera, error = %e, "The queue's disk is full; passages are held in memory until space returns.");
                    }
                    self.bound(faults);
                    self.say(faults);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        if self.full_since.take().is_some() {
            let message = format!(
                "camera {}: space is back; the held passages are recorded ({} let go while full)",
                self.camera, self.dropped
            );
            faults.clear(self.code, &self.camera, &message);
        }
        Ok(())
    }

    fn bound(&mut self, faults: &FaultBoard) {
        let over = self.queue.len().saturating_sub(HELD_MAX);
        if over > 0 {
            self.queue.drain(..over);
            self.dropped += over as u64;
            tracing::error!(camera = %self.camera, dropped = self.dropped, "The disk is still full; the oldest held passages were let go.");
            self.say(faults);
        }
    }

    fn say(&self, faults: &FaultBoard) {
        let message = if self.code == QUEUE_FULL {
            format!(
                "camera {}: the queue is at its quota (storage.quota_mb) and every record in it is still undelivered, so none may be deleted; {} passages held in memory, {} let go; nothing stored is lost; restore the link to the central receiver (or export the data, `anpr export`, and import it there) or raise storage.quota_mb, and recording resumes by itself",
                self.camera,
                self.queue.len(),
                self.dropped
            )
        } else {
            format!(
                "camera {}: the queue's disk is full; {} passages held in memory, {} let go; nothing stored is lost; free space on the queue's disk (storage.queue) and recording resumes by itself",
                self.camera,
                self.queue.len(),
                self.dropped
            )
        };
        faults.set(self.code, &self.camera, &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> StoreError {
        StoreError::Sql {
            path: "q".into(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None,
            ),
        }
    }

    #[test]
    fn passages_wait_for_space_in_order_and_the_fault_clears_when_written() {
        let faults = FaultBoard::default();
        let mut held = Held::new("cam1");
        let mut written = Vec::new();
        let t0 = Instant::now();
        held.commit(vec![1, 2], t0, &faults, |_| Err(full()))
            .unwrap();
        assert_eq!(held.len(), 2);
        assert!(faults.is_set(DISK_FULL, "cam1"));
        // Within the retry pause nothing is tried.
        held.commit(vec![3], t0 + Duration::from_millis(500), &faults, |_| {
            panic!("tried within the pause")
        })
        .unwrap();
        held.commit(vec![4], t0 + Duration::from_secs(2), &faults, |p| {
            written.push(*p);
            Ok(())
        })
        .unwrap();
        assert_eq!(written, [1, 2, 3, 4]);
        assert_eq!(held.len(), 0);
        assert!(!faults.is_set(DISK_FULL, "cam1"));
    }

    #[test]
    fn at_most_the_bound_is_held_and_the_rest_is_counted() {
        let faults = FaultBoard::default();
        let mut held = Held::new("cam1");
        let t0 = Instant::now();
        held.commit((0..HELD_MAX + 5).collect(), t0, &faults, |_| Err(full()))
            .unwrap();
        assert_eq!(held.len(), HELD_MAX);
        let msg = &faults.active()[0].message;
        assert!(msg.contains("5 let go"), "{msg}");
        let mut first = None;
        held.commit(Vec::new(), t0 + Duration::from_secs(2), &faults, |p| {
            first.get_or_insert(*p);
            Ok(())
        })
        .unwrap();
        assert_eq!(first, Some(5), "the oldest went first");
    }

    #[test]
    fn a_queue_at_its_quota_with_nothing_deletable_holds_them_as_queue_full() {
        let faults = FaultBoard::default();
        let mut held = Held::new("cam1");
        let t0 = Instant::now();
        let quota = || StoreError::QuotaFull {
            path: "q".into(),
            quota: 1,
            used: 2,
        };
        held.commit(vec![1, 2], t0, &faults, |_| Err(quota()))
            .unwrap();
        assert_eq!(held.len(), 2);
        assert!(faults.is_set(QUEUE_FULL, "cam1"));
        assert!(!faults.is_set(DISK_FULL, "cam1"));
        let msg = &faults.active()[0].message;
        assert!(msg.contains("storage.quota_mb"), "{msg}");
        held.commit(Vec::new(), t0 + Duration::from_secs(2), &faults, |_| Ok(()))
            .unwrap();
        assert_eq!(held.len(), 0);
        assert!(!faults.is_set(QUEUE_FULL, "cam1"));
    }

    #[test]
    fn another_error_is_returned_and_the_passage_stays_held() {
        let faults = FaultBoard::default();
        let mut held = Held::new("cam1");
        let err = held
            .commit(vec![1], Instant::now(), &faults, |_| {
                Err(StoreError::Corrupt {
                    seq: 1,
                    message: "x".into(),
                })
            })
            .unwrap_err();
        assert!(!err.is_disk_full());
        assert_eq!(held.len(), 1);
        assert!(faults.active().is_empty());
    }
}
