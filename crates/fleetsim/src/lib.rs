//! A fleet of simulated devices in one process, and the report of what became of their events.
//!
//! # Contract
//!
//! - Each simulated device is the device's real delivery path without cameras: its own SQLite
//!   queue ([`anpr_store::Store`], signing with its own key) and its own uplink
//!   ([`anpr_uplink::run`], over TLS with its own certificate), issued by the PKI
//!   ([`anpr_pki::Pki::issue_device`]; identities already there are reused, so a PKI folder
//!   kept per fleet size is issued once). The uplink has no broker-specific branch: the same
//!   code talks to mosquitto and to the NATS cluster's MQTT listener.
//! - Recording ([`FleetConfig::interval`]): each device records one passage every 2 to 10 s
//!   (uniformly at random from a seeded generator, so two runs with one seed record at the
//!   same moments), and one passage in [`FleetConfig::violation_one_in`] is followed by a
//!   violation with two JPEG images of a few kilobytes (`overview`, `plate`), each carrying
//!   a comment naming its event, so no two images share a sha256. The passage and its
//!   violation are appended in one transaction, as the recognizer does.
//! - Appends are made by a small pool of threads ([`FleetConfig::append_threads`]), each
//!   device always on the same one; a queue is opened for each append and closed after it
//!   (so the open files stay one connection per device, the uplink's).
//! - Link faults: with [`FleetConfig::netsim`], each broker is reached through one
//!   signal-loss proxy ([`anpr_netsim::Proxy`]) following the script; devices are assigned
//!   to brokers round-robin. With [`FleetConfig::failover`], each device is given the other
//!   brokers (or their proxies) as its failover list, in order after its own, as a device's
//!   `[uplink] failover` would.
//! - [`Fleet::finish`] stops recording at the end of [`FleetConfig::duration`], then drains:
//!   every uplink delivers what its queue holds (events and images) and stops, or stops at the
//!   drain deadline with rows still queued.
//! - [`Finished::report`] counts, per device and in total: events recorded (what the queue
//!   committed), acknowledged (the queue's own count of delivered rows), stored (what the
//!   central side holds, asked of a [`StoredOracle`]: the single receiver's SQLite,
//!   [`CentralDb`], the scaled receiver's PostgreSQL and object store, [`ArchiveDb`], or any
//!   other store), duplicates (stored rows beyond one per event: 0 when
//!   the receiver deduplicates), lost (recorded and not stored), images recorded, stored with
//!   the sha256 recorded, and stored with another; and the capture-to-stored latency
//!   percentiles (the stored `received_at` minus `captured_at`). [`Finished::recording`]
//!   gives what the fleet recorded as a serializable [`Recording`] (each device's queue file
//!   and the events it committed), and [`Recording::merge`] joins those of a fleet split over
//!   processes ([`FleetConfig::first`]) into one, reported the same way.
//! - The fleet demo ([`demo`], `anpr fleet demo`): the distributed central side
//!   ([`anpr_cluster`]) and receiver replicas started on loopback, a fleet run against them
//!   with one fault injected if asked, and the report with the CPU and memory of each part;
//!   its own contract is in the module.
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/queues/<inventory>.sqlite (+ -wal, -shm)   each device's queue (refused if present)
//! <pki>/devices/<inventory>/...                    each device's identity (anpr_pki layout)
//! ```
//!
//! # Costs
//!
//! Every uplink has one OS thread owning its queue connection and runs a pass every 20 ms on
//! the shared tokio runtime: these are the uplink's own, measured in docs/fleet.md, not
//! changed here.

pub mod demo;
mod images;
mod oracle;
mod record;
mod report;
mod rng;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anpr_uplink::{Counters, Mode, UplinkConfig};
use tokio::sync::watch;

pub use oracle::{ArchiveDb, CentralDb, OracleError, StoredEvent, StoredImage, StoredOracle};
pub use report::{Counts, DeviceReport, FleetReport};

