//! What each camera is doing now, readable while the device runs (the status page and the
//! metrics read it; the capture and recognition threads write it).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// The state of a camera's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraState {
    /// Opening the source for the first time.
    Starting,
    /// Frames arrive.
    Live,
    /// The source failed or stalled; opening it again (with backoff).
    Reconnecting,
    /// Frames stopped changing, or stopped coming while the source stays open.
    Frozen,
    /// A file at its end, or the device stopping.
    Ended,
}

impl CameraState {
    /// Lower-case name, as on the status page and in metrics labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Live => "live",
            Self::Reconnecting => "reconnecting",
            Self::Frozen => "frozen",
            Self::Ended => "ended",
        }
    }
}

/// The state with when it began and what is known of it.
#[derive(Debug, Clone)]
pub struct StateNow {
    pub state: CameraState,
    pub since: DateTime<Utc>,
    /// Why (the error of the last attempt, ...); empty when there is nothing to say.
    pub detail: String,
}

/// One camera's live figures.
#[derive(Debug)]
pub struct CameraStatus {
    pub id: String,
    /// Frames decoded from the source.
    pub frames_in: AtomicU64,
    /// Frames run through the recognizer.
    pub frames_recognised: AtomicU64,
    /// Frames dropped because recognition was behind (live sources only).
    pub frames_dropped: AtomicU64,
    /// Times the source was opened again after a failure.
    pub reconnects: AtomicU64,
    /// Capture time of the latest frame, Unix milliseconds; 0 before the first.
    last_frame_ms: AtomicI64,
    state: Mutex<StateNow>,
    /// The latest snapshot (JPEG), refreshed about once a second while frames arrive.
    snapshot: Mutex<Option<Arc<Vec<u8>>>>,
}

impl CameraStatus {
    #[must_use]
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            frames_in: AtomicU64::new(0),
            frames_recognised: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            last_frame_ms: AtomicI64::new(0),
            state: Mutex::new(StateNow {
                state: CameraState::Starting,
                since: Utc::now(),
                detail: String::new(),
            }),
            snapshot: Mutex::new(None),
        }
    }

    /// Moves to `state`; the time it began changes only when the state does.
    pub fn set_state(&self, state: CameraState, detail: &str) {
        let mut now = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.state != state {
            now.state = state;
            now.since = Utc::now();
        }
        now.detail = detail.to_string();
    }

    #[must_use]
    pub fn state(&self) -> StateNow {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts a decoded frame captured at `at`.
    pub fn frame_in(&self, at: DateTime<Utc>) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.last_frame_ms
            .store(at.timestamp_millis(), Ordering::Relaxed);
    }

    /// Capture time of the latest frame.
    #[must_use]
    pub fn last_frame(&self) -> Option<DateTime<Utc>> {
        match self.last_frame_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    pub fn set_snapshot(&self, jpeg: Vec<u8>) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(jpeg));
    }

    #[must_use]
    pub fn snapshot(&self) -> Option<Arc<Vec<u8>>> {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The cameras of a run, in configuration order.
#[derive(Debug, Default)]
pub struct Cameras {
    list: Mutex<Vec<Arc<CameraStatus>>>,
}

impl Cameras {
    /// The camera with this id, added if it is not there yet.
    pub fn get_or_add(&self, id: &str) -> Arc<CameraStatus> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = list.iter().find(|c| c.id == id) {
            return c.clone();
        }
        let c = Arc::new(CameraStatus::new(id));
        list.push(c.clone());
        c
    }

    #[must_use]
    pub fn all(&self) -> Vec<Arc<CameraStatus>> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_keeps_its_start_until_it_changes() {
        let c = CameraStatus::new("cam1");
        c.set_state(CameraState::Live, "");
        let since = c.state().since;
        std::thread::sleep(std::time::Duration::from_millis(5));
        c.set_state(CameraState::Live, "still");
        assert_eq!(c.state().since, since);
        c.set_state(CameraState::Reconnecting, "refused");
        assert!(c.state().since > since);
        assert_eq!(c.state().detail, "refused");
    }

    #[test]
    fn cameras_are_listed_once_in_the_order_added() {
        let cams = Cameras::default();
        cams.get_or_add("a");
        cams.get_or_add("b");
        cams.get_or_add("a").frame_in(Utc::now());
        let all = cams.all();
        assert_eq!(
            all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(all[0].frames_in.load(Ordering::Relaxed), 1);
        assert!(all[0].last_frame().is_some() && all[1].last_frame().is_none());
    }
}
