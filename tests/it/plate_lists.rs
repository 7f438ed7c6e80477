//! Plate lists changed from the central side while the device runs: a new version, signed by
//! the central key for this device and sent by `anpr send-list` (as the command sender,
//! `anpr-commands`) on the list's own retained topic `<prefix>/<inventory>/cmd/plate-list/<name>`,
//! is in force from the next passage on, without a restart; a malformed, half-written,
//! mis-summed, forged (altered, signed by another key, or signed for another device) or
//! replayed older version is refused with a fault on the health channel and the list in force
//! keeps working; the version in force sent again is ignored. Several lists updated while the
//! device was offline are all in force once it connects (the broker keeps the latest of each),
//! and an update on another list's topic is refused.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anpr_pipeline::{DeviceCounters, RunOptions};
use anpr_rules::ListCommand;
use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_testkit::{BrokerPki, Mosquitto};
use anpr_types::Topics;
use rumqttc::{AsyncClient, Event, Outgoing, QoS};

use crate::util;

const HEADER: &str = "plate,reason,priority,valid_from,valid_to\n";

/// A client of `broker` with the command sender's identity (CN `anpr-commands`), polled by a
/// task of its own.
struct CommandSender {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl CommandSender {
    fn connect(broker: &Mosquitto) -> Self {
        let identity = broker.commands_tls().unwrap().unwrap();
        let opts = broker
            .client_options("anpr-commands", Some(&identity))
            .unwrap();
        let (client, mut eventloop) = AsyncClient::new(opts, 16);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        Self { client, task }
    }

