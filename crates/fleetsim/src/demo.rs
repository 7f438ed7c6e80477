//! The fleet demo: the distributed central side on loopback, receiver replicas, and a fleet
//! of simulated devices, measured together.
//!
//! # Contract
//!
//! - [`Demo::start`] checks the settings and the open-file limit (about 5 files per device
//!   plus 512: each device's queue and its connection) and chooses the processes the devices
//!   run in ([`DemoConfig::processes`]: as few as the limit allows unless given), empties
//!   `<work>/run`, opens the PKI
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
//!   it record for [`DemoConfig::seconds`], and reports a [`Step::Tick`] every 5 s. A fleet
//!   split over processes runs as child processes, `<exe> fleet devices …` ([`PartConfig`],
//!   [`run_part`]): part `k` holds devices `first .. first + n` in `<work>/run/part-<k>`
//!   (each device on the broker it would have in one process), its log in
//!   `<work>/run/part-<k>.log`; the demo sums their progress lines, waits until every part
//!   records before its clock starts, and reports their recordings as one fleet. A part that
//!   exits early or does not finish its drain fails the demo, naming its log. With a
//!   [`Fault`], the fault is injected at the first tick a third of the way through the
//!   recording and repaired at the first tick 10 s later (or when the recording ends). Then
//!   the fleet drains for at most [`DemoConfig::drain`], and the report counts what the
//!   central side stored (its PostgreSQL and object store, [`ArchiveDb`]).
//! - Resources ([`PartUsage`]): the CPU time of the processes of each part of the demo (the
//!   simulator: this process, or its child processes when split) and of their direct
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
mod parts;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use self::central::Central;
use self::meter::Meter;
pub use self::meter::PartUsage;
use self::parts::Parts;
pub use self::parts::{PartConfig, PartLine, run_part};
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
    /// The `anpr` executable, run as `<exe> fleet receiver …` for each replica (and as
    /// `<exe> fleet devices …` for each part of a split fleet).
    pub exe: PathBuf,
    /// Processes the simulated devices are split over (`None`: as few as the open-file limit
    /// allows; 1: this process).
    pub processes: Option<usize>,
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
        "{devices} devices in one process need about {need} open files and the limit is {limit}; raise it (`ulimit -n {need}`), run fewer devices, or split them over more processes"
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
    #[error("the fleet's part from device {first} failed: {why}; its log is {}", log.display())]
    Part {
        first: usize,
        log: PathBuf,
        why: String,
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
    processes: usize,
    exe: PathBuf,
}

/// The simulated devices: in this process, or split over child processes.
enum Sim {
    Here(Box<Fleet>),
    Parts { parts: Parts, started: Instant },
}

impl Sim {
    fn elapsed(&self) -> Duration {
        match self {
            Self::Here(f) => f.elapsed(),
            Self::Parts { started, .. } => started.elapsed(),
        }
    }

    fn progress(&self) -> Progress {
        match self {
            Self::Here(f) => f.progress(),
            Self::Parts { parts, .. } => parts.progress(),
        }
    }
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
        let processes = processes_for(cfg.devices, cfg.processes, open_file_limit())?;
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
            processes,
            exe: cfg.exe,
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
            processes,
            exe,
        } = self;
        let devices = cfg.devices;
        let seconds = cfg.duration.as_secs();
        let postgres = central.pg.url();
        let fleet = if processes > 1 {
            // A part creates its queues and loads its identities before it records: a minute,
            // and a second more for every 50 of its devices.
            let ready = Duration::from_secs(60 + (devices / processes / 50) as u64);
            let parts = Parts::start(&exe, part_configs(&cfg, processes, drain), ready).await?;
            Sim::Parts {
                parts,
                started: Instant::now(),
            }
        } else {
            Sim::Here(Box::new(Fleet::start(cfg).await?))
        };
        on_step(Step::Recording { devices, seconds });
        let parts_of = |central: &Central, fleet: &Sim| {
            let mut parts = central.parts();
            if let Sim::Parts { parts: p, .. } = fleet {
                parts[0] = (format!("fleet simulator ({processes} processes)"), p.pids());
            }
            parts
        };
        let mut meter = Meter::new(&parts_of(&central, &fleet));
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
            meter.sample(&parts_of(&central, &fleet));
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
        let parts = parts_of(&central, &fleet);
        let recording = match fleet {
            Sim::Here(f) => f.finish(drain).await?.recording(),
            // Each part drains on its own clock, started a little after this one's.
            Sim::Parts { parts, .. } => parts.finish(drain + Duration::from_mins(1)).await?,
        };
        meter.sample(&parts);
        let oracle = ArchiveDb {
            postgres,
            objects: Some(objects),
        };
        let report = recording.report(&oracle).await?;
        let usage = meter.finish(&parts);
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

