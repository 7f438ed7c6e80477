//! `anpr fleet`: the central side at fleet scale.
//!
//! - `anpr fleet demo` starts the distributed central side on loopback (a NATS cluster with
//!   its MQTT listener, PostgreSQL, the S3 object store: `anpr-cluster`), receiver replicas
//!   (each an `anpr fleet receiver` child process, so each is measured and killed on its
//!   own), and a fleet of simulated devices (`anpr-fleetsim`: the real queue and uplink per
//!   device); prints progress every 5 s, optionally injects one fault, drains, and prints the
//!   report: recorded, acknowledged, stored, duplicated, lost, images, latency, and the CPU
//!   and memory of each part (read from /proc). Exit 0 only when nothing was lost or
//!   duplicated and every image was stored.
//! - `anpr fleet receiver` runs one replica of the scaled receiver (`anpr-fleet`) until
//!   SIGTERM or Ctrl-C, for a real deployment.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};

use crate::exit::{ExitStatus, Usage};

#[derive(Args)]
pub(crate) struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Start a NATS cluster, PostgreSQL, the object store, receiver replicas and a fleet of
    /// simulated devices on loopback; print progress and the report.
    Demo(DemoArgs),
    /// Run one replica of the scaled receiver until SIGTERM or Ctrl-C.
    Receiver(ReceiverArgs),
}

/// A fault the demo injects a third of the way through the recording, repaired 10 s later.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fault {
    /// Kill NATS node 1 (SIGKILL), restart it.
    NatsNode,
    /// Kill receiver replica 1 (SIGKILL), start it again.
    Replica,
    /// Stop PostgreSQL immediately (crash recovery at restart), start it again.
    Postgres,
    /// Kill the object store, start it again.
    Objects,
}

#[derive(Args)]
struct DemoArgs {
    /// Simulated devices.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Seconds the devices record (then the fleet drains).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Receiver replicas.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// NATS nodes (1 to 5).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, value_enum)]
    fault: Option<Fault>,
    /// Write the report (per device and in total, with the resources) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Working folder: the PKI of each fleet size is kept in `<work>/pki-<devices>` (issuing
    /// thousands of identities takes a while), the run in `<work>/run` (emptied at start).
    #[arg(long, default_value = "target/fleet")]
    work: PathBuf,
    /// Seconds the drain may take at most.
    #[arg(long, default_value_t = 180)]
    drain: u64,
    /// Seed of the recording times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct ReceiverArgs {
    /// The NATS cluster's nodes, `tls://host:port` (repeat, or comma-separated).
    #[arg(long, required = true, value_delimiter = ',')]
    nats: Vec<String>,
    /// PostgreSQL, `postgres://user@host:port/db`.
    #[arg(long)]
    postgres: String,
    /// The S3 endpoint, `http://host:port`; its keys come from the environment,
    /// ANPR_S3_ACCESS_KEY and ANPR_S3_SECRET_KEY (kept off the command line).
    #[arg(long)]
    s3: String,
    #[arg(long, default_value = "anpr-evidence")]
    bucket: String,
    /// Folder of the receiver's TLS identity: ca.crt, central.tls.crt, central.tls.key
    /// (`anpr pki init` wrote it as <dir>/central).
    #[arg(long)]
    tls: PathBuf,
    /// The devices' public keys, `<inventory>.pub` (<dir>/central/devices).
    #[arg(long)]
    devices: PathBuf,
    /// The receiver's signing key (<dir>/central/central.key).
    #[arg(long)]
    key: PathBuf,
    /// The devices' topic prefix.
    #[arg(long, default_value = "anpr/v1")]
    prefix: String,
    /// Name in logs and in the NATS connection.
    #[arg(long, default_value = "replica")]
    name: String,
    /// Copies of the stream across the cluster (3 on 3 nodes or more, 1 on one node).
    #[arg(long, default_value_t = 3)]
    stream_replicas: usize,
    /// Store each acknowledgement for the device's MQTT session (a JetStream write per ack)
    /// instead of sending it as a plain NATS message. Of use only to devices that keep a
    /// persistent session; the shipped uplink connects with a clean session, and a device
    /// that missed an ack sends the event again, stored once.
    #[arg(long)]
    session_acks: bool,
}

