//! The device runtime: cameras → recognition → tracking → queue → uplink.
//!
//! Each camera gets one thread that pulls frames from its GStreamer pipeline and one thread
//! that owns that camera's ONNX Runtime sessions, joined by a bounded channel: a live camera
//! whose frames arrive faster than they can be processed drops frames (counted); a file waits.
//! Passages are appended to the SQLite queue (committed durably) by the recognition thread;
//! the uplink (tokio) delivers them. A camera or link failure never stops the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use anpr_config::{Camera, Config};
use anpr_ingest::{Frame, FrameSource};
use anpr_store::Store;
use anpr_track::{FrameGate, Passage, PlateTracker, TrackerConfig};
use anpr_types::{
    ClockInfo, DeviceInfo, EVENT_SCHEMA, Event, EventKind, EventPlate, EventVehicle, FrameRef,
    Position, Topics, VehicleClass,
};
use anpr_uplink::{Counters, Delivered, Mode, UplinkConfig};
use anpr_vision::{GrammarMode, Recognizer, RecognizerConfig, init_runtime};
use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

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
    pub vehicles: AtomicU64,
    pub events: AtomicU64,
    pub camera_faults: AtomicU64,
    pub infer_ns: AtomicU64,
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
    pub vehicles: u64,
    pub events: u64,
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

/// Model settings of a config as the recognizer wants them.
#[must_use]
pub fn recognizer_config(cfg: &Config) -> RecognizerConfig {
    let m = &cfg.models;
    RecognizerConfig {
        plate_detector: m.path(&m.plate_detector),
        plate_reader: m.path(&m.plate_reader),
        vehicle_detector: Some(m.path(&m.vehicle_detector)),
        intra_threads: m.intra_threads,
        plate_confidence: m.plate_confidence,
        plate_candidate_confidence: m.plate_candidate_confidence,
        vehicle_confidence: m.vehicle_confidence,
        vehicle_class_confidence: m.vehicle_class_confidence,
        heavy_vehicle_class_confidence: m.heavy_vehicle_class_confidence,
        grammar: match m.grammar {
            anpr_config::Grammar::Generic => GrammarMode::Generic,
            anpr_config::Grammar::Kz => GrammarMode::Kz,
        },
        concurrent: m.concurrent,
        execution_provider: match m.execution_provider {
            anpr_config::ExecutionProvider::Cpu => anpr_vision::ExecutionProvider::Cpu,
            anpr_config::ExecutionProvider::Cuda => anpr_vision::ExecutionProvider::Cuda,
        },
    }
}

/// Loads ONNX Runtime and one recognizer; errors name the file and the fix.
pub fn load_recognizer(cfg: &Config) -> Result<Recognizer> {
    init_runtime(&cfg.models.path(&cfg.models.onnxruntime))?;
    Ok(Recognizer::new(recognizer_config(cfg))?)
}

/// Turns a passage into the event record stored and sent.
#[must_use]
pub fn event_from_passage(cfg: &Config, camera: &str, p: &Passage, seq: u64) -> Event {
    let vehicle = p.vehicle.as_ref().map_or(
        EventVehicle {
            class: VehicleClass::Unknown,
            confidence: 0.0,
            bbox: None,
            direction: None,
            lane: None,
        },
        |v| EventVehicle {
            class: v.class,
            confidence: v.confidence,
            bbox: Some(v.bbox.to_wire()),
            direction: None,
            lane: None,
        },
    );
    Event {
        schema: EVENT_SCHEMA.to_string(),
        event_id: uuid::Uuid::now_v7(),
        seq,
        device: DeviceInfo {
            inventory: cfg.device.inventory.clone(),
            profile: cfg.device.profile.as_str().to_string(),
            site: cfg.device.site.clone(),
        },
        camera: camera.to_string(),
        kind: EventKind::Passage,
        captured_at: p.best.captured_at,
        clock: ClockInfo {
            source: "system".into(),
            synced: false,
        },
        position: cfg
            .device
            .coordinates
            .map(|[lat, lon]| Position { lat, lon }),
        vehicle,
        plate: EventPlate {
            text: p.text.clone(),
            confidence: p.best.read.confidence,
            detection_confidence: p.best.read.detection_confidence,
            bbox: p.best.read.bbox.to_wire(),
            country: p.best.read.country.clone(),
            plate_type: p.best.read.plate_type.clone(),
            region: p.best.read.region.clone(),
            status: anpr_types::PlateStatus::Read,
        },
        frame: FrameRef {
            index: p.best.frame_index,
            width: p.best.frame_size.0,
            height: p.best.frame_size.1,
        },
        evidence: Vec::new(),
        track: None,
        violation: None,
    }
}

