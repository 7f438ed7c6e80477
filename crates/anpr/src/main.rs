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
    /// Score plate detection and reading on labelled images (openalpr benchmark format), and
    /// with --vehicle-types the vehicle types reported against types labelled by eye.
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
    /// Make the certificates and keys of the MQTT link: a development CA, the broker's, the
    /// central receiver's and the command sender's identities, and one per device.
    Pki(PkiArgs),
    /// Check a device's hash chain, in its queue (--queue) or in a receiver's database
    /// (--central with --inventory): every hash recomputed, every link and signature checked;
    /// names the first row that does not match and exits 1, or 0 when all is intact. With
    /// --bundle, checks an export bundle and names every file that does not match.
    Verify(VerifyArgs),
    /// Send a device a new version of a plate list, as the central side: signed with the
    /// central key for that device, published on the list's own command topic
    /// <prefix>/<inventory>/cmd/plate-list/<name> (QoS 1, retained), with the command
    /// sender's certificate (CN anpr-commands).
    SendList(SendListArgs),
    /// The custody journal of a mobile unit (rule 27, annex 3): issue the device to an
    /// employee, record its return, list the journal (as the printable annex-3 table with
    /// --html).
    Custody(CustodyArgs),
    /// Copy what could not go out live (every undelivered event, or a capture-time range) into
    /// a bundle signed with the device key, for `anpr central import`; journaled in the custody
    /// journal with the copy time and the recordings' duration.
    Export(ExportArgs),
    /// The central side at fleet scale: `fleet demo` starts a NATS cluster, PostgreSQL, the
    /// object store, receiver replicas and thousands of simulated devices and prints what was
    /// stored and lost; `fleet receiver` runs one receiver replica.
    Fleet(commands::FleetArgs),
}

#[derive(Args)]
struct CustodyArgs {
    #[command(subcommand)]
    command: CustodyCommand,
}