pub(crate) fn fleet(args: &FleetArgs) -> Result<ExitStatus> {
    match &args.command {
        FleetCommand::Demo(a) => demo(a),
        FleetCommand::Receiver(a) => receiver(a),
    }
}

#[allow(clippy::print_stdout)]
fn receiver(a: &ReceiverArgs) -> Result<ExitStatus> {
    let env = |name: &str| {
        std::env::var(name).map_err(|_| {
            Usage(format!(
                "{name} is not set: the object store's keys come from ANPR_S3_ACCESS_KEY and ANPR_S3_SECRET_KEY"
            ))
        })
    };
    let mut objects = anpr_fleet::ObjectStoreConfig::new(
        &a.s3,
        &env("ANPR_S3_ACCESS_KEY")?,
        &env("ANPR_S3_SECRET_KEY")?,
    );
    objects.bucket.clone_from(&a.bucket);
    let tls = anpr_pki::TlsFiles {
        ca: a.tls.join("ca.crt"),
        cert: a.tls.join("central.tls.crt"),
        key: a.tls.join("central.tls.key"),
    };
    let cfg = anpr_fleet::ReplicaConfig {
        name: a.name.clone(),
        nats_urls: a.nats.clone(),
        tls: Some(anpr_pki::ClientTls::load(&tls)?),
        prefix: a.prefix.clone(),
        stream: anpr_fleet::StreamSettings {
            replicas: a.stream_replicas,
            ..anpr_fleet::StreamSettings::default()
        },
        postgres: a.postgres.clone(),
        objects,
        signing_key: anpr_trust::load_signing_key_as("receiver's signing key", &a.key)?,
        devices: a.devices.clone(),
        batch: 256,
        acks: if a.session_acks {
            anpr_fleet::AckRoute::Session
        } else {
            anpr_fleet::AckRoute::Core
        },
    };
    let report = super::runtime()?.block_on(async move {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(anpr_fleet::run_replica(cfg, rx));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop.send(true);
        anyhow::Ok(task.await??)
    })?;
    println!("{report:?}");
    Ok(ExitStatus::Success)
}

/// The engines and replicas of the demo, with their processes for the resource figures.
struct Central {
    nats: anpr_cluster::NatsCluster,
    pg: anpr_cluster::Postgres,
    s3: anpr_cluster::ObjectStore,
    replicas: Vec<Child>,
    replica_cmd: Vec<String>,
    env: Vec<(String, String)>,
    run: PathBuf,
}

impl Central {
    fn start_replica(&self, i: usize) -> Result<Child> {
        let log = self.run.join(format!("replica-{i}.log"));
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        cmd.args(&self.replica_cmd)
            .args(["--name", &format!("replica-{i}")])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        cmd.spawn().context("cannot start a receiver replica")
    }

    /// The processes of each part: (name, root pids).
    fn parts(&self) -> Vec<(String, Vec<u32>)> {
        let mut out = vec![(
            "fleet simulator (this process)".to_string(),
            vec![std::process::id()],
        )];
        out.push((
            format!("NATS ({} nodes)", self.nats.nodes()),
            (0..self.nats.nodes())
                .filter_map(|i| self.nats.pid(i))
                .collect(),
        ));
        out.push((
            format!("receiver replicas ({})", self.replicas.len()),
            self.replicas.iter().map(Child::id).collect(),
        ));
        out.push(("PostgreSQL".into(), self.pg.pid().into_iter().collect()));
        out.push((
            "object store (SeaweedFS)".into(),
            self.s3.pid().into_iter().collect(),
        ));
        out
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            terminate(r);
        }
    }
}