/// Errors of the fleet simulator: each says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    #[error("the fleet needs at least one device and one broker (given {devices} and {brokers})")]
    Empty { devices: usize, brokers: usize },
    #[error(
        "inventory prefix {prefix:?} cannot make inventory numbers: {source}; use letters, digits, '-' or '_' and no `anpr-`"
    )]
    Prefix {
        prefix: String,
        source: anpr_pki::PkiError,
    },
    #[error("device {inventory}: {source}")]
    Identity {
        inventory: String,
        source: anpr_pki::PkiError,
    },
    #[error("device {inventory}: signing key: {source}")]
    Key {
        inventory: String,
        source: anpr_trust::TrustError,
    },
    #[error(
        "the queues folder {path} already exists; remove it or give another fleet folder (a fleet starts with empty queues, so what it recorded is what it reports)"
    )]
    QueuesExist { path: PathBuf },
    #[error("cannot create {path}: {source}; check that its parent is writable")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("device {inventory}: queue: {source}")]
    Queue {
        inventory: String,
        source: anpr_store::StoreError,
    },
    #[error(
        "broker {host}:{port}: the signal-loss simulator only runs on loopback; give 127.0.0.1 or run without a netsim script"
    )]
    NotLoopback { host: String, port: u16 },
    #[error("signal-loss simulator: {0}")]
    Netsim(#[from] anpr_netsim::NetsimError),
    #[error("the oracle of what is stored failed: {0}")]
    Oracle(OracleError),
    #[error("cannot start the append pool: {0}")]
    Thread(std::io::Error),
    #[error("broker {broker:?} is not `host:port`; give each broker as 127.0.0.1:1883")]
    Broker { broker: String },
}

/// What the fleet is.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The fleet's working folder: queues go in `<dir>/queues` (which must not exist yet).
    pub dir: PathBuf,
    /// The PKI (made with [`anpr_pki::Pki::init`]); missing device identities are issued in it.
    pub pki: PathBuf,
    pub devices: usize,
    /// Index of this fleet's first device in a fleet split over processes (0 otherwise):
    /// its devices are `first` .. `first + devices`, and device `i` takes broker `i` mod the
    /// number of brokers, as it would in one process.
    pub first: usize,
    /// Inventory numbers are `<prefix>-00001`, `<prefix>-00002`, ...
    pub inventory_prefix: String,
    /// The devices' topic prefix, `anpr/v1`.
    pub topic_prefix: String,
    /// Brokers `(host, port)`, assigned to devices round-robin.
    pub brokers: Vec<(String, u16)>,
    /// Each device fails over to the other brokers, in order after its own (the device on
    /// broker 1 of 3 to brokers 2 and 0); false: each device has its broker only.
    pub failover: bool,
    /// One passage per device every `interval.0` to `interval.1`, uniformly at random.
    pub interval: (Duration, Duration),
    /// One passage in this many is followed by a violation with two images (0: none).
    pub violation_one_in: u32,
    pub seed: u64,
    /// How long the devices record.
    pub duration: Duration,
    /// A signal-loss script applied through one proxy per broker, and its time scale.
    pub netsim: Option<(anpr_netsim::Script, f64)>,
    pub ack_timeout: Duration,
    /// Threads appending to the queues.
    pub append_threads: usize,
}

