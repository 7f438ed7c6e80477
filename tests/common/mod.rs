//! Shared pieces of the end-to-end tests: real models, a real broker, the real receiver.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anpr::device::{DeviceCounters, RunOptions, Summary};
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

impl Central {
    pub fn start(port: u16, db: PathBuf) -> Self {
        let (stop, rx) = watch::channel(false);
        let cfg = anpr_central::CentralConfig {
            host: "127.0.0.1".into(),
            port,
            prefix: "anpr/v1".into(),
            db: db.clone(),
            client_id: format!("central-test-{}", std::process::id()),
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
    anpr::device::run(cfg, opts).await.unwrap()
}