/// Stops a replica with SIGTERM (through `kill`, no unsafe code), then SIGKILL after 10 s.
fn terminate(child: &mut Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[allow(clippy::print_stdout)]
fn demo(a: &DemoArgs) -> Result<ExitStatus> {
    if a.devices == 0 || a.replicas == 0 || !(1..=5).contains(&a.nodes) {
        bail!(Usage(
            "--devices and --replicas must be at least 1, --nodes 1 to 5".into()
        ));
    }
    check_open_files(a.devices)?;
    let pki_dir = a.work.join(format!("pki-{}", a.devices));
    let run = a.work.join("run");
    if run.exists() {
        std::fs::remove_dir_all(&run)
            .with_context(|| format!("cannot empty the demo's run folder {}", run.display()))?;
    }
    std::fs::create_dir_all(&run).with_context(|| format!("cannot create {}", run.display()))?;
    let pki = if pki_dir.join("ca.key").exists() {
        anpr_pki::Pki::open(&pki_dir)?
    } else {
        anpr_pki::Pki::init(&pki_dir, &[])?
    };
    let mut cfg = anpr_fleetsim::FleetConfig::new(
        &run,
        &pki_dir,
        a.devices,
        Vec::new(),
        Duration::from_secs(a.seconds),
    );
    cfg.seed = a.seed;
    let t = Instant::now();
    let issued = anpr_fleetsim::ensure_identities(&pki_dir, &cfg.inventory_prefix, a.devices)?;
    println!(
        "identities: {issued} issued in {:.1} s, {} reused ({})",
        t.elapsed().as_secs_f64(),
        a.devices - issued,
        pki_dir.display()
    );
    let t = Instant::now();
    let mut nats_opts = anpr_cluster::NatsOptions::new(&run, &pki, cfg.inventories());
    nats_opts.nodes = a.nodes;
    let nats = anpr_cluster::NatsCluster::start(nats_opts)?;
    let pg = anpr_cluster::Postgres::start(&run)?;
    let s3 = anpr_cluster::ObjectStore::start(&run)?;
    let central_files = pki.central();
    let mut replica_cmd: Vec<String> = vec!["fleet".into(), "receiver".into()];
    replica_cmd.extend([
        "--nats".into(),
        nats.nats_urls().join(","),
        "--postgres".into(),
        pg.url(),
        "--s3".into(),
        s3.endpoint(),
        "--tls".into(),
        central_files.dir.display().to_string(),
        "--devices".into(),
        central_files.device_keys.display().to_string(),
        "--key".into(),
        central_files.signing_key.display().to_string(),
        "--stream-replicas".into(),
        a.nodes.min(3).to_string(),
    ]);
    let env = vec![
        (
            "ANPR_S3_ACCESS_KEY".to_string(),
            s3.access_key().to_string(),
        ),
        (
            "ANPR_S3_SECRET_KEY".to_string(),
            s3.secret_key().to_string(),
        ),
    ];
    let objects =
        anpr_fleet::ObjectStoreConfig::new(&s3.endpoint(), s3.access_key(), s3.secret_key());
    // The schema, the bucket, the stream and its consumer exist before any device sends: an
    // event published before its stream exists is taken by no one until its ack timeout.
    let prepare_cfg = anpr_fleet::ReplicaConfig {
        name: "demo".into(),
        nats_urls: nats.nats_urls(),
        tls: Some(anpr_pki::ClientTls::load(&central_files.tls)?),
        prefix: cfg.topic_prefix.clone(),
        stream: anpr_fleet::StreamSettings {
            replicas: a.nodes.min(3),
            ..anpr_fleet::StreamSettings::default()
        },
        postgres: pg.url(),
        objects: objects.clone(),
        signing_key: anpr_trust::load_signing_key(&central_files.signing_key)?,
        devices: central_files.device_keys.clone(),
        batch: 256,
        acks: anpr_fleet::AckRoute::default(),
    };
    super::runtime()?.block_on(anpr_fleet::prepare(&prepare_cfg))?;
    let mut central = Central {
        nats,
        pg,
        s3,
        replicas: Vec::new(),
        replica_cmd,
        env,
        run: run.clone(),
    };
    for i in 0..a.replicas {
        let child = central.start_replica(i)?;
        central.replicas.push(child);
    }
    cfg.brokers = central
        .nats
        .mqtt_ports()
        .into_iter()
        .map(|p| ("127.0.0.1".to_string(), p))
        .collect();
    println!(
        "central side: {} NATS nodes (MQTT ports {:?}), PostgreSQL, object store, {} replicas; started in {:.1} s (logs in {})",
        a.nodes,
        central.nats.mqtt_ports(),
        a.replicas,
        t.elapsed().as_secs_f64(),
        run.display()
    );
    let postgres = central.pg.url();
    let fault = a.fault;
    let seconds = a.seconds;
    let drain = Duration::from_secs(a.drain);
    let (report, usage) = super::runtime()?.block_on(async move {
        // Ctrl-C or SIGTERM drops the run, and with it the engines and replicas (their
        // values kill their processes): nothing is left running.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let run = async move {
        let fleet = anpr_fleetsim::Fleet::start(cfg).await?;
        println!("fleet: {} devices recording for {seconds} s", a.devices);
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
                    tokio::task::block_in_place(|| inject(&mut central, f));
                }
            } else if faulted && !repaired && fleet.elapsed() >= repair_at {
                repaired = true;
                if let Some(f) = fault {
                    tokio::task::block_in_place(|| repair(&mut central, f))?;
                }
            }
            let p = fleet.progress();
            meter.sample(&central.parts());
            println!(
                "  {:>4.0} s  recorded {:>7}  acknowledged {:>7}  images acked {:>5}  connected {:>5}/{}  resent {:>5}  link errors {:>5}",
                fleet.elapsed().as_secs_f64(),
                p.recorded,
                p.acknowledged,
                p.images_acknowledged,
                p.connected,
                a.devices,
                p.resent,
                p.connection_errors
            );
        }
        if !repaired && let Some(f) = fault {
            tokio::task::block_in_place(|| repair(&mut central, f))?;
        }
        println!("recording stopped; draining (at most {} s)", drain.as_secs());
        let finished = fleet.finish(drain).await?;
        meter.sample(&central.parts());
        let oracle = anpr_fleetsim::ArchiveDb {
            postgres,
            objects: Some(objects),
        };
        let report = finished.report(&oracle).await?;
        let usage = meter.finish(&central.parts());
        drop(central);
        anyhow::Ok((report, usage))
        };
        tokio::select! {
            r = run => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted; the engines and replicas were stopped"),
            _ = term.recv() => bail!("terminated; the engines and replicas were stopped"),
        }
    })?;
    println!("{report}");
    println!("resources (CPU: average cores over the run; memory: peak resident):");
    for u in &usage {
        println!(
            "  {:<34} CPU {:>5.2} cores  memory {:>7.0} MiB  threads {:>5}",
            u.part, u.cores, u.peak_rss_mib, u.threads
        );
    }
    if let Some(path) = &a.json {
        let resources: Vec<serde_json::Value> = usage
            .iter()
            .map(|u| {
                serde_json::json!({
                    "part": u.part,
                    "cores": u.cores,
                    "peak_rss_mib": u.peak_rss_mib,
                    "threads": u.threads,
                })
            })
            .collect();
        let json = serde_json::json!({ "report": report, "resources": resources });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitStatus::success_if(report.is_clean()))
}

