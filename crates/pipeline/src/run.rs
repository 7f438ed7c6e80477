//! The whole run: start checks, one capture and one recognition thread per camera, the uplink,
//! the drain at the end, and the counters and summary of what happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use anpr_config::Config;
use anpr_ingest::{Frame, IngestError};
use anpr_store::{QueueStats, Store};
use anpr_types::Topics;
use anpr_uplink::{Counters, Delivered, Mode, UplinkConfig};
use anpr_vision::Recognizer;
use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

use crate::capture::{Capture, capture_thread};
use crate::load_recognizer;
use crate::recognition::{Shared, recognition_thread};
use anpr_rules::{Lists, RuleSet};

/// Counters of the recording side, readable while the device runs.
#[derive(Debug, Default)]
pub struct DeviceCounters {
    pub frames: AtomicU64,
    pub frames_dropped: AtomicU64,
    /// Frames decoded but not recognised (see `idle_every` and `track_every`).
    pub frames_skipped: AtomicU64,
    /// Stream time of the latest frame handled, milliseconds (the longest over cameras).
    pub stream_ms: AtomicU64,
    pub plate_reads: AtomicU64,
    /// Of the plate reads, those confirmed from the reader's first view as the text their
    /// track had read before (`[models] known_plate_reads`).
    pub plates_confirmed: AtomicU64,
    pub vehicles: AtomicU64,
    /// Events recorded: passages and violations.
    pub events: AtomicU64,
    /// Violation events recorded.
    pub violations: AtomicU64,
    /// Plate-list updates from the central side put in force, and refused.
    pub list_updates: AtomicU64,
    pub list_updates_refused: AtomicU64,
    pub camera_faults: AtomicU64,
    /// Times a recognition worker failed and was started again.
    pub recognition_restarts: AtomicU64,
    pub infer_ns: AtomicU64,
    /// Each camera's state and figures.
    pub cameras: crate::status::Cameras,
    /// The last events recorded, with their plate crops, for the status page.
    pub recent: crate::status::RecentEvents,
    /// A mobile unit's GNSS receiver, for the status page.
    pub gnss: crate::gnss::GnssSlot,
}

/// How to run.
pub struct RunOptions {
    /// How long to wait for deliveries after the cameras ended.
    pub drain_timeout: Duration,
    /// Acknowledged deliveries are sent here as they happen.
    pub delivered: Option<mpsc::UnboundedSender<Delivered>>,
    pub counters: Arc<DeviceCounters>,
    pub uplink: Arc<Counters>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub frames: u64,
    pub frames_dropped: u64,
    pub frames_skipped: u64,
    /// Stream time covered (the latest frame's timestamp), seconds.
    pub stream_s: f64,
    pub plate_reads: u64,
    /// Of which confirmed from one view as their track's known text.
    pub plates_confirmed: u64,
    pub vehicles: u64,
    /// Events recorded: passages and violations.
    pub events: u64,
    /// Of which violations.
    pub violations: u64,
    pub delivered: u64,
    pub pending: u64,
    pub elapsed: Duration,
    pub camera_errors: Vec<String>,
}

