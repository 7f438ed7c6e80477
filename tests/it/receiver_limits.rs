//! The receiver's limits against a real mosquitto with the shipped TLS configuration: a client
//! with a device certificate sends an oversized event and a burst; the receiver quarantines
//! the one and rate-limits the other, while a real device's events are stored and
//! acknowledged. A replay at full speed is not rate-limited at the default limits; a packet
//! over 8 MiB never gets past the broker; texts from devices reach the report escaped.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anpr_store::Store;
use anpr_testkit::Mosquitto;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::watch;

use crate::util;

/// The receiver with `limits` on `broker`, as `util::Central` starts it otherwise.
struct Receiver {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), anpr_central::CentralError>>,
}

impl Receiver {
    fn start(broker: &Mosquitto, db: &Path, limits: anpr_central::Limits) -> Self {
        let keys = util::keys(db.parent().unwrap());
        std::fs::create_dir_all(keys.devices()).unwrap();
        let cfg = anpr_central::CentralConfig {
            host: "127.0.0.1".into(),
            port: broker.port(),
            tls: util::central_tls(broker),
            prefix: "anpr/v1".into(),
            db: db.to_path_buf(),
            client_id: format!("central-limits-{}", std::process::id()),
            signing_key: keys.central_signer(),
            devices: keys.devices(),
        };
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(anpr_central::run_with_limits(cfg, limits, rx, None));
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }
}

/// A client of `broker` with the device certificate of `inventory` that publishes what it is
/// given; its event loop's first error (a disconnection) is sent on the returned channel.
fn device_client(
    broker: &Mosquitto,
    inventory: &str,
    max_packet: usize,
) -> (AsyncClient, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let tls = broker.device_tls(inventory).unwrap();
    let mut opts = broker.client_options(inventory, tls.as_ref()).unwrap();
    opts.set_max_packet_size(max_packet, max_packet);
    let (client, mut eventloop) = AsyncClient::new(opts, 4096);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = tx.send("connected".into());
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(format!("error: {e}"));
                    return;
                }
            }
        }
    });
    (client, rx)
}

/// Waits for the client's event loop to say `connected`.
async fn connected(events: &mut tokio::sync::mpsc::UnboundedReceiver<String>) {
    let said = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(said, "connected");
}

