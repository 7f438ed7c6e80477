//! A mobile unit's GNSS receiver during a run: the source started (gpsd or a serial NMEA
//! stream, `anpr_gnss`), its faults put on the fault board, and what each event takes from
//! it.
//!
//! - **Position.** An event's position is the track's at the event's capture time (not at the
//!   time it is recorded, seconds later): interpolated, `gap` or `stale` as
//!   [`anpr_gnss::Track::position_at`] decides; none before the first fix since the start.
//!   Capture times are host clock times and are looked up as they are: the host clock is
//!   expected to follow GNSS (chrony reading gpsd), and a fix arriving late (the receiver's
//!   output delay) is no error of the host clock, so the measured offset is reported in the
//!   event's `clock`, not applied.
//! - **Clock.** With `use_for_clock`, a capture time taken by the host clock (`system`,
//!   `pipeline`) names `gnss` as its source while GNSS time was compared with the host clock
//!   within `stale_after_s`, with the age of that comparison, the offset and the reference
//!   (`pps`, `toff`, `fix`); past that limit the host's own source stands, still with the age.
//! - **Faults.** The source's `gnss` fault (subject `gpsd <addr>` or the device path) is a
//!   lasting fault on the uplink's board, so it is in health within a second, and clears when
//!   data flows again. Recording never waits for GNSS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anpr_config::{Gnss as GnssConfig, GnssSource};
use anpr_gnss::{FixMode, Gnss, GpsdSettings, NmeaSettings, TrackSettings};
use anpr_types::{ClockInfo, GnssFix, Position};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

/// Fixes kept: ten minutes at one a second, far longer than a passage takes to be recorded.
const TRACK_CAPACITY: usize = 600;
/// How long the source gets to stop at the end of a run.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What events read from the receiver; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct DeviceGnss {
    gnss: Gnss,
    use_for_clock: bool,
    stale_after: Duration,
    /// `gpsd 127.0.0.1:2947` or the device path, as the fault names it.
    pub subject: String,
}

fn fix_of(mode: FixMode) -> GnssFix {
    match mode {
        FixMode::None => GnssFix::None,
        FixMode::TwoD => GnssFix::TwoD,
        FixMode::ThreeD => GnssFix::ThreeD,
    }
}

/// What the status page and the metrics show of the receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct GnssView {
    /// `gpsd 127.0.0.1:2947` or the serial device's path.
    pub source: String,
    /// `3d`, `2d`, or `none` when no fix came within `stale_after_s`.
    pub fix: &'static str,
    pub satellites: Option<u32>,
    pub hdop: Option<f64>,
    /// GNSS time of the newest fix.
    pub last_fix_at: Option<DateTime<Utc>>,
    /// Seconds since the newest fix (GNSS time against the host clock), when there is one.
    pub fix_age_s: Option<f64>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// Lines that could not be used (bad checksums included).
    pub malformed: u64,
    /// Connections or opens that failed or dropped.
    pub disconnects: u64,
}

impl DeviceGnss {
    /// The position at host time `at` (an event's capture time); None before any fix.
    pub fn position_at(&self, at: DateTime<Utc>) -> Option<Position> {
        let p = self.gnss.position_at(at)?;
        Some(Position {
            lat: p.lat,
            lon: p.lon,
            speed_kmh: p.speed_kmh,
            heading_deg: p.heading_deg,
            fix: Some(fix_of(p.fix)),
            satellites: p.satellites,
            hdop: p.hdop,
            at: Some(p.at),
            age_ms: Some(p.age_ms),
            interpolated: p.interpolated,
            gap: p.gap,
            stale: p.stale,
        })
    }

    /// `host` (a capture time's clock, as the capture side names it) with what GNSS says of
    /// it at host time `now`; see the module doc.
    pub fn clock(&self, host: ClockInfo, now: DateTime<Utc>) -> ClockInfo {
        if !self.use_for_clock || !matches!(host.source.as_str(), "system" | "pipeline") {
            return host;
        }
        let Some(r) = self.gnss.clock(now) else {
            return host;
        };
        let fresh = Duration::from_millis(r.age_ms) <= self.stale_after;
        let reference = serde_json::to_value(r.reference)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        let (source, synced) = if fresh {
            ("gnss".to_string(), true)
        } else {
            (host.source, host.synced)
        };
        ClockInfo {
            source,
            synced,
            sync_age_ms: Some(r.age_ms),
            offset_ms: Some((r.offset_ms * 1000.0).round() / 1000.0),
            reference,
        }
    }

