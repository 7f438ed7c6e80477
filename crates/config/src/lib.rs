//! Configuration of one device, read from a TOML file.
//!
//! Contract: [`load`] either returns a fully validated [`Config`] or an error that names the
//! file, the key and how to fix it. Unknown keys are errors (a misspelt key must never be
//! silently ignored on a roadside unit). Relative paths in the file are resolved against the
//! file's own directory, so a config can be moved together with its models and data.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors while loading a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check the path given with --config")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Deployment profile of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Stationary,
    Mobile,
}

impl Profile {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Stationary => "stationary",
            Profile::Mobile => "mobile",
        }
    }
}

/// Identity of the device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Inventory number (rule 26), carried in every record and topic.
    pub inventory: String,
    pub profile: Profile,
    /// Site identifier (stationary units).
    #[serde(default)]
    pub site: String,
    /// Fixed coordinates of a stationary site, `[lat, lon]`.
    #[serde(default)]
    pub coordinates: Option<[f64; 2]>,
}

/// One camera: any GStreamer source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    pub id: String,
    /// `file:///path.mp4`, `rtsp://host/stream`, `v4l2:///dev/video0`, or a plain file path.
    pub uri: String,
    /// Process at most this many frames per second (0 = every frame).
    #[serde(default)]
    pub max_fps: f32,
    /// Treat the source as live (RTSP, V4L2): capture time is the wall clock at capture.
    /// Files use their start time plus the frame timestamp.
    #[serde(default)]
    pub live: Option<bool>,
    /// While no plate is in view, recognise one frame in this many (a vehicle entering is
    /// still seen within a few frames); while one is, every frame. 1 = every frame always.
    #[serde(default = "default_idle_every")]
    pub idle_every: u32,
    /// While a plate is in view, recognise one frame in this many (1 = every frame).
    #[serde(default = "default_track_every")]
    pub track_every: u32,
}

/// Where ONNX Runtime runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    Cuda,
}

/// How plate texts are checked against known plate formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Grammar {
    /// No country assumed: exact matches are labelled, nothing is corrected.
    #[default]
    Generic,
    /// Kazakhstan and its neighbours: look-alike characters corrected where unambiguous.
    Kz,
}

/// The ONNX models and how to run them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// Directory holding the models; relative to the config file.
    #[serde(default = "default_models_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_plate_detector")]
    pub plate_detector: PathBuf,
    #[serde(default = "default_plate_reader")]
    pub plate_reader: PathBuf,
    #[serde(default = "default_vehicle_detector")]
    pub vehicle_detector: PathBuf,
    /// ONNX Runtime shared library; `ORT_DYLIB_PATH` overrides it.
    #[serde(default = "default_onnxruntime")]
    pub onnxruntime: PathBuf,
    /// Intra-op threads per session.
    #[serde(default = "default_threads")]
    pub intra_threads: usize,
    /// Plate detector confidence from which a box is taken as a plate.
    #[serde(default = "default_plate_conf")]
    pub plate_confidence: f32,
    /// Plate detector confidence from which a box is read and kept only when its reading
    /// looks like a plate (every character sure, letters and digits, 4 to 10 of them); set it
    /// to `plate_confidence` to keep only sure boxes.
    #[serde(default = "default_plate_candidate_conf")]
    pub plate_candidate_confidence: f32,
    /// Minimum vehicle detector confidence; below it a vehicle is not reported.
    #[serde(default = "default_vehicle_conf")]
    pub vehicle_confidence: f32,
    /// Least confidence for a vehicle's type; a vehicle found with less is reported with the
    /// type `unknown` rather than a guess.
    #[serde(default = "default_vehicle_class_conf")]
    pub vehicle_class_confidence: f32,
    /// The same for the heavy types (`bus`, `truck`, `tractor-trailer`), which decide offences
    /// of their own (class bans, weighing stations): default 0.65.
    #[serde(default = "default_heavy_vehicle_class_conf")]
    pub heavy_vehicle_class_confidence: f32,
    /// Plate grammar: `generic` (default) or `kz`.
    #[serde(default)]
    pub grammar: Grammar,
    /// Run the vehicle detector on a second thread beside plate detection and reading
    /// (default true); false runs the stages one after the other on one thread.
    #[serde(default = "default_true")]
    pub concurrent: bool,
    /// Run the vehicle detector on one recognised frame in this many (1 = every one), and on
    /// every frame while a passage has no vehicle of a known type yet; a passage takes the
    /// most confident vehicle seen over its frames.
    #[serde(default = "default_vehicle_every")]
    pub vehicle_every: u32,
    /// Where the models run: `cpu` (default) or `cuda` (needs a build with the `gpu` feature
    /// and the GPU build of ONNX Runtime).
    #[serde(default)]
    pub execution_provider: ExecutionProvider,
}

