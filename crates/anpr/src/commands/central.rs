//! `anpr central`: the reference central receiver on a broker until Ctrl-C (over TLS as
//! `anpr-central`, or plain MQTT with `--allow-plaintext`), or with `--report` what its
//! database holds per device.

use anyhow::Result;

use crate::CentralArgs;
use crate::exit::{ExitStatus, Usage};

#[allow(clippy::print_stdout)]
pub(crate) fn central(args: &CentralArgs) -> Result<ExitStatus> {
    if args.report {
        return report(args);
    }
    let (rest, default_port, tls) = if let Some(rest) = args.broker.strip_prefix("mqtts://") {
        let (Some(ca), Some(cert), Some(key)) = (&args.tls_ca, &args.tls_cert, &args.tls_key)
        else {
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
    } else if let Some(rest) = args.broker.strip_prefix("mqtt://") {
        if !args.allow_plaintext {
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
    let cfg = anpr_central::CentralConfig {
        host: host.to_string(),
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
        let task = tokio::spawn(anpr_central::run(cfg, stop_rx, Some(tx)));
        let printer = tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let e = &r.delivery.event;
                println!(
                    "{} seq {} {} plate {} vehicle {} captured {} {}",
                    e.device.inventory,
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

/// `passage` (with its direction), or `violation <rule>`.
fn describe(e: &anpr_types::Event) -> String {
    match &e.violation {
        Some(v) => format!("violation {}", v.rule),
        None => match &e.vehicle.direction {
            Some(d) => format!("passage {d}"),
            None => "passage".to_string(),
        },
    }
}

/// The plate text, or its status in brackets when it was not read.
fn plate_of(e: &anpr_types::Event) -> String {
    if e.plate.status == anpr_types::PlateStatus::Read {
        e.plate.text.clone()
    } else {
        format!("({})", e.plate.status.as_str())
    }
}
