//! Shared pieces of the end-to-end tests: real models, a real broker, the real receiver.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anpr_pipeline::{DeviceCounters, RunOptions, Summary};
use tokio::sync::watch;

/// Root of the repository.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The models directory; the test command runs deploy/setup.sh first, so missing models are
/// a broken setup, reported as such.
pub fn models_dir() -> PathBuf {
    let dir = repo().join("models");
    for f in [
        "plate_detector.onnx",
        "plate_reader.onnx",
        "libonnxruntime.so",
    ] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run deploy/setup.sh (models/fetch.sh) first",
            dir.join(f).display()
        );
    }
    dir
}

/// Writes a device config for a test into `dir` and returns its path.
pub fn write_config(dir: &Path, inventory: &str, camera_uri: &str, broker: &str) -> PathBuf {
    let text = format!(
        r#"
[device]
inventory = "{inventory}"
profile = "stationary"
site = "test-site"
coordinates = [51.1, 71.4]

[[camera]]
id = "cam1"
uri = "{camera_uri}"

[models]
dir = "{models}"

# Several devices run at once in the tests: each takes a free port for its status page.
[status]
listen = "127.0.0.1:0"

[storage]
queue = "queue.sqlite"

[uplink]
broker = "{broker}"
ack_timeout_s = 3.0
"#,
        models = models_dir().display()
    );
    let path = dir.join("device.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The reference receiver running on a broker.
pub struct Central {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), anpr_central::CentralError>>,
    pub db: PathBuf,
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Central {
    pub fn start(port: u16, db: PathBuf) -> Self {
        let (stop, rx) = watch::channel(false);
        let cfg = anpr_central::CentralConfig {
            host: "127.0.0.1".into(),
            port,
            prefix: "anpr/v1".into(),
            db: db.clone(),
            client_id: format!(
                "central-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ),
        };
        let task = tokio::spawn(anpr_central::run(cfg, rx, None));
        Self { stop, task, db }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }
}

/// Runs the device on `config` until its camera ends, draining for at most `drain`.
pub async fn run_device(config: &Path, drain: Duration) -> Summary {
    let cfg = anpr_config::load(config).unwrap();
    let opts = RunOptions {
        drain_timeout: drain,
        delivered: None,
        counters: Arc::new(DeviceCounters::default()),
        uplink: Arc::default(),
    };
    anpr_pipeline::run(cfg, opts).await.unwrap()
}

/// An event as the recognizer would record it, for tests of delivery alone.
pub fn synthetic_event(inventory: &str, seq: u64) -> anpr_types::Event {
    use anpr_types::{
        ClockInfo, DeviceInfo, EVENT_SCHEMA, EventKind, EventVehicle, FrameRef, VehicleClass,
    };
    anpr_types::Event {
        schema: EVENT_SCHEMA.into(),
        event_id: uuid::Uuid::now_v7(),
        seq,
        device: DeviceInfo {
            inventory: inventory.into(),
            profile: "mobile".into(),
            site: String::new(),
        },
        camera: "cam1".into(),
        kind: EventKind::Passage,
        captured_at: chrono::Utc::now(),
        clock: ClockInfo {
            source: "system".into(),
            synced: false,
        },
        position: None,
        vehicle: EventVehicle {
            class: VehicleClass::Car,
            confidence: 0.9,
            bbox: Some([10, 20, 300, 200]),
            direction: None,
            lane: None,
        },
        plate: anpr_types::EventPlate {
            text: format!("{:03}ABC01", seq % 1000),
            confidence: 0.95,
            detection_confidence: 0.8,
            bbox: [100, 150, 120, 26],
            country: Some("KZ".into()),
            plate_type: Some("private-2012".into()),
            region: Some("01 Astana".into()),
            status: anpr_types::PlateStatus::Read,
        },
        frame: FrameRef {
            index: seq,
            width: 1280,
            height: 720,
        },
        evidence: Vec::new(),
        track: None,
        violation: None,
        gap: None,
    }
}

/// Appends `n` synthetic events to the queue at `path`.
pub fn append_events(path: &Path, inventory: &str, n: usize) {
    let mut store = anpr_store::Store::open(path).unwrap();
    for _ in 0..n {
        store.append(|seq| synthetic_event(inventory, seq)).unwrap();
    }
}

/// The uplink alone, delivering the queue at `queue` to the broker on `port`.
pub struct Uplink {
    pub mode: watch::Sender<anpr_uplink::Mode>,
    pub counters: Arc<anpr_uplink::Counters>,
    task: tokio::task::JoinHandle<Result<(), anpr_uplink::UplinkError>>,
}

impl Uplink {
    pub fn start(queue: &Path, inventory: &str, port: u16, ack_timeout: Duration) -> Self {
        Self::start_with_rate(queue, inventory, port, ack_timeout, 100_000.0)
    }

    /// As `start`, with the backlog limited to `backlog_rate` events per second.
    pub fn start_with_rate(
        queue: &Path,
        inventory: &str,
        port: u16,
        ack_timeout: Duration,
        backlog_rate: f64,
    ) -> Self {
        Self::start_with(queue, inventory, port, ack_timeout, backlog_rate, None)
    }

    /// As `start_with_rate`, reporting `quota_bytes` as the queue's quota in health messages.
    pub fn start_with(
        queue: &Path,
        inventory: &str,
        port: u16,
        ack_timeout: Duration,
        backlog_rate: f64,
        quota_bytes: Option<u64>,
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("ANPR_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let (mode, rx) = watch::channel(anpr_uplink::Mode::Run);
        let counters = Arc::new(anpr_uplink::Counters::default());
        let cfg = anpr_uplink::UplinkConfig {
            host: "127.0.0.1".into(),
            port,
            client_id: format!("anpr-{inventory}"),
            topics: anpr_types::Topics::new("anpr/v1", inventory),
            queue: queue.to_path_buf(),
            ack_timeout,
            max_inflight: 256,
            backlog_rate,
            quota_bytes,
        };
        let task = tokio::spawn(anpr_uplink::run(cfg, rx, counters.clone(), None));
        Self {
            mode,
            counters,
            task,
        }
    }

    /// Drains the queue (at most `limit`) and stops.
    pub async fn drain(self, limit: Duration) {
        let _ = self.mode.send(anpr_uplink::Mode::Drain {
            deadline: std::time::Instant::now() + limit,
        });
        self.task.await.unwrap().unwrap();
    }
}

/// The delivery oracle: every event the device accepted reached the receiver, none twice, with
/// its original capture time, in a recoverable order, and nothing is left undelivered.
pub fn assert_delivered_exactly(queue: &Path, central_db: &Path, inventory: &str) {
    let store = anpr_store::Store::open(queue).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(
        stats.pending, 0,
        "the device's queue ends with nothing undelivered"
    );
    let receiver = anpr_central::Receiver::open(central_db).unwrap();
    let got = receiver.events_of(inventory).unwrap();
    assert_eq!(
        got.len() as u64,
        stats.total,
        "every accepted event reached the receiver exactly once"
    );
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d.event.seq, i as u64 + 1, "sequence gap or reordering");
        let stored = store.get(d.event.seq).unwrap().unwrap();
        assert_eq!(stored.event_id, d.event.event_id);
        assert_eq!(
            stored.captured_at, d.event.captured_at,
            "capture time rewritten"
        );
    }
    let report = receiver.report().unwrap();
    assert!(report.iter().all(|r| r.gaps.is_empty()), "{report:?}");
}

/// Brings a link back: a proxy that stays up, on the address of one just dropped (its port
/// may take a moment to be free again).
pub async fn reopen_link(
    addr: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
) -> anpr_netsim::Proxy {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let script = anpr_netsim::Script::parse("up 600").unwrap();
        match anpr_netsim::Proxy::start(addr, upstream, script, 1.0, Duration::from_mins(5)).await {
            Ok(p) => return p,
            Err(e) if std::time::Instant::now() < end => {
                tracing::debug!(error = %e, "Port not free yet.");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot reopen the link on {addr}: {e}"),
        }
    }
}

/// Waits until `cond` holds, for at most `limit`.
pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// Points the camera of the device config at `config` to a new clip without plates (written
/// into `dir`), so a restarted device only has its queue to deliver.
pub fn switch_to_blank_clip(config: &Path, dir: &Path, current: &Path) {
    let blank = dir.join("blank.mp4");
    anpr_scene::clip::write_clip_with(&anpr_scene::clip::manifest_with(0), &blank).unwrap();
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        config,
        text.replace(current.to_str().unwrap(), blank.to_str().unwrap()),
    )
    .unwrap();
}