/// `anpr central --report --events` on `db`: what it printed.
fn report(db: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(["central", "--report", "--events", "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_event_and_a_burst_are_refused_while_a_real_device_is_stored_and_acknowledged()
{
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("central.sqlite");
    let queue = dir.path().join("queue.sqlite");
    let (real, flood) = ("KZ-LIMIT-REAL", "KZ-LIMIT-FLOOD");
    // The real device's queue: 20 passages, one with a plate and a camera name that try to
    // colour the operator's terminal and forge a line of the report.
    util::append_events(&queue, real, 19);
    util::signed_store(&queue, real)
        .append(|seq| {
            let mut e = util::synthetic_event(real, seq);
            e.plate.text = "777\x1b[31mKZA\n02".into();
            e.camera = "cam\x1b[2J".into();
            e
        })
        .unwrap();
    let broker = Mosquitto::start().unwrap();
    // A low rate, so that a burst from one client is over it for sure; the caps as shipped.
    let limits = anpr_central::Limits {
        device_rate: NonZeroU32::new(50).unwrap(),
        device_burst: NonZeroU32::new(100).unwrap(),
        ..anpr_central::Limits::default()
    };
    let central = Receiver::start(&broker, &db, limits);

    let (flooder, mut flooder_events) = device_client(&broker, flood, 1 << 20);
    connected(&mut flooder_events).await;
    let events = anpr_types::Topics::new("anpr/v1", flood).events();
    // An events payload over the 256 KiB cap; once it is quarantined (the rate is checked
    // before the cap, so it must not come behind the burst), 1,000 more messages at once.
    // Sent again until it is (the receiver may not have subscribed yet), as a device would.
    let watch = anpr_central::Receiver::open(&db).unwrap();
    let mut quarantined = false;
    for _ in 0..20 {
        flooder
            .publish(&events, QoS::AtLeastOnce, false, vec![b' '; 300_000])
            .await
            .unwrap();
        quarantined = util::wait_for(Duration::from_millis(500), || {
            !watch.quarantined_of(flood).unwrap().is_empty()
        })
        .await;
        if quarantined {
            break;
        }
    }
    assert!(quarantined, "the oversized event is quarantined");
    for i in 0..1000 {
        flooder
            .publish(&events, QoS::AtMostOnce, false, format!("not an event {i}"))
            .await
            .unwrap();
    }
    // The real device meanwhile, a rate within the limit: everything stored and acknowledged.
    let uplink = util::Uplink::start_with_rate(&queue, real, &broker, Duration::from_secs(5), 40.0);
    uplink.drain(Duration::from_mins(1)).await;
    // Let the receiver take the last of the flood before it stops (and writes its counts).
    tokio::time::sleep(Duration::from_millis(500)).await;
    central.stop().await;

    let store = Store::open(&queue).unwrap();
    assert_eq!(
        store.stats().unwrap().pending,
        0,
        "the real device is delivered"
    );
    let rx = anpr_central::Receiver::open(&db).unwrap();
    assert_eq!(rx.events_of(real).unwrap().len(), 20);
    assert_eq!(
        rx.rate_limited_of(real).unwrap(),
        None,
        "the real device is not limited"
    );
    assert!(rx.quarantined_of(real).unwrap().is_empty());

    let q = rx.quarantined_of(flood).unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].size, Some(300_000));
    assert!(
        q[0].reason
            .contains("events payload over the receiver's cap of 262144 bytes"),
        "{}",
        q[0].reason
    );
    let dropped = rx
        .rate_limited_of(flood)
        .unwrap()
        .expect("the burst is limited")
        .dropped;
    // Of the burst of 1,000, the rest of the burst allowance (100, less the copies of the
    // oversized event) and the rate let some through; the rest were dropped.
    assert!((100..=901).contains(&dropped), "{dropped} dropped");

    let printed = report(&db);
    assert!(!printed.contains('\x1b'), "{printed:?}");
    assert!(
        printed.contains("plate 777\\u{1b}[31mKZA\\n02 "),
        "{printed}"
    );
    let flood_line = printed
        .lines()
        .find(|l| l.starts_with(flood))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(
        flood_line.contains("QUARANTINED 1")
            && flood_line.contains("(300000 bytes)")
            && flood_line.contains(&format!("RATE-LIMITED {dropped} messages")),
        "{flood_line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_over_8_mib_is_refused_by_the_broker_and_never_reaches_the_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("central.sqlite");
    let broker = Mosquitto::start().unwrap();
    let central = Receiver::start(&broker, &db, anpr_central::Limits::default());
    let inv = "KZ-LIMIT-BIG";
    let (client, mut events) = device_client(&broker, inv, 16 << 20);
    connected(&mut events).await;
    // Over the receiver's evidence cap too: were the broker to pass it on, the receiver
    // would quarantine it.
    let topic = anpr_types::Topics::new("anpr/v1", inv).evidence(uuid::Uuid::now_v7(), "overview");
    client
        .publish(&topic, QoS::AtLeastOnce, false, vec![0u8; (8 << 20) + 1])
        .await
        .unwrap();
    let said = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("the broker drops the client")
        .unwrap();
    assert!(said.starts_with("error"), "{said}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    central.stop().await;
    let rx = anpr_central::Receiver::open(&db).unwrap();
    assert!(rx.quarantined_of(inv).unwrap().is_empty());
    assert!(rx.report().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_at_full_speed_is_not_rate_limited_at_the_default_limits() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db: PathBuf = dir.path().join("central.sqlite");
    let inv = "KZ-LIMIT-REPLAY";
    let n = 2000;
    util::append_events(&queue, inv, n);
    let broker = Mosquitto::start().unwrap();
    let central = Receiver::start(&broker, &db, anpr_central::Limits::default());
    // As fast as the window and the receiver allow (backlog_rate 100,000 per second).
    let t0 = Instant::now();
    let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(10));
    uplink.drain(Duration::from_mins(2)).await;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    central.stop().await;
    eprintln!(
        "replay: {n} events in {:.2} s, {rate:.0} events/s",
        t0.elapsed().as_secs_f64()
    );
    util::assert_delivered_exactly(&queue, &db, inv);
    let rx = anpr_central::Receiver::open(&db).unwrap();
    assert_eq!(rx.rate_limited_of(inv).unwrap(), None, "{rate:.0} events/s");
}
