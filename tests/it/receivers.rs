//! The two kinds of receivers (docs/receivers.md): the Situational Center (`anpr central`)
//! gets every event; a transport control post (`anpr central post`, CN `anpr-post-<id>`,
//! its broker ACL block written by `anpr pki post`) gets the violations of its devices live,
//! acknowledges them on its own path, and the device sends nothing twice for it. Both through
//! a link outage of the device and an outage of the post itself (its broker session keeps
//! what arrives meanwhile); the oracle: the Situational Center holds every event once, the
//! post exactly the violations once each, and the post's gap report accounts for every event.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anpr_netsim::{Proxy, Script};
use anpr_pipeline::{DeviceCounters, RunOptions};
use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_testkit::{BrokerOptions, BrokerPki, Mosquitto};
use anpr_types::EventKind;
use tokio::sync::{mpsc, watch};

use crate::util;

const INV: &str = "KZ-TEST-POSTS";
const POST: &str = "P1";

/// A control post running as `anpr-post-P1` over TLS with the identity `anpr pki post` issued.
struct Post {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), anpr_central::CentralError>>,
    stored: mpsc::UnboundedReceiver<anpr_central::Received>,
}

impl Post {
    fn start(
        broker: &Mosquitto,
        files: &anpr_pki::PostFiles,
        db: &std::path::Path,
        devices: &std::path::Path,
    ) -> Self {
        let (stop, rx) = watch::channel(false);
        let (tx, stored) = mpsc::unbounded_channel();
        let cfg = anpr_central::PostConfig {
            link: anpr_central::CentralConfig {
                host: "127.0.0.1".into(),
                port: broker.port(),
                tls: Some(anpr_pki::ClientTls::load(&files.tls).unwrap()),
                prefix: "anpr/v1".into(),
                db: db.to_path_buf(),
                client_id: anpr_pki::post_cn(POST),
                signing_key: anpr_trust::load_signing_key_as("post key", &files.signing_key)
                    .unwrap(),
                devices: devices.to_path_buf(),
            },
            post_id: POST.into(),
            devices: vec![INV.into()],
            kinds: vec![EventKind::Violation],
        };
        let task = tokio::spawn(anpr_central::run_post(cfg, rx, Some(tx)));
        Self { stop, task, stored }
    }