/// Local storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// SQLite queue file; relative to the config file.
    pub queue: PathBuf,
    /// Disk quota of the queue in MiB (0: none). When it is reached, delivered rows go first,
    /// then images and events of undelivered passages, violations last; every drop is counted
    /// and raised as a fault.
    #[serde(default = "default_quota_mb")]
    pub quota_mb: f64,
    /// Evidence images kept with each event: `overview` (the whole frame) and/or `plate`.
    #[serde(default = "default_evidence")]
    pub evidence: Vec<EvidenceKind>,
    /// JPEG quality of evidence images, 1-100.
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u8,
}

/// Kinds of evidence image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceKind {
    Overview,
    Plate,
}

impl EvidenceKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Overview => "overview",
            EvidenceKind::Plate => "plate",
        }
    }
}

impl Storage {
    /// The quota in bytes, `None` when unlimited.
    #[must_use]
    pub fn quota_bytes(&self) -> Option<u64> {
        (self.quota_mb > 0.0).then_some((self.quota_mb * 1024.0 * 1024.0) as u64)
    }
}

/// Link to the central side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uplink {
    /// `mqtt://host:port`.
    pub broker: String,
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Seconds to wait for the central acknowledgement before sending an event again.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_s: f64,
    /// Most events in flight (sent, not yet acknowledged).
    #[serde(default = "default_inflight")]
    pub max_inflight: usize,
    /// Events per second at most for the backlog (events queued before the link came up);
    /// live events are not limited and go first.
    #[serde(default = "default_backlog_rate")]
    pub backlog_rate: f64,
}

/// The whole device configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub device: Device,
    #[serde(rename = "camera")]
    pub cameras: Vec<Camera>,
    pub models: Models,
    pub storage: Storage,
    pub uplink: Uplink,
}

fn default_track_every() -> u32 {
    2
}
fn default_vehicle_every() -> u32 {
    3
}
fn default_true() -> bool {
    true
}
fn default_idle_every() -> u32 {
    3
}
fn default_models_dir() -> PathBuf {
    PathBuf::from("../models")
}
fn default_plate_detector() -> PathBuf {
    PathBuf::from("plate_detector.onnx")
}
fn default_plate_reader() -> PathBuf {
    PathBuf::from("plate_reader.onnx")
}
fn default_vehicle_detector() -> PathBuf {
    PathBuf::from("vehicle_detector.onnx")
}
fn default_onnxruntime() -> PathBuf {
    PathBuf::from("libonnxruntime.so")
}
fn default_threads() -> usize {
    1
}
fn default_plate_conf() -> f32 {
    0.35
}
fn default_plate_candidate_conf() -> f32 {
    0.05
}
fn default_heavy_vehicle_class_conf() -> f32 {
    0.65
}
fn default_vehicle_conf() -> f32 {
    0.35
}
fn default_quota_mb() -> f64 {
    2048.0
}
fn default_evidence() -> Vec<EvidenceKind> {
    vec![EvidenceKind::Overview, EvidenceKind::Plate]
}
fn default_jpeg_quality() -> u8 {
    85
}
fn default_vehicle_class_conf() -> f32 {
    0.5
}
fn default_prefix() -> String {
    "anpr/v1".to_string()
}
fn default_ack_timeout() -> f64 {
    10.0
}
fn default_backlog_rate() -> f64 {
    2000.0
}
fn default_inflight() -> usize {
    256
}

impl Models {
    /// Absolute path of a model file named in this section.
    #[must_use]
    pub fn path(&self, file: &Path) -> PathBuf {
        self.dir.join(file)
    }
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates configuration text; `path` is used for messages and to resolve
/// relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: describe_toml_error(&e),
    })?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    cfg.models.dir = base.join(&cfg.models.dir);
    cfg.storage.queue = base.join(&cfg.storage.queue);
    for cam in &mut cfg.cameras {
        if !cam.uri.contains("://") {
            cam.uri = base.join(&cam.uri).display().to_string();
        }
    }
    validate(&cfg, path)?;
    Ok(cfg)
}

