//! The scaled receiver against real engines (`anpr-cluster`: nats-server with JetStream and
//! MQTT, PostgreSQL, SeaweedFS), with devices speaking MQTT over TLS with their certificates,
//! as a real device does. Each test is bounded (every wait has a deadline).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anpr_cluster::{NatsCluster, NatsOptions, ObjectStore as S3, Postgres};
use anpr_fleet::{
    AckRoute, Archive, ObjectStore, ObjectStoreConfig, ReplicaConfig, StreamSettings,
};
use anpr_pki::{ClientTls, Pki};
use anpr_types::{Ack, Delivery, EventKind, EvidenceRef};
use rumqttc::{AsyncClient, MqttOptions, QoS, TlsConfiguration, Transport};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// Longest any condition of a test is waited for. Two minutes: run after the rest of the
/// test suite on a 2-core machine, the 3-node cluster of
/// `replicas_ride_out_a_nats_node_killed_and_a_replica_killed_mid_run` twice did not serve
/// within one (once at start, once after its node came back); alone the file passes in 30 s.
const DEADLINE: Duration = Duration::from_mins(2);

/// The engines of one test and the PKI they trust.
struct Rig {
    // Dropped in this order: the servers first, then their directory.
    nats: NatsCluster,
    pg: Postgres,
    s3: S3,
    pki: Pki,
    dir: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::env::var_os("ANPR_KEEP_TEST_DIR").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            let _ = dir.keep();
        }
    }
}

impl Rig {
    fn start(devices: &[&str], nodes: usize) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        if std::env::var_os("ANPR_KEEP_TEST_DIR").is_some() {
            eprintln!("run directory: {}", dir.path().display());
        }
        let pki = Pki::init(&dir.path().join("pki"), &[]).unwrap();
        for d in devices {
            pki.issue_device(d).unwrap();
        }
        let mut opts = NatsOptions::new(
            dir.path(),
            &pki,
            devices.iter().map(|d| (*d).to_string()).collect(),
        );
        opts.nodes = nodes;
        let nats = NatsCluster::start(opts).unwrap();
        let pg = Postgres::start(dir.path()).unwrap();
        let s3 = S3::start(dir.path()).unwrap();
        Self {
            nats,
            pg,
            s3,
            pki,
            dir,
        }
    }

    fn objects(&self) -> ObjectStoreConfig {
        ObjectStoreConfig::new(
            &self.s3.endpoint(),
            self.s3.access_key(),
            self.s3.secret_key(),
        )
    }

    fn replica(&self, name: &str) -> ReplicaConfig {
        let central = self.pki.central();
        ReplicaConfig {
            name: name.into(),
            nats_urls: self.nats.nats_urls(),
            tls: Some(ClientTls::load(&central.tls).unwrap()),
            prefix: "anpr/v1".into(),
            stream: StreamSettings {
                replicas: self.nats.nodes().min(3),
                ..StreamSettings::default()
            },
            postgres: self.pg.url(),
            objects: self.objects(),
            signing_key: anpr_trust::load_signing_key(&central.signing_key).unwrap(),
            devices: central.device_keys,
            batch: 256,
            acks: if std::env::var("ANPR_FLEET_TEST_ACKS").as_deref() == Ok("session") {
                AckRoute::Session
            } else {
                AckRoute::Core
            },
        }
    }

    fn central_key(&self) -> anpr_trust::VerifyingKey {
        anpr_trust::load_verifying_key(&self.pki.central().signing_pub).unwrap()
    }

    fn device_key(&self, inventory: &str) -> anpr_trust::SigningKey {
        anpr_trust::load_signing_key(&self.pki.device(inventory).unwrap().signing_key).unwrap()
    }
}

/// A running replica: stop it and get its report.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<anpr_fleet::ReplicaReport, anpr_fleet::FleetError>>,
}

impl Running {
    fn start(cfg: ReplicaConfig) -> Self {
        let (stop, rx) = watch::channel(false);
        Self {
            stop,
            task: tokio::spawn(anpr_fleet::run_replica(cfg, rx)),
        }
    }

    async fn stop(self) -> anpr_fleet::ReplicaReport {
        self.stop.send(true).unwrap();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the replica stops")
            .unwrap()
            .unwrap()
    }
}