    async fn stop(self) -> usize {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
        let mut stored = self.stored;
        let mut n = 0;
        while stored.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_post_gets_each_violation_once_through_outages_and_the_device_sends_nothing_twice_for_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let manifest = write_clip_with(&manifest_with(5), &clip).unwrap();
    // The post's identity and ACL block, as an operator makes them: the device first (the post
    // gets a copy of its public key), then `anpr pki post --id P1 --device KZ-TEST-POSTS`.
    let pki = BrokerPki::temporary().unwrap();
    pki.device(INV).unwrap();
    let post_files = pki.post(POST, &[INV.to_string()]).unwrap();
    let block = std::fs::read_to_string(&post_files.acl).unwrap();
    assert!(block.contains("user anpr-post-P1\n"), "{block}");
    let broker = Mosquitto::start_with_pki(
        BrokerOptions {
            acl_blocks: vec![block],
            ..BrokerOptions::default()
        },
        pki,
    )
    .unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    // The events are signed by the test's device key (util::keys), whose public half the
    // receivers read from the test's devices directory.
    let device_keys = util::keys(dir.path()).devices();
    let post_db = dir.path().join("post.sqlite");

    // The device reaches the broker through a link that goes black for 15 s after 2 s.
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], broker.port()));
    let proxy = Proxy::start(
        "127.0.0.1:0".parse().unwrap(),
        upstream,
        Script::parse("up 2; blackhole 15; up 3600").unwrap(),
        1.0,
        Duration::from_mins(5),
    )
    .await
    .unwrap();
    let config = util::write_config(
        dir.path(),
        INV,
        clip.to_str().unwrap(),
        &util::Via::new(proxy.local_addr(), broker.pki()),
    );
    std::fs::write(
        dir.path().join("wanted.csv"),
        "plate,reason,priority,valid_from,valid_to\n123ABC01,stolen vehicle,1,,\n505AB17,unpaid fines,2,,\n901TRK14,wanted driver,1,,\n",
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = format!("lists_dir = \"lists\"\n{text}");
    text.push_str(
        "\n[[list]]\nname = \"wanted\"\nfile = \"wanted.csv\"\n\n[[rule]]\nname = \"wanted\"\nkind = \"plate-list\"\nlists = [\"wanted\"]\n",
    );
    std::fs::write(&config, text).unwrap();

    // The post subscribes (its persistent session is made) and goes away; the device starts,
    // and the post comes back when the device's link has gone black: what the device sent
    // meanwhile waited in the post's session at the broker.
    let post = Post::start(&broker, &post_files, &post_db, &device_keys);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let early = post.stop().await;

    let cfg = anpr_config::load(&config).unwrap();
    let uplink = Arc::new(anpr_uplink::Counters::default());
    let opts = RunOptions {
        drain_timeout: Duration::from_mins(2),
        delivered: None,
        counters: Arc::new(DeviceCounters::default()),
        uplink: uplink.clone(),
    };
    let device = tokio::spawn(anpr_pipeline::run(cfg, opts));
    assert!(
        util::wait_for(Duration::from_mins(1), || proxy.condition()
            == anpr_netsim::Condition::Blackhole)
        .await,
        "the link goes black"
    );
    let post = Post::start(&broker, &post_files, &post_db, &device_keys);
    let summary = device.await.unwrap().unwrap();
    let transitions: Vec<_> = proxy.transitions().iter().map(|t| t.condition).collect();
    let events = summary.events;
    assert!(
        util::wait_for(Duration::from_secs(30), || {
            anpr_central::post_report(&post_db)
                .ok()
                .and_then(|r| r.into_iter().find(|r| r.inventory == INV))
                .is_some_and(|r| r.seen >= events)
        })
        .await,
        "the post gets every event, from its session and live"
    );
    let late = post.stop().await;
    central.stop().await;
    assert!(
        transitions.contains(&anpr_netsim::Condition::Blackhole),
        "the link went down while the device ran: {transitions:?}"
    );

    // The Situational Center: every event, once, no gap.
    let sc = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let all = sc.events_of(INV).unwrap();
    assert_eq!(
        all.len() as u64,
        events,
        "every event reached the Situational Center"
    );
    let seqs: Vec<u64> = all.iter().map(|d| d.event.seq).collect();
    assert_eq!(seqs, (1..=events).collect::<Vec<_>>(), "once each, no gap");
    assert!(sc.report().unwrap()[0].gaps.is_empty());
    assert!(
        all.iter().any(|d| d.delayed),
        "at least one event was recorded during the outage and replayed"
    );
    let violations: BTreeSet<_> = all
        .iter()
        .filter(|d| d.event.kind == EventKind::Violation)
        .map(|d| d.event.event_id)
        .collect();
    assert_eq!(
        violations.len(),
        3,
        "three listed plates, three plate-list hits: {:?}",
        manifest.vehicles
    );

    // The post: exactly the violations, each once, with their images.
    let p = anpr_central::open_post_db(&post_db).unwrap();
    let kept = p.events_of(INV).unwrap();
    let kept_ids: BTreeSet<_> = kept.iter().map(|d| d.event.event_id).collect();
    assert_eq!(kept_ids.len(), kept.len(), "each stored once");
    assert_eq!(kept_ids, violations, "exactly the violations, none missing");
    assert_eq!(p.violations_of(INV).unwrap().len(), 3);
    assert!(
        kept.iter().all(|d| d.event.kind == EventKind::Violation),
        "no passage kept"
    );
    for d in &kept {
        for r in &d.event.evidence {
            assert!(
                p.image(d.event.event_id, &r.kind).unwrap().is_some(),
                "image {} of violation {} kept",
                r.kind,
                d.event.seq
            );
        }
    }
    assert!(early + late >= 3, "the post reported its stored events");
    // Its gap report: every event of the device from 1 to the last is accounted for.
    let report = anpr_central::post_report(&post_db).unwrap();
    let r = report.iter().find(|r| r.inventory == INV).unwrap();
    assert_eq!(r.first_seq, Some(1));
    assert_eq!(r.last_seq, Some(events));
    assert_eq!(r.seen, events);
    assert!(r.unaccounted.is_empty(), "{:?}", r.unaccounted);
    assert_eq!(r.stored.get("violation"), Some(&3));
    assert_eq!(r.refused, 0);

    // The device: its delivery is the Situational Center's. Post acks were never taken as
    // the center's (they would be refused as badly signed, or unknown), the queue ends empty,
    // and every publish beyond one per event is a resend the center's ack timing caused
    // (an ack timeout, or a reconnect with rows in flight), none for the post.
    assert_eq!(uplink.bad_acks.load(Ordering::SeqCst), 0);
    assert_eq!(uplink.unknown_acks.load(Ordering::SeqCst), 0);
    let queue = anpr_store::Store::open(&dir.path().join("queue.sqlite")).unwrap();
    assert_eq!(
        queue.stats().unwrap().pending,
        0,
        "all delivered to the center"
    );
    // Both receivers got exactly the copies the device published that reached the broker:
    // nothing was sent for the post alone.
    let published = uplink.published.load(Ordering::SeqCst);
    let sc_copies = events + sc_extra_copies(&dir.path().join("central.sqlite"));
    let post_copies = r.seen + r.duplicates;
    assert!(
        published >= sc_copies,
        "published {published}, the center got {sc_copies}"
    );
    assert_eq!(
        post_copies, sc_copies,
        "the post saw the same copies as the center (published {published})"
    );
    // The post's acks reached the device and were counted, for information.
    let posts = uplink.posts.lock().unwrap().clone();
    let p1 = posts.get(POST).copied().unwrap_or_default();
    assert!(
        p1.acks >= 1 && uplink.post_acks.load(Ordering::SeqCst) == p1.acks,
        "post acks counted: {posts:?}"
    );
    let violation_seqs: BTreeSet<u64> = all
        .iter()
        .filter(|d| d.event.kind == EventKind::Violation)
        .map(|d| d.event.seq)
        .collect();
    assert!(
        violation_seqs.contains(&p1.last_seq),
        "{p1:?} {violation_seqs:?}"
    );
}

