//! `anpr central`: the reference central receiver on a broker until Ctrl-C (over TLS as
//! `anpr-central`, or plain MQTT with `--allow-plaintext`), or with `--report` what its
//! database holds per device.

use std::num::NonZeroU32;
use std::path::PathBuf;

use anpr_central::escape;
use anyhow::Result;

use crate::CentralArgs;
use crate::exit::{ExitStatus, Usage};

#[allow(clippy::print_stdout)]
pub(crate) fn central(args: &CentralArgs) -> Result<ExitStatus> {
    if args.report {
        return report(args);
    }
    let (host, port, tls) = broker(
        &args.broker,
        (
            args.tls_ca.as_ref(),
            args.tls_cert.as_ref(),
            args.tls_key.as_ref(),
        ),
        args.allow_plaintext,
    )?;
    if let Some(problem) = anpr_types::Topics::prefix_problem(&args.prefix) {
        return Err(Usage(format!(
            "--prefix \"{}\" {problem}: give the devices' `uplink.topic_prefix` (anpr/v1 by default)",
            escape(&args.prefix)
        ))
        .into());
    }
    let limits = anpr_central::Limits {
        max_event_bytes: args.max_event_bytes,
        max_evidence_bytes: args.max_evidence_bytes,
        max_health_bytes: args.max_health_bytes,
        device_rate: NonZeroU32::new(args.device_rate)
            .ok_or_else(|| Usage("--device-rate must be at least 1".into()))?,
        device_burst: NonZeroU32::new(args.device_burst)
            .ok_or_else(|| Usage("--device-burst must be at least 1".into()))?,
    };
    let cfg = anpr_central::CentralConfig {
        host,
        port,
        tls,
        prefix: args.prefix.clone(),
        db: args.db.clone(),
        client_id: "anpr-central".into(),
        signing_key: anpr_trust::load_signing_key_as(
            "central private key",
            args.signing_key
                .as_deref()
                .ok_or_else(|| Usage("--signing-key is required: the receiver signs every acknowledgement with its key (`anpr pki init` wrote <dir>/central/central.key)".into()))?,
        )?,
        devices: {
            let dir = args
                .devices
                .clone()
                .ok_or_else(|| Usage("--devices is required: the directory of the devices' public keys, <inventory>.pub (<dir>/central/devices)".into()))?;
            // Checked here, so that a missing directory is a setup error (exit 2).
            anpr_trust::DeviceKeys::open(&dir)?;
            dir
        },
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    super::runtime()?.block_on(async move {
        let task = tokio::spawn(anpr_central::run_with_limits(
            cfg,
            limits,
            stop_rx,
            Some(tx),
        ));
        let printer = tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let e = &r.delivery.event;
                // Every text from the payload is escaped: a plate or a rule name cannot
                // write control characters to the terminal.
                println!(
                    "{} seq {} {} plate {} vehicle {} captured {} {}",
                    escape(&e.device.inventory),
                    e.seq,
                    describe(e),
                    plate_of(e),
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
    Ok(ExitStatus::Success)
}

/// The broker of a central-side command (`anpr central`, `anpr send-list`): host, port and,
/// for `mqtts://`, the central side's TLS identity from `--tls-ca`, `--tls-cert` and
/// `--tls-key` (all three required); `mqtt://` only with `--allow-plaintext`.
pub(super) fn broker(
    url: &str,
    (ca, cert, key): (Option<&PathBuf>, Option<&PathBuf>, Option<&PathBuf>),
    allow_plaintext: bool,
) -> Result<(String, u16, Option<anpr_pki::ClientTls>)> {
    let (rest, default_port, tls) = if let Some(rest) = url.strip_prefix("mqtts://") {
        let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) else {
            return Err(Usage(
                "an mqtts:// broker needs --tls-ca, --tls-cert and --tls-key (the files `anpr pki init` wrote into <dir>/central/)".into(),
            )
            .into());
        };
        let files = anpr_pki::TlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        };
        (rest, "8883", Some(anpr_pki::ClientTls::load(&files)?))
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        if !allow_plaintext {
            return Err(Usage(
                "a plain mqtt:// broker lets anyone on the path read the events and forge acknowledgements: use mqtts:// with --tls-ca, --tls-cert and --tls-key, or add --allow-plaintext for a lab".into(),
            )
            .into());
        }
        (rest, "1883", None)
    } else {
        return Err(Usage(
            "--broker must be an mqtts:// (or, with --allow-plaintext, mqtt://) URL".into(),
        )
        .into());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, default_port));
    let port = port
        .parse()
        .map_err(|e| Usage(format!("bad port in --broker: {e}")))?;
    Ok((host.to_string(), port, tls))
}

/// `--report`: what arrived per device, and with `--events` every event.
#[allow(clippy::print_stdout)]
fn report(args: &CentralArgs) -> Result<ExitStatus> {
    let receiver = anpr_central::Receiver::open(&args.db)?;
    for d in receiver.report()? {
        println!("{d}");
        if args.events {
            let delays = receiver.arrival_delays(&d.inventory)?;
            for (e, (_, delay)) in receiver.events_of(&d.inventory)?.iter().zip(delays) {
                println!(
                    "  seq {:>6}  {}  {:<28}  plate {:<12}  captured {}  arrived {delay:.3} s later{}",
                    e.event.seq,
                    e.event.event_id,
                    describe(&e.event),
                    plate_of(&e.event),
                    e.event.captured_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    if e.delayed { "  (replayed)" } else { "" }
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// `passage` (with its direction), or `violation <rule>`; escaped.
fn describe(e: &anpr_types::Event) -> String {
    match &e.violation {
        Some(v) => format!("violation {}", escape(&v.rule)),
        None => match &e.vehicle.direction {
            Some(d) => format!("passage {}", escape(d)),
            None => "passage".to_string(),
        },
    }
}

/// The plate text (escaped), or its status in brackets when it was not read.
fn plate_of(e: &anpr_types::Event) -> String {
    if e.plate.status == anpr_types::PlateStatus::Read {
        escape(&e.plate.text).into_owned()
    } else {
        format!("({})", e.plate.status.as_str())
    }
}
