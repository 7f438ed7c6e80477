//! `anpr fleet`: the central side at fleet scale.
//!
//! - `anpr fleet demo` starts the distributed central side on loopback (a NATS cluster with
//!   its MQTT listener, PostgreSQL, the S3 object store: `anpr-cluster`), receiver replicas
//!   (each an `anpr fleet receiver` child process, so each is measured and killed on its
//!   own), and a fleet of simulated devices (`anpr-fleetsim`: the real queue and uplink per
//!   device); prints progress every 5 s, optionally injects one fault, drains, and prints the
//!   report: recorded, acknowledged, stored, duplicated, lost, images, latency, and the CPU
//!   and memory of each part (read from /proc). Exit 0 only when nothing was lost or
//!   duplicated and every image was stored. The demo itself is `anpr_fleetsim::demo`; this
//!   file holds its arguments and its printing.
//! - `anpr fleet receiver` runs one replica of the scaled receiver (`anpr-fleet`) until
//!   SIGTERM or Ctrl-C, for a real deployment.
//! - `anpr fleet devices` runs one part of a demo's fleet split over processes (the demo
//!   starts it; `anpr_fleetsim::demo::run_part`), printing a JSON line as it goes.

use std::path::PathBuf;
use std::time::Duration;

use anpr_fleetsim::demo::{self, Demo, DemoConfig, DemoError, Outcome, Step};
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
    /// Run one part of a fleet demo's simulated devices (started by `fleet demo` when the
    /// devices are split over processes); prints one JSON line every 5 s.
    #[command(hide = true)]
    Devices(DevicesArgs),
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
    /// Give each device the other NATS nodes as its `[uplink] failover` list (in order after
    /// its own): a device whose node is down moves to the next instead of waiting for it.
    #[arg(long)]
    failover: bool,
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
    /// Processes the simulated devices are split over (each holds about five open files a
    /// device). Default: as few as this shell's open-file limit (`ulimit -n`) allows.
    #[arg(long)]
    processes: Option<usize>,
}

#[derive(Args)]
struct DevicesArgs {
    /// The fleet's PKI, every identity already issued.
    #[arg(long)]
    pki: PathBuf,
    /// The part's folder (its queues go in `<dir>/queues`, which must not exist).
    #[arg(long)]
    dir: PathBuf,
    /// Index of the part's first device in the fleet.
    #[arg(long)]
    first: usize,
    #[arg(long)]
    devices: usize,
    /// Brokers, `host:port`, comma-separated.
    #[arg(long, required = true, value_delimiter = ',')]
    brokers: Vec<String>,
    #[arg(long)]
    failover: bool,
    #[arg(long)]
    seconds: u64,
    #[arg(long)]
    drain: u64,
    #[arg(long)]
    seed: u64,
    /// Where the part's recording is written (JSON).
    #[arg(long)]
    out: PathBuf,
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
        FleetCommand::Devices(a) => devices(a),
    }
}

#[allow(clippy::print_stdout)]
fn devices(a: &DevicesArgs) -> Result<ExitStatus> {
    let cfg = demo::PartConfig {
        pki: a.pki.clone(),
        dir: a.dir.clone(),
        first: a.first,
        devices: a.devices,
        brokers: a.brokers.clone(),
        failover: a.failover,
        seconds: a.seconds,
        drain_s: a.drain,
        seed: a.seed,
        out: a.out.clone(),
    };
    super::runtime()?.block_on(demo::run_part(cfg, |line| {
        if let Ok(text) = serde_json::to_string(&line) {
            println!("{text}");
        }
    }))?;
    Ok(ExitStatus::Success)
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

#[allow(clippy::print_stdout)]
fn demo(a: &DemoArgs) -> Result<ExitStatus> {
    let cfg = DemoConfig {
        devices: a.devices,
        seconds: a.seconds,
        replicas: a.replicas,
        nodes: a.nodes,
        fault: a.fault.map(|f| match f {
            Fault::NatsNode => demo::Fault::NatsNode,
            Fault::Replica => demo::Fault::Replica,
            Fault::Postgres => demo::Fault::Postgres,
            Fault::Objects => demo::Fault::Objects,
        }),
        failover: a.failover,
        work: a.work.clone(),
        drain: Duration::from_secs(a.drain),
        seed: a.seed,
        exe: std::env::current_exe().context("cannot find the anpr executable to run replicas")?,
        processes: a.processes,
    };
    let runtime = super::runtime()?;
    let demo = runtime
        .block_on(Demo::start(cfg, print_step))
        .map_err(setup_error)?;
    let Outcome { report, usage } = runtime.block_on(async move {
        // Ctrl-C or SIGTERM drops the run, and with it the engines and replicas (their
        // values kill their processes): nothing is left running.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = demo.run(print_step) => Ok(r?),
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

/// The demo's settings that cannot run are command-line errors.
fn setup_error(e: DemoError) -> anyhow::Error {
    match e {
        DemoError::Size { .. } => {
            Usage("--devices and --replicas must be at least 1, --nodes 1 to 5".into()).into()
        }
        DemoError::OpenFiles { .. } => Usage(e.to_string()).into(),
        e => e.into(),
    }
}

/// Prints what the demo is doing.
#[allow(clippy::print_stdout)]
fn print_step(step: Step) {
    match step {
        Step::Identities {
            issued,
            reused,
            took,
            pki,
        } => println!(
            "identities: {issued} issued in {:.1} s, {reused} reused ({})",
            took.as_secs_f64(),
            pki.display()
        ),
        Step::Central {
            nodes,
            mqtt_ports,
            replicas,
            took,
            run,
        } => println!(
            "central side: {nodes} NATS nodes (MQTT ports {mqtt_ports:?}), PostgreSQL, object store, {replicas} replicas; started in {:.1} s (logs in {})",
            took.as_secs_f64(),
            run.display()
        ),
        Step::Recording { devices, seconds } => {
            println!("fleet: {devices} devices recording for {seconds} s");
        }
        Step::Tick {
            elapsed,
            progress: p,
            devices,
        } => println!(
            "  {:>4.0} s  recorded {:>7}  acknowledged {:>7}  images acked {:>5}  connected {:>5}/{}  resent {:>5}  link errors {:>5}",
            elapsed.as_secs_f64(),
            p.recorded,
            p.acknowledged,
            p.images_acknowledged,
            p.connected,
            devices,
            p.resent,
            p.connection_errors
        ),
        Step::Fault(f) => println!("FAULT: {}", f.injected()),
        Step::Repaired(_) => println!("REPAIRED: the faulted part runs again"),
        Step::Draining { drain } => {
            println!(
                "recording stopped; draining (at most {} s)",
                drain.as_secs()
            );
        }
    }
}
