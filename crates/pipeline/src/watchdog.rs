//! The service manager's view of the device: ready, alive, stopping.
//!
//! Under systemd (`Type=notify`, `WatchdogSec=`), the device says `READY=1` once its start
//! checks passed and its threads run, `STATUS=` with a one-line summary every few seconds, and
//! `STOPPING=1` when it stops. It feeds the watchdog (`WATCHDOG=1`, every third of the
//! interval) only while every watched part makes progress: a part is hung when it has been busy
//! with one piece of work (a frame, the opening of a camera) longer than its limit. Then the
//! feeding stops, the fault is logged, and systemd kills and restarts the service; what is in
//! the queue is kept. Without systemd (`NOTIFY_SOCKET` unset) nothing is sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// One part of the device the watchdog watches (a capture or recognition thread).
#[derive(Debug)]
pub struct Part {
    name: String,
    limit: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` + 1 when the current piece of work began; 0 when idle
    /// (waiting for work is not hanging).
    busy_since: AtomicU64,
}

impl Part {
    /// Marks the part busy until the returned guard is dropped.
    #[must_use]
    pub fn busy(&self) -> Busy<'_> {
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.busy_since.store(ms, Ordering::Relaxed);
        Busy(self)
    }

    /// How long the part has been busy with its current piece of work, if it is.
    fn busy_for(&self, now: Instant) -> Option<Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(now.saturating_duration_since(self.epoch + Duration::from_millis(ms - 1))),
        }
    }
}

/// The part is idle again when this is dropped.
pub struct Busy<'a>(&'a Part);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy_since.store(0, Ordering::Relaxed);
    }
}

/// Every watched part of one run.
#[derive(Debug, Default)]
pub struct Liveness {
    parts: Mutex<Vec<Arc<Part>>>,
}

impl Liveness {
    /// Watches a new part: hung when busy longer than `limit`.
    pub fn watch(&self, name: &str, limit: Duration) -> Arc<Part> {
        let part = Arc::new(Part {
            name: name.to_string(),
            limit,
            epoch: Instant::now(),
            busy_since: AtomicU64::new(0),
        });
        self.parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(part.clone());
        part
    }

    /// The first part busy longer than its limit, with how long.
    #[must_use]
    pub fn hung(&self, now: Instant) -> Option<(String, Duration)> {
        self.parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find_map(|p| {
                p.busy_for(now)
                    .filter(|d| *d > p.limit)
                    .map(|d| (p.name.clone(), d))
            })
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any.
#[must_use]
pub fn interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

fn send(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "The service manager cannot be told the device's state.");
    }
}

/// Tells the service manager the device is ready, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager the device is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Feeds the watchdog every third of `interval` while no part is hung, and sends `status()`
/// as the status line every few seconds. Runs until dropped.
pub async fn feed(
    liveness: Arc<Liveness>,
    interval: Option<Duration>,
    status: impl Fn() -> String,
) {
    let period = interval.map_or(Duration::from_secs(5), |i| {
        (i / 3).max(Duration::from_millis(100))
    });
    let mut ticker = tokio::time::interval(period);
    let mut told_hung = false;
    let mut last_status = Instant::now();
    loop {
        ticker.tick().await;
        let hung = liveness.hung(Instant::now());
        if let Some((part, for_)) = &hung {
            if !told_hung {
                tracing::error!(part = %part, busy_s = for_.as_secs_f64(), "A part of the device hangs; the watchdog is no longer fed, so the service manager restarts the device.");
                send(&[NotifyState::Status(&format!("hung: {part}"))]);
                told_hung = true;
            }
        } else if interval.is_some() {
            send(&[NotifyState::Watchdog]);
        }
        if hung.is_none() && last_status.elapsed() >= Duration::from_secs(5) {
            send(&[NotifyState::Status(&status())]);
            last_status = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_busy_past_its_limit_is_hung_and_idle_is_not() {
        let live = Liveness::default();
        let capture = live.watch("capture-cam1", Duration::from_secs(30));
        let recog = live.watch("recognition-cam1", Duration::from_secs(2));
        let now = Instant::now();
        assert_eq!(
            live.hung(now + Duration::from_hours(1)),
            None,
            "idle parts never hang"
        );
        let guard = recog.busy();
        assert_eq!(live.hung(Instant::now()), None);
        let (name, d) = live.hung(Instant::now() + Duration::from_secs(3)).unwrap();
        assert_eq!(name, "recognition-cam1");
        assert!(d > Duration::from_secs(2));
        drop(guard);
        assert_eq!(live.hung(Instant::now() + Duration::from_secs(3)), None);
        let _c = capture.busy();
        assert_eq!(
            live.hung(Instant::now() + Duration::from_secs(3)),
            None,
            "within its own limit"
        );
    }
}