#[derive(Subcommand)]
enum CustodyCommand {
    /// Issue the device to an employee (refused while it is issued to someone).
    Issue {
        #[arg(long, short)]
        config: PathBuf,
        /// The employee's full name (surname, name, patronymic if any).
        #[arg(long)]
        employee: Option<String>,
        /// The employee's service number.
        #[arg(long)]
        employee_id: Option<String>,
        /// When the employee accepted the device: RFC 3339 (2026-03-01T08:30:00+05:00), or
        /// "YYYY-MM-DD HH:MM" in the device's `time_zone`. Default: now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Record the return of the device by the employee it is issued to.
    Return {
        #[arg(long, short)]
        config: PathBuf,
        /// When it was returned (as for `issue --at`). Default: now.
        #[arg(long)]
        at: Option<String>,
    },
    /// List the custody journal; with --html, also write it as the printable annex-3 table.
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// Write the annex-3 table here (one self-contained HTML file; print it from a browser).
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ExportArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// The bundle's folder (created; refused if it exists and is not empty), e.g. on a USB
    /// stick.
    #[arg(long)]
    to: PathBuf,
    /// Export the events captured from this time on (delivered or not) instead of every
    /// undelivered one: RFC 3339, or "YYYY-MM-DD HH:MM" in the device's `time_zone`.
    #[arg(long)]
    from: Option<String>,
    /// Export the events captured up to this time (as --from).
    #[arg(long)]
    to_time: Option<String>,
}

/// How a central-side command reaches the broker (`anpr central`, `anpr send-list`).
#[derive(Args)]
struct BrokerArgs {
    /// The broker: mqtts://host:port (TLS with --tls-ca, --tls-cert, --tls-key), or
    /// mqtt://host:port with --allow-plaintext.
    #[arg(long, default_value = "mqtts://127.0.0.1:8883")]
    broker: String,
    /// The CA certificate that issued the broker's certificate (`anpr pki init` wrote it as
    /// <dir>/central/ca.crt).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// This command's certificate, from <dir>/central/: central.tls.crt for the receiver
    /// (CN anpr-central), commands.tls.crt for sending commands (CN anpr-commands).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Its private key, the .tls.key beside it (mode 0600).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Connect to a plain mqtt:// broker: anyone on the path reads the events and can forge
    /// acknowledgements. For a lab only.
    #[arg(long, conflicts_with_all = ["tls_ca", "tls_cert", "tls_key"])]
    allow_plaintext: bool,
    /// The devices' `uplink.topic_prefix`.
    #[arg(long, default_value = "anpr/v1")]
    prefix: String,
}

#[derive(Args)]
struct SendListArgs {
    /// With the command sender's certificate, CN anpr-commands (<dir>/central/commands.tls.crt,
    /// written by `anpr pki init`, or by `anpr pki commands` in a PKI made before). Not the
    /// receiver's (anpr-central): the broker makes the CN the client id, so that would take
    /// over the receiver's session, and the receiver may not write commands.
    #[command(flatten)]
    link: BrokerArgs,
    /// The central side's ed25519 private key (PKCS#8 PEM, mode 0600), whose public half the
    /// device holds as `[security] central_public_key` (<dir>/central/central.key).
    #[arg(long)]
    signing_key: PathBuf,
    /// The device: its inventory number, as in its `[device] inventory`. The command is
    /// signed for it alone.
    #[arg(long)]
    inventory: String,
    /// The list, as declared on the device with a `[[list]]` section.
    #[arg(long)]
    name: String,
    /// The new version: above the one in force on the device.
    #[arg(long)]
    version: u64,
    /// The whole list, CSV with the header `plate,reason,priority,valid_from,valid_to`.
    #[arg(long)]
    csv: PathBuf,
    /// Seconds to wait for the broker to acknowledge the command.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["queue", "central", "bundle"])))]
#[command(group(clap::ArgGroup::new("keyed").args(["queue", "bundle"])))]
#[command(group(clap::ArgGroup::new("with_devices").args(["central", "bundle"])))]
struct VerifyArgs {
    /// A device's queue (its `[storage] queue` file).
    #[arg(long)]
    queue: Option<PathBuf>,
    /// With --queue or --bundle: the device's public key (<inventory>.pub); without it (or
    /// --devices), signatures are not checked (hashes and links still are).
    #[arg(long, requires = "keyed", conflicts_with = "devices")]
    key: Option<PathBuf>,
    /// An export bundle (the folder `anpr export --to` wrote): every file against its
    /// manifest, every line and signature; names each file that does not match.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// A central receiver's database.
    #[arg(long, requires = "inventory")]
    central: Option<PathBuf>,
    /// With --central: the device whose events are walked.
    #[arg(long, requires = "central")]
    inventory: Option<String>,
    /// With --central or --bundle: the directory of device public keys (<inventory>.pub), as
    /// given to `anpr central --devices`; without it, signatures are not checked.
    #[arg(long, requires = "with_devices")]
    devices: Option<PathBuf>,
}

#[derive(Args)]
struct PkiArgs {
    #[command(subcommand)]
    command: PkiCommand,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Make a new CA in --dir, with the broker's certificate, the central receiver's
    /// certificate (CN anpr-central), the command sender's certificate (CN anpr-commands, for
    /// `anpr send-list`) and the central side's signing keys.
    Init {
        /// The PKI's directory (created; refused if it already holds a CA).
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name or IP address the devices reach the broker by (repeatable); localhost
        /// and 127.0.0.1 are always in the broker's certificate.
        #[arg(long = "broker-name")]
        broker_names: Vec<String>,
    },
    /// Issue one device's identity: a client certificate with CN = the inventory number, and
    /// its signing keys (refused if the device already has a key).
    Device {
        #[arg(long)]
        dir: PathBuf,
        /// The device's inventory number, as in its `[device] inventory`.
        #[arg(long)]
        inventory: String,
    },
    /// Issue the command sender's certificate (CN anpr-commands, for `anpr send-list`) into
    /// a PKI made before `anpr pki init` issued it (refused if it has one).
    Commands {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a transport control post's identity: a client certificate with CN
    /// anpr-post-<id>, its signing keys, copies of its devices' public keys, and its block for
    /// the broker's ACL (<dir>/posts/<id>/acl, to append to /etc/mosquitto/anpr/acl).
    Post {
        #[arg(long)]
        dir: PathBuf,
        /// The post's id: 1 to 64 letters, digits, '-' or '_'.
        #[arg(long)]
        id: String,
        /// A device the post may read (repeatable; issued before the post). None: every
        /// device.
        #[arg(long = "device")]
        devices: Vec<String>,
        /// The devices' `uplink.topic_prefix`, written into the ACL block.
        #[arg(long, default_value = "anpr/v1")]
        prefix: String,
    },
    /// Revoke a certificate: list it in the CRL the broker reads (broker/crl.pem).
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// The device whose current certificate (in its folder) is revoked.
        #[arg(long, required_unless_present = "cert", conflicts_with = "cert")]
        inventory: Option<String>,
        /// A certificate file this CA issued (e.g. a device's old one, moved away at a
        /// rotation).
        #[arg(long)]
        cert: Option<PathBuf>,
    },
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
    /// Keep the previous queue and receiver database instead of starting afresh (what the
    /// queue still holds is delivered).
    #[arg(long)]
    keep: bool,
    /// Start afresh even if the previous queue still holds events or images not delivered to
    /// the receiver: they are thrown away (without it, the demo refuses and says how many).
    #[arg(long, conflicts_with = "keep")]
    discard_undelivered: bool,
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
    /// Write the scores as JSON here too (with the vehicle-type scores under
    /// `vehicle_types` when --vehicle-types is given).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also score the vehicle types reported against these labels (`image x y w h type
    /// [note]` per line, image paths relative to --dataset, the box the plate the vehicle
    /// carries, e.g. `models/vehicle_types/openalpr.tsv`): prints the confusion matrix,
    /// labelled type by reported type, with each class's precision and recall.
    #[arg(long)]
    vehicle_types: Option<PathBuf>,
    /// Also score these predictions (JSON lines in the `detect` format, e.g. from the
    /// Python baseline `benches/baseline.sh`) and print them beside the device's.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Write a self-contained HTML page here too: the scores, small plates apart, a
    /// character confusion table and every miss with its plate crop.
    #[arg(long)]
    html: Option<PathBuf>,
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
    /// Frames recognised at a time, each by its own recognizer on a thread of its own, 1 to 4
    /// (default: the config's `models.parallel_frames`).
    #[arg(long)]
    parallel_frames: Option<usize>,
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
    /// Write a self-contained HTML page here too: the figures, a latency histogram per stage
    /// and frames per second over the run.
    #[arg(long)]
    html: Option<PathBuf>,
    /// A video file or a folder of images.
    input: PathBuf,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct CentralArgs {
    #[command(subcommand)]
    command: Option<CentralCommand>,
    /// With the receiver's certificate, CN anpr-central (<dir>/central/central.tls.crt).
    #[command(flatten)]
    link: BrokerArgs,
    #[arg(long, default_value = "central.sqlite")]
    db: PathBuf,
    /// The receiver's ed25519 private key (PKCS#8 PEM, mode 0600): every acknowledgement is
    /// signed with it (`anpr pki init` wrote it as <dir>/central/central.key). Required to run
    /// the receiver.
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// Directory of the devices' public keys, one `<inventory>.pub` each (<dir>/central/devices):
    /// an event is stored only with a valid signature by its device's key. Required to run the
    /// receiver.
    #[arg(long)]
    devices: Option<PathBuf>,
    /// Print what arrived per device (counts, sequence gaps, delays, images, the device's
    /// own health) and exit.
    #[arg(long)]
    report: bool,
    /// With --report: also list every event (sequence, plate, capture time, delay).
    #[arg(long, requires = "report")]
    events: bool,
    /// Largest events payload taken, bytes; a larger one is quarantined unread and not
    /// acknowledged (an event is about 1 KiB).
    #[arg(long, default_value_t = anpr_central::limits::MAX_EVENT_BYTES)]
    max_event_bytes: usize,
    /// Largest evidence image taken, bytes (the device sends none larger than 8 MiB).
    #[arg(long, default_value_t = anpr_central::limits::MAX_EVIDENCE_BYTES)]
    max_evidence_bytes: usize,
    /// Largest health payload taken, bytes (a health message is under 2 KiB).
    #[arg(long, default_value_t = anpr_central::limits::MAX_HEALTH_BYTES)]
    max_health_bytes: usize,
    /// Messages per second taken from one device, on average; more are dropped unread and
    /// not acknowledged (the device sends them again). Raise it above 10,000 only for devices
    /// whose `uplink.backlog_rate` is set above about 8,000.
    #[arg(long, default_value_t = anpr_central::limits::DEVICE_RATE, value_parser = clap::value_parser!(u32).range(1..))]
    device_rate: u32,
    /// Messages one device may send at once above --device-rate.
    #[arg(long, default_value_t = anpr_central::limits::DEVICE_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    device_burst: u32,
    /// Days the archive keeps each event, violation and image after its capture (the rules'
    /// archive period is one year); older ones are purged every hour, each purge recorded in
    /// the database's `purges` table. There is no command to delete records.
    #[arg(long, default_value_t = anpr_central::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(anpr_central::MAX_RETENTION_DAYS)))]
    retention_days: u32,
}

#[derive(Subcommand)]
enum CentralCommand {
    /// Load an export bundle (`anpr export`) into the receiver's database with the checks and
    /// deduplication of live delivery; a bundle that does not match its manifest or signatures
    /// is refused whole, naming each file.
    Import {
        /// The receiver's database.
        #[arg(long, default_value = "central.sqlite")]
        db: PathBuf,
        /// Directory of the devices' public keys, <inventory>.pub (<dir>/central/devices).
        #[arg(long)]
        devices: PathBuf,
        /// The bundle's folder.
        bundle: PathBuf,
    },
    /// Run a transport control post (the second kind of receiver, docs/receivers.md): the
    /// violations (plate-list hits included) of the devices given, live, acknowledged on its
    /// own path `<prefix>/<inventory>/ack/post/<id>`; or with --report, what it received per
    /// device and the sequence numbers it cannot account for.
    Post(Box<CentralPostArgs>),
}

#[derive(Args)]
struct CentralPostArgs {
    /// With the post's certificate, CN anpr-post-<id> (<dir>/posts/<id>/post.tls.crt, written
    /// by `anpr pki post`).
    #[command(flatten)]
    link: BrokerArgs,
    /// The post's id, as given to `anpr pki post --id`.
    #[arg(long)]
    id: String,
    /// A device the post watches (repeatable): its inventory number. None: every device the
    /// broker's ACL lets the post read.
    #[arg(long = "device")]
    devices: Vec<String>,
    /// A kind of event kept (repeatable): violation (default; plate-list hits are
    /// violations), passage, camera_gap, custody.
    #[arg(long = "kind", default_values_t = [String::from("violation")])]
    kinds: Vec<String>,
    /// The post's database.
    #[arg(long, default_value = "post.sqlite")]
    db: PathBuf,
    /// The post's ed25519 private key (<dir>/posts/<id>/post.key): its acknowledgements are
    /// signed with it. Required to run the post.
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// Directory of the devices' public keys (<dir>/posts/<id>/devices). Required to run the
    /// post.
    #[arg(long = "device-keys")]
    device_keys: Option<PathBuf>,
    /// Print what arrived per device and the sequence numbers not accounted for, and exit.
    #[arg(long)]
    report: bool,
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
        Command::Pki(args) => commands::pki(&args.command),
        Command::Verify(args) => commands::verify(&args),
        Command::SendList(args) => commands::send_list(&args),
        Command::Custody(args) => commands::custody(&args.command),
        Command::Export(args) => commands::export(&args),
        Command::Fleet(args) => commands::fleet(&args),
    };
    match outcome {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitStatus::of_error(&e).into()
        }
    }
}