impl FleetConfig {
    /// A fleet of `devices` in `dir` with the PKI `pki` on `brokers`, recording for
    /// `duration` at the realistic rate (a passage every 2–10 s, a violation in 20).
    #[must_use]
    pub fn new(
        dir: &Path,
        pki: &Path,
        devices: usize,
        brokers: Vec<(String, u16)>,
        duration: Duration,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            pki: pki.to_path_buf(),
            devices,
            first: 0,
            inventory_prefix: "SIM".into(),
            topic_prefix: "anpr/v1".into(),
            brokers,
            failover: false,
            interval: (Duration::from_secs(2), Duration::from_secs(10)),
            violation_one_in: 20,
            seed: 1,
            duration,
            netsim: None,
            ack_timeout: Duration::from_secs(10),
            append_threads: 4,
        }
    }

    /// The inventory number of this fleet's device `i` (0-based, counted from
    /// [`FleetConfig::first`]).
    #[must_use]
    pub fn inventory(&self, i: usize) -> String {
        inventory(&self.inventory_prefix, self.first + i)
    }

    /// Every device's inventory number.
    #[must_use]
    pub fn inventories(&self) -> Vec<String> {
        (0..self.devices).map(|i| self.inventory(i)).collect()
    }
}

fn inventory(prefix: &str, i: usize) -> String {
    format!("{prefix}-{:05}", i + 1)
}

/// Issues the identities of devices `<prefix>-00001` .. `<prefix>-<n>` in the PKI at `pki`
/// that do not have one yet (on a few threads: each identity is seven synced files), and
/// returns how many were issued.
pub fn ensure_identities(pki: &Path, prefix: &str, n: usize) -> Result<usize, FleetError> {
    let pki = anpr_pki::Pki::open(pki).map_err(|source| FleetError::Identity {
        inventory: String::new(),
        source,
    })?;
    anpr_pki::check_inventory(&inventory(prefix, 0)).map_err(|source| FleetError::Prefix {
        prefix: prefix.to_string(),
        source,
    })?;
    let issued = AtomicU64::new(0);
    let threads = 8.min(n.max(1));
    let results: Vec<Result<(), FleetError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (pki, issued) = (&pki, &issued);
                s.spawn(move || {
                    for i in (t..n).step_by(threads) {
                        let inv = inventory(prefix, i);
                        let files = pki.device(&inv).map_err(|source| FleetError::Identity {
                            inventory: inv.clone(),
                            source,
                        })?;
                        if files.tls.key.exists() && files.signing_key.exists() {
                            continue;
                        }
                        pki.issue_device(&inv)
                            .map_err(|source| FleetError::Identity {
                                inventory: inv.clone(),
                                source,
                            })?;
                        issued.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(())))
            .collect()
    });
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(issued.load(Ordering::Relaxed) as usize)
}

/// One simulated device.
pub(crate) struct Device {
    pub inventory: String,
    pub queue: PathBuf,
    /// `host:port` of the broker it was given (before any proxy).
    pub broker: String,
    pub signer: anpr_trust::SigningKey,
    pub counters: Arc<Counters>,
    /// What its queue committed, in order.
    pub recorded: std::sync::Mutex<Vec<record::Recorded>>,
    pub append_errors: AtomicU64,
}

/// Live figures of a running fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Events committed to the queues.
    pub recorded: u64,
    /// Events acknowledged by the central side (the uplinks' counters).
    pub acknowledged: u64,
    pub images_acknowledged: u64,
    /// Devices whose link is up now.
    pub connected: u64,
    pub resent: u64,
    pub connection_errors: u64,
    pub append_errors: u64,
}

impl Progress {
    /// Adds the figures of another part of a fleet split over processes.
    pub fn add(&mut self, o: &Self) {
        self.recorded += o.recorded;
        self.acknowledged += o.acknowledged;
        self.images_acknowledged += o.images_acknowledged;
        self.connected += o.connected;
        self.resent += o.resent;
        self.connection_errors += o.connection_errors;
        self.append_errors += o.append_errors;
    }
}

/// A running fleet.
pub struct Fleet {
    cfg: FleetConfig,
    devices: Arc<Vec<Arc<Device>>>,
    mode: watch::Sender<Mode>,
    uplinks: Vec<tokio::task::JoinHandle<Result<(), anpr_uplink::UplinkError>>>,
    recording: Arc<AtomicBool>,
    scheduler: tokio::task::JoinHandle<()>,
    pool: record::Pool,
    proxies: Vec<anpr_netsim::Proxy>,
    started: Instant,
}

