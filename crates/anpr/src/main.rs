//! `anpr`: the roadside ANPR appliance's command line. This file parses the command line, sets
//! up logging and hands each subcommand to its module in `commands/`, which handles arguments
//! and prints; the work is done by the library crates. How the process exits is decided in one
//! place, `exit.rs`.

mod commands;
mod exit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::exit::ExitStatus;

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
    /// Run the device with a configuration file until its cameras end, Ctrl-C or SIGTERM.
    Run(RunArgs),
    /// Run the whole appliance on the synthesised demo clip with a local broker and receiver.
    Demo(DemoArgs),
    /// Find and read plates in images or folders; one JSON line per image.
    Detect(DetectArgs),
    /// Score plate detection and reading on labelled images (openalpr benchmark format).
    Eval(EvalArgs),
    /// Measure recognition throughput on a video file or an image folder: frames per second,
    /// per-stage latency percentiles, CPU use and peak memory.
    Bench(BenchArgs),
    /// Run the reference central receiver (stores and acknowledges events).
    Central(CentralArgs),
    /// Write the synthesised demo clip (H.264 MP4) and its manifest.
    MakeDemo(MakeDemoArgs),
    /// Serve a clip over RTSP as a live camera would (a camera without hardware, for replay
    /// tests and benchmarks); prints the rtsp:// URL.
    CameraSim(CameraSimArgs),
}

#[derive(Args)]
struct RunArgs {
    #[arg(long, short, default_value = "config/example.toml")]
    config: PathBuf,
    /// Seconds to keep delivering queued events after the cameras ended.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
}

#[derive(Args)]
struct DemoArgs {
    /// The device configuration (default: config/demo.toml, or config/scene.toml with --scene).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Run on the generated road scene (two lanes, a plate list, one rule of each kind) instead
    /// of the demo clip, and show the violations found beside those the scene must raise.
    #[arg(long)]
    scene: bool,
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
}

#[derive(Args)]
struct DetectArgs {
    #[arg(long, short, default_value = "config/example.toml")]
    config: PathBuf,
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Args)]
struct EvalArgs {
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
}

#[derive(Args)]
struct BenchArgs {
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
}

#[derive(Args)]
struct CentralArgs {
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
}

#[derive(Args)]
struct MakeDemoArgs {
    /// Where to write the clip (default: var/demo/demo.mp4, or var/scene/scene.mp4 with
    /// --scene); its manifest of the truth goes beside it as .json.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the generated road scene (two lanes, no plate, a stop, the wrong way) instead of
    /// the demo clip.
    #[arg(long)]
    scene: bool,
}

#[derive(Args)]
struct CameraSimArgs {
    /// The clip to serve, looping (default: the demo clip, var/demo/demo.mp4, written if missing).
    #[arg(long)]
    clip: Option<PathBuf>,
    /// TCP port of the RTSP server (0 picks a free one).
    #[arg(long, default_value_t = 8554)]
    port: u16,
    /// Address to listen on (loopback by default: the camera stays on this machine).
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
    /// Path of the stream in the URL.
    #[arg(long, default_value = "/camera")]
    mount: String,
    /// Append one JSON line per frame served here: its serial, pass, frame within the clip and
    /// the wall time it was stamped with (what the RTCP sender reports say of it).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Draw each frame's serial number into its top-left corner (black and white blocks).
    #[arg(long)]
    mark_frames: bool,
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
    let outcome = match cli.command {
        Command::Run(args) => commands::run(&args),
        Command::Demo(args) => commands::demo(&args),
        Command::Detect(args) => commands::detect(&args),
        Command::Eval(args) => commands::eval(&args),
        Command::Bench(args) => commands::bench(&args),
        Command::Central(args) => commands::central(&args),
        Command::MakeDemo(args) => commands::make_demo(&args),
        Command::CameraSim(args) => commands::camera_sim(&args),
    };
    match outcome {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitStatus::of_error(&e).into()
        }
    }
}
