//! The central side's engines as `anpr-cluster` starts them: a 3-node NATS cluster whose MQTT
//! listener takes the devices' certificates, PostgreSQL and the SeaweedFS S3 store. Each is
//! used the way the fleet uses it, and crashed and restarted.

use std::time::Duration;

use anpr_cluster::{NatsCluster, NatsOptions, ObjectStore, Postgres};
use anpr_pki::{ClientTls, TlsFiles};
use anpr_testkit::BrokerPki;
use futures_util::StreamExt as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::mpsc;

/// What a test device gives back: its client, what it receives, and the task polling it.
type Device = (
    AsyncClient,
    mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    tokio::task::JoinHandle<()>,
);

/// An MQTT client of `port` over TLS with `identity`, polled by a task; what it receives
/// comes on the returned channel as (topic, payload).
fn device(port: u16, id: &str, identity: &TlsFiles) -> Device {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_session(false);
    opts.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(ClientTls::load(identity).unwrap().config()),
    ));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    (client, rx, task)
}

/// A NATS client with the central receiver's certificate, connected to `urls`.
async fn central(pki: &BrokerPki, urls: &[String]) -> async_nats::Client {
    let tls = ClientTls::load(&pki.central().tls).unwrap().config();
    async_nats::ConnectOptions::new()
        .require_tls(true)
        .tls_client_config((*tls).clone())
        .connect(urls.join(","))
        .await
        .unwrap()
}

