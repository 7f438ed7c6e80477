//! A fleet of simulated devices (the real queue and uplink, each with its own identity) against
//! real central sides, judged by the delivery oracle of the device tests: every recorded event
//! stored once, nothing left queued, every violation's images stored with the sha256 the device
//! recorded.
//!
//! - on the single-site central side (mosquitto and the reference receiver), through the
//!   signal-loss simulator resetting every connection for a while;
//! - on the distributed central side (a 3-node NATS cluster's MQTT listeners, two receiver
//!   replicas, PostgreSQL and the object store) with one NATS node killed and restarted
//!   mid-run: the same device code, no broker-specific branch;
//! - on the same cluster with the devices given the other nodes as failover (`[uplink]
//!   failover`) and one node killed early and kept down: its devices move to the next node and
//!   deliver everything there;
//! - `anpr fleet demo` itself, with its devices split over two child processes (`--processes
//!   2`, what a fleet beyond one process's open-file limit does): the parts' recordings are
//!   reported as one fleet.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anpr_fleetsim::{CentralDb, Fleet, FleetConfig, FleetReport};
use anpr_testkit::{BrokerOptions, BrokerPki, Mosquitto};
use tokio::sync::watch;

/// The reference receiver on `broker`, with the central identity of the PKI the fleet's
/// devices are issued from.
fn central(
    broker: &Mosquitto,
    pki: &anpr_pki::Pki,
    db: &std::path::Path,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), anpr_central::CentralError>>,
) {
    let files = pki.central();
    let cfg = anpr_central::CentralConfig {
        host: "127.0.0.1".into(),
        port: broker.port(),
        tls: Some(anpr_pki::ClientTls::load(&files.tls).unwrap()),
        prefix: "anpr/v1".into(),
        db: db.to_path_buf(),
        client_id: format!("central-fleet-{}", std::process::id()),
        signing_key: anpr_trust::load_signing_key(&files.signing_key).unwrap(),
        devices: files.device_keys.clone(),
    };
    std::fs::create_dir_all(&files.device_keys).unwrap();
    let (stop, rx) = watch::channel(false);
    (stop, tokio::spawn(anpr_central::run(cfg, rx, None)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_mosquitto_through_resets_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let pki = BrokerPki::at(&dir.path().join("pki")).unwrap();
    let broker = Mosquitto::start_with_pki(BrokerOptions::default(), pki.clone()).unwrap();
    let db = dir.path().join("central.sqlite");
    let mut cfg = FleetConfig::new(
        &dir.path().join("fleet"),
        pki.pki().dir(),
        20,
        vec![("127.0.0.1".into(), broker.port())],
        Duration::from_secs(20),
    );
    cfg.inventory_prefix = "KZ-SIM".into();
    // A higher rate than the realistic one, so a short test records violations too.
    cfg.interval = (Duration::from_millis(500), Duration::from_secs(2));
    cfg.violation_one_in = 5;
    cfg.ack_timeout = Duration::from_secs(3);
    // Every connection reset for 4 s in the middle of the recording, then the link stays up.
    cfg.netsim = Some((
        anpr_netsim::Script::parse("up 8; reset 4; up 3600").unwrap(),
        1.0,
    ));
    // Identities first (the receiver reads the devices' public keys as events arrive).
    anpr_fleetsim::ensure_identities(pki.pki().dir(), &cfg.inventory_prefix, cfg.devices).unwrap();
    let (stop, receiver) = central(&broker, pki.pki(), &db);
    let fleet = Fleet::start(cfg).await.unwrap();
    let finished = fleet.finish(Duration::from_mins(1)).await.unwrap();
    let report = finished
        .report(&CentralDb { path: db.clone() })
        .await
        .unwrap();
    let _ = stop.send(true);
    receiver.await.unwrap().unwrap();
    println!("{report}");
    assert_stored_once(&report, 100);
}

/// The oracle's verdict: more than `recorded` events recorded, violations among them each with
/// its two images; every event stored once and acknowledged, nothing lost or left queued,
/// every image stored with the sha256 recorded.
fn assert_stored_once(report: &FleetReport, recorded: u64) {
    let t = report.total;
    assert!(t.recorded > recorded, "{report}");
    assert!(
        t.violations > 0 && t.images_recorded == 2 * t.violations,
        "{report}"
    );
    assert_eq!(t.lost, 0, "{report}");
    assert_eq!(t.undelivered, 0, "{report}");
    assert_eq!(t.duplicates, 0, "{report}");
    assert_eq!(t.pending, 0, "{report}");
    assert_eq!(t.acknowledged, t.recorded, "{report}");
    assert_eq!(
        t.images_stored, t.images_recorded,
        "every image stored with its hash: {report}"
    );
    assert_eq!(t.images_mismatched, 0, "{report}");
    assert!(report.is_clean(), "{report}");
}

/// The central side on distributed engines: a 3-node NATS cluster (devices on its MQTT
/// listeners, round-robin), two receiver replicas storing into PostgreSQL and the object
/// store.
struct Cluster {
    nats: anpr_cluster::NatsCluster,
    pg: anpr_cluster::Postgres,
    s3: anpr_cluster::ObjectStore,
    replicas: Vec<(watch::Sender<bool>, ReplicaTask)>,
}

/// A running replica's task.
type ReplicaTask =
    tokio::task::JoinHandle<Result<anpr_fleet::ReplicaReport, anpr_fleet::FleetError>>;

impl Cluster {
    fn start(dir: &std::path::Path, pki: &anpr_pki::Pki, devices: Vec<String>) -> Self {
        let nats =
            anpr_cluster::NatsCluster::start(anpr_cluster::NatsOptions::new(dir, pki, devices))
                .unwrap();
        let pg = anpr_cluster::Postgres::start(dir).unwrap();
        let s3 = anpr_cluster::ObjectStore::start(dir).unwrap();
        let mut c = Self {
            nats,
            pg,
            s3,
            replicas: Vec::new(),
        };
        for i in 0..2 {
            let (stop, rx) = watch::channel(false);
            let task = tokio::spawn(anpr_fleet::run_replica(c.replica(pki, i), rx));
            c.replicas.push((stop, task));
        }
        c
    }

    /// A PKI in `dir` with `devices` devices `<prefix>-…`, the cluster started for them
    /// (schema, bucket, stream and consumer made before any device sends) and a fleet on its
    /// MQTT listeners recording for `seconds`, a violation in five passages.
    async fn with_fleet(
        dir: &std::path::Path,
        prefix: &str,
        devices: usize,
        seconds: u64,
    ) -> (Self, FleetConfig) {
        let pki = anpr_pki::Pki::init(&dir.join("pki"), &[]).unwrap();
        let mut cfg = FleetConfig::new(
            &dir.join("fleet"),
            pki.dir(),
            devices,
            Vec::new(),
            Duration::from_secs(seconds),
        );
        cfg.inventory_prefix = prefix.into();
        cfg.violation_one_in = 5;
        anpr_fleetsim::ensure_identities(pki.dir(), prefix, devices).unwrap();
        let cluster = Self::start(dir, &pki, cfg.inventories());
        anpr_fleet::prepare(&cluster.replica(&pki, 0))
            .await
            .unwrap();
        cfg.brokers = cluster.brokers();
        (cluster, cfg)
    }

    /// The report of `finished` by what PostgreSQL and the object store hold (every image
    /// fetched back and hashed), printed; the replicas are stopped.
    async fn report(&mut self, finished: anpr_fleetsim::Finished) -> FleetReport {
        let oracle = anpr_fleetsim::ArchiveDb {
            postgres: self.pg.url(),
            objects: Some(self.objects()),
        };
        let report = finished.report(&oracle).await.unwrap();
        self.stop_replicas().await;
        println!("{report}");
        report
    }

    fn objects(&self) -> anpr_fleet::ObjectStoreConfig {
        anpr_fleet::ObjectStoreConfig::new(
            &self.s3.endpoint(),
            self.s3.access_key(),
            self.s3.secret_key(),
        )
    }

    fn replica(&self, pki: &anpr_pki::Pki, i: usize) -> anpr_fleet::ReplicaConfig {
        let central = pki.central();
        anpr_fleet::ReplicaConfig {
            name: format!("replica-{i}"),
            nats_urls: self.nats.nats_urls(),
            tls: Some(anpr_pki::ClientTls::load(&central.tls).unwrap()),
            prefix: "anpr/v1".into(),
            stream: anpr_fleet::StreamSettings::default(),
            postgres: self.pg.url(),
            objects: self.objects(),
            signing_key: anpr_trust::load_signing_key(&central.signing_key).unwrap(),
            devices: central.device_keys,
            batch: 256,
            acks: anpr_fleet::AckRoute::default(),
        }
    }

    fn brokers(&self) -> Vec<(String, u16)> {
        self.nats
            .mqtt_ports()
            .into_iter()
            .map(|p| ("127.0.0.1".to_string(), p))
            .collect()
    }

    async fn stop_replicas(&mut self) {
        for (stop, task) in self.replicas.drain(..) {
            let _ = stop.send(true);
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a replica stops")
                .unwrap()
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_the_nats_cluster_loses_nothing_when_a_node_is_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, mut cfg) = Cluster::with_fleet(dir.path(), "KZ-FLT", 30, 30).await;
    cfg.interval = (Duration::from_secs(1), Duration::from_secs(3));
    cfg.ack_timeout = Duration::from_secs(5);
    let fleet = Fleet::start(cfg).await.unwrap();
    // A third of the devices lose their node for 8 s mid-run; the stream's other copies
    // carry on.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = fleet.progress();
    cluster.nats.kill(1);
    tokio::time::sleep(Duration::from_secs(8)).await;
    tokio::task::block_in_place(|| cluster.nats.restart(1)).unwrap();
    let finished = fleet.finish(Duration::from_mins(1)).await.unwrap();
    let report = cluster.report(finished).await;
    assert!(
        before.acknowledged > 0,
        "events were stored before the kill: {before:?}"
    );
    assert_stored_once(&report, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_whose_nats_node_stays_down_fail_over_to_the_next_node_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, mut cfg) = Cluster::with_fleet(dir.path(), "KZ-FOV", 9, 16).await;
    cfg.interval = (Duration::from_millis(500), Duration::from_millis(1500));
    cfg.ack_timeout = Duration::from_secs(3);
    // Device i is on node i % 3 and fails over to the two others, in order after its own.
    cfg.failover = true;
    let node0 = format!("127.0.0.1:{}", cfg.brokers[0].1);
    let fleet = Fleet::start(cfg).await.unwrap();
    // Node 0 (the broker of devices 1, 4 and 7) is killed once events are stored, and is not
    // started again.
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while fleet.progress().acknowledged == 0 {
        assert!(std::time::Instant::now() < end, "nothing acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fleet.brokers_now().contains(&node0));
    cluster.nats.kill(0);
    let killed = fleet.progress();
    // Its devices move to node 1 (two failed attempts, a second or two) and deliver there.
    // (Node 1 or 2 may drop or refuse a connection or two while the cluster settles without
    // node 0, so a device may move once more: any node but 0 will do.)
    let end = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let brokers = fleet.brokers_now();
        let p = fleet.progress();
        if !brokers.contains(&node0) && p.connected == 9 && p.acknowledged > killed.acknowledged {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "node 0's devices did not move: {brokers:?} {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = fleet.finish(Duration::from_secs(30)).await.unwrap();
    assert!(
        !cluster.nats.is_running(0),
        "node 0 stayed down to the end of the run"
    );
    let report = cluster.report(finished).await;
    assert_stored_once(&report, 80);
}

/// `anpr fleet demo --processes 2`: both parts record, the report holds every device once, in
/// order, with its broker, and is clean; the simulator's resources are the two processes'.
#[test]
fn a_fleet_demo_split_over_two_processes_reports_every_device_once_and_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let json = work.path().join("report.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(["fleet", "demo", "--devices", "9", "--seconds", "10"])
        .args(["--nodes", "1", "--replicas", "1", "--processes", "2"])
        .arg("--work")
        .arg(work.path())
        .arg("--json")
        .arg(&json)
        .env("ANPR_LOG", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("fleet simulator (2 processes)"), "{stdout}");
    assert!(
        work.path()
            .join("run/part-1/queues/SIM-00009.sqlite")
            .exists()
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let devices: Vec<&str> = report["report"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["inventory"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=9).map(|i| format!("SIM-{i:05}")).collect();
    assert_eq!(devices, expected);
    let total = &report["report"]["total"];
    assert!(total["recorded"].as_u64().unwrap() > 0, "{total}");
    assert_eq!(total["stored"], total["recorded"], "{total}");
    for zero in ["lost", "duplicates", "undelivered", "unknown", "pending"] {
        assert_eq!(total[zero], 0, "{zero}: {total}");
    }
}