/// The parts of a fleet split over `processes`: part `k` in `<run>/part-<k>`, with its own
/// seed, its recording in `<run>/part-<k>.json`.
fn part_configs(cfg: &FleetConfig, processes: usize, drain: Duration) -> Vec<PartConfig> {
    parts::split(cfg.devices, processes)
        .into_iter()
        .enumerate()
        .map(|(k, (first, devices))| PartConfig {
            pki: cfg.pki.clone(),
            dir: cfg.dir.join(format!("part-{k}")),
            first,
            devices,
            brokers: cfg
                .brokers
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect(),
            failover: cfg.failover,
            seconds: cfg.duration.as_secs(),
            drain_s: drain.as_secs(),
            seed: cfg.seed.wrapping_add(k as u64),
            out: cfg.dir.join(format!("part-{k}.json")),
        })
        .collect()
}

/// Open files a process holding `devices` devices needs: each device's queue (its database,
/// WAL and shared memory) and its connection, and some to spare.
fn files_needed(devices: usize) -> usize {
    devices * 5 + 512
}

/// This process's soft limit of open files (children inherit it), if it can be read.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}

/// The processes the devices run in: `asked`, if each part fits the open-file `limit`, or
/// (none asked) as few as fit it.
fn processes_for(
    devices: usize,
    asked: Option<usize>,
    limit: Option<usize>,
) -> Result<usize, DemoError> {
    let processes = match (asked, limit) {
        (Some(p), _) => p.max(1),
        (None, None) => 1,
        (None, Some(limit)) => {
            let per = limit.saturating_sub(files_needed(0)) / 5;
            devices.div_ceil(per.max(1))
        }
    };
    let per = devices.div_ceil(processes);
    match limit {
        Some(limit) if limit < files_needed(per) => Err(DemoError::OpenFiles {
            devices: per,
            need: files_needed(per),
            limit,
        }),
        _ => Ok(processes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_beyond_the_open_file_limit_is_refused_with_the_limit_to_raise() {
        assert_eq!(processes_for(1, Some(1), Some(1024)).unwrap(), 1);
        let err = processes_for(5000, Some(1), Some(20_000)).unwrap_err();
        assert!(
            matches!(err, DemoError::OpenFiles { devices: 5000, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("ulimit -n 25512"), "{err}");
        let err = processes_for(10, None, Some(100)).unwrap_err();
        assert!(matches!(err, DemoError::OpenFiles { .. }), "{err}");
    }

    #[test]
    fn without_a_count_the_devices_take_as_few_processes_as_the_limit_allows() {
        assert_eq!(processes_for(1000, None, Some(20_000)).unwrap(), 1);
        assert_eq!(processes_for(3897, None, Some(20_000)).unwrap(), 1);
        assert_eq!(processes_for(5000, None, Some(20_000)).unwrap(), 2);
        assert_eq!(processes_for(10_000, None, Some(20_000)).unwrap(), 3);
        assert_eq!(processes_for(5000, None, None).unwrap(), 1);
        assert_eq!(processes_for(5000, Some(4), Some(20_000)).unwrap(), 4);
    }
}