/// A device on the cluster's MQTT listener, with its certificate: publishes QoS 1, receives
/// its acknowledgements.
struct Device {
    inventory: String,
    client: AsyncClient,
    acks: mpsc::UnboundedReceiver<Ack>,
    /// What was sent and is not acknowledged yet (events by seq; images by sha256), sent
    /// again every [`RESEND`] as the device's uplink does at its ack timeout.
    unacked: HashMap<(u64, Option<String>), (String, Vec<u8>)>,
    /// How many times the broker refused the ack subscription (each asked for again).
    refusals: Arc<AtomicUsize>,
}

/// How long the test device waits for an ack before sending again.
const RESEND: Duration = Duration::from_secs(5);

impl Device {
    async fn connect(rig: &Rig, inventory: &str) -> Self {
        Self::connect_to(rig, 0, inventory).await
    }

    /// Connects to the MQTT listener of node `node`.
    async fn connect_to(rig: &Rig, node: usize, inventory: &str) -> Self {
        let files = rig.pki.device(inventory).unwrap();
        let tls = ClientTls::load(&files.tls).unwrap();
        let mut opts = MqttOptions::new(inventory, "127.0.0.1", rig.nats.mqtt_port(node));
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.config(),
        )));
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, acks) = mpsc::unbounded_channel();
        let (up_tx, mut up) = mpsc::unbounded_channel();
        let ack_topic = format!("anpr/v1/{inventory}/ack");
        let sub = client.clone();
        let refusals = Arc::new(AtomicUsize::new(0));
        let refused = Arc::clone(&refusals);
        // As the device's uplink does: subscribe on every connection (a clean session forgets
        // its subscriptions when the link drops, a node killed for instance).
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = sub.try_subscribe(ack_topic.clone(), QoS::AtLeastOnce);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(a))) => {
                        if a.return_codes
                            .iter()
                            .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)))
                        {
                            let _ = up_tx.send(());
                        } else {
                            // Refused (a NATS MQTT listener refuses QoS 1 subscriptions while
                            // JetStream is slow to make their consumers, as on a loaded
                            // machine): asked for again, as the device's uplink does.
                            refused.fetch_add(1, Ordering::Relaxed);
                            let (sub, topic) = (sub.clone(), ack_topic.clone());
                            tokio::spawn(async move {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                let _ = sub.subscribe(topic, QoS::AtLeastOnce).await;
                            });
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        if let Ok(ack) = serde_json::from_slice::<Ack>(&p.payload) {
                            let _ = tx.send(ack);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(DEADLINE, up.recv())
            .await
            .expect("subscribed");
        Self {
            inventory: inventory.into(),
            client,
            acks,
            unacked: HashMap::new(),
            refusals,
        }
    }

    /// Sends an event; with `keep`, again at every [`RESEND`] until acknowledged.
    async fn send_with(&mut self, d: &Delivery, keep: bool) {
        let topic = format!("anpr/v1/{}/events", self.inventory);
        let body = serde_json::to_vec(d).unwrap();
        if keep {
            self.unacked
                .insert((d.event.seq, None), (topic.clone(), body.clone()));
        }
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }

    async fn send(&mut self, d: &Delivery) {
        self.send_with(d, true).await;
    }

    async fn send_image(&mut self, seq: u64, event_id: Uuid, kind: &str, bytes: &[u8]) {
        let topic = format!("anpr/v1/{}/evidence/{event_id}/{kind}", self.inventory);
        self.unacked.insert(
            (seq, Some(anpr_trust::sha256_hex(bytes))),
            (topic.clone(), bytes.to_vec()),
        );
        self.client
            .publish(topic, QoS::AtLeastOnce, false, bytes.to_vec())
            .await
            .unwrap();
    }

    /// Acks received until `done` says the set is complete, each checked against the central
    /// key; keyed by (seq, evidence sha256 or none), counted.
    async fn acks_until(
        &mut self,
        central: &anpr_trust::VerifyingKey,
        got: &mut HashMap<(u64, Option<String>), usize>,
        done: impl Fn(&HashMap<(u64, Option<String>), usize>) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut resend = tokio::time::Instant::now() + RESEND;
        while !done(got) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "acks so far: {got:?}; ack subscription refused {} times",
                self.refusals.load(Ordering::Relaxed)
            );
            let Ok(ack) = tokio::time::timeout_at(resend, self.acks.recv()).await else {
                for (topic, body) in self.unacked.values() {
                    self.client
                        .publish(topic.clone(), QoS::AtLeastOnce, false, body.clone())
                        .await
                        .unwrap();
                }
                resend = tokio::time::Instant::now() + RESEND;
                continue;
            };
            let ack = ack.unwrap();
            anpr_trust::ack::verify_ack(&ack, &self.inventory, central)
                .expect("a signed ack by the central key");
            self.unacked.remove(&(ack.seq, ack.evidence.clone()));
            *got.entry((ack.seq, ack.evidence.clone())).or_default() += 1;
        }
    }
}