    /// The receiver as the status page shows it, at host time `now`.
    #[must_use]
    pub fn view(&self, now: DateTime<Utc>) -> GnssView {
        let last = self.gnss.last_fix();
        let counters = self.gnss.counters();
        let age = last
            .as_ref()
            .map(|f| (now - f.at).num_milliseconds() as f64 / 1000.0);
        let fresh = age.is_some_and(|a| a <= self.stale_after.as_secs_f64());
        let current = self.gnss.position_at(now);
        GnssView {
            source: self.subject.clone(),
            fix: match (&last, current.map(|p| p.fix)) {
                (Some(_), Some(FixMode::None)) | (None, _) => "none",
                (Some(_), _) if !fresh => "none",
                (Some(f), _) => f.mode.as_str(),
            },
            satellites: last.as_ref().and_then(|f| f.satellites),
            hdop: last.as_ref().and_then(|f| f.hdop),
            last_fix_at: last.as_ref().map(|f| f.at),
            fix_age_s: age,
            lat: last.as_ref().map(|f| f.lat),
            lon: last.as_ref().map(|f| f.lon),
            malformed: counters.malformed,
            disconnects: counters.disconnects,
        }
    }
}

/// The receiver of the running device, for the status page: empty on a stationary unit and
/// between runs.
#[derive(Debug, Default)]
pub struct GnssSlot(std::sync::Mutex<Option<DeviceGnss>>);

impl GnssSlot {
    fn set(&self, gnss: Option<DeviceGnss>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = gnss;
    }

    /// The receiver now; None on a stationary unit.
    #[must_use]
    pub fn view(&self) -> Option<GnssView> {
        let gnss = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        gnss.map(|g| g.view(Utc::now()))
    }
}

/// The running source; [`Running::stop`] ends it.
pub(crate) struct Running {
    stop_task: watch::Sender<bool>,
    stop_thread: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    forward: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    /// A run that ends early (an error) leaves no reader behind.
    fn drop(&mut self) {
        let _ = self.stop_task.send(true);
        self.stop_thread.store(true, Ordering::Relaxed);
        if let Some(task) = &self.task {
            task.abort();
        }
        self.forward.abort();
    }
}

impl Running {
    /// Stops the source (waiting up to 2 s) and the fault forwarding; a fault still raised
    /// stays on the board.
    pub async fn stop(mut self) {
        let _ = self.stop_task.send(true);
        self.stop_thread.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(STOP_WAIT, task).await;
        }
        if let Some(thread) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || thread.join());
            let _ = tokio::time::timeout(STOP_WAIT, joined).await;
        }
        self.forward.abort();
    }
}