impl Fleet {
    /// Issues the identities that are missing, creates the queues, starts the uplinks (and the
    /// proxies of a netsim script) and starts recording. Must run on a multi-threaded tokio
    /// runtime.
    pub async fn start(cfg: FleetConfig) -> Result<Self, FleetError> {
        if cfg.devices == 0 || cfg.brokers.is_empty() {
            return Err(FleetError::Empty {
                devices: cfg.devices,
                brokers: cfg.brokers.len(),
            });
        }
        let queues = cfg.dir.join("queues");
        if queues.exists() {
            return Err(FleetError::QueuesExist { path: queues });
        }
        std::fs::create_dir_all(&queues).map_err(|source| FleetError::Dir {
            path: queues.clone(),
            source,
        })?;
        let prepared = {
            let cfg = cfg.clone();
            tokio::task::spawn_blocking(move || prepare(&cfg))
                .await
                .map_err(|e| FleetError::Thread(std::io::Error::other(e.to_string())))??
        };
        let (central_key, devices) = prepared;
        let devices = Arc::new(devices);
        let proxies = start_proxies(&cfg).await?;
        let (mode, mode_rx) = watch::channel(Mode::Run);
        let mut uplinks = Vec::with_capacity(devices.len());
        let pki = anpr_pki::Pki::open(&cfg.pki).map_err(|source| FleetError::Identity {
            inventory: String::new(),
            source,
        })?;
        // Where devices connect: each broker, or its proxy.
        let addresses: Vec<(String, u16)> = if proxies.is_empty() {
            cfg.brokers.clone()
        } else {
            proxies
                .iter()
                .map(|p| (p.local_addr().ip().to_string(), p.local_addr().port()))
                .collect()
        };
        for (i, d) in devices.iter().enumerate() {
            let i = cfg.first + i;
            let n = addresses.len();
            let (host, port) = addresses[i % n].clone();
            let failover = if cfg.failover {
                (1..n).map(|k| addresses[(i + k) % n].clone()).collect()
            } else {
                Vec::new()
            };
            let files = pki
                .device(&d.inventory)
                .map_err(|source| FleetError::Identity {
                    inventory: d.inventory.clone(),
                    source,
                })?;
            let tls =
                anpr_pki::ClientTls::load(&files.tls).map_err(|source| FleetError::Identity {
                    inventory: d.inventory.clone(),
                    source,
                })?;
            let ucfg = UplinkConfig {
                host,
                port,
                failover,
                tls: Some(tls),
                client_id: format!("anpr-{}", d.inventory),
                topics: anpr_types::Topics::new(&cfg.topic_prefix, &d.inventory),
                queue: d.queue.clone(),
                ack_timeout: cfg.ack_timeout,
                max_inflight: 256,
                backlog_rate: 2000.0,
                quota_bytes: None,
                central_key,
                models: Vec::new(),
            };
            uplinks.push(tokio::spawn(anpr_uplink::run(
                ucfg,
                mode_rx.clone(),
                d.counters.clone(),
                None,
            )));
        }
        let pool = record::Pool::start(&devices, cfg.append_threads.max(1))?;
        let recording = Arc::new(AtomicBool::new(true));
        let scheduler = tokio::spawn(record::schedule(
            cfg.clone(),
            devices.len(),
            pool.sender(),
            recording.clone(),
        ));
        tracing::info!(
            devices = devices.len(),
            brokers = cfg.brokers.len(),
            "Fleet started."
        );
        Ok(Self {
            cfg,
            devices,
            mode,
            uplinks,
            recording,
            scheduler,
            pool,
            proxies,
            started: Instant::now(),
        })
    }