/// A signed event of `inventory` chained to `prev` (its hash), and its hash.
fn event(
    key: &anpr_trust::SigningKey,
    inventory: &str,
    seq: u64,
    prev: &str,
) -> (Delivery, String) {
    let mut event = anpr_types::sample::passage(inventory, seq);
    event.plate.text = format!("{seq:03}ABC01");
    event.prev_hash = Some(prev.to_string());
    let hash = anpr_trust::event::sign_event(&mut event, key);
    (
        Delivery {
            sent_at: event.captured_at,
            event,
            delayed: false,
        },
        hash,
    )
}

/// Re-signs `d` after an edit, returning its new hash.
fn resign(d: &mut Delivery, key: &anpr_trust::SigningKey) -> String {
    anpr_trust::event::sign_event(&mut d.event, key)
}

/// Waits until `check` holds on the archive.
async fn until_archive<F, Fut>(url: &str, what: &str, check: F)
where
    F: Fn(Archive) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(a) = Archive::connect(url).await
            && check(a).await
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_delivered_twice_are_stored_once_acked_signed_and_forgeries_are_never_acked() {
    let rig = Rig::start(&["KZ-1"], 1);
    let central = rig.central_key();
    let key = rig.device_key("KZ-1");
    anpr_fleet::prepare(&rig.replica("prepare")).await.unwrap();
    let r1 = Running::start(rig.replica("replica-1"));
    let r2 = Running::start(rig.replica("replica-2"));
    let mut dev = Device::connect(&rig, "KZ-1").await;

    let (e1, h1) = event(&key, "KZ-1", 1, anpr_trust::ZERO_HASH);
    let (mut e2, _) = event(&key, "KZ-1", 2, &h1);
    let image = b"\xff\xd8 an evidence image \xff\xd9".repeat(100);
    let sha = anpr_trust::sha256_hex(&image);
    e2.event.kind = EventKind::Violation;
    e2.event.evidence.push(EvidenceRef {
        kind: "overview".into(),
        sha256: sha.clone(),
        size: image.len() as u64,
        content_type: "image/jpeg".into(),
    });
    let plate = b"\xff\xd8 a plate crop \xff\xd9".repeat(10);
    let plate_sha = anpr_trust::sha256_hex(&plate);
    e2.event.evidence.push(EvidenceRef {
        kind: "plate".into(),
        sha256: plate_sha.clone(),
        size: plate.len() as u64,
        content_type: "image/jpeg".into(),
    });
    let h2 = resign(&mut e2, &key);
    // Seq 3, signed by another key: a forgery.
    let (e3, _) = event(
        &anpr_trust::SigningKey::from_bytes(&[9; 32]),
        "KZ-1",
        3,
        &h2,
    );

    dev.send(&e1).await;
    dev.send(&e1).await;
    dev.send(&e2).await;
    // The forgery is sent once: it is never acknowledged.
    dev.send_with(&e3, false).await;
    dev.send_image(2, e2.event.event_id, "overview", &image)
        .await;
    dev.send_image(2, e2.event.event_id, "plate", &plate).await;

    let mut acks = HashMap::new();
    dev.acks_until(&central, &mut acks, |a| {
        a.get(&(1, None)).copied().unwrap_or(0) >= 2
            && a.contains_key(&(2, None))
            && a.contains_key(&(2, Some(sha.clone())))
            && a.contains_key(&(2, Some(plate_sha.clone())))
    })
    .await;

    let url = rig.pg.url();
    until_archive(&url, "the forgery in quarantine", |a| async move {
        a.refused_of("KZ-1", false).await.unwrap().len() == 1
    })
    .await;
    let a = Archive::connect(&url).await.unwrap();
    let stored = a.events(Some("KZ-1")).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2],
        "stored once"
    );
    assert!(stored[0].copies >= 2, "the copy counted: {stored:?}");
    assert_eq!(stored[1].hash, h2);
    assert_eq!(a.delivery(e1.event.event_id).await.unwrap().unwrap(), e1);
    let q = a.refused_of("KZ-1", false).await.unwrap();
    assert!(
        q[0].reason.contains("not signed by this device's key"),
        "{}",
        q[0].reason
    );
    assert_eq!(q[0].seq, 3);
    let images = a.images_of(e2.event.event_id).await.unwrap();
    assert_eq!(
        images,
        vec![
            ("overview".to_string(), sha.clone(), image.len() as u64),
            ("plate".to_string(), plate_sha.clone(), plate.len() as u64)
        ]
    );
    let objects = ObjectStore::new(&rig.objects()).unwrap();
    let bytes = objects
        .get(&sha)
        .await
        .unwrap()
        .expect("the image is in the bucket");
    assert_eq!(anpr_trust::sha256_hex(&bytes), sha);
    let totals = a.totals().await.unwrap();
    assert_eq!((totals.events, totals.images, totals.violations), (2, 2, 1));

    let (r1, r2) = (r1.stop().await, r2.stop().await);
    assert_eq!(r1.events_new + r2.events_new, 2, "{r1:?} {r2:?}");
    assert_eq!(r1.quarantined + r2.quarantined, 1, "{r1:?} {r2:?}");
    // Nothing acknowledges the forgery: every ack received is for 1 or 2.
    while let Ok(ack) = dev.acks.try_recv() {
        assert!(ack.seq < 3, "{ack:?}");
    }
    assert!(!acks.keys().any(|(seq, _)| *seq == 3), "{acks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_split_over_two_replicas_is_checked_and_a_postgres_restart_loses_nothing() {
    let mut rig = Rig::start(&["KZ-2", "KZ-3"], 1);
    let central = rig.central_key();
    let url = rig.pg.url();
    anpr_fleet::prepare(&rig.replica("prepare")).await.unwrap();

    // KZ-2's seq 2 goes to replica A alone; then, with A stopped, replica B gets a seq 1
    // the device signed but whose hash is not seq 2's prev_hash: B checks the link.
    let key = rig.device_key("KZ-2");
    let mut dev = Device::connect(&rig, "KZ-2").await;
    let (e1, h1) = event(&key, "KZ-2", 1, anpr_trust::ZERO_HASH);
    let (e2, _) = event(&key, "KZ-2", 2, &h1);
    let (mut other1, _) = event(&key, "KZ-2", 1, anpr_trust::ZERO_HASH);
    other1.event.plate.text = "999ZZZ99".into();
    resign(&mut other1, &key);
    let a = Running::start(rig.replica("replica-a"));
    dev.send(&e2).await;
    let mut acks = HashMap::new();
    dev.acks_until(&central, &mut acks, |a| a.contains_key(&(2, None)))
        .await;
    a.stop().await;
    let b = Running::start(rig.replica("replica-b"));
    dev.send_with(&other1, false).await;
    until_archive(&url, "the chain break", |a| async move {
        a.refused_of("KZ-2", true).await.unwrap().len() == 1
    })
    .await;
    // The right seq 1 links: stored and acknowledged.
    dev.send(&e1).await;
    dev.acks_until(&central, &mut acks, |a| a.contains_key(&(1, None)))
        .await;
    let arch = Archive::connect(&url).await.unwrap();
    let breaks = arch.refused_of("KZ-2", true).await.unwrap();
    assert!(
        breaks[0].reason.contains("is not the prev_hash"),
        "{}",
        breaks[0].reason
    );
    assert_eq!(
        arch.events(Some("KZ-2"))
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_id)
            .collect::<Vec<_>>(),
        vec![e1.event.event_id, e2.event.event_id]
    );
    drop(arch);

    // PostgreSQL killed (an immediate shutdown) mid-run and started again: every event is
    // stored once and acknowledged; nothing is acknowledged before its commit.
    let key = rig.device_key("KZ-3");
    let mut dev = Device::connect(&rig, "KZ-3").await;
    let mut prev = anpr_trust::ZERO_HASH.to_string();
    let mut events = Vec::new();
    for seq in 1..=40 {
        let (d, h) = event(&key, "KZ-3", seq, &prev);
        prev = h;
        events.push(d);
    }
    for d in &events[..20] {
        dev.send(d).await;
    }
    tokio::task::block_in_place(|| rig.pg.kill());
    for d in &events[20..] {
        dev.send(d).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| rig.pg.restart()).unwrap();
    let mut acks = HashMap::new();
    dev.acks_until(&central, &mut acks, |a| {
        (1..=40).all(|s| a.contains_key(&(s, None)))
    })
    .await;
    let arch = Archive::connect(&url).await.unwrap();
    let stored = arch.events(Some("KZ-3")).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
    assert!(arch.refused_of("KZ-3", true).await.unwrap().is_empty());
    let report = b.stop().await;
    assert!(report.events_new >= 41, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_ride_out_a_nats_node_killed_and_a_replica_killed_mid_run() {
    let mut rig = Rig::start(&["KZ-4"], 3);
    let central = rig.central_key();
    let key = rig.device_key("KZ-4");
    let cfg = |rig: &Rig, name: &str| {
        let mut c = rig.replica(name);
        // Short, so the messages of the killed replica come back soon.
        c.stream.ack_wait = Duration::from_secs(3);
        c
    };
    anpr_fleet::prepare(&cfg(&rig, "prepare")).await.unwrap();
    let r1 = Running::start(cfg(&rig, "replica-1"));
    let r2 = Running::start(cfg(&rig, "replica-2"));
    let mut dev = Device::connect_to(&rig, 2, "KZ-4").await;
    let mut prev = anpr_trust::ZERO_HASH.to_string();
    let mut events = Vec::new();
    for seq in 1..=60 {
        let (d, h) = event(&key, "KZ-4", seq, &prev);
        prev = h;
        events.push(d);
    }
    for d in &events[..20] {
        dev.send(d).await;
    }
    tokio::task::block_in_place(|| rig.nats.kill(0));
    for d in &events[20..40] {
        dev.send(d).await;
    }
    // Replica 1 dies without a word: its un-acked messages go to replica 2 after ack_wait.
    r1.task.abort();
    for d in &events[40..] {
        dev.send(d).await;
    }
    tokio::task::block_in_place(|| rig.nats.restart(0)).unwrap();
    let mut acks = HashMap::new();
    dev.acks_until(&central, &mut acks, |a| {
        (1..=60).all(|s| a.contains_key(&(s, None)))
    })
    .await;
    let arch = Archive::connect(&rig.pg.url()).await.unwrap();
    let stored = arch.events(Some("KZ-4")).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=60).collect::<Vec<_>>(),
        "every event stored, once"
    );
    assert!(arch.refused_of("KZ-4", true).await.unwrap().is_empty());
    let report = r2.stop().await;
    assert!(report.events_new > 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_sent_while_the_object_store_is_down_is_acknowledged_only_once_stored() {
    let mut rig = Rig::start(&["KZ-5"], 1);
    let central = rig.central_key();
    let key = rig.device_key("KZ-5");
    anpr_fleet::prepare(&rig.replica("prepare")).await.unwrap();
    let r = Running::start(rig.replica("replica-1"));
    let mut dev = Device::connect(&rig, "KZ-5").await;
    let image = b"\xff\xd8 overview \xff\xd9".repeat(50);
    let sha = anpr_trust::sha256_hex(&image);
    let (mut e1, _) = event(&key, "KZ-5", 1, anpr_trust::ZERO_HASH);
    e1.event.evidence.push(EvidenceRef {
        kind: "overview".into(),
        sha256: sha.clone(),
        size: image.len() as u64,
        content_type: "image/jpeg".into(),
    });
    resign(&mut e1, &key);
    dev.send(&e1).await;
    let mut acks = HashMap::new();
    dev.acks_until(&central, &mut acks, |a| a.contains_key(&(1, None)))
        .await;
    tokio::task::block_in_place(|| rig.s3.kill());
    dev.send_image(1, e1.event.event_id, "overview", &image)
        .await;
    // Put back while the store is down; no ack meanwhile.
    let url = rig.pg.url();
    tokio::time::sleep(Duration::from_secs(3)).await;
    while let Ok(ack) = dev.acks.try_recv() {
        assert!(
            ack.evidence.is_none(),
            "no image ack before it is stored: {ack:?}"
        );
    }
    let a = Archive::connect(&url).await.unwrap();
    assert!(a.images_of(e1.event.event_id).await.unwrap().is_empty());
    tokio::task::block_in_place(|| rig.s3.restart()).unwrap();
    dev.acks_until(&central, &mut acks, |a| {
        a.contains_key(&(1, Some(sha.clone())))
    })
    .await;
    let objects = ObjectStore::new(&rig.objects()).unwrap();
    assert_eq!(objects.get(&sha).await.unwrap(), Some(image.clone()));
    assert_eq!(a.images_of(e1.event.event_id).await.unwrap().len(), 1);
    let report = r.stop().await;
    assert!(report.failed_images > 0, "{report:?}");
}
