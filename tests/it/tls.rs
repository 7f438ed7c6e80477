//! The transport as deployed: a real mosquitto running `deploy/mosquitto/anpr.conf` with the
//! shipped ACL, certificates from `anpr-pki`. Who is let in, and what each certificate (a
//! device's, the central receiver's, the command sender's) can write and read. (A forged ack
//! that does reach the device is refused by its signature check: that is `trust`'s part;
//! here the broker keeps it from arriving at all.)

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anpr_pki::TlsFiles;
use anpr_store::Store;
use anpr_testkit::{BrokerOptions, BrokerPki, Mosquitto};
use anpr_types::{Delivery, Topics};
use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use tokio::sync::mpsc;

use crate::util;

/// What a raw client saw: the broker's CONNACK, a message, or the connection failing.
#[derive(Debug)]
enum Seen {
    Connected,
    Message(String, Vec<u8>),
    Failed(String),
}

/// A rumqttc client of `broker` polled by a task of its own; what it sees comes on `seen`.
struct Client {
    mqtt: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    fn start(broker: &Mosquitto, id: &str, identity: Option<&TlsFiles>) -> Self {
        Self::start_with(broker, id, identity, None)
    }

    fn start_with(
        broker: &Mosquitto,
        id: &str,
        identity: Option<&TlsFiles>,
        will: Option<LastWill>,
    ) -> Self {
        let mut opts = broker.client_options(id, identity).unwrap();
        if let Some(will) = will {
            opts.set_last_will(will);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let s = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::Connected,
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        Seen::Message(p.topic.clone(), p.payload.to_vec())
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        if tx.send(Seen::Failed(e.to_string())).is_err() {
                            return;
                        }
                        // rumqttc reconnects on the next poll: try again after a pause.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                };
                if tx.send(s).is_err() {
                    return;
                }
            }
        });
        Self {
            mqtt: client,
            seen,
            task,
        }
    }

    /// Waits for the first CONNACK or failure.
    async fn outcome(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match self.seen.recv().await.unwrap() {
                    Seen::Message(..) => {}
                    s => return s,
                }
            }
        })
        .await
        .expect("the broker answers within 10 s")
    }

    /// Everything that arrived within `wait`.
    async fn messages(&mut self, wait: Duration) -> Vec<(String, Vec<u8>)> {
        let mut got = Vec::new();
        let end = tokio::time::Instant::now() + wait;
        while let Ok(Some(s)) = tokio::time::timeout_at(end, self.seen.recv()).await {
            if let Seen::Message(t, p) = s {
                got.push((t, p));
            }
        }
        got
    }

    async fn subscribe(&self, filters: &[&str]) {
        for f in filters {
            self.mqtt.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
        }
        // The SUBACKs come back before anything published after this wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    async fn publish(&self, topic: &str, retain: bool, payload: Vec<u8>) {
        self.mqtt
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .unwrap();
    }

    /// Drops the connection without a DISCONNECT (the broker then sends the last will).
    fn cut(self) {
        drop(self);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn assert_refused(outcome: &Seen, who: &str) {
    match outcome {
        Seen::Failed(error) => assert!(!error.is_empty(), "{who}: an empty error"),
        other => panic!("{who} must be refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_with_one_from_another_ca_or_a_revoked_one_is_refused() {
    let mut broker = Mosquitto::start().unwrap();
    let device = broker.device_tls("KZ-TLS-1").unwrap().unwrap();
    let mut ok = Client::start(&broker, "ok", Some(&device));
    assert!(
        matches!(ok.outcome().await, Seen::Connected),
        "the device's own certificate is let in"
    );

    let mut anonymous = Client::start(&broker, "anonymous", None);
    assert_refused(&anonymous.outcome().await, "a client without a certificate");

    // Another CA's certificate for the same inventory; the client trusts the real broker, so
    // only the broker can refuse it.
    let theirs = BrokerPki::temporary().unwrap();
    let forged = TlsFiles {
        ca: device.ca.clone(),
        ..theirs.device("KZ-TLS-1").unwrap().tls
    };
    let mut other_ca = Client::start(&broker, "other-ca", Some(&forged));
    assert_refused(&other_ca.outcome().await, "a certificate from another CA");
    // The broker says why (its log may trail the client's error by a moment).
    assert!(
        util::wait_for(Duration::from_secs(5), || {
            let log = broker.log();
            log.contains("peer did not return a certificate")
                && log.contains("certificate verify failed")
        })
        .await,
        "the broker refused the anonymous client and the foreign certificate: {}",
        broker.log()
    );
    let log = broker.log();
    assert_eq!(
        log.matches(" as KZ-TLS-1 (").count(),
        1,
        "only the genuine certificate logged in as KZ-TLS-1: {log}"
    );

    // Revoked: listed in the CRL the shipped configuration reads, after a restart.
    let kept = broker.device_tls("KZ-TLS-2").unwrap().unwrap();
    broker.pki().pki().revoke_device("KZ-TLS-1").unwrap();
    drop(ok);
    broker.restart().unwrap();
    let mut revoked = Client::start(&broker, "revoked", Some(&device));
    assert_refused(&revoked.outcome().await, "a revoked certificate");
    let mut other = Client::start(&broker, "kept", Some(&kept));
    assert!(
        matches!(other.outcome().await, Seen::Connected),
        "a certificate that is not revoked is still let in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_a_cannot_write_device_b_topics_nor_read_b_acks_and_the_receiver_never_takes_it_for_b()
 {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("central.sqlite");
    // A second central-side client beside the receiver, to write B an ack.
    let broker = Mosquitto::start_with_options(BrokerOptions {
        central_side_users: vec!["central-probe".into()],
        ..BrokerOptions::default()
    })
    .unwrap();
    let (a, b) = ("KZ-TLS-A", "KZ-TLS-B");
    // The receiver knows both devices' signing keys.
    let keys = util::keys(dir.path());
    keys.device_key(a);
    keys.device_key(b);
    let central = util::Central::start_unchecked(&broker, db.clone());
    let (ta, tb) = (Topics::new("anpr/v1", a), Topics::new("anpr/v1", b));
    let a_tls = broker.device_tls(a).unwrap().unwrap();
    let b_tls = broker.device_tls(b).unwrap().unwrap();

    let mut device_b = Client::start(&broker, "b", Some(&b_tls));
    assert!(matches!(device_b.outcome().await, Seen::Connected));
    device_b.subscribe(&[&tb.ack(), &tb.cmd_filter()]).await;
    let mut device_a = Client::start(&broker, "a", Some(&a_tls));
    assert!(matches!(device_a.outcome().await, Seen::Connected));
    device_a
        .subscribe(&[
            &tb.ack(),
            &tb.cmd_filter(),
            "anpr/v1/+/ack",
            "anpr/v1/#",
            "#",
        ])
        .await;

    // Events signed as the devices sign them (the receiver checks signatures; the keys are
    // the test directory's): A's genuine one, and one signed with B's key, as if B's signing
    // key had leaked but not its certificate.
    let signed = |inventory: &str| {
        let queue = dir.path().join(format!("{inventory}.sqlite"));
        let mut store = util::signed_store(&queue, inventory);
        store
            .append(|seq| util::synthetic_event(inventory, seq))
            .unwrap();
        let d = Delivery {
            event: store.get(1).unwrap().unwrap(),
            sent_at: chrono::Utc::now(),
            delayed: false,
        };
        serde_json::to_vec(&d).unwrap()
    };
    let (a_event, b_event) = (signed(a), signed(b));
    // A writes as B: events, an image, health (retained), acks and commands on B's topics;
    // and on its own topic, B's event (the broker lets it through: the receiver must not
    // take it for B's).
    device_a.publish(&tb.events(), false, b_event.clone()).await;
    device_a
        .publish(
            &tb.evidence(uuid::Uuid::now_v7(), "overview"),
            false,
            b"jpeg".to_vec(),
        )
        .await;
    device_a
        .publish(&tb.health(), true, br#"{"status":"offline"}"#.to_vec())
        .await;
    device_a
        .publish(
            &tb.ack(),
            false,
            br#"{"event_id":"00000000-0000-7000-8000-000000000000","seq":1}"#.to_vec(),
        )
        .await;
    device_a.publish(&tb.cmd(), false, b"{}".to_vec()).await;
    device_a
        .publish(&tb.plate_list("wanted"), true, b"{}".to_vec())
        .await;
    device_a.publish(&ta.events(), false, b_event).await;
    // Then a genuine event of A's: once it is stored, everything before it was handled.
    device_a.publish(&ta.events(), false, a_event).await;
    // The central side acknowledges something to B: B reads it, A does not.
    let probe = broker.central_side_tls("central-probe").unwrap();
    let central_side = Client::start(&broker, "central-probe", Some(&probe));
    central_side
        .publish(&tb.ack(), false, b"for B only".to_vec())
        .await;

    let receiver = anpr_central::Receiver::open(&db).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(10), || receiver
            .events_of(a)
            .is_ok_and(|e| e.len() == 1))
        .await,
        "A's own event is stored"
    );
    let b_got = device_b.messages(Duration::from_secs(1)).await;
    assert_eq!(
        b_got,
        vec![(tb.ack(), b"for B only".to_vec())],
        "B reads its ack, and nothing A wrote on B's ack and command topics"
    );
    let a_got = device_a.messages(Duration::from_millis(200)).await;
    let foreign: Vec<&String> = a_got
        .iter()
        .map(|(t, _)| t)
        .filter(|t| !t.starts_with(&format!("anpr/v1/{a}/")))
        .collect();
    assert!(
        foreign.is_empty(),
        "A read other devices' topics: {foreign:?}"
    );
    central.stop().await;
    let receiver = anpr_central::Receiver::open(&db).unwrap();
    assert!(
        receiver.events_of(b).unwrap().is_empty(),
        "nothing stored as B's"
    );
    assert!(receiver.health(b).unwrap().is_none() && receiver.status(b).unwrap().is_none());
    let a_events = receiver.events_of(a).unwrap();
    assert_eq!(a_events.len(), 1);
    assert_eq!(a_events[0].event.device.inventory, a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_sender_only_writes_commands_and_the_receiver_cannot_write_them() {
    // A receiver-side client besides anpr-central (its rights: read events, write acks), for
    // the allowed writes and reads the refused ones are told from.
    let broker = Mosquitto::start_with_options(BrokerOptions {
        central_side_users: vec!["central-probe".into()],
        ..BrokerOptions::default()
    })
    .unwrap();
    let inv = "KZ-TLS-CMD";
    let t = Topics::new("anpr/v1", inv);
    let device_tls = broker.device_tls(inv).unwrap().unwrap();
    let mut device = Client::start(&broker, "device", Some(&device_tls));
    assert!(matches!(device.outcome().await, Seen::Connected));
    device.subscribe(&[&t.ack(), &t.cmd_filter()]).await;
    let probe_tls = broker.central_side_tls("central-probe").unwrap();
    let mut probe = Client::start(&broker, "central-probe", Some(&probe_tls));
    assert!(matches!(probe.outcome().await, Seen::Connected));
    probe
        .subscribe(&["anpr/v1/+/events", "anpr/v1/+/health"])
        .await;
    let commands_tls = broker.commands_tls().unwrap().unwrap();
    let mut sender = Client::start(&broker, "anpr-commands", Some(&commands_tls));
    assert!(matches!(sender.outcome().await, Seen::Connected));
    sender
        .subscribe(&[
            "anpr/v1/+/events",
            "anpr/v1/+/evidence/#",
            "anpr/v1/+/health",
            "anpr/v1/+/ack",
            &t.ack(),
            &t.events(),
            "#",
        ])
        .await;
    let receiver_tls = broker.central_tls().unwrap();
    let mut receiver = Client::start(&broker, "anpr-central", Some(&receiver_tls));
    assert!(matches!(receiver.outcome().await, Seen::Connected));

    // Refused: the command sender writes an event and an ack; the receiver writes commands
    // (on a list's topic, retained, and on the command root).
    sender
        .publish(&t.events(), false, b"event from the sender".to_vec())
        .await;
    sender
        .publish(&t.ack(), false, b"ack from the sender".to_vec())
        .await;
    receiver
        .publish(
            &t.plate_list("wanted"),
            true,
            b"command from the receiver".to_vec(),
        )
        .await;
    receiver
        .publish(&t.cmd(), false, b"command from the receiver".to_vec())
        .await;
    // Allowed, after them: the device's event and health, an ack from the receiver's side,
    // and a command from the sender.
    device
        .publish(&t.events(), false, b"event from the device".to_vec())
        .await;
    device
        .publish(&t.health(), false, b"health from the device".to_vec())
        .await;
    probe
        .publish(&t.ack(), false, b"ack from the receiver's side".to_vec())
        .await;
    sender
        .publish(
            &t.plate_list("wanted"),
            false,
            b"command from the sender".to_vec(),
        )
        .await;

    let mut device_got = device.messages(Duration::from_secs(1)).await;
    device_got.sort();
    assert_eq!(
        device_got,
        [
            (t.ack(), b"ack from the receiver's side".to_vec()),
            (t.plate_list("wanted"), b"command from the sender".to_vec()),
        ],
        "the device reads the sender's command and the receiver side's ack, and nothing the sender wrote as an ack nor the receiver as a command"
    );
    let mut probe_got = probe.messages(Duration::from_millis(200)).await;
    probe_got.sort();
    assert_eq!(
        probe_got,
        [
            (t.events(), b"event from the device".to_vec()),
            (t.health(), b"health from the device".to_vec()),
        ],
        "the receiver's side reads the device's event and health, and not the sender's event"
    );
    let sender_got = sender.messages(Duration::from_millis(200)).await;
    assert!(
        sender_got.is_empty(),
        "the command sender read {sender_got:?}"
    );
    // The receiver's retained command was never kept: a device connecting now gets none.
    drop(device);
    let mut later = Client::start(&broker, "device-again", Some(&device_tls));
    assert!(matches!(later.outcome().await, Seen::Connected));
    later.subscribe(&[&t.cmd_filter()]).await;
    assert_eq!(
        later.messages(Duration::from_millis(500)).await,
        [],
        "no retained command from the receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_will_on_another_devices_topic_is_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("central.sqlite");
    let broker = Mosquitto::start().unwrap();
    let (a, b) = ("KZ-WILL-A", "KZ-WILL-B");
    let keys = util::keys(dir.path());
    keys.device_key(a);
    keys.device_key(b);
    let central = util::Central::start(&broker, db.clone());
    let offline = br#"{"status":"offline"}"#.to_vec();
    let will_on = |inventory: &str| {
        LastWill::new(
            Topics::new("anpr/v1", inventory).health(),
            offline.clone(),
            QoS::AtLeastOnce,
            true,
        )
    };
    let a_tls = broker.device_tls(a).unwrap().unwrap();
    // The broker accepts the CONNECT (mosquitto checks a will when it would send it).
    let mut as_b = Client::start_with(&broker, "a1", Some(&a_tls), Some(will_on(b)));
    assert!(matches!(as_b.outcome().await, Seen::Connected));
    as_b.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The same device's will on its own topic goes out: the cut was seen.
    let own_tls = broker.device_tls(a).unwrap().unwrap();
    let mut own = Client::start_with(&broker, "a2", Some(&own_tls), Some(will_on(a)));
    assert!(matches!(own.outcome().await, Seen::Connected));
    own.cut();
    let receiver = anpr_central::Receiver::open(&db).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(10), || receiver
            .status(a)
            .is_ok_and(|s| s.is_some()))
        .await,
        "A's own last will arrives: {}",
        broker.log()
    );
    central.stop().await;
    assert!(
        receiver.status(b).unwrap().is_none(),
        "A's will on B's health topic was never sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_five_line_attack_reads_no_event_and_marks_nothing_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let inv = "KZ-TLS-VICTIM";
    let broker = Mosquitto::start().unwrap();
    util::append_events(&queue, inv, 5);
    let rows: Vec<_> = (1..=5)
        .map(|s| Store::open(&queue).unwrap().get(s).unwrap().unwrap())
        .collect();
    // The device delivers; no central receiver runs.
    let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(30));

    // `mosquitto_sub -t 'anpr/v1/+/events'`, with a device certificate of its own, under the
    // central receiver's client id; and without a certificate.
    let evil = broker.device_tls("KZ-TLS-EVIL").unwrap().unwrap();
    let mut attacker = Client::start(&broker, "anpr-central", Some(&evil));
    assert!(matches!(attacker.outcome().await, Seen::Connected));
    attacker
        .subscribe(&["anpr/v1/+/events", "anpr/v1/+/evidence/#"])
        .await;
    let mut anonymous = Client::start(&broker, "anpr-central", None);
    assert_refused(
        &anonymous.outcome().await,
        "the attacker without a certificate",
    );
    assert!(
        util::wait_for(Duration::from_secs(10), || uplink
            .counters
            .published
            .load(Ordering::SeqCst)
            >= 5)
        .await,
        "the device publishes its events"
    );
    // `mosquitto_pub -t anpr/v1/<inventory>/ack -m '{"event_id":…,"seq":…}'` for each event
    // (even knowing every id).
    for row in &rows {
        let ack = format!(r#"{{"event_id":"{}","seq":{}}}"#, row.event_id, row.seq);
        attacker
            .publish(&Topics::new("anpr/v1", inv).ack(), false, ack.into_bytes())
            .await;
    }
    let got = attacker.messages(Duration::from_secs(3)).await;
    assert!(got.is_empty(), "the attacker read {} messages", got.len());
    let store = Store::open(&queue).unwrap();
    assert_eq!(
        store.stats().unwrap().delivered,
        0,
        "nothing marked delivered"
    );
    assert_eq!(
        uplink.counters.unknown_acks.load(Ordering::SeqCst)
            + uplink.counters.acked.load(Ordering::SeqCst),
        0,
        "no forged ack reached the device at all"
    );

    // The real receiver, meanwhile, keeps its own session and gets everything.
    let central = util::Central::start(&broker, db.clone());
    assert!(
        util::wait_for(Duration::from_mins(1), || store.stats().unwrap().delivered
            == 5)
        .await,
        "the events reach the real receiver: {:?}",
        store.stats().unwrap()
    );
    assert!(
        attacker
            .messages(Duration::from_millis(200))
            .await
            .is_empty()
    );
    let _ = uplink.mode.send(anpr_uplink::Mode::Stop);
    central.stop().await;
    assert_eq!(
        anpr_central::Receiver::open(&db)
            .unwrap()
            .events_of(inv)
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_and_the_receiver_refuse_a_plaintext_broker_url_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start_with_options(BrokerOptions {
        plaintext: true,
        ..BrokerOptions::default()
    })
    .unwrap();
    let config = util::write_config(dir.path(), "KZ-TLS-PLAIN", "clip.mp4", &broker);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("allow_plaintext = true\n", "");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("uplink.broker") && err.contains("allow_plaintext"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(["central", "--broker", &broker.url(), "--db"])
        .arg(dir.path().join("c.sqlite"))
        .arg("--signing-key")
        .arg(dir.path().join("central.key"))
        .arg("--devices")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--allow-plaintext"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_whose_key_does_not_match_its_certificate_does_not_start_and_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let config = util::write_config(dir.path(), "KZ-TLS-KEY", "clip.mp4", &broker);
    let other = broker.device_tls("KZ-TLS-OTHER").unwrap().unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let own_key = broker.device_tls("KZ-TLS-KEY").unwrap().unwrap().key;
    std::fs::write(
        &config,
        text.replace(own_key.to_str().unwrap(), other.key.to_str().unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("KZ-TLS-KEY.tls.crt")
            && err.contains("KZ-TLS-OTHER.tls.key")
            && err.contains("does not belong"),
        "{err}"
    );
}

#[test]
fn anpr_pki_makes_a_ca_and_a_device_that_the_shipped_broker_accepts_and_refuses_to_overwrite_keys()
{
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let anpr = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
            .arg("pki")
            .args(args)
            .arg("--dir")
            .arg(&pki)
            .output()
            .unwrap()
    };
    let out = anpr(&["init", "--broker-name", "central.example.org"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The command sender's identity beside the receiver's, and how `anpr send-list` takes it.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("anpr send-list --tls-ca")
            && stdout.contains("central/commands.tls.crt")
            && stdout.contains("central/commands.tls.key"),
        "{stdout}"
    );
    let commands_key = pki.join("central/commands.tls.key");
    let commands_cert = pki.join("central/commands.tls.crt");
    assert!(commands_key.is_file() && commands_cert.is_file());
    let out = anpr(&["device", "--inventory", "KZ-CLI-1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("tls_key = ") && stdout.contains("KZ-CLI-1.tls.key"),
        "{stdout}"
    );
    let key = pki.join("devices/KZ-CLI-1/KZ-CLI-1.tls.key");
    let before = std::fs::read(&key).unwrap();
    for (args, says) in [
        (&["device", "--inventory", "KZ-CLI-1"][..], "already exists"),
        (&["init"][..], "already exists"),
        (&["device", "--inventory", "KZ/1"][..], "letter, a digit"),
        (
            &["device", "--inventory", "anpr-central"][..],
            "central side",
        ),
        (
            &["device", "--inventory", "anpr-commands"][..],
            "central side",
        ),
        (&["commands"][..], "already exists"),
    ] {
        let out = anpr(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(&key).unwrap(), before, "the key is untouched");
    // A PKI made before the command sender existed gets its identity with `anpr pki
    // commands`, and nothing else changes.
    std::fs::remove_file(&commands_key).unwrap();
    std::fs::remove_file(&commands_cert).unwrap();
    let receiver_key = std::fs::read(pki.join("central/central.tls.key")).unwrap();
    let out = anpr(&["commands"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CN anpr-commands"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::read(pki.join("central/central.tls.key")).unwrap(),
        receiver_key
    );
    assert_eq!(
        std::fs::metadata(&commands_key)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The files it wrote are the ones a broker of that PKI takes.
    let broker =
        Mosquitto::start_with_pki(BrokerOptions::default(), BrokerPki::at(&pki).unwrap()).unwrap();
    let files = TlsFiles {
        ca: pki.join("devices/KZ-CLI-1/ca.crt"),
        cert: pki.join("devices/KZ-CLI-1/KZ-CLI-1.tls.crt"),
        key,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let commands = TlsFiles {
        ca: pki.join("central/ca.crt"),
        cert: commands_cert,
        key: commands_key,
    };
    runtime.block_on(async {
        let mut client = Client::start(&broker, "cli", Some(&files));
        assert!(matches!(client.outcome().await, Seen::Connected));
        let mut sender = Client::start(&broker, "cli-commands", Some(&commands));
        assert!(matches!(sender.outcome().await, Seen::Connected));
    });
}