    /// The figures now, from the devices' counters.
    #[must_use]
    pub fn progress(&self) -> Progress {
        let mut p = Progress::default();
        for d in self.devices.iter() {
            p.recorded += d
                .recorded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len() as u64;
            let c = &d.counters;
            p.acknowledged += c.acked.load(Ordering::Relaxed);
            p.images_acknowledged += c.images_acked.load(Ordering::Relaxed);
            p.connected += u64::from(c.connected.load(Ordering::Relaxed));
            p.resent += c.resent.load(Ordering::Relaxed);
            p.connection_errors += c.connection_errors.load(Ordering::Relaxed);
            p.append_errors += d.append_errors.load(Ordering::Relaxed);
        }
        p
    }

    /// Each device's broker now, `host:port` (see [`Counters::broker`]), in device order.
    #[must_use]
    pub fn brokers_now(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.counters.broker()).collect()
    }

    /// Time since the fleet started recording.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The inventory numbers of the fleet.
    #[must_use]
    pub fn inventories(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.inventory.clone()).collect()
    }

    /// Waits for the end of the recording time, stops recording (every append made), then
    /// drains every uplink for at most `drain`.
    pub async fn finish(self, drain: Duration) -> Result<Finished, FleetError> {
        let end = self.started + self.cfg.duration;
        tokio::time::sleep_until(end.into()).await;
        self.recording.store(false, Ordering::SeqCst);
        let _ = self.scheduler.await;
        let recorded_s = self.started.elapsed().as_secs_f64();
        let pool = self.pool;
        tokio::task::spawn_blocking(move || pool.join())
            .await
            .map_err(|e| FleetError::Thread(std::io::Error::other(e.to_string())))?;
        let drain_started = Instant::now();
        let _ = self.mode.send(Mode::Drain {
            deadline: drain_started + drain,
        });
        for u in self.uplinks {
            match u.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "A simulated device's uplink stopped with an error.");
                }
                Err(e) => tracing::warn!(error = %e, "A simulated device's uplink task failed."),
            }
        }
        let drained_s = drain_started.elapsed().as_secs_f64();
        drop(self.proxies);
        Ok(Finished {
            devices: self.devices,
            recorded_s,
            drained_s,
        })
    }
}

/// Loads the central key, issues what is missing and creates every queue.
fn prepare(cfg: &FleetConfig) -> Result<(anpr_trust::VerifyingKey, Vec<Arc<Device>>), FleetError> {
    let issued = ensure_identities(&cfg.pki, &cfg.inventory_prefix, cfg.first + cfg.devices)?;
    if issued > 0 {
        tracing::info!(issued, "Device identities issued.");
    }
    let pki = anpr_pki::Pki::open(&cfg.pki).map_err(|source| FleetError::Identity {
        inventory: String::new(),
        source,
    })?;
    let central_key =
        anpr_trust::load_verifying_key(&pki.central().signing_pub).map_err(|source| {
            FleetError::Key {
                inventory: "anpr-central".into(),
                source,
            }
        })?;
    let mut devices = Vec::with_capacity(cfg.devices);
    for i in 0..cfg.devices {
        let inv = cfg.inventory(i);
        let files = pki.device(&inv).map_err(|source| FleetError::Identity {
            inventory: inv.clone(),
            source,
        })?;
        let signer =
            anpr_trust::load_signing_key(&files.signing_key).map_err(|source| FleetError::Key {
                inventory: inv.clone(),
                source,
            })?;
        let queue = cfg.dir.join("queues").join(format!("{inv}.sqlite"));
        // Created (and migrated) here, before the uplink and the append pool open it.
        anpr_store::Store::open(&queue).map_err(|source| FleetError::Queue {
            inventory: inv.clone(),
            source,
        })?;
        let (host, port) = &cfg.brokers[(cfg.first + i) % cfg.brokers.len()];
        devices.push(Arc::new(Device {
            inventory: inv,
            queue,
            broker: format!("{host}:{port}"),
            signer,
            counters: Arc::new(Counters::default()),
            recorded: std::sync::Mutex::new(Vec::new()),
            append_errors: AtomicU64::new(0),
        }));
    }
    Ok((central_key, devices))
}