// The thread owns what it is given for its whole life.
#[allow(clippy::needless_pass_by_value)]
fn capture_thread(
    cam: Camera,
    tx: SyncSender<Frame>,
    counters: Arc<DeviceCounters>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), String> {
    let mut source = FrameSource::open(
        &cam.id,
        &cam.uri,
        cam.live,
        cam.max_fps,
        Duration::from_secs(15),
    )
    .map_err(|e| e.to_string())?;
    let live = source.is_live();
    while !stop.load(Ordering::Relaxed) {
        match source.next_frame(Duration::from_secs(10)) {
            Ok(Some(frame)) => {
                if live {
                    match tx.try_send(frame) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(TrySendError::Disconnected(_)) => break,
                    }
                } else if tx.send(frame).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

fn recognition_thread(
    cfg: &Config,
    camera: &Camera,
    mut rec: Recognizer,
    rx: &Receiver<Frame>,
    counters: &DeviceCounters,
) -> Result<()> {
    let mut store = Store::open(&cfg.storage.queue)?.with_quota(cfg.storage.quota_bytes());
    // A passage ends after `max_gap` frames without a read; with one frame in `track_every`
    // recognised, allow four missed reads in a row.
    let mut tracker_cfg = TrackerConfig::default();
    tracker_cfg.max_gap = tracker_cfg.max_gap.max(4 * u64::from(camera.track_every));
    let mut tracker = PlateTracker::new(tracker_cfg);
    let mut gate = FrameGate::new(camera.idle_every, camera.track_every, tracker_cfg.max_gap);
    let vehicle_every = u64::from(cfg.models.vehicle_every.max(1));
    let mut recognised = 0u64;
    let camera = camera.id.as_str();
    let keep_frames = !cfg.storage.evidence.is_empty();
    let commit = |passages: Vec<Passage>, store: &mut Store| -> Result<()> {
        for p in passages {
            let images = p.best.frame.as_ref().map_or_else(Vec::new, |f| {
                crate::evidence::images(
                    f,
                    &p.best.read.bbox,
                    &cfg.storage.evidence,
                    cfg.storage.jpeg_quality,
                )
            });
            let e = store.append_with(|seq| event_from_passage(cfg, camera, &p, seq), images)?;
            tracing::info!(camera, seq = e.seq, plate = %e.plate.text, class = %e.vehicle.class, "Passage recorded.");
            counters.events.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    };
    for frame in rx {
        counters
            .stream_ms
            .fetch_max(frame.pts.as_millis() as u64, Ordering::Relaxed);
        if !gate.wants(frame.index) {
            counters.frames_skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let t = Instant::now();
        // The vehicle detector runs while a passage still lacks a vehicle of a known type,
        // and on one recognised frame in `vehicle_every` besides.
        let want_vehicles = recognised.is_multiple_of(vehicle_every)
            || tracker.needs_vehicle(cfg.models.vehicle_class_confidence);
        recognised += 1;
        let result = match rec.process_with(&frame.image, want_vehicles) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(camera, frame = frame.index, error = %e, "Frame skipped.");
                continue;
            }
        };
        counters
            .infer_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        counters.frames.fetch_add(1, Ordering::Relaxed);
        gate.saw(frame.index, result.plates.len());
        counters.plate_reads.fetch_add(
            result.plates.iter().filter(|p| !p.text.is_empty()).count() as u64,
            Ordering::Relaxed,
        );
        counters
            .vehicles
            .fetch_add(result.vehicles.len() as u64, Ordering::Relaxed);
        let size = (frame.image.width, frame.image.height);
        let image = (keep_frames && !result.plates.is_empty()).then(|| Arc::new(frame.image));
        let ended = tracker.step_with_frame(
            frame.index,
            frame.captured_at,
            size,
            &result.plates,
            &result.vehicles,
            image.as_ref(),
        );
        commit(ended, &mut store)?;
    }
    commit(tracker.flush(), &mut store)
}

/// Runs the device until every camera has ended (a file at its end, a live camera on a fault)
/// or Ctrl-C; then gives the uplink up to `drain_timeout` to deliver what is queued.
pub async fn run(cfg: Config, opts: RunOptions) -> Result<Summary> {
    let started = Instant::now();
    // Models first: a missing or corrupt model is a startup error, not a per-frame one.
    let mut recognizers = Vec::new();
    for _ in &cfg.cameras {
        recognizers.push(load_recognizer(&cfg)?);
    }
    if let Some(parent) = cfg.storage.queue.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the queue directory {}", parent.display()))?;
    }
    let initial = Store::open(&cfg.storage.queue)?.stats()?;
    let (host, port) = cfg.uplink.host_port().map_err(anyhow::Error::msg)?;
    let (mode_tx, mode_rx) = watch::channel(Mode::Run);
    let uplink_cfg = UplinkConfig {
        host,
        port,
        client_id: format!("anpr-{}", cfg.device.inventory),
        topics: Topics::new(&cfg.uplink.topic_prefix, &cfg.device.inventory),
        queue: cfg.storage.queue.clone(),
        ack_timeout: Duration::from_secs_f64(cfg.uplink.ack_timeout_s),
        max_inflight: cfg.uplink.max_inflight,
        backlog_rate: cfg.uplink.backlog_rate,
        quota_bytes: cfg.storage.quota_bytes(),
    };
    let uplink = tokio::spawn(anpr_uplink::run(
        uplink_cfg,
        mode_rx,
        opts.uplink.clone(),
        opts.delivered.clone(),
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cfg = Arc::new(cfg);
    let mut workers = Vec::new();
    for (cam, rec) in cfg.cameras.iter().cloned().zip(recognizers) {
        let (tx, rx) = sync_channel::<Frame>(4);
        let counters = opts.counters.clone();
        let stop_c = stop.clone();
        let cam_c = cam.clone();
        let uplink_c = opts.uplink.clone();
        let capture = std::thread::Builder::new()
            .name(format!("capture-{}", cam.id))
            .spawn(move || {
                let ended = capture_thread(cam_c, tx, counters, stop_c);
                if let Err(e) = &ended {
                    // Reported at once on the health channel, not only when the device stops.
                    uplink_c.raise_fault("camera", e);
                }
                ended
            })?;
        let (cfg_r, counters) = (cfg.clone(), opts.counters.clone());
        let cam_r = cam.clone();
        let recog = std::thread::Builder::new()
            .name(format!("recognize-{}", cam.id))
            .spawn(move || recognition_thread(&cfg_r, &cam_r, rec, &rx, &counters))?;
        workers.push((cam, capture, recog));
    }
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
        _ = tokio::signal::ctrl_c() => true,
    };
    for e in &camera_errors {
        opts.counters.camera_faults.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "Camera fault.");
    }
    stop.store(true, Ordering::Relaxed);
    let mode = if interrupted {
        Mode::Stop
    } else {
        Mode::Drain {
            deadline: Instant::now() + opts.drain_timeout,
        }
    };
    let _ = mode_tx.send(mode);
    uplink.await.context("uplink task failed")??;
    let stats = Store::open(&cfg.storage.queue)?.stats()?;
    let c = &opts.counters;
    Ok(Summary {
        frames: c.frames.load(Ordering::Relaxed),
        frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
        frames_skipped: c.frames_skipped.load(Ordering::Relaxed),
        stream_s: c.stream_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        plate_reads: c.plate_reads.load(Ordering::Relaxed),
        vehicles: c.vehicles.load(Ordering::Relaxed),
        events: stats.last_seq - initial.last_seq,
        delivered: stats.delivered - initial.delivered,
        pending: stats.pending,
        elapsed: started.elapsed(),
        camera_errors,
    })
}