impl Summary {
    /// Frames processed per second of wall time.
    #[must_use]
    pub fn fps(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The device could not start: ONNX Runtime, a model, GStreamer, the queue or the broker's
/// address is not as the configuration says. Nothing was recorded. It reads as its cause, which
/// names the file or setting and the fix.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StartError(#[from] anyhow::Error);

/// On SIGTERM or Ctrl-C, how long the recognition threads get to record the vehicles in view.
const STOP_RECORDING: Duration = Duration::from_secs(20);
/// On SIGTERM or Ctrl-C, how long the uplink gets to deliver before it stops (at most the
/// run's drain timeout); whatever is left stays queued for the next start.
const STOP_DRAIN: Duration = Duration::from_secs(5);
/// A recognition thread busy with one frame longer than this (or the watchdog interval, when
/// longer) hangs.
const RECOGNITION_HANG: Duration = Duration::from_secs(10);
/// A capture thread inside one GStreamer call longer than this hangs (the calls' own timeouts
/// are 15 s to open a camera and 10 s to wait for a frame).
const CAPTURE_HANG: Duration = Duration::from_secs(30);

/// Runs a camera's recognition worker, and runs it again when it fails: an error (the queue,
/// say) or a panic is raised at once as a `recognition` fault, the worker waits (1 s, doubling
/// up to 30 s) and starts again with fresh model sessions on the same frame channel. Passages
/// of the vehicles in view when it failed are lost (the fault says so); the capture side and
/// the other cameras go on. It gives up only when the models cannot be loaded again.
fn supervise_recognition(
    shared: &Shared,
    camera: &anpr_config::Camera,
    rec: Recognizer,
    rx: &std::sync::mpsc::Receiver<Frame>,
    uplink: &Counters,
    part: &crate::watchdog::Part,
) -> Result<()> {
    let mut rec = Some(rec);
    let mut restarts = 0u32;
    loop {
        let worker = match rec.take() {
            Some(r) => r,
            None => load_recognizer(&shared.cfg)?,
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            recognition_thread(shared, camera, worker, rx, part)
        }));
        let why = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => format!("{e:#}"),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(ToString::to_string))
                .unwrap_or_else(|| "panic".to_string()),
        };
        restarts += 1;
        shared
            .counters
            .recognition_restarts
            .fetch_add(1, Ordering::Relaxed);
        let message = format!(
            "camera {}: recognition failed ({why}); the vehicles in view were lost; restart {restarts}",
            camera.id
        );
        tracing::error!(camera = %camera.id, error = %why, restarts, "Recognition failed; restarting it.");
        uplink.raise_fault("recognition", &message);
        std::thread::sleep(
            Duration::from_secs(1 << restarts.min(5).saturating_sub(1))
                .min(Duration::from_secs(30)),
        );
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what systemd and `docker stop` send).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGTERM cannot be watched; only Ctrl-C stops the device cleanly.");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// What the start checks leave ready for the run.
struct Ready {
    recognizers: Vec<Recognizer>,
    rules: Arc<RuleSet>,
    lists: Arc<Lists>,
    /// What went wrong loading the lists without stopping the device (raised as faults).
    list_problems: Vec<String>,
    /// The queue as it was before this run.
    initial: QueueStats,
    host: String,
    port: u16,
    /// The further brokers of `[uplink] failover`.
    failover: Vec<(String, u16)>,
    tls: Option<anpr_pki::ClientTls>,
    /// The device's signing key and the central receiver's public key (`[security]`).
    signer: anpr_trust::SigningKey,
    central_key: anpr_trust::VerifyingKey,
    /// The model files and the library, as checked against their pins.
    models: Vec<anpr_types::ModelHash>,
}

/// The checks made before any camera starts, in this order: the model files and the ONNX
/// Runtime library against their pinned sha256 (hashed once), one recognizer per camera (ONNX
/// Runtime and the models), GStreamer, the queue's directory and database, the broker's address
/// and its TLS files (read, the key's mode checked, the certificate matched to the key), the
/// keys of `[security]` (the device's signing key, its mode checked, and the central
/// receiver's public key).
fn start(cfg: &Config) -> Result<Ready> {
    // Models first: a missing or corrupt model is a startup error, not a per-frame one.
    let models = crate::verify_models(cfg)?;
    let mut recognizers = Vec::new();
    for _ in &cfg.cameras {
        recognizers.push(crate::open_recognizer(cfg)?);
    }
    // A vehicle-type ban naming only types the vehicle models never report would never fire.
    if let Some(r) = recognizers.first() {
        for (rule, never) in crate::models::check_type_bans(&cfg.rules, &r.vehicle_classes())? {
            let never: Vec<&str> = never.iter().map(|c| c.as_str()).collect();
            tracing::warn!(
                rule = %rule,
                never = %never.join(", "),
                "A vehicle-type ban names types the vehicle models in use never report (install the type classifier with models/fetch.sh for vans, tractor-trailers and special vehicles); it fires only on the others."
            );
        }
    }
    gstreamer::init().map_err(|e| IngestError::Init(e.to_string()))?;
    if let Some(parent) = cfg.storage.queue.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the queue directory {}", parent.display()))?;
    }
    let mut queue = Store::open(&cfg.storage.queue)?;
    // The retention policy of `[storage]`, kept in the queue for every connection on it (the
    // recognizers' quota, the uplink's hourly cleanup); a change is journaled.
    queue.set_retention(anpr_store::Retention {
        keep_violations_days: cfg.storage.keep_violations_days,
        keep_passages_days: cfg.storage.keep_passages_days,
    })?;
    let initial = queue.stats()?;
    drop(queue);
    let (host, port) = cfg.uplink.host_port().map_err(anyhow::Error::msg)?;
    let failover = cfg
        .uplink
        .failover_host_ports()
        .map_err(anyhow::Error::msg)?;
    let tls = match cfg.uplink.tls_files() {
        Some((ca, cert, key)) => Some(
            anpr_pki::ClientTls::load(&anpr_pki::TlsFiles { ca, cert, key })
                .context("the uplink's TLS files (`[uplink] tls_ca, tls_cert, tls_key`)")?,
        ),
        None => None,
    };
    let signer = anpr_trust::load_signing_key_as("device private key", &cfg.security.device_key)
        .context("the device's signing key (`[security] device_key`)")?;
    let central_key =
        anpr_trust::load_verifying_key_as("central public key", &cfg.security.central_public_key)
            .context("the central receiver's public key (`[security] central_public_key`)")?;
    let loaded = Lists::load(cfg, &central_key)?;
    for problem in &loaded.problems {
        tracing::warn!(problem = %problem, "Plate list problem; the good lines are in force.");
    }
    Ok(Ready {
        recognizers,
        rules: Arc::new(RuleSet::from_config(cfg)),
        lists: Arc::new(loaded.lists),
        list_problems: loaded.problems.iter().map(ToString::to_string).collect(),
        initial,
        host,
        port,
        failover,
        tls,
        signer,
        central_key,
        models,
    })
}