/// Starts reading the receiver `cfg` names (must be called within the tokio runtime); its
/// faults go to `uplink`'s board.
pub(crate) fn start(
    cfg: &GnssConfig,
    uplink: Arc<anpr_uplink::Counters>,
    slot: &GnssSlot,
) -> Result<(DeviceGnss, Running)> {
    let gnss = Gnss::new(
        TrackSettings {
            capacity: TRACK_CAPACITY,
            max_gap: cfg.max_gap(),
        },
        cfg.stale_after(),
    );
    let (faults_tx, mut faults_rx) = mpsc::unbounded_channel::<anpr_gnss::FaultChange>();
    let (stop_task, stop_rx) = watch::channel(false);
    let stop_thread = Arc::new(AtomicBool::new(false));
    let (subject, task, thread) = match cfg.source {
        GnssSource::Gpsd => {
            let settings = GpsdSettings {
                addr: cfg.gpsd.clone(),
                ..GpsdSettings::default()
            };
            let task = tokio::spawn(anpr_gnss::run_gpsd(
                settings,
                gnss.clone(),
                faults_tx,
                stop_rx,
            ));
            (format!("gpsd {}", cfg.gpsd), Some(task), None)
        }
        GnssSource::Nmea => {
            let path = cfg.device.clone().unwrap_or_default();
            let thread = anpr_gnss::spawn_nmea_reader(
                NmeaSettings::new(&path),
                gnss.clone(),
                faults_tx,
                stop_thread.clone(),
            )
            .context("cannot start the thread that reads the GNSS receiver")?;
            (path.display().to_string(), None, Some(thread))
        }
    };
    let forward = tokio::spawn(async move {
        while let Some(change) = faults_rx.recv().await {
            if change.raised {
                uplink
                    .faults
                    .set(change.code, &change.subject, &change.message);
            } else {
                uplink
                    .faults
                    .clear(change.code, &change.subject, "GNSS data flows again");
            }
        }
    });
    let device = DeviceGnss {
        gnss,
        use_for_clock: cfg.use_for_clock,
        stale_after: cfg.stale_after(),
        subject,
    };
    slot.set(Some(device.clone()));
    tracing::info!(source = %device.subject, max_gap_s = cfg.max_gap_s, use_for_clock = cfg.use_for_clock, "Reading the GNSS receiver.");
    Ok((
        device,
        Running {
            stop_task,
            stop_thread,
            task,
            thread,
            forward,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_gnss::{ClockReference, Fix, Observation};

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_750_000_000_000 + ms).unwrap()
    }

    fn device(use_for_clock: bool) -> DeviceGnss {
        DeviceGnss {
            gnss: Gnss::new(TrackSettings::default(), Duration::from_secs(10)),
            use_for_clock,
            stale_after: Duration::from_secs(10),
            subject: "gpsd 127.0.0.1:2947".into(),
        }
    }

    fn fix(ms: i64, lat: f64) -> Observation {
        Observation::Fix(Fix {
            at: at(ms),
            lat,
            lon: 71.0,
            speed_mps: Some(10.0),
            track_deg: Some(90.0),
            mode: FixMode::ThreeD,
            status: None,
            satellites: Some(9),
            hdop: Some(0.8),
        })
    }

    fn system() -> ClockInfo {
        ClockInfo {
            source: "system".into(),
            synced: false,
            ..ClockInfo::default()
        }
    }

    #[test]
    fn an_event_takes_the_track_s_position_at_its_capture_time() {
        let d = device(true);
        assert_eq!(d.position_at(at(0)), None, "no fix yet");
        d.gnss.observe(&fix(0, 51.0), at(100));
        d.gnss.observe(&fix(1000, 51.001), at(1100));
        let p = d.position_at(at(500)).unwrap();
        assert!((p.lat - 51.0005).abs() < 1e-9);
        assert_eq!(
            (p.fix, p.interpolated, p.age_ms, p.satellites, p.speed_kmh),
            (Some(GnssFix::ThreeD), true, Some(500), Some(9), Some(36.0))
        );
        let p = d.position_at(at(4000)).unwrap();
        assert!(p.stale && p.age_ms == Some(3000) && (p.lat - 51.001).abs() < 1e-12);
    }

    #[test]
    fn the_clock_names_gnss_while_synced_and_the_host_source_after() {
        let d = device(true);
        assert_eq!(d.clock(system(), at(0)), system(), "never synced");
        d.gnss.observe(
            &Observation::TimeMark {
                gnss: at(0),
                host: at(2),
                reference: ClockReference::Pps,
            },
            at(2),
        );
        let c = d.clock(system(), at(1002));
        assert_eq!(
            (
                c.source.as_str(),
                c.synced,
                c.sync_age_ms,
                c.reference.as_deref()
            ),
            ("gnss", true, Some(1000), Some("pps"))
        );
        assert_eq!(c.offset_ms, Some(-2.0));
        let c = d.clock(system(), at(20_002));
        assert_eq!((c.source.as_str(), c.sync_age_ms), ("system", Some(20_000)));
        let camera = ClockInfo {
            source: "camera-ntp".into(),
            synced: true,
            ..ClockInfo::default()
        };
        assert_eq!(
            d.clock(camera.clone(), at(1002)),
            camera,
            "the camera's own clock"
        );
        assert_eq!(device(false).clock(system(), at(1002)), system());
    }
}
