//! `anpr`: the roadside ANPR appliance's command line. All logic lives in the library crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "anpr",
    version,
    about = "Roadside ANPR appliance: cameras in, normalized events out over MQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the device with a configuration file until its cameras end or Ctrl-C.
    Run {
        #[arg(long, short, default_value = "config/example.toml")]
        config: PathBuf,
        /// Seconds to keep delivering queued events after the cameras ended.
        #[arg(long, default_value_t = 30.0)]
        drain_timeout: f64,
    },
    /// Run the whole appliance on the synthesised demo clip with a local broker and receiver.
    Demo {
        #[arg(long, short, default_value = "config/demo.toml")]
        config: PathBuf,
        /// Keep the previous queue and receiver database instead of starting afresh.
        #[arg(long)]
        keep: bool,
        /// Reach the broker through the signal-loss simulator: `patrol` (a patrol vehicle
        /// driving through dead zones) or a script such as "up 5; blackhole 10; up 5".
        #[arg(long)]
        link: Option<String>,
        /// Multiplies the durations of the link script (0.5 runs it twice as fast).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Find and read plates in images or folders; one JSON line per image.
    Detect {
        #[arg(long, short, default_value = "config/example.toml")]
        config: PathBuf,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Score plate detection and reading on labelled images (openalpr benchmark format).
    Eval {
        #[arg(long, short, default_value = "config/example.toml")]
        config: PathBuf,
        #[arg(long)]
        dataset: PathBuf,
        /// Write the scores as JSON here too.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also score these predictions (JSON lines in the `detect` format, e.g. from the
        /// Python baseline `benches/baseline.sh`) and print them beside the device's.
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    /// Measure recognition throughput on a video file or an image folder: frames per second,
    /// per-stage latency percentiles, CPU use and peak memory.
    Bench {
        #[arg(long, short, default_value = "config/example.toml")]
        config: PathBuf,
        /// Intra-op threads per ONNX Runtime session (default: the config's).
        #[arg(long)]
        intra_threads: Option<usize>,
        /// Leave the vehicle detector out of the model set.
        #[arg(long)]
        no_vehicles: bool,
        /// Run the stages one after the other on one thread (as `models.concurrent = false`).
        #[arg(long)]
        sequential: bool,
        /// Stop after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Scale every frame to this width first (keeping its aspect ratio), to measure
        /// another camera resolution from the same input, e.g. 1920, 1280 or 960.
        #[arg(long)]
        width: Option<u32>,
        /// Write the figures as JSON here too.
        #[arg(long)]
        json: Option<PathBuf>,
        /// A video file or a folder of images.
        input: PathBuf,
    },
    /// Run the reference central receiver (stores and acknowledges events).
    Central {
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        #[arg(long, default_value = "anpr/v1")]
        prefix: String,
        #[arg(long, default_value = "central.sqlite")]
        db: PathBuf,
        /// Print what arrived per device (counts, sequence gaps, delays, images, the device's
        /// own health) and exit.
        #[arg(long)]
        report: bool,
        /// With --report: also list every event (sequence, plate, capture time, delay).
        #[arg(long, requires = "report")]
        events: bool,
    },
    /// Write the synthesised demo clip (H.264 MP4) and its manifest.
    MakeDemo {
        #[arg(long, default_value = "var/demo/demo.mp4")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ANPR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[allow(clippy::print_stdout)]
fn real_main(cli: Cli) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.command {
        Command::Run {
            config,
            drain_timeout,
        } => {
            let cfg = anpr_config::load(&config)?;
            let opts = anpr::device::RunOptions {
                drain_timeout: Duration::from_secs_f64(drain_timeout),
                delivered: None,
                counters: Arc::default(),
                uplink: Arc::default(),
            };
            let s = rt.block_on(anpr::device::run(cfg, opts))?;
            print_summary(&s);
            Ok(if s.camera_errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Demo {
            config,
            keep,
            link,
            time_scale,
        } => {
            let link = match link.as_deref() {
                None => None,
                Some("patrol") => Some(anpr_netsim::Script::patrol()),
                Some(text) => Some(anpr_netsim::Script::parse(text)?),
            }
            .map(|script| anpr::demo::LinkOptions { script, time_scale });
            let out = rt.block_on(anpr::demo::run(&config, !keep, link))?;
            print_summary(&out.summary);
            println!(
                "  delivered late     {} (captured while the link was down, or sent again)",
                out.delayed
            );
            for d in &out.report {
                println!("  central receiver   {d}");
            }
            println!(
                "plates delivered with the right text: {} of {} ({})",
                out.matched,
                out.manifest.vehicles.len(),
                out.received.join(", ")
            );
            Ok(if out.matched == out.manifest.vehicles.len() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Detect { config, paths } => {
            let cfg = anpr_config::load(&config)?;
            let mut rec = anpr::device::load_recognizer(&cfg)?;
            let failed = anpr::detect::run(&mut rec, &paths)?;
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Eval {
            config,
            dataset,
            json,
            baseline,
        } => {
            let cfg = anpr_config::load(&config)?;
            let mut rec = anpr::device::load_recognizer(&cfg)?;
            let samples = anpr::eval::load_dataset(&dataset)?;
            let base = baseline
                .as_deref()
                .map(|p| anpr::eval::load_predictions(p, &samples))
                .transpose()?;
            let scores = anpr::eval::evaluate(&mut rec, &samples, |i, n| {
                if i % 25 == 0 {
                    eprintln!("eval: {i}/{n} images");
                }
            });
            let base = base.map(|p| anpr::eval::score(&samples, &p));
            print!("{}", anpr::eval::table(&scores, base.as_ref()));
            if let Some(path) = json {
                let report = match &base {
                    None => serde_json::to_value(&scores)?,
                    Some(b) => serde_json::json!({"rust": scores, "baseline": b}),
                };
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            config,
            intra_threads,
            no_vehicles,
            sequential,
            frames,
            width,
            json,
            input,
        } => {
            if let Some(w) = width {
                anyhow::ensure!(
                    (64..=7680).contains(&w),
                    "--width must be 64 to 7680 pixels"
                );
            }
            let cfg = anpr_config::load(&config)?;
            let mut rc = anpr::device::recognizer_config(&cfg);
            if let Some(n) = intra_threads {
                anyhow::ensure!((1..=64).contains(&n), "--intra-threads must be 1 to 64");
                rc.intra_threads = n;
            }
            if no_vehicles {
                rc.vehicle_detector = None;
            }
            if sequential {
                rc.concurrent = false;
            }
            anpr_vision::init_runtime(&cfg.models.path(&cfg.models.onnxruntime))?;
            let (threads, concurrent) = (rc.intra_threads, rc.concurrent);
            let mut rec = anpr_vision::Recognizer::new(rc)?;
            let report = anpr::bench::run(&mut rec, &input, frames, width, threads, concurrent)?;
            print!("{report}");
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Central {
            broker,
            prefix,
            db,
            report,
            events,
        } => {
            if report {
                let receiver = anpr_central::Receiver::open(&db)?;
                for d in receiver.report()? {
                    println!("{d}");
                    if events {
                        let delays = receiver.arrival_delays(&d.inventory)?;
                        for (e, (_, delay)) in receiver.events_of(&d.inventory)?.iter().zip(delays)
                        {
                            println!(
                                "  seq {:>6}  {}  plate {:<10}  captured {}  arrived {delay:.3} s later{}",
                                e.event.seq,
                                e.event.event_id,
                                e.event.plate.text,
                                e.event.captured_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                                if e.delayed { "  (replayed)" } else { "" }
                            );
                        }
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let rest = broker
                .strip_prefix("mqtt://")
                .context("--broker must be an mqtt:// URL")?;
            let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
            let cfg = anpr_central::CentralConfig {
                host: host.to_string(),
                port: port.parse().context("bad port in --broker")?,
                prefix,
                db,
                client_id: "anpr-central".into(),
            };
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            rt.block_on(async move {
                let task = tokio::spawn(anpr_central::run(cfg, stop_rx, Some(tx)));
                let printer = tokio::spawn(async move {
                    while let Some(r) = rx.recv().await {
                        let e = &r.delivery.event;
                        println!(
                            "{} seq {} plate {} vehicle {} captured {} {}",
                            e.device.inventory,
                            e.seq,
                            e.plate.text,
                            e.vehicle.class,
                            e.captured_at,
                            if r.new { "stored" } else { "duplicate" }
                        );
                    }
                });
                let _ = tokio::signal::ctrl_c().await;
                let _ = stop_tx.send(true);
                let r = task.await;
                printer.abort();
                r
            })??;
            Ok(ExitCode::SUCCESS)
        }
        Command::MakeDemo { out } => {
            let m = anpr::democlip::write_clip(&out)?;
            println!(
                "wrote {} ({} frames, plates {:?})",
                out.display(),
                m.frames,
                m.vehicles.iter().map(|v| &v.plate).collect::<Vec<_>>()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[allow(clippy::print_stdout)]
fn print_summary(s: &anpr::device::Summary) {
    println!("summary:");
    println!(
        "  frames processed   {} ({} skipped by idle_every / track_every, {} dropped)",
        s.frames, s.frames_skipped, s.frames_dropped
    );
    println!(
        "  time               {:.1} s, {:.1} frames recognised per second; {:.1} s of video, {:.2}x real time",
        s.elapsed.as_secs_f64(),
        s.fps(),
        s.stream_s,
        s.stream_s / s.elapsed.as_secs_f64().max(1e-9)
    );
    println!("  plate reads        {} (per frame)", s.plate_reads);
    println!("  vehicles detected  {} (per frame)", s.vehicles);
    println!("  events recorded    {}", s.events);
    println!(
        "  events delivered   {} (acknowledged by the central receiver)",
        s.delivered
    );
    println!("  still queued       {}", s.pending);
    for e in &s.camera_errors {
        println!("  camera fault       {e}");
    }
}
