//! The fleet demo: the distributed central side on loopback, receiver replicas, and a fleet
//! of simulated devices, measured together.
//!
//! # Contract
//!
//! - [`Demo::start`] checks the settings and the open-file limit (about 5 files per device
//!   plus 512: each device's queue and its connection), empties `<work>/run`, opens the PKI
//!   kept for this fleet size in `<work>/pki-<devices>` (made there the first time), issues the
//!   device identities it lacks, starts the engines of [`anpr_cluster`] (a NATS cluster of
//!   [`DemoConfig::nodes`] nodes with its MQTT listener, PostgreSQL, the object store) in
//!   `<work>/run`, creates the receiver's schema, bucket, stream and consumer
//!   ([`anpr_fleet::prepare`]) before any device sends, and starts [`DemoConfig::replicas`]
//!   receiver replicas. Each replica is a child process of its own, so each is measured and
//!   killed on its own: `<exe> fleet receiver --nats … --postgres … --s3 … --tls … --devices …
//!   --key … --stream-replicas … --name replica-<i>`, the object store's keys in
//!   `ANPR_S3_ACCESS_KEY` and `ANPR_S3_SECRET_KEY`, its output in `<work>/run/replica-<i>.log`.
//! - [`Demo::run`] starts the fleet ([`Fleet::start`]) on the NATS cluster's MQTT ports, lets
//!   it record for [`DemoConfig::seconds`], and reports a [`Step::Tick`] every 5 s. With a
//!   [`Fault`], the fault is injected at the first tick a third of the way through the
//!   recording and repaired at the first tick 10 s later (or when the recording ends). Then
//!   the fleet drains for at most [`DemoConfig::drain`], and the report counts what the
//!   central side stored (its PostgreSQL and object store, [`ArchiveDb`]).
//! - Resources ([`PartUsage`]): the CPU time of each part's processes and of their direct
//!   children (PostgreSQL's backends), read from `/proc` and averaged over the run in cores,
//!   and their resident memory and threads, summed over the processes and the peak taken over
//!   the samples (one per tick). A replaced process (a killed replica) keeps the CPU time it
//!   used.
//! - Every process is stopped when the [`Demo`] is dropped, also when its run is dropped
//!   half-way (Ctrl-C): replicas with SIGTERM, then SIGKILL after 10 s; the engines as
//!   [`anpr_cluster`] stops them. The run folder and its logs stay for reading.
//! - Both calls must run on a multi-threaded tokio runtime: the engines start and the faults
//!   are injected on the calling thread ([`tokio::task::block_in_place`]).

mod central;
mod meter;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use self::central::Central;
use self::meter::Meter;
pub use self::meter::PartUsage;
use crate::{ArchiveDb, Fleet, FleetConfig, FleetError, FleetReport, Progress};

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Simulated devices (at least 1).
    pub devices: usize,
    /// Seconds the devices record (then the fleet drains).
    pub seconds: u64,
    /// Receiver replicas (at least 1).
    pub replicas: usize,
    /// NATS nodes (1 to 5).
    pub nodes: usize,
    /// A fault injected a third of the way through the recording, repaired 10 s later.
    pub fault: Option<Fault>,
    /// Each device given the other nodes as its failover list ([`FleetConfig::failover`]).
    pub failover: bool,
    /// Working folder: the PKI of each fleet size in `<work>/pki-<devices>`, the run in
    /// `<work>/run` (emptied at start).
    pub work: PathBuf,
    /// How long the drain may take at most.
    pub drain: Duration,
    /// Seed of the recording times.
    pub seed: u64,
    /// The `anpr` executable, run as `<exe> fleet receiver …` for each replica.
    pub exe: PathBuf,
}

/// A fault the demo injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Kill NATS node 1 (SIGKILL), restart it.
    NatsNode,
    /// Kill receiver replica 0 (SIGKILL), start it again.
    Replica,
    /// Stop PostgreSQL immediately (crash recovery at restart), start it again.
    Postgres,
    /// Kill the object store, start it again.
    Objects,
}

impl Fault {
    /// What injecting the fault does, in words: `NATS node 1 killed`.
    #[must_use]
    pub fn injected(self) -> &'static str {
        match self {
            Self::NatsNode => "NATS node 1 killed",
            Self::Replica => "receiver replica 0 killed",
            Self::Postgres => "PostgreSQL stopped immediately",
            Self::Objects => "object store killed",
        }
    }
}