#[allow(clippy::print_stdout)]
fn inject(c: &mut Central, f: Fault) {
    match f {
        Fault::NatsNode => {
            println!("FAULT: NATS node 1 killed");
            c.nats.kill(1.min(c.nats.nodes() - 1));
        }
        Fault::Replica => {
            println!("FAULT: receiver replica 0 killed");
            let _ = c.replicas[0].kill();
            let _ = c.replicas[0].wait();
        }
        Fault::Postgres => {
            println!("FAULT: PostgreSQL stopped immediately");
            c.pg.kill();
        }
        Fault::Objects => {
            println!("FAULT: object store killed");
            c.s3.kill();
        }
    }
}

#[allow(clippy::print_stdout)]
fn repair(c: &mut Central, f: Fault) -> Result<()> {
    match f {
        Fault::NatsNode => c.nats.restart(1.min(c.nats.nodes() - 1))?,
        Fault::Replica => c.replicas[0] = c.start_replica(0)?,
        Fault::Postgres => c.pg.restart()?,
        Fault::Objects => c.s3.restart()?,
    }
    println!("REPAIRED: the faulted part runs again");
    Ok(())
}

/// The open-file limit must hold each device's queue (about 3 files) and its connection.
fn check_open_files(devices: usize) -> Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft: Option<usize> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    if let Some(soft) = soft
        && soft < devices * 5 + 512
    {
        bail!(Usage(format!(
            "{devices} devices need about {} open files and the limit is {soft}; raise it (`ulimit -n {}`) or run fewer devices",
            devices * 5 + 512,
            devices * 5 + 512
        )));
    }
    Ok(())
}