/// One proxy per broker when the fleet has a netsim script.
async fn start_proxies(cfg: &FleetConfig) -> Result<Vec<anpr_netsim::Proxy>, FleetError> {
    let Some((script, scale)) = &cfg.netsim else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (host, port) in &cfg.brokers {
        let ip: IpAddr = if host == "localhost" {
            IpAddr::from([127, 0, 0, 1])
        } else {
            host.parse().map_err(|_| FleetError::NotLoopback {
                host: host.clone(),
                port: *port,
            })?
        };
        if !ip.is_loopback() {
            return Err(FleetError::NotLoopback {
                host: host.clone(),
                port: *port,
            });
        }
        out.push(
            anpr_netsim::Proxy::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                SocketAddr::new(ip, *port),
                script.clone(),
                *scale,
                // The proxies outlive the run: they stop with the fleet.
                Duration::from_hours(24),
            )
            .await?,
        );
    }
    Ok(out)
}

/// A fleet that stopped: its queues and what it recorded, ready for the report.
pub struct Finished {
    devices: Arc<Vec<Arc<Device>>>,
    recorded_s: f64,
    drained_s: f64,
}

impl Finished {
    /// What the fleet recorded, to be reported (or saved, and reported with the other parts
    /// of a fleet split over processes).
    #[must_use]
    pub fn recording(&self) -> Recording {
        Recording {
            devices: self
                .devices
                .iter()
                .map(|d| DeviceRecording {
                    inventory: d.inventory.clone(),
                    broker: d.broker.clone(),
                    queue: d.queue.clone(),
                    recorded: d
                        .recorded
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone(),
                    append_errors: d.append_errors.load(Ordering::Relaxed),
                })
                .collect(),
            recorded_s: self.recorded_s,
            drained_s: self.drained_s,
        }
    }

    /// The report ([`Recording::report`]).
    pub async fn report(&self, oracle: &impl StoredOracle) -> Result<FleetReport, FleetError> {
        self.recording().report(oracle).await
    }
}

/// What a stopped fleet recorded: each device's queue file and the events it committed.
/// Serializable, so the parts of a fleet split over processes are reported as one.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Recording {
    devices: Vec<DeviceRecording>,
    recorded_s: f64,
    drained_s: f64,
}

/// One device's part of a [`Recording`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct DeviceRecording {
    pub inventory: String,
    /// The broker it was given, `host:port`.
    pub broker: String,
    pub queue: PathBuf,
    /// What its queue committed, in order.
    pub recorded: Vec<record::Recorded>,
    pub append_errors: u64,
}

impl Recording {
    /// Devices in the recording.
    #[must_use]
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// The parts of one fleet as one recording: the devices in order of the parts, and the
    /// longest recording and drain.
    #[must_use]
    pub fn merge(parts: Vec<Self>) -> Self {
        let mut out = Self::default();
        for p in parts {
            out.devices.extend(p.devices);
            out.recorded_s = out.recorded_s.max(p.recorded_s);
            out.drained_s = out.drained_s.max(p.drained_s);
        }
        out
    }

    /// The report: each device's queue read for what it committed and what was acknowledged,
    /// and `oracle` asked what the central side stored.
    pub async fn report(&self, oracle: &impl StoredOracle) -> Result<FleetReport, FleetError> {
        let inventories: Vec<String> = self.devices.iter().map(|d| d.inventory.clone()).collect();
        let stored = oracle
            .stored(&inventories)
            .await
            .map_err(FleetError::Oracle)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            report::build(&this.devices, stored, this.recorded_s, this.drained_s)
        })
        .await
        .map_err(|e| FleetError::Thread(std::io::Error::other(e.to_string())))?
    }
}
