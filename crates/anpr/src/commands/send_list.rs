//! `anpr send-list`: the central side sends one device a new version of a plate list. The
//! command is signed with the central key for that device's inventory (see
//! `anpr_trust::command`), published on the list's own topic
//! `<prefix>/<inventory>/cmd/plate-list/<name>` with QoS 1 and retained, so that a device that
//! is offline gets the latest version of every list when it connects again (the broker keeps
//! one retained message per topic), and the command exits once the broker has acknowledged it.
//!
//! It connects as the command sender (`--tls-cert <pki>/central/commands.tls.crt`, CN
//! `anpr-commands`, which the broker's ACL lets write commands and nothing else), never as the
//! central receiver: the broker makes the CN the client id, so the receiver's certificate would
//! take over the receiver's session.
//!
//! The list is checked here first as strictly as the device will check it (header, every
//! line, a list name fit for a file name), so that a list the device would refuse is not sent.

use std::time::Duration;

use anpr_rules::{ListCommand, ListSource, PlateList};
use anyhow::{Context, Result, anyhow};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

use crate::SendListArgs;
use crate::exit::{ExitStatus, Usage};

#[allow(clippy::print_stdout)]
pub(crate) fn send_list(args: &SendListArgs) -> Result<ExitStatus> {
    if !anpr_trust::valid_inventory(&args.inventory) {
        return Err(Usage(format!(
            "--inventory {:?} is not an inventory number: letters, digits, '-', '_' and '.', not starting with '.', at most 64 characters",
            args.inventory
        ))
        .into());
    }
    if args.version == 0 {
        return Err(Usage(
            "--version must be 1 or more: version 0 is the list file of the device's configuration, and an update must be above the version in force".into(),
        )
        .into());
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 3600.0) {
        return Err(Usage("--timeout must be a number of seconds from 0 to 3600".into()).into());
    }
    let csv = std::fs::read_to_string(&args.csv).with_context(|| {
        format!(
            "cannot read the list {} (--csv) as UTF-8 text",
            args.csv.display()
        )
    })?;
    let entries = check_list(args, &csv)?;
    let (host, port, tls) = super::central::broker(&args.link)?;
    if let Some(tls) = &tls {
        refuse_receiver_identity(tls)?;
    }
    let key = anpr_trust::load_signing_key_as("central private key", &args.signing_key)?;
    let cmd = ListCommand::signed(&args.name, args.version, &csv, &args.inventory, &key);
    let payload = cmd.to_json();
    // The name is checked as the device checks it (letters, digits, '-', '_').
    ListCommand::parse(&payload).map_err(|e| Usage(format!("--name: {e}")))?;
    let topic = anpr_types::Topics::new(&args.link.prefix, &args.inventory).plate_list(&cmd.name);
    // The packet (topic, header and payload) must fit what the broker and the device take.
    if payload.len() + topic.len() + 16 > anpr_uplink::MAX_PACKET {
        return Err(Usage(format!(
            "the command is {} bytes, more than the {} a device accepts: split the list",
            payload.len(),
            anpr_uplink::MAX_PACKET
        ))
        .into());
    }
    let mut opts = MqttOptions::new(
        format!("anpr-send-list-{}", std::process::id()),
        &host,
        port,
    );
    if let Some(tls) = &tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.config(),
        )));
    }
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(
        anpr_uplink::MAX_PACKET + 1024,
        anpr_uplink::MAX_PACKET + 1024,
    );
    let timeout = Duration::from_secs_f64(args.timeout);
    super::runtime()?.block_on(publish(opts, &topic, payload, timeout))?;
    println!(
        "sent plate list `{}` version {} ({entries} entries, {} bytes of csv, sha256 {}) to {} on {topic}, QoS 1, retained; the broker acknowledged it",
        cmd.name,
        cmd.version,
        cmd.csv.len(),
        cmd.sha256,
        args.inventory,
    );
    println!("signature {}", cmd.signature);
    Ok(ExitStatus::Success)
}

/// Refuses the central receiver's certificate: the broker would make its CN the client id and
/// take over the receiver's session, and its ACL does not let the receiver write commands (a
/// refused publish is still acknowledged, so the command would seem sent and be lost).
fn refuse_receiver_identity(tls: &anpr_pki::ClientTls) -> Result<()> {
    if tls.common_name() == Some(anpr_pki::CENTRAL_CN) {
        let files = tls.files();
        let dir = files.cert.parent().unwrap_or(std::path::Path::new("."));
        return Err(Usage(format!(
            "--tls-cert {} is the central receiver's certificate (CN {}); sending with it would take over the receiver's session, and the broker does not let the receiver write commands: use the command sender's, --tls-cert {} --tls-key {} (`anpr pki init` writes them; `anpr pki commands --dir <pki>` adds them to an older PKI)",
            files.cert.display(),
            anpr_pki::CENTRAL_CN,
            dir.join("commands.tls.crt").display(),
            dir.join("commands.tls.key").display(),
        ))
        .into());
    }
    Ok(())
}

/// Parses the list as the device will, and refuses it when the device would; the number of
/// entries otherwise.
fn check_list(args: &SendListArgs, csv: &str) -> Result<usize> {
    let origin = args.csv.display().to_string();
    let src = ListSource {
        name: &args.name,
        version: args.version,
        default_priority: anpr_config::DEFAULT_PRIORITY,
        // Only whether dates parse matters here; the device reads them in its time zone.
        time_zone: anpr_config::Tz::UTC,
        origin: &origin,
    };
    let parsed = PlateList::parse(csv.as_bytes(), &src).map_err(|e| Usage(e.to_string()))?;
    if let Some(first) = parsed.problems.first() {
        return Err(Usage(format!(
            "{first} ({} malformed line(s) in all); the device refuses a list with any malformed line, so nothing was sent",
            parsed.problems.len()
        ))
        .into());
    }
    Ok(parsed.list.len())
}

/// Connects, publishes `payload` on `topic` (QoS 1, retained) and waits for the broker's
/// acknowledgement, all within `timeout`; a lost connection is tried again twice.
#[allow(clippy::print_stderr)]
async fn publish(
    opts: MqttOptions,
    topic: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<()> {
    let (client, mut eventloop) = AsyncClient::new(opts, 4);
    let sent = tokio::time::timeout(timeout, async {
        let mut published = false;
        let mut failures = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) if !published => {
                    client
                        .publish(topic, QoS::AtLeastOnce, true, payload.clone())
                        .await?;
                    published = true;
                }
                // The only QoS 1 publish of this connection.
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                // A connection taken over (the broker gives the command sender's client id to
                // every client with its certificate: two senders at once) is worth another
                // try; the device takes the same version twice as once.
                Err(e) if failures < 2 => {
                    failures += 1;
                    eprintln!("connection to the broker lost ({e}); trying again");
                    published = false;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(anyhow!(e).context(
                        "the broker refused the connection or closed it, three times; check --broker and that --tls-cert / --tls-key are the command sender's certificate and key, which the broker lets write commands (`anpr pki init` wrote them as <dir>/central/commands.tls.crt and commands.tls.key; `anpr pki commands` adds them to an older PKI, and the broker's ACL needs the `user anpr-commands` block of deploy/mosquitto/acl)",
                    ));
                }
            }
        }
    })
    .await
    .map_err(|_| {
        anyhow!(
            "the broker did not acknowledge the command within {} s; check that it runs and is reachable, then send again (a device takes each version once)",
            timeout.as_secs_f64()
        )
    })?;
    sent?;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    Ok(())
}