/// CPU and memory of each part, from /proc: CPU time of the part's processes and their
/// children (PostgreSQL's backends), resident memory summed over them, peak over the samples.
struct Meter {
    started: Instant,
    cpu_start: Vec<f64>,
    peak_rss: Vec<f64>,
    threads: Vec<u64>,
    /// CPU seconds of processes that were replaced (a killed replica).
    cpu_gone: Vec<f64>,
    last_cpu: Vec<f64>,
}

#[derive(Debug)]
struct PartUsage {
    part: String,
    cores: f64,
    peak_rss_mib: f64,
    threads: u64,
}

impl Meter {
    fn new(parts: &[(String, Vec<u32>)]) -> Self {
        let cpu: Vec<f64> = parts.iter().map(|(_, pids)| group(pids).0).collect();
        Self {
            started: Instant::now(),
            peak_rss: vec![0.0; parts.len()],
            threads: vec![0; parts.len()],
            cpu_gone: vec![0.0; parts.len()],
            last_cpu: cpu.clone(),
            cpu_start: cpu,
        }
    }

    fn sample(&mut self, parts: &[(String, Vec<u32>)]) {
        for (i, (_, pids)) in parts.iter().enumerate() {
            let (cpu, rss, threads) = group(pids);
            if cpu + 0.5 < self.last_cpu[i] {
                // A process of the part was replaced: keep what the old one used.
                self.cpu_gone[i] += self.last_cpu[i];
            }
            self.last_cpu[i] = cpu;
            self.peak_rss[i] = self.peak_rss[i].max(rss);
            self.threads[i] = self.threads[i].max(threads);
        }
    }

    fn finish(mut self, parts: &[(String, Vec<u32>)]) -> Vec<PartUsage> {
        self.sample(parts);
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        parts
            .iter()
            .enumerate()
            .map(|(i, (name, _))| PartUsage {
                part: name.clone(),
                cores: (self.last_cpu[i] + self.cpu_gone[i] - self.cpu_start[i]).max(0.0) / wall,
                peak_rss_mib: self.peak_rss[i],
                threads: self.threads[i],
            })
            .collect()
    }
}

/// CPU seconds, resident MiB and threads of `pids` and their direct children.
fn group(pids: &[u32]) -> (f64, f64, u64) {
    let mut all: Vec<u32> = pids.to_vec();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, _)) = stat(pid)
                && pids.contains(&ppid)
                && !all.contains(&pid)
            {
                all.push(pid);
            }
        }
    }
    let (mut cpu, mut rss, mut threads) = (0.0, 0.0, 0);
    for pid in all {
        if let Some((_, ticks)) = stat(pid) {
            cpu += ticks;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        for line in status.lines() {
            let value = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                rss += value(line) as f64 / 1024.0;
            } else if line.starts_with("Threads:") {
                threads += value(line);
            }
        }
    }
    (cpu, rss, threads)
}

/// Parent pid and CPU seconds (user + system, 100 ticks a second) of `pid`.
fn stat(pid: u32) -> Option<(u32, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((ppid, ticks / 100.0))
}