/// What the demo is doing, reported as it happens.
#[derive(Debug, Clone)]
pub enum Step {
    /// The devices' identities are there: `issued` issued now (in `took`), `reused` found in
    /// the PKI folder `pki`.
    Identities {
        issued: usize,
        reused: usize,
        took: Duration,
        pki: PathBuf,
    },
    /// The central side serves: `nodes` NATS nodes (their MQTT ports), PostgreSQL, the object
    /// store and `replicas` replicas, started in `took`; their logs are in `run`.
    Central {
        nodes: usize,
        mqtt_ports: Vec<u16>,
        replicas: usize,
        took: Duration,
        run: PathBuf,
    },
    /// The fleet started: `devices` recording for `seconds`.
    Recording { devices: usize, seconds: u64 },
    /// Every 5 s of recording: the fleet's figures `elapsed` after it started.
    Tick {
        elapsed: Duration,
        progress: Progress,
        devices: usize,
    },
    /// The fault is about to be injected.
    Fault(Fault),
    /// The faulted part runs again.
    Repaired(Fault),
    /// The recording stopped; the fleet drains for at most `drain`.
    Draining { drain: Duration },
}

/// What a finished demo found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What became of the fleet's events and images.
    pub report: FleetReport,
    /// CPU and memory of each part: the simulator, NATS, the replicas, PostgreSQL, the object
    /// store.
    pub usage: Vec<PartUsage>,
}