    /// Publishes with QoS 1, then leaves the device a moment to handle it.
    async fn publish(&self, topic: &str, retain: bool, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Disconnects after what was published (so that another client may use the identity:
    /// the broker makes the CN the client id).
    async fn disconnect(self) {
        self.client.disconnect().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the DISCONNECT goes out within 10 s")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_update_takes_effect_without_a_restart_and_bad_or_older_ones_are_refused_with_a_fault()
 {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    // Three vehicles: 123ABC01 (on the list from the start), 777KZA02 (added by the update while
    // the device runs), 505AB17 (on no list).
    let manifest = write_clip_with(&manifest_with(3), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start_unchecked(&broker, dir.path().join("central.sqlite"));
    let inv = "KZ-TEST-LISTS";
    let config = util::write_config(dir.path(), inv, clip.to_str().unwrap(), &broker);
    std::fs::write(
        dir.path().join("wanted.csv"),
        format!("{HEADER}123ABC01,stolen vehicle,1,,\n"),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = format!("lists_dir = \"lists\"\n{text}");
    text.push_str(
        "\n[[list]]\nname = \"wanted\"\nfile = \"wanted.csv\"\n\n[[rule]]\nname = \"wanted\"\nkind = \"plate-list\"\nlists = [\"wanted\"]\n",
    );
    std::fs::write(&config, text).unwrap();

    let cfg = anpr_config::load(&config).unwrap();
    let counters = Arc::new(DeviceCounters::default());
    let uplink = Arc::new(anpr_uplink::Counters::default());
    let opts = RunOptions {
        drain_timeout: Duration::from_secs(30),
        delivered: None,
        counters: counters.clone(),
        uplink: uplink.clone(),
    };
    let device = tokio::spawn(anpr_pipeline::run(cfg, opts));

    // The central side's commands, once the device has subscribed.
    assert!(
        util::wait_for(Duration::from_mins(1), || uplink
            .connected
            .load(Ordering::SeqCst))
        .await,
        "the device connects"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The command sender's identity, the only one the shipped ACL lets write commands, beside
    // the receiver (which holds its own session as anpr-central). The test's client and
    // `anpr send-list` take turns with it: the broker makes the CN the client id.
    let client = CommandSender::connect(&broker);
    let topic = Topics::new("anpr/v1", inv).plate_list("wanted");
    // The central key whose public half the device trusts (`[security] central_public_key`).
    let central_key = util::keys(dir.path()).central_signer();
    let sign =
        |version: u64, csv: &str| ListCommand::signed("wanted", version, csv, inv, &central_key);
    let both = format!("{HEADER}123ABC01,stolen vehicle,1,,\n777KZA02,unpaid fines,2,,\n");
    let malformed = sign(
        2,
        &format!("{HEADER}123ABC01,stolen vehicle,1,,\n777KZA02,unpaid fines,urgent,,\n"),
    )
    .to_json();
    let mut half = sign(2, &both).to_json();
    half.truncate(half.len() * 2 / 3);
    // Signed by the central side with a checksum that does not match (a bug there).
    let mut wrong_sum = sign(2, &both);
    wrong_sum.csv.push_str("999ZZZ99,added on the way,1,,\n");
    wrong_sum.sign(inv, &central_key);
    // Forged: a plate added on the way (checksum fixed, signature not), signed by another key,
    // and signed by the central key for another device.
    let mut altered = sign(2, &both);
    altered.csv.push_str("999ZZZ99,added on the way,1,,\n");
    altered.sha256 = anpr_trust::sha256_hex(altered.csv.as_bytes());
    let mallory = anpr_trust::SigningKey::generate(&mut rand_core::OsRng);
    let other_key = ListCommand::signed("wanted", 2, &both, inv, &mallory).to_json();
    let other_device = ListCommand::signed("wanted", 2, &both, "KZ-TEST-OTHER", &central_key);
    let good = sign(2, &both).to_json();
    // Validly signed, once in force, then replayed over version 2.
    let older = sign(1, &both).to_json();
    for payload in [
        malformed,
        half,
        wrong_sum.to_json(),
        altered.to_json(),
        other_key,
        other_device.to_json(),
    ] {
        client.publish(&topic, false, payload).await;
    }
    client.disconnect().await;
    // The good one through the command line, as the central side sends it: signed for this
    // device with the central key, QoS 1, retained.
    let csv_file = dir.path().join("wanted-v2.csv");
    std::fs::write(&csv_file, &both).unwrap();
    let sender = broker.commands_tls().unwrap().unwrap();
    let sent = tokio::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .arg("send-list")
        .args(["--broker", &format!("mqtts://127.0.0.1:{}", broker.port())])
        .arg("--tls-ca")
        .arg(&sender.ca)
        .arg("--tls-cert")
        .arg(&sender.cert)
        .arg("--tls-key")
        .arg(&sender.key)
        .arg("--signing-key")
        .arg(util::keys(dir.path()).central_key())
        .args(["--inventory", inv, "--name", "wanted", "--version", "2"])
        .arg("--csv")
        .arg(&csv_file)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "anpr send-list failed: {stdout}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(
        stdout.contains("sent plate list `wanted` version 2 (2 entries")
            && stdout.contains(&format!("on {topic}, QoS 1, retained")),
        "{stdout}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The same version again from the test's client: a QoS 1 duplicate of the version in
    // force is neither news nor a fault (the command line signed the same bytes: ed25519
    // signatures are deterministic). Then the older version, replayed.
    let client = CommandSender::connect(&broker);
    for payload in [good, older] {
        client.publish(&topic, false, payload).await;
    }
    client.disconnect().await;

    let summary = device.await.unwrap().unwrap();
    central.stop().await;
    assert!(
        summary.camera_errors.is_empty(),
        "{:?}",
        summary.camera_errors
    );
    assert_eq!(
        (
            counters.list_updates.load(Ordering::SeqCst),
            counters.list_updates_refused.load(Ordering::SeqCst)
        ),
        (1, 7),
        "one update in force; malformed, half-written, wrong checksum, altered, signed by another key, signed for another device and replayed older refused"
    );
    let kept = std::fs::read_to_string(dir.path().join("lists/wanted.json")).unwrap();
    assert!(
        kept.contains("\"version\":2"),
        "the new version is kept for restarts: {kept}"
    );

    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let violations = receiver.violations_of(inv).unwrap();
    let mut plates: Vec<(String, u64)> = violations
        .iter()
        .map(|v| {
            (
                v.plate.clone(),
                v.detail.as_ref().unwrap().list.as_ref().unwrap().version,
            )
        })
        .collect();
    plates.sort();
    assert_eq!(
        plates.len(),
        2,
        "{plates:?} of {} vehicles",
        manifest.vehicles.len()
    );
    assert_eq!(plates[0].0, "123ABC01");
    assert_eq!(
        plates[1],
        ("777KZA02".to_string(), 2),
        "the plate added by version 2 raised a violation naming that version"
    );
    let faults: Vec<String> = receiver
        .faults(inv)
        .unwrap()
        .iter()
        .flat_map(|h| {
            h.faults
                .iter()
                .map(|f| format!("{}: {}", f.code, f.message))
        })
        .collect();
    assert!(
        faults.iter().any(|f| f.starts_with("plate-list-update")),
        "a refused update is raised on the health channel: {faults:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lists_updated_while_the_device_was_offline_are_both_in_force_once_it_connects() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    // Three vehicles: 123ABC01 (on `wanted` from the start), 777KZA02 (added to `wanted` by
    // version 2) and 505AB17 (added to `stolen` by version 3), both sent while the device
    // was offline.
    let manifest = write_clip_with(&manifest_with(3), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    let inv = "KZ-TEST-OFFLINE";
    let config = util::write_config(dir.path(), inv, clip.to_str().unwrap(), &broker);
    std::fs::write(
        dir.path().join("wanted.csv"),
        format!("{HEADER}123ABC01,stolen vehicle,1,,\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("stolen.csv"), HEADER).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = format!("lists_dir = \"lists\"\n{text}");
    text.push_str(
        "\n[[list]]\nname = \"wanted\"\nfile = \"wanted.csv\"\n\n[[list]]\nname = \"stolen\"\nfile = \"stolen.csv\"\n\n[[rule]]\nname = \"listed\"\nkind = \"plate-list\"\nlists = [\"wanted\", \"stolen\"]\n",
    );
    std::fs::write(&config, text).unwrap();

    // While the device is offline (not started yet), the central side sends both lists, each
    // retained on its own topic: `wanted` through the command line, `stolen` from the test's
    // client. And version 9 of `wanted`, validly signed, retained on a third list's topic:
    // refused for its topic, it must not displace version 2.
    let central_key = util::keys(dir.path()).central_signer();
    let topics = Topics::new("anpr/v1", inv);
    let wanted_csv = dir.path().join("wanted-v2.csv");
    std::fs::write(
        &wanted_csv,
        format!("{HEADER}123ABC01,stolen vehicle,1,,\n777KZA02,unpaid fines,2,,\n"),
    )
    .unwrap();
    let sender = broker.commands_tls().unwrap().unwrap();
    let sent = tokio::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .arg("send-list")
        .args(["--broker", &broker.url()])
        .arg("--tls-ca")
        .arg(&sender.ca)
        .arg("--tls-cert")
        .arg(&sender.cert)
        .arg("--tls-key")
        .arg(&sender.key)
        .arg("--signing-key")
        .arg(util::keys(dir.path()).central_key())
        .args(["--inventory", inv, "--name", "wanted", "--version", "2"])
        .arg("--csv")
        .arg(&wanted_csv)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "anpr send-list failed: {stdout}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "on {}, QoS 1, retained",
            topics.plate_list("wanted")
        )),
        "{stdout}"
    );
    let client = CommandSender::connect(&broker);
    let stolen = ListCommand::signed(
        "stolen",
        3,
        &format!("{HEADER}505AB17,stolen vehicle,1,,\n"),
        inv,
        &central_key,
    );
    client
        .publish(&topics.plate_list("stolen"), true, stolen.to_json())
        .await;
    let misplaced = ListCommand::signed(
        "wanted",
        9,
        &format!("{HEADER}999ZZZ99,misplaced,1,,\n"),
        inv,
        &central_key,
    );
    client
        .publish(&topics.plate_list("other"), true, misplaced.to_json())
        .await;
    client.disconnect().await;

    let cfg = anpr_config::load(&config).unwrap();
    let counters = Arc::new(DeviceCounters::default());
    let opts = RunOptions {
        drain_timeout: Duration::from_secs(30),
        delivered: None,
        counters: counters.clone(),
        uplink: Arc::new(anpr_uplink::Counters::default()),
    };
    let summary = anpr_pipeline::run(cfg, opts).await.unwrap();
    central.stop().await;
    assert!(
        summary.camera_errors.is_empty(),
        "{:?}",
        summary.camera_errors
    );
    assert_eq!(
        (
            counters.list_updates.load(Ordering::SeqCst),
            counters.list_updates_refused.load(Ordering::SeqCst)
        ),
        (2, 1),
        "both retained lists put in force; the one on another list's topic refused"
    );
    for (name, version) in [("wanted", 2), ("stolen", 3)] {
        let kept = std::fs::read_to_string(dir.path().join(format!("lists/{name}.json"))).unwrap();
        assert!(
            kept.contains(&format!("\"version\":{version}")),
            "{name} version {version} is kept for restarts: {kept}"
        );
    }

    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let mut hits: Vec<(String, String, u64)> = receiver
        .violations_of(inv)
        .unwrap()
        .iter()
        .map(|v| {
            let list = v.detail.as_ref().unwrap().list.as_ref().unwrap();
            (v.plate.clone(), list.name.clone(), list.version)
        })
        .collect();
    hits.sort();
    // 123ABC01 is on every version of `wanted` (the first vehicle may pass before the device
    // has connected); the other two only on the versions sent while it was offline.
    let names: Vec<(&str, &str)> = hits
        .iter()
        .map(|(plate, list, _)| (plate.as_str(), list.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("123ABC01", "wanted"),
            ("505AB17", "stolen"),
            ("777KZA02", "wanted")
        ],
        "{hits:?} of {} vehicles",
        manifest.vehicles.len()
    );
    assert_eq!(
        (hits[1].2, hits[2].2),
        (3, 2),
        "the plates added while the device was offline raised violations naming those versions"
    );
    let faults: Vec<String> = receiver
        .faults(inv)
        .unwrap()
        .iter()
        .flat_map(|h| h.faults.iter().map(|f| f.message.clone()))
        .collect();
    assert!(
        faults
            .iter()
            .any(|f| f.contains("the topic of list `other`")),
        "the update on another list's topic is raised on the health channel: {faults:?}"
    );
}

#[test]
fn send_list_refuses_a_list_the_device_would_refuse_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let keys = util::keys(dir.path());
    let csv = dir.path().join("wanted.csv");
    std::fs::write(
        &csv,
        format!("{HEADER}123ABC01,stolen vehicle,1,,\n777KZA02,unpaid fines,urgent,,\n"),
    )
    .unwrap();
    let send = |version: &str, inventory: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
            .arg("send-list")
            // Nothing listens there: the command must stop before it connects.
            .args(["--broker", "mqtt://127.0.0.1:9", "--allow-plaintext"])
            .arg("--signing-key")
            .arg(keys.central_key())
            .args(["--inventory", inventory, "--name", "wanted"])
            .args(["--version", version])
            .arg("--csv")
            .arg(&csv)
            .output()
            .unwrap()
    };
    let out = send("2", "KZ-1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 3: priority `urgent`") && stderr.contains("nothing was sent"),
        "{stderr}"
    );
    let out = send("0", "KZ-1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--version must be 1 or more"), "{stderr}");
    let out = send("2", "../KZ-1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not an inventory number"), "{stderr}");

    // With the central receiver's certificate: refused before connecting (it would take over
    // the receiver's session, and the broker lets only the command sender write commands),
    // naming the command sender's files.
    std::fs::write(&csv, format!("{HEADER}123ABC01,stolen vehicle,1,,\n")).unwrap();
    let pki = BrokerPki::temporary().unwrap();
    let receiver = pki.central().tls;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .arg("send-list")
        .args(["--broker", "mqtts://127.0.0.1:9"])
        .arg("--tls-ca")
        .arg(&receiver.ca)
        .arg("--tls-cert")
        .arg(&receiver.cert)
        .arg("--tls-key")
        .arg(&receiver.key)
        .arg("--signing-key")
        .arg(keys.central_key())
        .args(["--inventory", "KZ-1", "--name", "wanted", "--version", "2"])
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let commands = pki.pki().commands();
    assert!(
        stderr.contains("central receiver's certificate (CN anpr-central)")
            && stderr.contains(&commands.cert.display().to_string())
            && stderr.contains(&commands.key.display().to_string()),
        "{stderr}"
    );
}