/// Runs the device until every camera has ended (files at their end; live cameras reconnect
/// until the device stops) or SIGTERM/Ctrl-C; then gives the uplink up to `drain_timeout` to
/// deliver what is queued.
///
/// Fails with a [`StartError`] when the device cannot start, and with another error when the
/// uplink fails or the queue cannot be read at the end; a camera's fault is no error of the
/// run but is listed in [`Summary::camera_errors`].
pub async fn run(cfg: Config, opts: RunOptions) -> Result<Summary> {
    let started = Instant::now();
    // A mobile unit's receiver first, so that its track fills while the models load; its
    // faults go on the board; recording never waits for it.
    let (gnss, gnss_running) = match &cfg.gnss {
        Some(g) => {
            let (gnss, running) = crate::gnss::start(g, opts.uplink.clone(), &opts.counters.gnss)
                .map_err(StartError)?;
            (Some(gnss), Some(running))
        }
        None => (None, None),
    };
    let Ready {
        recognizers,
        rules,
        lists,
        list_problems,
        initial,
        host,
        port,
        failover,
        tls,
        signer,
        central_key,
        models,
    } = start(&cfg).map_err(StartError)?;
    let (mode_tx, mode_rx) = watch::channel(Mode::Run);
    let uplink_cfg = UplinkConfig {
        host,
        port,
        failover,
        tls,
        client_id: format!("anpr-{}", cfg.device.inventory),
        topics: Topics::new(&cfg.uplink.topic_prefix, &cfg.device.inventory),
        queue: cfg.storage.queue.clone(),
        ack_timeout: Duration::from_secs_f64(cfg.uplink.ack_timeout_s),
        max_inflight: cfg.uplink.max_inflight,
        backlog_rate: cfg.uplink.backlog_rate,
        quota_bytes: cfg.storage.quota_bytes(),
        central_key,
        models,
    };
    for problem in &list_problems {
        opts.uplink.raise_fault("plate-list", problem);
    }
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let uplink = tokio::spawn(anpr_uplink::run_with_commands(
        uplink_cfg,
        mode_rx,
        opts.uplink.clone(),
        opts.delivered.clone(),
        Some(commands_tx),
    ));
    let commands = tokio::spawn(crate::commands::serve(
        commands_rx,
        lists.clone(),
        cfg.lists_dir.clone(),
        opts.counters.clone(),
        opts.uplink.clone(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = Arc::new(cfg);
    let liveness = Arc::new(crate::watchdog::Liveness::default());
    let watchdog_interval = crate::watchdog::interval();
    let mut workers = Vec::new();
    for (cam, rec) in cfg.cameras.iter().cloned().zip(recognizers) {
        let (tx, rx) = sync_channel::<Frame>(4);
        let capture_of = Capture {
            cfg: cfg.clone(),
            signer: signer.clone(),
            cam: cam.clone(),
            tx,
            counters: opts.counters.clone(),
            status: opts.counters.cameras.get_or_add(&cam.id),
            uplink: opts.uplink.clone(),
            stop: stop.clone(),
            // Opening a camera may take its 15 s; waiting for a frame takes at most 10 s.
            part: liveness.watch(
                &format!("capture-{}", cam.id),
                watchdog_interval.unwrap_or(CAPTURE_HANG).max(CAPTURE_HANG),
            ),
            gnss: gnss.clone(),
        };
        let capture = std::thread::Builder::new()
            .name(format!("capture-{}", cam.id))
            .spawn(move || {
                // A live camera comes back by itself (its outages are lasting `camera` faults);
                // a file that fails ends here, reported at once on the health channel.
                let ended = capture_thread(&capture_of);
                if let Err(e) = &ended {
                    capture_of.uplink.raise_fault("camera", e);
                }
                ended
            })?;
        let shared = Shared {
            cfg: cfg.clone(),
            signer: signer.clone(),
            rules: rules.clone(),
            lists: lists.clone(),
            counters: opts.counters.clone(),
            uplink: opts.uplink.clone(),
            gnss: gnss.clone(),
        };
        let cam_r = cam.clone();
        let uplink_r = opts.uplink.clone();
        // A frame takes well under a second; one that takes the whole watchdog interval (and
        // at least 10 s, for a machine loaded by other work) hangs.
        let part = liveness.watch(
            &format!("recognition-{}", cam.id),
            watchdog_interval
                .unwrap_or(Duration::from_mins(1))
                .max(RECOGNITION_HANG),
        );
        let recog = std::thread::Builder::new()
            .name(format!("recognize-{}", cam.id))
            .spawn(move || supervise_recognition(&shared, &cam_r, rec, &rx, &uplink_r, &part))?;
        workers.push((cam, capture, recog));
    }
    crate::watchdog::ready(&status_line(&opts.counters, &opts.uplink));
    let watchdog = tokio::spawn({
        let (counters, uplink) = (opts.counters.clone(), opts.uplink.clone());
        crate::watchdog::feed(liveness, watchdog_interval, move || {
            status_line(&counters, &uplink)
        })
    });
    let mut camera_errors = Vec::new();
    let all_done = tokio::task::spawn_blocking(move || {
        let mut errors = Vec::new();
        for (cam, capture, recog) in workers {
            match capture.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push(format!("camera {}: capture thread panicked", cam.id)),
            }
            match recog.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("camera {}: {e:#}", cam.id)),
                Err(_) => errors.push(format!("camera {}: recognition thread panicked", cam.id)),
            }
        }
        errors
    });
    tokio::pin!(all_done);
    let interrupted = tokio::select! {
        errs = &mut all_done => {
            camera_errors = errs.unwrap_or_default();
            false
        }
        () = shutdown_signal() => true,
    };
    stop.store(true, Ordering::Relaxed);
    crate::watchdog::stopping();
    watchdog.abort();
    if interrupted {
        // The cameras stop at their next frame; the recognition threads finish the frames
        // already handed over, end every open track and record its passage before they return.
        tracing::info!("Stopping: recording the vehicles in view.");
        if let Ok(errs) = tokio::time::timeout(STOP_RECORDING, &mut all_done).await {
            camera_errors = errs.unwrap_or_default();
        } else {
            tracing::error!(
                seconds = STOP_RECORDING.as_secs(),
                "The recognition threads did not finish in time; passages in view may be lost."
            );
        }
    }
    for e in &camera_errors {
        opts.counters.camera_faults.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "Camera fault.");
    }
    // On a signal, what was just recorded gets a short while to go out; the rest stays queued.
    let deadline = Instant::now()
        + if interrupted {
            opts.drain_timeout.min(STOP_DRAIN)
        } else {
            opts.drain_timeout
        };
    let mode = Mode::Drain { deadline };
    let _ = mode_tx.send(mode);
    uplink.await.context("uplink task failed")??;
    commands.abort();
    if let Some(running) = gnss_running {
        running.stop().await;
    }
    let stats = Store::open(&cfg.storage.queue)?.stats()?;
    let c = &opts.counters;
    Ok(Summary {
        frames: c.frames.load(Ordering::Relaxed),
        frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
        frames_skipped: c.frames_skipped.load(Ordering::Relaxed),
        stream_s: c.stream_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        plate_reads: c.plate_reads.load(Ordering::Relaxed),
        plates_confirmed: c.plates_confirmed.load(Ordering::Relaxed),
        vehicles: c.vehicles.load(Ordering::Relaxed),
        events: stats.last_seq - initial.last_seq,
        violations: c.violations.load(Ordering::Relaxed),
        delivered: stats.delivered - initial.delivered,
        pending: stats.pending,
        elapsed: started.elapsed(),
        camera_errors,
    })
}

/// The one-line state the service manager shows (`systemctl status anpr`).
fn status_line(counters: &DeviceCounters, uplink: &Counters) -> String {
    let cameras = counters.cameras.all();
    let live = cameras
        .iter()
        .filter(|c| c.state().state == crate::status::CameraState::Live)
        .count();
    format!(
        "recording: {live}/{} cameras live, {} events recorded, {} delivered, link {}, {} faults",
        cameras.len(),
        counters.events.load(Ordering::Relaxed),
        uplink.acked.load(Ordering::Relaxed),
        if uplink.connected.load(Ordering::Relaxed) {
            "up"
        } else {
            "down"
        },
        uplink.faults.active().len()
    )
}