/// Errors of the demo; each says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    #[error(
        "the demo needs at least one device and one replica, and 1 to 5 NATS nodes (given {devices} devices, {replicas} replicas, {nodes} nodes)"
    )]
    Size {
        devices: usize,
        replicas: usize,
        nodes: usize,
    },
    #[error(
        "{devices} devices need about {need} open files and the limit is {limit}; raise it (`ulimit -n {need}`) or run fewer devices"
    )]
    OpenFiles {
        devices: usize,
        need: usize,
        limit: usize,
    },
    #[error("cannot empty the demo's run folder {}", path.display())]
    EmptyRun {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the demo's PKI in {} cannot be used; remove that folder to have a new one issued",
        dir.display()
    )]
    Pki {
        dir: PathBuf,
        #[source]
        source: anpr_pki::PkiError,
    },
    #[error("the receiver's signing key {} cannot be used", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: anpr_trust::TrustError,
    },
    #[error("cannot start a receiver replica")]
    Replica {
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cluster(#[from] anpr_cluster::ClusterError),
    #[error(transparent)]
    Receiver(#[from] anpr_fleet::FleetError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// The central side started and ready for the fleet.
pub struct Demo {
    central: Central,
    fleet: FleetConfig,
    objects: anpr_fleet::ObjectStoreConfig,
    fault: Option<Fault>,
    drain: Duration,
}

impl Demo {
    /// Checks the settings, issues the identities, starts the engines and the replicas and
    /// prepares the receiver's storage; reports [`Step::Identities`] and [`Step::Central`].
    pub async fn start(cfg: DemoConfig, mut on_step: impl FnMut(Step)) -> Result<Self, DemoError> {
        if cfg.devices == 0 || cfg.replicas == 0 || !(1..=5).contains(&cfg.nodes) {
            return Err(DemoError::Size {
                devices: cfg.devices,
                replicas: cfg.replicas,
                nodes: cfg.nodes,
            });
        }
        check_open_files(cfg.devices)?;
        let pki_dir = cfg.work.join(format!("pki-{}", cfg.devices));
        let run = cfg.work.join("run");
        let mut fleet = FleetConfig::new(
            &run,
            &pki_dir,
            cfg.devices,
            Vec::new(),
            Duration::from_secs(cfg.seconds),
        );
        fleet.seed = cfg.seed;
        fleet.failover = cfg.failover;
        let (pki, issued, took) = tokio::task::block_in_place(|| {
            prepare_folders(&run, &pki_dir, &fleet.inventory_prefix, cfg.devices)
        })?;
        on_step(Step::Identities {
            issued,
            reused: cfg.devices - issued,
            took,
            pki: pki_dir.clone(),
        });
        let t = Instant::now();
        let mut nats = anpr_cluster::NatsOptions::new(&run, &pki, fleet.inventories());
        nats.nodes = cfg.nodes;
        let central_files = pki.central();
        let (mut central, objects) =
            tokio::task::block_in_place(|| Central::start(&cfg, &run, nats, &central_files))?;
        // The schema, the bucket, the stream and its consumer exist before any device sends:
        // an event published before its stream exists is taken by no one until its ack timeout.
        let prepare = anpr_fleet::ReplicaConfig {
            name: "demo".into(),
            nats_urls: central.nats.nats_urls(),
            tls: Some(
                anpr_pki::ClientTls::load(&central_files.tls).map_err(|source| DemoError::Pki {
                    dir: pki_dir.clone(),
                    source,
                })?,
            ),
            prefix: fleet.topic_prefix.clone(),
            stream: anpr_fleet::StreamSettings {
                replicas: cfg.nodes.min(3),
                ..anpr_fleet::StreamSettings::default()
            },
            postgres: central.pg.url(),
            objects: objects.clone(),
            signing_key: anpr_trust::load_signing_key(&central_files.signing_key).map_err(
                |source| DemoError::Key {
                    path: central_files.signing_key.clone(),
                    source,
                },
            )?,
            devices: central_files.device_keys.clone(),
            batch: 256,
            acks: anpr_fleet::AckRoute::default(),
        };
        anpr_fleet::prepare(&prepare).await?;
        tokio::task::block_in_place(|| central.start_replicas(cfg.replicas))?;
        fleet.brokers = central
            .nats
            .mqtt_ports()
            .into_iter()
            .map(|p| ("127.0.0.1".to_string(), p))
            .collect();
        on_step(Step::Central {
            nodes: cfg.nodes,
            mqtt_ports: central.nats.mqtt_ports(),
            replicas: cfg.replicas,
            took: t.elapsed(),
            run,
        });
        Ok(Self {
            central,
            fleet,
            objects,
            fault: cfg.fault,
            drain: cfg.drain,
        })
    }

    /// Runs the fleet: records, injects and repairs the fault, drains, and counts what was
    /// stored; reports [`Step::Recording`], a [`Step::Tick`] every 5 s, the fault's steps and
    /// [`Step::Draining`]. Stops every process before it returns.
    pub async fn run(self, mut on_step: impl FnMut(Step)) -> Result<Outcome, DemoError> {
        let Self {
            mut central,
            fleet: cfg,
            objects,
            fault,
            drain,
        } = self;
        let devices = cfg.devices;
        let seconds = cfg.duration.as_secs();
        let postgres = central.pg.url();
        let fleet = Fleet::start(cfg).await?;
        on_step(Step::Recording { devices, seconds });
        let mut meter = Meter::new(&central.parts());
        let fault_at = Duration::from_secs(seconds / 3);
        let repair_at = fault_at + Duration::from_secs(10);
        let (mut faulted, mut repaired) = (fault.is_none(), fault.is_none());
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        while fleet.elapsed() < Duration::from_secs(seconds) {
            tick.tick().await;
            if !faulted && fleet.elapsed() >= fault_at {
                faulted = true;
                if let Some(f) = fault {
                    on_step(Step::Fault(f));
                    tokio::task::block_in_place(|| central.inject(f));
                }
            } else if faulted && !repaired && fleet.elapsed() >= repair_at {
                repaired = true;
                if let Some(f) = fault {
                    tokio::task::block_in_place(|| central.repair(f))?;
                    on_step(Step::Repaired(f));
                }
            }
            let progress = fleet.progress();
            meter.sample(&central.parts());
            on_step(Step::Tick {
                elapsed: fleet.elapsed(),
                progress,
                devices,
            });
        }
        if !repaired && let Some(f) = fault {
            tokio::task::block_in_place(|| central.repair(f))?;
            on_step(Step::Repaired(f));
        }
        on_step(Step::Draining { drain });
        let finished = fleet.finish(drain).await?;
        meter.sample(&central.parts());
        let oracle = ArchiveDb {
            postgres,
            objects: Some(objects),
        };
        let report = finished.report(&oracle).await?;
        let usage = meter.finish(&central.parts());
        tokio::task::block_in_place(|| drop(central));
        Ok(Outcome { report, usage })
    }
}

/// Empties the run folder, opens (or makes) the PKI and issues the identities it lacks:
/// the PKI, how many were issued and how long that took.
fn prepare_folders(
    run: &std::path::Path,
    pki_dir: &std::path::Path,
    prefix: &str,
    devices: usize,
) -> Result<(anpr_pki::Pki, usize, Duration), DemoError> {
    if run.exists() {
        std::fs::remove_dir_all(run).map_err(|source| DemoError::EmptyRun {
            path: run.to_path_buf(),
            source,
        })?;
    }
    std::fs::create_dir_all(run).map_err(|source| DemoError::Create {
        path: run.to_path_buf(),
        source,
    })?;
    let pki = if pki_dir.join("ca.key").exists() {
        anpr_pki::Pki::open(pki_dir)
    } else {
        anpr_pki::Pki::init(pki_dir, &[])
    }
    .map_err(|source| DemoError::Pki {
        dir: pki_dir.to_path_buf(),
        source,
    })?;
    let t = Instant::now();
    let issued = crate::ensure_identities(pki_dir, prefix, devices)?;
    Ok((pki, issued, t.elapsed()))
}

/// The open-file limit must hold each device's queue (about 3 files) and its connection.
fn check_open_files(devices: usize) -> Result<(), DemoError> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft: Option<usize> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    let need = devices * 5 + 512;
    match soft {
        Some(limit) if limit < need => Err(DemoError::OpenFiles {
            devices,
            need,
            limit,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_beyond_the_open_file_limit_is_refused_with_the_limit_to_raise() {
        assert!(check_open_files(1).is_ok());
        let err = check_open_files(usize::MAX / 10).unwrap_err();
        assert!(matches!(err, DemoError::OpenFiles { .. }), "{err}");
        assert!(err.to_string().contains("ulimit -n"), "{err}");
    }
}