/// The next message on `sub` within 20 s.
async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("a message within 20 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cluster_maps_certificates_to_users_with_the_acl_and_survives_a_node_restart() {
    let run = tempfile::tempdir().unwrap();
    let pki = BrokerPki::temporary().unwrap();
    let a = pki.device("KZ-0001").unwrap().tls;
    let b = pki.device("KZ-0002").unwrap().tls;
    let devices = vec!["KZ-0001".to_string(), "KZ-0002".to_string()];
    let mut nats = tokio::task::block_in_place(|| {
        NatsCluster::start(NatsOptions::new(run.path(), pki.pki(), devices))
    })
    .unwrap();
    assert_eq!(nats.nodes(), 3);

    // The receiver reads every device's events from node 2; the devices speak MQTT to node 0.
    let nc = central(&pki, &[nats.nats_url(2)]).await;
    let mut events = nc.subscribe("anpr.v1.*.events").await.unwrap();
    nc.flush().await.unwrap();
    let (dev_a, mut seen_a, task_a) = device(nats.mqtt_port(0), "KZ-0001", &a);
    let (dev_b, _seen_b, _task_b) = device(nats.mqtt_port(0), "KZ-0002", &b);

    dev_a
        .publish(
            "anpr/v1/KZ-0001/events",
            QoS::AtLeastOnce,
            false,
            b"one".to_vec(),
        )
        .await
        .unwrap();
    let m = next(&mut events).await;
    assert_eq!(m.subject.as_str(), "anpr.v1.KZ-0001.events");
    assert_eq!(&m.payload[..], b"one");

    // Device B may not write on A's topic: that message never arrives, B's own one does (sent
    // after it, on the same connection, so it would have come first).
    dev_b
        .publish(
            "anpr/v1/KZ-0001/events",
            QoS::AtLeastOnce,
            false,
            b"forged".to_vec(),
        )
        .await
        .unwrap();
    dev_b
        .publish(
            "anpr/v1/KZ-0002/events",
            QoS::AtLeastOnce,
            false,
            b"own".to_vec(),
        )
        .await
        .unwrap();
    let m = next(&mut events).await;
    assert_eq!(
        (m.subject.as_str(), &m.payload[..]),
        ("anpr.v1.KZ-0002.events", &b"own"[..]),
        "device B's message on device A's topic was refused"
    );

    // The receiver's ack reaches the device on its QoS 1 subscription.
    dev_a
        .subscribe("anpr/v1/KZ-0001/ack", QoS::AtLeastOnce)
        .await
        .unwrap();
    // Until the subscription is in place, the ack is sent again.
    let ack = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            nc.publish("anpr.v1.KZ-0001.ack", "ack-1".into())
                .await
                .unwrap();
            if let Ok(Some(got)) =
                tokio::time::timeout(Duration::from_millis(500), seen_a.recv()).await
            {
                return got;
            }
        }
    })
    .await
    .expect("the device receives its ack within 20 s");
    assert_eq!(ack, ("anpr/v1/KZ-0001/ack".to_string(), b"ack-1".to_vec()));

    // An ack the receiver stores for the device's session (a JetStream publish into the MQTT
    // layer's stream, marked as a QoS 1 message the way that layer marks its own) waits there
    // while the device is away, and reaches it when it is back.
    // (Once the server has closed the connection: a message sent to a connection that then
    // goes away unacknowledged comes again only after the MQTT layer's ack wait, 30 s.)
    dev_a.disconnect().await.unwrap();
    task_a.await.unwrap();
    let connz = format!(
        "http://127.0.0.1:{}/connz?mqtt_client=KZ-0001",
        nats.monitor_port(0)
    );
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let text = reqwest::get(&connz).await.unwrap().text().await.unwrap();
            if text.contains("\"num_connections\": 0") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("node 0 closes the device's connection within 20 s");
    let js = async_nats::jetstream::new(nc.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nmqtt-Pub", "1");
    js.publish_with_headers("$MQTT.msgs.anpr.v1.KZ-0001.ack", headers, "ack-2".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (_dev_a, mut seen_a, _task_a) = device(nats.mqtt_port(2), "KZ-0001", &a);
    let stored = tokio::time::timeout(Duration::from_secs(20), seen_a.recv())
        .await
        .expect("the stored ack arrives within 20 s")
        .unwrap();
    assert_eq!(
        stored,
        ("anpr/v1/KZ-0001/ack".to_string(), b"ack-2".to_vec())
    );

    // A node crashes and comes back on the same ports; it serves MQTT again.
    nats.kill(1);
    assert!(!nats.is_running(1));
    tokio::task::block_in_place(|| nats.restart(1)).unwrap();
    let (dev_a1, _seen, _task) = device(nats.mqtt_port(1), "KZ-0001-n1", &a);
    dev_a1
        .publish(
            "anpr/v1/KZ-0001/events",
            QoS::AtLeastOnce,
            false,
            b"two".to_vec(),
        )
        .await
        .unwrap();
    // QoS 1 is at least once: the first message may come again after the restart; anything
    // else before `two` is a fault.
    let m = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let m = events.next().await.unwrap();
            if &m.payload[..] != b"one" {
                return m;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no message through node 1 within 30 s; its log:\n{}",
            nats.log_text(1)
        )
    });
    assert_eq!(&m.payload[..], b"two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_a_committed_row_across_a_crash() {
    let run = tempfile::tempdir().unwrap();
    let mut pg = tokio::task::block_in_place(|| Postgres::start(run.path())).unwrap();
    let connect = |url: String| async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    };
    let db = connect(pg.url()).await;
    db.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t VALUES (7)")
        .await
        .unwrap();
    drop(db);
    tokio::task::block_in_place(|| pg.kill());
    tokio::task::block_in_place(|| pg.restart()).unwrap();
    let db = connect(pg.url()).await;
    let row = db.query_one("SELECT id FROM t", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_serves_signed_s3_requests_across_a_restart() {
    use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
    let run = tempfile::tempdir().unwrap();
    let mut s3 = tokio::task::block_in_place(|| ObjectStore::start(run.path())).unwrap();
    s3.create_bucket("evidence").unwrap();
    let bucket = Bucket::new(
        s3.endpoint().parse().unwrap(),
        UrlStyle::Path,
        "evidence",
        s3.region(),
    )
    .unwrap();
    let creds = Credentials::new(s3.access_key(), s3.secret_key());
    let http = reqwest::Client::new();
    let hour = Duration::from_hours(1);

    let put = bucket.put_object(Some(&creds), "ab/cd").sign(hour);
    let r = http.put(put).body(b"image".to_vec()).send().await.unwrap();
    assert!(r.status().is_success(), "PUT: {}", r.status());
    // Unsigned (no credentials): refused.
    let anon = bucket.get_object(None, "ab/cd").sign(hour);
    assert_eq!(http.get(anon).send().await.unwrap().status(), 403);

    tokio::task::block_in_place(|| {
        s3.kill();
        s3.restart()
    })
    .unwrap();
    let get = bucket.get_object(Some(&creds), "ab/cd").sign(hour);
    let r = http.get(get).send().await.unwrap();
    assert!(r.status().is_success(), "GET: {}", r.status());
    assert_eq!(&r.bytes().await.unwrap()[..], b"image");
}
