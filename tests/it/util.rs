//! Shared pieces of the end-to-end tests: real models, a real broker, the real receiver.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anpr_pipeline::{DeviceCounters, RunOptions, Summary};
use anpr_testkit::{BrokerPki, Mosquitto};
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
        "SHA256SUMS",
    ] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run deploy/setup.sh (models/fetch.sh) first",
            dir.join(f).display()
        );
    }
    dir
}

/// A recognizer of the installed models with the plate detector `plate_detector`, no vehicle
/// detector, generic mode and the default thresholds.
pub fn recognizer_config(plate_detector: PathBuf) -> anpr_vision::RecognizerConfig {
    let models = models_dir();
    anpr_vision::RecognizerConfig {
        plate_detector,
        plate_reader: models.join("plate_reader.onnx"),
        vehicle_detector: None,
        vehicle_types: None,
        vehicle_type_confidence: 0.5,
        intra_threads: 1,
        plate_confidence: 0.35,
        plate_candidate_confidence: 0.05,
        vehicle_confidence: 0.35,
        vehicle_class_confidence: 0.5,
        heavy_vehicle_class_confidence: 0.65,
        grammar: anpr_vision::GrammarMode::Generic,
        round_glyph: anpr_vision::RoundGlyph::ByPlate,
        concurrent: true,
        second_look: anpr_vision::SecondLook::Missing,
        execution_provider: anpr_vision::ExecutionProvider::Cpu,
    }
}

/// Where a test device's uplink goes, as its config's `[uplink]` lines say it.
pub trait Link {
    /// `broker = ...` and the lines that go with it, for device `inventory`.
    fn uplink_lines(&self, inventory: &str) -> String;
}

/// A plain `mqtt://` URL (allowed as for a lab), for a device that never connects or a plain
/// broker.
impl Link for str {
    fn uplink_lines(&self, _inventory: &str) -> String {
        format!("broker = \"{self}\"\nallow_plaintext = true\n")
    }
}

/// The broker itself: over TLS with the device's identity from its PKI (issued the first
/// time), or plain on a plain broker.
impl Link for Mosquitto {
    fn uplink_lines(&self, inventory: &str) -> String {
        match self.device_tls(inventory).unwrap() {
            Some(tls) => tls_lines(&self.url(), &tls),
            None => self.url().as_str().uplink_lines(inventory),
        }
    }
}

/// TLS to another address (a signal-loss proxy, or a port a broker of `pki` will listen on
/// later) with the device's identity from `pki`.
pub struct Via<'a> {
    pub url: String,
    pub pki: &'a BrokerPki,
}

impl<'a> Via<'a> {
    /// `mqtts://<addr>` with the identities of `pki`.
    pub fn new(addr: impl std::fmt::Display, pki: &'a BrokerPki) -> Self {
        Self {
            url: format!("mqtts://{addr}"),
            pki,
        }
    }
}

impl Link for Via<'_> {
    fn uplink_lines(&self, inventory: &str) -> String {
        tls_lines(&self.url, &self.pki.device(inventory).unwrap().tls)
    }
}

fn tls_lines(url: &str, tls: &anpr_pki::TlsFiles) -> String {
    format!(
        "broker = \"{url}\"\ntls_ca = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        tls.ca.display(),
        tls.cert.display(),
        tls.key.display()
    )
}

/// The central receiver's TLS identity on `broker` (none on a plain broker).
pub fn central_tls(broker: &Mosquitto) -> Option<anpr_pki::ClientTls> {
    broker
        .central_tls()
        .map(|files| anpr_pki::ClientTls::load(&files).unwrap())
}