fn describe_toml_error(e: &toml::de::Error) -> String {
    let msg = e.message().to_string();
    let hint = if msg.contains("unknown field") {
        "; remove the key or fix its spelling (see config/example.toml for every key)"
    } else if msg.contains("invalid type") {
        "; give the value the type shown in config/example.toml"
    } else if msg.contains("missing field") {
        "; add the key (see config/example.toml)"
    } else {
        ""
    };
    match e.span() {
        Some(span) => format!("{msg} (at byte {}){hint}", span.start),
        None => format!("{msg}{hint}"),
    }
}

fn validate(cfg: &Config, path: &Path) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: &str| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        message: message.to_string(),
    };
    let inv = &cfg.device.inventory;
    if inv.is_empty()
        || !inv
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            "device.inventory",
            "must be a non-empty inventory number of letters, digits, '-' or '_' (it becomes part of MQTT topics)",
        ));
    }
    if cfg.cameras.is_empty() {
        return Err(invalid(
            "camera",
            "at least one [[camera]] section with `id` and `uri` is required",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, cam) in cfg.cameras.iter().enumerate() {
        if cam.id.is_empty() || !seen.insert(cam.id.clone()) {
            return Err(invalid(
                &format!("camera[{i}].id"),
                "every camera needs a unique, non-empty id",
            ));
        }
        if cam.uri.trim().is_empty() {
            return Err(invalid(&format!("camera[{i}].uri"), "must not be empty"));
        }
        if !(1..=25).contains(&cam.idle_every) {
            return Err(invalid(
                &format!("camera[{i}].idle_every"),
                "must be between 1 (every frame) and 25",
            ));
        }
        if !(1..=6).contains(&cam.track_every) {
            return Err(invalid(
                &format!("camera[{i}].track_every"),
                "must be between 1 (every frame) and 6",
            ));
        }
        if !(0.0..=240.0).contains(&cam.max_fps) {
            return Err(invalid(
                &format!("camera[{i}].max_fps"),
                "must be between 0 (every frame) and 240",
            ));
        }
    }
    if !(1..=10).contains(&cfg.models.vehicle_every) {
        return Err(invalid("models.vehicle_every", "must be between 1 and 10"));
    }
    if cfg.models.intra_threads == 0 || cfg.models.intra_threads > 64 {
        return Err(invalid("models.intra_threads", "must be between 1 and 64"));
    }
    for (key, v) in [
        ("models.plate_confidence", cfg.models.plate_confidence),
        (
            "models.plate_candidate_confidence",
            cfg.models.plate_candidate_confidence,
        ),
        ("models.vehicle_confidence", cfg.models.vehicle_confidence),
        (
            "models.vehicle_class_confidence",
            cfg.models.vehicle_class_confidence,
        ),
        (
            "models.heavy_vehicle_class_confidence",
            cfg.models.heavy_vehicle_class_confidence,
        ),
    ] {
        if !(0.0..1.0).contains(&v) {
            return Err(invalid(key, "must be a confidence between 0 and 1"));
        }
    }
    if cfg.models.plate_candidate_confidence > cfg.models.plate_confidence {
        return Err(invalid(
            "models.plate_candidate_confidence",
            "must not be above models.plate_confidence",
        ));
    }
    if !cfg.uplink.broker.starts_with("mqtt://") {
        return Err(invalid(
            "uplink.broker",
            "must be an mqtt:// URL such as mqtt://127.0.0.1:1883",
        ));
    }
    if cfg.uplink.ack_timeout_s <= 0.0 {
        return Err(invalid("uplink.ack_timeout_s", "must be positive"));
    }
    if cfg.uplink.backlog_rate.is_nan() || cfg.uplink.backlog_rate < 1.0 {
        return Err(invalid(
            "uplink.backlog_rate",
            "must be at least 1 event per second",
        ));
    }
    if cfg.storage.quota_mb.is_nan() || cfg.storage.quota_mb < 0.0 {
        return Err(invalid(
            "storage.quota_mb",
            "must be a size in MiB, or 0 for no quota",
        ));
    }
    if !(1..=100).contains(&cfg.storage.jpeg_quality) {
        return Err(invalid("storage.jpeg_quality", "must be between 1 and 100"));
    }
    if cfg.uplink.max_inflight == 0 {
        return Err(invalid("uplink.max_inflight", "must be at least 1"));
    }
    if cfg.device.profile == Profile::Stationary && cfg.device.coordinates.is_none() {
        return Err(invalid(
            "device.coordinates",
            "a stationary unit needs its site coordinates as [lat, lon]",
        ));
    }
    if let Some([lat, lon]) = cfg.device.coordinates
        && (!(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon))
    {
        return Err(invalid(
            "device.coordinates",
            "must be [lat, lon] in degrees",
        ));
    }
    Ok(())
}

impl Uplink {
    /// Host and port of the broker URL.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let rest = self.broker.trim_start_matches("mqtt://");
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("bad port in broker URL {}", self.broker))?;
        Ok((host.to_string(), port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[device]
inventory = "KZ-ICD-0001"
profile = "stationary"
site = "A2-km-12"
coordinates = [43.238, 76.945]

[[camera]]
id = "cam1"
uri = "demo.mp4"

[models]

[storage]
queue = "queue.sqlite"

[uplink]
broker = "mqtt://127.0.0.1:1883"
"#;

    #[test]
    fn a_valid_config_loads_with_defaults_and_resolved_paths() {
        let cfg = parse(GOOD, Path::new("/etc/anpr/device.toml")).unwrap();
        assert_eq!(cfg.device.inventory, "KZ-ICD-0001");
        assert_eq!(cfg.models.intra_threads, 1);
        assert_eq!(cfg.storage.queue, PathBuf::from("/etc/anpr/queue.sqlite"));
        assert_eq!(cfg.uplink.topic_prefix, "anpr/v1");
        assert_eq!(
            cfg.uplink.host_port().unwrap(),
            ("127.0.0.1".to_string(), 1883)
        );
    }

    #[test]
    fn storage_defaults_to_a_2_gib_quota_and_both_evidence_images() {
        let cfg = parse(GOOD, Path::new("/etc/anpr/device.toml")).unwrap();
        assert_eq!(cfg.storage.quota_bytes(), Some(2048 * 1024 * 1024));
        assert_eq!(
            cfg.storage.evidence,
            [EvidenceKind::Overview, EvidenceKind::Plate]
        );
        let text = GOOD.replace("[storage]", "[storage]\nquota_mb = 0\nevidence = []");
        let cfg = parse(&text, Path::new("dev.toml")).unwrap();
        assert_eq!(cfg.storage.quota_bytes(), None);
        assert!(cfg.storage.evidence.is_empty());
        let text = GOOD.replace("[storage]", "[storage]\nquota_mb = -5");
        let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
        assert!(err.contains("storage.quota_mb"), "{err}");
        let text = GOOD.replace("[storage]", "[storage]\nevidence = [\"thumbnail\"]");
        let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
        assert!(err.contains("thumbnail"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_file_and_key() {
        let text = GOOD.replace("site = ", "sitee = ");
        let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
        assert!(err.contains("dev.toml"), "{err}");
        assert!(err.contains("sitee"), "{err}");
        assert!(err.contains("remove the key"), "{err}");
    }

    #[test]
    fn a_wrong_type_is_an_error_with_a_fix() {
        let text = GOOD.replace("[models]", "[models]\nintra_threads = \"two\"");
        let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
        assert!(err.contains("invalid type"), "{err}");
        assert!(
            err.contains("intra_threads") || err.contains("byte"),
            "{err}"
        );
    }

    #[test]
    fn a_stationary_unit_without_coordinates_is_rejected() {
        let text = GOOD.replace("coordinates = [43.238, 76.945]", "");
        let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
        assert!(err.contains("device.coordinates"), "{err}");
    }

    #[test]
    fn a_bad_inventory_number_is_rejected() {
        let text = GOOD.replace("KZ-ICD-0001", "a/b");
        let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
        assert!(err.contains("device.inventory"), "{err}");
    }

    #[test]
    fn weak_plate_boxes_are_verified_by_default_and_the_threshold_is_checked() {
        let cfg = parse(GOOD, Path::new("dev.toml")).unwrap();
        assert!(cfg.models.plate_candidate_confidence < cfg.models.plate_confidence);
        let text = GOOD.replace("[models]", "[models]\nplate_candidate_confidence = 0.5");
        let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
        assert!(err.contains("plate_candidate_confidence"), "{err}");
        let text = GOOD.replace(
            "[models]",
            "[models]\nplate_confidence = 0.5\nplate_candidate_confidence = 0.5",
        );
        assert!(parse(&text, Path::new("dev.toml")).is_ok());
    }
}
