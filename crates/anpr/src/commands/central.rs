//! `anpr central`: the reference central receiver on a broker until Ctrl-C (over TLS as
//! `anpr-central`, or plain MQTT with `--allow-plaintext`), or with `--report` what its
//! database holds per device.

use std::num::NonZeroU32;

use anpr_central::escape;
use anyhow::Result;

use crate::exit::{ExitStatus, Usage};
use crate::{BrokerArgs, CentralArgs, CentralCommand, CentralPostArgs};

#[allow(clippy::print_stdout)]
pub(crate) fn central(args: &CentralArgs) -> Result<ExitStatus> {
    if let Some(CentralCommand::Import {
        db,
        devices,
        bundle,
    }) = &args.command
    {
        return import(db, devices, bundle);
    }
    if let Some(CentralCommand::Post(post_args)) = &args.command {
        return post(post_args);
    }
    if args.report {
        return report(args);
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
    let cfg = receiver_link(
        &args.link,
        &args.db,
        "anpr-central".into(),
        (
            "central private key",
            args.signing_key.as_deref(),
            "--signing-key is required: the receiver signs every acknowledgement with its key (`anpr pki init` wrote <dir>/central/central.key)",
        ),
        (
            args.devices.as_deref(),
            "--devices is required: the directory of the devices' public keys, <inventory>.pub (<dir>/central/devices)",
        ),
    )?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (db, retention_days) = (args.db.clone(), args.retention_days);
    super::runtime()?.block_on(async move {
        // The archive's retention, enforced beside the receiver (docs/retention.md).
        let purge = tokio::spawn(anpr_central::purge_periodically(
            db,
            retention_days,
            stop_rx.clone(),
        ));
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
        let _ = purge.await;
        r
    })??;
    Ok(ExitStatus::Success)
}

/// What a receiver (`anpr central` or a control post) needs to reach the broker and check what
/// arrives: the broker and prefix (checked), its client id, its signing key (`key`: what it is,
/// the path, the usage message when it is missing) and the devices' public keys (`devices`: the
/// directory, the usage message when it is missing; a directory that cannot be opened is a
/// setup error, exit 2).
fn receiver_link(
    link: &BrokerArgs,
    db: &std::path::Path,
    client_id: String,
    (key_what, key, key_missing): (&'static str, Option<&std::path::Path>, &str),
    (devices, devices_missing): (Option<&std::path::Path>, &str),
) -> Result<anpr_central::CentralConfig> {
    let (host, port, tls) = broker(link)?;
    if let Some(problem) = anpr_types::Topics::prefix_problem(&link.prefix) {
        return Err(Usage(format!(
            "--prefix \"{}\" {problem}: give the devices' `uplink.topic_prefix` (anpr/v1 by default)",
            escape(&link.prefix)
        ))
        .into());
    }
    let key = key.ok_or_else(|| Usage(key_missing.into()))?;
    let devices = devices.ok_or_else(|| Usage(devices_missing.into()))?;
    anpr_trust::DeviceKeys::open(devices)?;
    Ok(anpr_central::CentralConfig {
        host,
        port,
        tls,
        prefix: link.prefix.clone(),
        db: db.to_path_buf(),
        client_id,
        signing_key: anpr_trust::load_signing_key_as(key_what, key)?,
        devices: devices.to_path_buf(),
    })
}

/// The broker of a central-side command (`anpr central`, `anpr send-list`): host, port and,
/// for `mqtts://`, the central side's TLS identity from `--tls-ca`, `--tls-cert` and
/// `--tls-key` (all three required); `mqtt://` only with `--allow-plaintext`.
pub(super) fn broker(link: &BrokerArgs) -> Result<(String, u16, Option<anpr_pki::ClientTls>)> {
    let url = link.broker.as_str();
    let (rest, default_port, tls) = if let Some(rest) = url.strip_prefix("mqtts://") {
        let (Some(ca), Some(cert), Some(key)) = (&link.tls_ca, &link.tls_cert, &link.tls_key)
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
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        if !link.allow_plaintext {
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

/// `passage` (with its direction), `violation <rule>`, `camera_gap`, or `custody <action>`;
/// escaped.
fn describe(e: &anpr_types::Event) -> String {
    match (e.kind, &e.violation, &e.custody) {
        (anpr_types::EventKind::Custody, _, Some(c)) => format!("custody {}", c.action.as_str()),
        (anpr_types::EventKind::Custody | anpr_types::EventKind::CameraGap, _, _) => {
            e.kind.as_str().to_string()
        }
        (_, Some(v), _) => format!("violation {}", escape(&v.rule)),
        (_, None, _) => match &e.vehicle.direction {
            Some(d) => format!("passage {}", escape(d)),
            None => "passage".to_string(),
        },
    }
}

/// The plate text (escaped), its status in brackets when it was not read, or `-` for a record
/// of no vehicle (a camera gap, a custody line).
fn plate_of(e: &anpr_types::Event) -> String {
    if matches!(
        e.kind,
        anpr_types::EventKind::CameraGap | anpr_types::EventKind::Custody
    ) {
        "-".to_string()
    } else if e.plate.status == anpr_types::PlateStatus::Read {
        escape(&e.plate.text).into_owned()
    } else {
        format!("({})", e.plate.status.as_str())
    }
}

/// `anpr central import`: an export bundle loaded with the receiver's checks and storage; what
/// was stored and what was already there. A refused bundle (each problem with its file) or an
/// event refused as a chain break exits 1.
#[allow(clippy::print_stdout)]
fn import(
    db: &std::path::Path,
    devices: &std::path::Path,
    bundle: &std::path::Path,
) -> Result<ExitStatus> {
    let r = match anpr_central::import(db, devices, bundle) {
        Ok(r) => r,
        Err(anpr_central::ImportError::Refused { dir, problems }) => {
            println!(
                "refused: bundle {} was not imported, nothing stored",
                dir.display()
            );
            for p in &problems {
                println!("MISMATCH {}: {}", escape(&p.file), escape(&p.what));
            }
            return Ok(ExitStatus::Failure);
        }
        Err(e) => return Err(e.into()),
    };
    let seqs = |v: &[u64]| match (v.first(), v.last()) {
        (Some(a), Some(b)) if a == b => format!(" (seq {a})"),
        (Some(a), Some(b)) => format!(" (seq {a} to {b})"),
        _ => String::new(),
    };
    println!(
        "imported bundle {} of {}: {} event(s) stored{}, {} already stored (duplicates, skipped){}; images {} stored, {} already stored",
        r.bundle_id,
        escape(&r.inventory),
        r.stored.len(),
        seqs(&r.stored),
        r.duplicates.len(),
        seqs(&r.duplicates),
        r.images_stored,
        r.images_duplicate
    );
    for (seq, reason) in &r.refused {
        println!(
            "REFUSED seq {seq}: {} (kept in chain_breaks, see --report)",
            escape(reason)
        );
    }
    for p in &r.images_refused {
        println!("REFUSED image {}", escape(p));
    }
    Ok(ExitStatus::success_if(
        r.refused.is_empty() && r.images_refused.is_empty(),
    ))
}

/// `anpr central post`: a transport control post until Ctrl-C, or its gap report.
#[allow(clippy::print_stdout)]
fn post(args: &CentralPostArgs) -> Result<ExitStatus> {
    if args.report {
        let reports = anpr_central::post_report(&args.db)?;
        if reports.is_empty() {
            println!("{}: no event received yet", args.db.display());
        }
        for r in reports {
            let stored: Vec<String> = r.stored.iter().map(|(k, n)| format!("{n} {k}")).collect();
            println!(
                "{}: seq {}..{}, {} events seen ({} copies more), kept {}, refused {}",
                escape(&r.inventory),
                r.first_seq.unwrap_or(0),
                r.last_seq.unwrap_or(0),
                r.seen,
                r.duplicates,
                if stored.is_empty() {
                    "none".to_string()
                } else {
                    stored.join(", ")
                },
                r.refused
            );
            if r.unaccounted.is_empty() {
                println!("  every event from the first to the last seen is accounted for");
            } else {
                for (a, b) in &r.unaccounted {
                    println!(
                        "  not accounted for: seq {a}..{b} (never reached this post: check the Situational Center's report for these)"
                    );
                }
            }
        }
        return Ok(ExitStatus::Success);
    }
    anpr_pki::check_inventory(&args.id).map_err(|e| Usage(format!("--id: {e}")))?;
    for d in &args.devices {
        anpr_pki::check_inventory(d).map_err(|e| Usage(format!("--device: {e}")))?;
    }
    let mut kinds = Vec::new();
    for k in &args.kinds {
        kinds.push(match k.as_str() {
            "violation" => anpr_types::EventKind::Violation,
            "passage" => anpr_types::EventKind::Passage,
            "camera_gap" => anpr_types::EventKind::CameraGap,
            "custody" => anpr_types::EventKind::Custody,
            other => {
                return Err(Usage(format!(
                    "--kind {}: not a kind of event; give violation, passage, camera_gap or custody",
                    escape(other)
                ))
                .into());
            }
        });
    }
    let link = receiver_link(
        &args.link,
        &args.db,
        anpr_pki::post_cn(&args.id),
        (
            "control post private key",
            args.signing_key.as_deref(),
            "--signing-key is required: the post signs its acknowledgements with its key (`anpr pki post` wrote <dir>/posts/<id>/post.key)",
        ),
        (
            args.device_keys.as_deref(),
            "--device-keys is required: the directory of the devices' public keys, <inventory>.pub (<dir>/posts/<id>/devices)",
        ),
    )?;
    let cfg = anpr_central::PostConfig {
        link,
        post_id: args.id.clone(),
        devices: args.devices.clone(),
        kinds,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    super::runtime()?.block_on(async move {
        let task = tokio::spawn(anpr_central::run_post(cfg, stop_rx, Some(tx)));
        let printer = tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let e = &r.delivery.event;
                println!(
                    "{} seq {} {} plate {} captured {} {}",
                    escape(&e.device.inventory),
                    e.seq,
                    describe(e),
                    plate_of(e),
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