/// Writes a device config for a test into `dir` and returns its path; its uplink goes to
/// `broker` (a [`Link`]: the broker, a [`Via`], or a plain URL).
pub fn write_config(
    dir: &Path,
    inventory: &str,
    camera_uri: &str,
    broker: &(impl Link + ?Sized),
) -> PathBuf {
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
{link}ack_timeout_s = 3.0

{security}"#,
        models = models_dir().display(),
        link = broker.uplink_lines(inventory),
        security = security_lines(dir, inventory)
    );
    let path = dir.join("device.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The signing keys of the tests in one directory, made the first time they are asked for
/// (each test has its own directory, so its own keys): the central receiver's pair
/// (`keys/central.key`, `keys/central.pub`) and one pair per device (`keys/<inventory>.key`,
/// its public key in the receiver's devices directory `keys/devices/<inventory>.pub`). The
/// queue, the receiver's database and the device's config of a test sit in that directory, so
/// each finds the keys from its own path.
pub struct Keys {
    dir: PathBuf,
}

/// Serialises making keys (tests run on several threads).
static MAKING_KEYS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Makes a key pair unless its private key is there.
fn ensure_pair(private: &Path, public: &Path) {
    let _guard = MAKING_KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !private.exists() {
        anpr_trust::generate_signing_key(private, public).unwrap();
    }
}

/// The keys of the test directory `dir` (the central pair made if missing).
pub fn keys(dir: &Path) -> Keys {
    let k = Keys {
        dir: dir.join("keys"),
    };
    ensure_pair(&k.central_key(), &k.central_pub());
    k
}

impl Keys {
    pub fn central_key(&self) -> PathBuf {
        self.dir.join("central.key")
    }

    pub fn central_pub(&self) -> PathBuf {
        self.dir.join("central.pub")
    }

    /// The receiver's devices directory.
    pub fn devices(&self) -> PathBuf {
        self.dir.join("devices")
    }

    /// The private key of device `inventory` (made with its public key if missing).
    pub fn device_key(&self, inventory: &str) -> PathBuf {
        let private = self.dir.join(format!("{inventory}.key"));
        ensure_pair(&private, &self.devices().join(format!("{inventory}.pub")));
        private
    }

    /// The signing key of device `inventory`.
    pub fn device_signer(&self, inventory: &str) -> anpr_trust::SigningKey {
        anpr_trust::load_signing_key(&self.device_key(inventory)).unwrap()
    }

    /// The central receiver's signing key (for tests that answer as the receiver would).
    pub fn central_signer(&self) -> anpr_trust::SigningKey {
        anpr_trust::load_signing_key(&self.central_key()).unwrap()
    }
}

/// The `[security]` section of device `inventory` whose config is in `dir`.
pub fn security_lines(dir: &Path, inventory: &str) -> String {
    let k = keys(dir);
    format!(
        "[security]\ndevice_key = \"{}\"\ncentral_public_key = \"{}\"\n",
        k.device_key(inventory).display(),
        k.central_pub().display()
    )
}

/// The directory a queue or database file is in (the test's directory).
fn dir_of(file: &Path) -> &Path {
    file.parent().unwrap()
}

/// The queue at `path`, signing as device `inventory` does (the keys of the queue's directory).
pub fn signed_store(path: &Path, inventory: &str) -> anpr_store::Store {
    anpr_store::Store::open(path)
        .unwrap()
        .with_signer(keys(dir_of(path)).device_signer(inventory))
}

/// The reference receiver running on a broker. While it runs, every message on the broker
/// (events, evidence, acks, health, last wills, commands) is checked against the committed
/// interface, `docs/interface/` ([`InterfaceCheck`]).
pub struct Central {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), anpr_central::CentralError>>,
    pub db: PathBuf,
    check: InterfaceCheck,
}

/// Checks every message under `anpr/v1` on a broker against `docs/interface/`
/// ([`anpr_testkit::SchemaWatch`]); the first that does not validate fails the test, with its
/// topic and the path of the failure, at [`InterfaceCheck::finish`] or when dropped.
pub struct InterfaceCheck(Option<anpr_testkit::SchemaWatch>);

impl InterfaceCheck {
    /// Starts checking, and waits (at most 5 s) until the broker has granted the subscription.
    pub fn start(broker: &Mosquitto) -> Self {
        let watch = anpr_testkit::SchemaWatch::start(broker, "anpr/v1").unwrap();
        let _ = watch.wait_subscribed(Duration::from_secs(5));
        Self(Some(watch))
    }

    /// Stops checking; panics with the first message that did not validate.
    pub fn finish(mut self) -> usize {
        self.0.take().map_or(0, |watch| {
            watch
                .finish()
                .unwrap_or_else(|why| panic!("{}", Self::explain(&why)))
        })
    }

    fn explain(why: &str) -> String {
        format!(
            "a message on the broker does not follow the committed interface (docs/interface/): {why}. If a type changed on purpose, regenerate the interface with `UPDATE_INTERFACE=1 cargo test -p anpr-interface --test interface` (and see docs/interface/README.md on versions)"
        )
    }
}