/// Copies beyond the first the Situational Center received, all events.
fn sc_extra_copies(db: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COALESCE(SUM(copies - 1), 0) FROM events", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| u64::try_from(n).unwrap())
    .unwrap()
}

/// The messages a raw client received: topic and payload.
type Inbox = mpsc::UnboundedReceiver<(String, Vec<u8>)>;

/// A raw MQTT client of `broker` with `identity`; what arrives comes on the channel.
fn raw_client(
    broker: &Mosquitto,
    id: &str,
    identity: &anpr_pki::TlsFiles,
) -> (rumqttc::AsyncClient, Inbox, tokio::task::JoinHandle<()>) {
    let opts = broker.client_options(id, Some(identity)).unwrap();
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    });
    (client, rx, task)
}

/// What arrived on `rx` within `wait`, sorted.
async fn drain(rx: &mut Inbox, wait: Duration) -> Vec<(String, Vec<u8>)> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    while let Ok(Some(m)) = tokio::time::timeout_at(end, rx.recv()).await {
        got.push(m);
    }
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_post_reads_only_its_devices_and_writes_nothing_but_its_own_acks() {
    use rumqttc::QoS;
    let (a, b) = ("KZ-POST-A", "KZ-POST-B");
    let pki = BrokerPki::temporary().unwrap();
    let a_tls = pki.device(a).unwrap().tls;
    let b_tls = pki.device(b).unwrap().tls;
    let post = pki.post(POST, &[a.to_string()]).unwrap();
    let broker = Mosquitto::start_with_pki(
        BrokerOptions {
            acl_blocks: vec![std::fs::read_to_string(&post.acl).unwrap()],
            ..BrokerOptions::default()
        },
        pki,
    )
    .unwrap();
    let (dev_a, mut got_a, _ta) = raw_client(&broker, "a", &a_tls);
    let (dev_b, mut got_b, _tb) = raw_client(&broker, "b", &b_tls);
    let (p, mut got_p, _tp) = raw_client(&broker, "p", &post.tls);
    for (c, inv) in [(&dev_a, a), (&dev_b, b)] {
        c.subscribe(format!("anpr/v1/{inv}/ack"), QoS::AtLeastOnce)
            .await
            .unwrap();
        c.subscribe(format!("anpr/v1/{inv}/ack/post/+"), QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    // The post asks for everything; the broker's ACL decides what reaches it.
    p.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    dev_a
        .publish(
            format!("anpr/v1/{a}/events"),
            QoS::AtLeastOnce,
            false,
            b"event of A".to_vec(),
        )
        .await
        .unwrap();
    dev_b
        .publish(
            format!("anpr/v1/{b}/events"),
            QoS::AtLeastOnce,
            false,
            b"event of B".to_vec(),
        )
        .await
        .unwrap();
    // Refused: the Situational Center's ack path, another device's post path, another post's
    // path, a command. Allowed: its own ack path for its device.
    for (topic, body) in [
        (format!("anpr/v1/{a}/ack"), "forged center ack"),
        (
            format!("anpr/v1/{b}/ack/post/{POST}"),
            "ack to a device not watched",
        ),
        (format!("anpr/v1/{a}/ack/post/P2"), "ack as another post"),
        (format!("anpr/v1/{a}/cmd/plate-list/wanted"), "command"),
        (format!("anpr/v1/{a}/ack/post/{POST}"), "own ack"),
    ] {
        p.publish(topic, QoS::AtLeastOnce, false, body.as_bytes().to_vec())
            .await
            .unwrap();
    }
    let wait = Duration::from_secs(1);
    assert_eq!(
        drain(&mut got_p, wait).await,
        [(format!("anpr/v1/{a}/events"), b"event of A".to_vec())],
        "the post reads its device's events, nothing of the other device"
    );
    assert_eq!(
        drain(&mut got_a, Duration::from_millis(200)).await,
        [(format!("anpr/v1/{a}/ack/post/{POST}"), b"own ack".to_vec())],
        "the device gets the post's own ack and nothing else the post wrote"
    );
    assert_eq!(drain(&mut got_b, Duration::from_millis(200)).await, []);
}