impl Drop for InterfaceCheck {
    fn drop(&mut self) {
        if let Some(watch) = self.0.take()
            && let Err(why) = watch.finish()
            && !std::thread::panicking()
        {
            panic!("{}", Self::explain(&why));
        }
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Central {
    /// The receiver on `broker`, as `anpr-central` over TLS (plain on a plain broker); it
    /// signs its acknowledgements with the central key of the database's directory and knows
    /// the devices of that directory ([`Keys`]).
    pub fn start(broker: &Mosquitto, db: PathBuf) -> Self {
        Self::start_with_check(broker, db, true)
    }

    /// As [`Central::start`], without checking the messages on the broker against the
    /// interface: for a test that publishes malformed messages on purpose (their refusal is
    /// what it tests).
    pub fn start_unchecked(broker: &Mosquitto, db: PathBuf) -> Self {
        Self::start_with_check(broker, db, false)
    }

    fn start_with_check(broker: &Mosquitto, db: PathBuf, checked: bool) -> Self {
        let (stop, rx) = watch::channel(false);
        let k = keys(dir_of(&db));
        // Devices come later in some tests; their keys land here when they do.
        std::fs::create_dir_all(k.devices()).unwrap();
        let cfg = anpr_central::CentralConfig {
            host: "127.0.0.1".into(),
            port: broker.port(),
            tls: central_tls(broker),
            prefix: "anpr/v1".into(),
            db: db.clone(),
            client_id: format!(
                "central-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ),
            signing_key: k.central_signer(),
            devices: k.devices(),
        };
        let check = if checked {
            InterfaceCheck::start(broker)
        } else {
            InterfaceCheck(None)
        };
        let task = tokio::spawn(anpr_central::run(cfg, rx, None));
        Self {
            stop,
            task,
            db,
            check,
        }
    }

    /// Stops the receiver; fails the test if a message seen while it ran did not follow the
    /// interface.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
        self.check.finish();
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
    let mut event = anpr_types::sample::recorded_passage(inventory, seq);
    event.device.profile = "mobile".into();
    event.device.site = String::new();
    event.plate.text = format!("{:03}ABC01", seq % 1000);
    event
}

/// Appends `n` synthetic events to the queue at `path`, signed as device `inventory`.
pub fn append_events(path: &Path, inventory: &str, n: usize) {
    let mut store = signed_store(path, inventory);
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
    /// The uplink of device `inventory` on `broker`, over TLS with the device's identity
    /// (plain on a plain broker).
    pub fn start(queue: &Path, inventory: &str, broker: &Mosquitto, ack_timeout: Duration) -> Self {
        Self::start_with_rate(queue, inventory, broker, ack_timeout, 100_000.0)
    }

    /// As `start`, with the backlog limited to `backlog_rate` events per second.
    pub fn start_with_rate(
        queue: &Path,
        inventory: &str,
        broker: &Mosquitto,
        ack_timeout: Duration,
        backlog_rate: f64,
    ) -> Self {
        Self::start_with(queue, inventory, broker, ack_timeout, backlog_rate, None)
    }

    /// As `start_with_rate`, reporting `quota_bytes` as the queue's quota in health messages.
    pub fn start_with(
        queue: &Path,
        inventory: &str,
        broker: &Mosquitto,
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
        let tls = broker
            .device_tls(inventory)
            .unwrap()
            .map(|files| anpr_pki::ClientTls::load(&files).unwrap());
        let cfg = anpr_uplink::UplinkConfig {
            host: "127.0.0.1".into(),
            port: broker.port(),
            failover: Vec::new(),
            tls,
            client_id: format!("anpr-{inventory}"),
            topics: anpr_types::Topics::new("anpr/v1", inventory),
            queue: queue.to_path_buf(),
            ack_timeout,
            max_inflight: 256,
            backlog_rate,
            quota_bytes,
            central_key: anpr_trust::load_verifying_key(&keys(dir_of(queue)).central_pub())
                .unwrap(),
            models: Vec::new(),
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

/// The page at `url` (http:// or file://) as headless Chromium renders it: its DOM after load.
pub async fn chromium_dom(url: String) -> String {
    let version = std::process::Command::new("chromium")
        .arg("--version")
        .output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "chromium is not installed: run deploy/setup.sh (it installs the Debian package chromium)"
    );
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &url,
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_mins(1), run)
        .await
        .expect("chromium answered within a minute")
        .unwrap();
    assert!(out.status.success(), "chromium failed: {:?}", out.status);
    let dom = String::from_utf8(out.stdout).unwrap();
    assert!(dom.contains("<html"), "no page from chromium: {dom}");
    dom
}
