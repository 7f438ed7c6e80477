//! Fault tests of the delivery contract, against a real mosquitto and the real receiver:
//! broker restarts, the receiver down, stray and repeated acknowledgements.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use anpr_store::Store;
use anpr_testkit::Mosquitto;
use anpr_types::{Ack, Topics};
use rumqttc::{AsyncClient, QoS};

use crate::util;

async fn broker_restart(persistence: bool) {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let mut broker = Mosquitto::start_with(persistence).unwrap();
    let central = util::Central::start(&broker, db.clone());
    let uplink = util::Uplink::start(&queue, "KZ-FAULT-1", &broker, Duration::from_secs(2));
    util::append_events(&queue, "KZ-FAULT-1", 40);
    let store = Store::open(&queue).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(20), || store.stats().unwrap().delivered
            >= 20)
        .await
    );
    broker.kill();
    // Recording goes on while the broker is gone.
    util::append_events(&queue, "KZ-FAULT-1", 40);
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.restart().unwrap();
    util::append_events(&queue, "KZ-FAULT-1", 20);
    uplink.drain(Duration::from_mins(1)).await;
    central.stop().await;
    util::assert_delivered_exactly(&queue, &db, "KZ-FAULT-1");
    assert_eq!(Store::open(&queue).unwrap().stats().unwrap().total, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_without_persistence_loses_nothing() {
    broker_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_with_persistence_loses_nothing() {
    broker_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_receiver_down_nothing_is_marked_delivered_until_it_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let broker = Mosquitto::start().unwrap();
    util::append_events(&queue, "KZ-FAULT-2", 30);
    let uplink = util::Uplink::start(&queue, "KZ-FAULT-2", &broker, Duration::from_secs(1));
    // The broker takes every publish, but nobody stores the events.
    assert!(
        util::wait_for(Duration::from_secs(10), || uplink
            .counters
            .published
            .load(Ordering::SeqCst)
            >= 30)
        .await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = Store::open(&queue).unwrap().stats().unwrap();
    assert_eq!(stats.delivered, 0, "a broker's PUBACK is not delivery");
    assert!(
        uplink.counters.resent.load(Ordering::SeqCst) > 0,
        "unacknowledged events are sent again"
    );
    let central = util::Central::start(&broker, db.clone());
    uplink.drain(Duration::from_secs(30)).await;
    central.stop().await;
    util::assert_delivered_exactly(&queue, &db, "KZ-FAULT-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_repeated_and_out_of_order_acks_change_nothing_they_should_not() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let broker = Mosquitto::start().unwrap();
    util::append_events(&queue, "KZ-FAULT-3", 5);
    let events: Vec<_> = (1..=5)
        .map(|s| Store::open(&queue).unwrap().get(s).unwrap().unwrap())
        .collect();
    let uplink = util::Uplink::start(&queue, "KZ-FAULT-3", &broker, Duration::from_secs(30));
    assert!(
        util::wait_for(Duration::from_secs(10), || uplink
            .counters
            .published
            .load(Ordering::SeqCst)
            >= 5)
        .await
    );

    // A hand-made "central side" that answers badly (with the central side's identity: the
    // broker's ACL lets no other write acks).
    let opts = broker
        .client_options("bad-central", broker.central_tls().as_ref())
        .unwrap();
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let topic = Topics::new("anpr/v1", "KZ-FAULT-3").ack();
    let send = |ack: Ack| {
        let client = client.clone();
        let topic = topic.clone();
        async move {
            client
                .publish(
                    topic,
                    QoS::AtLeastOnce,
                    false,
                    serde_json::to_vec(&ack).unwrap(),
                )
                .await
                .unwrap();
        }
    };
    // Every ack below is signed with the central key, as the receiver's would be: only what
    // it names is wrong.
    let central = util::keys(dir.path()).central_signer();
    let ack = |event_id, seq, event: &anpr_types::Event| {
        anpr_trust::ack::event_ack(
            &central,
            "KZ-FAULT-3",
            seq,
            event_id,
            &anpr_trust::event::event_hash(event),
        )
    };
    // Unknown id, and a real id with another event's sequence.
    send(ack(uuid::Uuid::now_v7(), 1, &events[0])).await;
    send(ack(events[0].event_id, 2, &events[0])).await;
    // Out of order: 5, 3, then 1 twice.
    for i in [4usize, 2, 0, 0] {
        send(ack(events[i].event_id, events[i].seq, &events[i])).await;
    }
    let store = Store::open(&queue).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(10), || store.stats().unwrap().delivered
            == 3)
        .await
    );
    assert!(
        util::wait_for(Duration::from_secs(5), || uplink
            .counters
            .duplicate_acks
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    assert_eq!(uplink.counters.unknown_acks.load(Ordering::SeqCst), 2);
    let delivered: Vec<bool> = (1..=5)
        .map(|s| store.is_delivered(s).unwrap().unwrap())
        .collect();
    assert_eq!(delivered, vec![true, false, true, false, true]);
    let _ = uplink.mode.send(anpr_uplink::Mode::Stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_naming_another_event_under_a_sequence_number_leaves_that_event_to_be_sent_again_within_the_ack_timeout()
 {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let broker = Mosquitto::start().unwrap();
    // One event: nothing else in flight whose timeout would send it again by the way.
    util::append_events(&queue, "KZ-FAULT-STRAY", 1);
    let ack_timeout = Duration::from_secs(2);
    let uplink = util::Uplink::start(&queue, "KZ-FAULT-STRAY", &broker, ack_timeout);
    assert!(
        util::wait_for(Duration::from_secs(10), || uplink
            .counters
            .published
            .load(Ordering::SeqCst)
            >= 1)
        .await
    );
    // A stray acknowledgement: the event's sequence number with another event's id.
    let opts = broker
        .client_options("stray-acks", broker.central_tls().as_ref())
        .unwrap();
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    // Signed with the central key, as the receiver's would be: only the id is wrong.
    let event = Store::open(&queue).unwrap().get(1).unwrap().unwrap();
    let stray = anpr_trust::ack::event_ack(
        &util::keys(dir.path()).central_signer(),
        "KZ-FAULT-STRAY",
        1,
        uuid::Uuid::now_v7(),
        &anpr_trust::event::event_hash(&event),
    );
    client
        .publish(
            Topics::new("anpr/v1", "KZ-FAULT-STRAY").ack(),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&stray).unwrap(),
        )
        .await
        .unwrap();
    assert!(
        util::wait_for(Duration::from_secs(5), || uplink
            .counters
            .unknown_acks
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    // The receiver comes up after the event went out; the link stays up throughout, so only the
    // ack timeout can bring it to the receiver again.
    let errors_before = uplink.counters.connection_errors.load(Ordering::SeqCst);
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    let store = Store::open(&queue).unwrap();
    assert!(
        util::wait_for(ack_timeout * 3, || store.stats().unwrap().delivered == 1).await,
        "the event is delivered within the ack timeout after the stray ack: {:?}",
        store.stats().unwrap()
    );
    assert_eq!(
        uplink.counters.connection_errors.load(Ordering::SeqCst),
        errors_before,
        "no reconnect was needed"
    );
    assert!(uplink.counters.resent.load(Ordering::SeqCst) >= 1);
    let _ = uplink.mode.send(anpr_uplink::Mode::Stop);
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_row_between_two_good_ones_is_quarantined_and_reported_and_the_good_ones_are_delivered()
 {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let inv = "KZ-FAULT-CORRUPT";
    let broker = Mosquitto::start().unwrap();
    util::append_events(&queue, inv, 3);
    rusqlite::Connection::open(&queue)
        .unwrap()
        .execute(
            "UPDATE events SET payload = '{\"schema\": \"cut short' WHERE seq = 2",
            [],
        )
        .unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(3));
    let store = Store::open(&queue).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(20), || store.stats().unwrap().delivered
            == 2)
        .await,
        "both good rows delivered: {:?}",
        store.stats().unwrap()
    );
    assert_eq!(store.stats().unwrap().pending, 0);
    let journal = store.journal(0).unwrap();
    assert!(
        journal
            .iter()
            .any(|j| j.kind == "quarantined-event" && j.detail["seq"] == 2),
        "{journal:?}"
    );
    // The fault reaches the central side on the health channel.
    let receiver_db = dir.path().join("central.sqlite");
    assert!(
        util::wait_for(Duration::from_secs(10), || {
            anpr_central::Receiver::open(&receiver_db)
                .and_then(|r| r.faults(inv))
                .is_ok_and(|h| {
                    h.iter()
                        .any(|h| h.faults.iter().any(|f| f.code == "queue-corrupt"))
                })
        })
        .await,
        "queue-corrupt fault at the receiver"
    );
    let _ = uplink.mode.send(anpr_uplink::Mode::Stop);
    central.stop().await;
    let report = anpr_central::Receiver::open(&receiver_db)
        .unwrap()
        .report()
        .unwrap();
    assert_eq!(
        report[0].gaps,
        vec![(2, 2)],
        "the receiver sees the quarantined row missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_killed_mid_batch_keeps_acknowledged_rows_done_and_sends_the_rest_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let clip = dir.path().join("clip.mp4");
    anpr_scene::clip::write_clip_with(&anpr_scene::clip::manifest_with(2), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, db.clone());
    let config = util::write_config(dir.path(), "KZ-FAULT-4", clip.to_str().unwrap(), &broker);
    // The device process records the clip while this test keeps adding a batch of events to
    // its queue, so the kill lands with rows in every state.
    let mut device = std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    util::append_events(&queue, "KZ-FAULT-4", 200);
    let store = Store::open(&queue).unwrap();
    assert!(
        util::wait_for(Duration::from_mins(1), || store.stats().unwrap().delivered
            >= 20)
        .await
    );
    device.kill().unwrap(); // SIGKILL
    device.wait().unwrap();
    let at_kill = store.stats().unwrap();
    let done_before: Vec<u64> = (1..=at_kill.total)
        .filter(|&s| store.is_delivered(s).unwrap() == Some(true))
        .collect();
    assert!(!done_before.is_empty());

    // Restart on a clip without plates: the device only has its queue to deliver.
    util::switch_to_blank_clip(&config, dir.path(), &clip);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--drain-timeout",
            "60",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    central.stop().await;
    for s in done_before {
        assert_eq!(
            store.is_delivered(s).unwrap(),
            Some(true),
            "an acknowledged row stays done"
        );
    }
    util::assert_delivered_exactly(&queue, &db, "KZ-FAULT-4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_overtake_a_rate_limited_backlog_and_everything_arrives_in_recoverable_order() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, db.clone());
    util::append_events(&queue, "KZ-FAULT-5", 1500);
    let uplink = util::Uplink::start_with_rate(
        &queue,
        "KZ-FAULT-5",
        &broker,
        Duration::from_secs(30),
        300.0,
    );
    let store = Store::open(&queue).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(20), || store.stats().unwrap().delivered
            >= 50)
        .await
    );
    // A live event recorded while the backlog drains.
    util::append_events(&queue, "KZ-FAULT-5", 1);
    let live = 1501;
    assert!(
        util::wait_for(Duration::from_secs(20), || store
            .is_delivered(live)
            .unwrap()
            == Some(true))
        .await
    );
    let backlog_left = (1..live)
        .filter(|&s| store.is_delivered(s).unwrap() == Some(false))
        .count();
    assert!(
        backlog_left > 0,
        "the live event went out before the backlog had drained"
    );
    uplink.drain(Duration::from_mins(1)).await;
    central.stop().await;
    util::assert_delivered_exactly(&queue, &db, "KZ-FAULT-5");
}

/// A synthetic JPEG-sized evidence image: JPEG's start and end markers around filler (the bytes
/// only matter for size and sha256, and the interface check looks at the markers).
fn image(seq: u64) -> anpr_store::NewEvidence {
    let mut data = vec![0xFF, 0xD8, 0xFF, 0xE0];
    data.extend((0..19_994u64).map(|i| ((i * 31 + seq * 7) % 251) as u8));
    data.extend([0xFF, 0xD9]);
    anpr_store::NewEvidence {
        kind: "overview".into(),
        content_type: "image/jpeg".into(),
        data,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_reached_during_an_outage_drops_passage_images_only_keeps_every_record_and_reports_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let inv = "KZ-FAULT-QUOTA";
    let mut broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, db.clone());
    let mut store = util::signed_store(&queue, inv);
    let mut captured = std::collections::HashMap::new();
    for _ in 0..10 {
        let e = store
            .append_with(|seq| util::synthetic_event(inv, seq), vec![image(0)])
            .unwrap();
        captured.insert(e.seq, e.captured_at);
    }
    // Room for about 22 images more than the database holds now: the 15 violations' images
    // and the 60 events' metadata fit, the 45 passages' images do not.
    let quota = store.bytes_used().unwrap() + 22 * 21_000;
    let uplink = util::Uplink::start_with(
        &queue,
        inv,
        &broker,
        Duration::from_secs(2),
        1e5,
        Some(quota),
    );
    assert!(
        util::wait_for(Duration::from_secs(20), || store
            .pending_evidence_count()
            .unwrap()
            == 0
            && store.pending_count().unwrap() == 0)
        .await,
        "the first 10 events and images are delivered"
    );
    broker.kill();
    // During the outage: 60 events, every fourth a violation, each with a 20 kB image.
    let mut store = store.with_quota(Some(quota));
    let mut violations = Vec::new();
    for i in 0..60u64 {
        let e = store
            .append_with(
                |seq| anpr_types::Event {
                    kind: if i % 4 == 3 {
                        anpr_types::EventKind::Violation
                    } else {
                        anpr_types::EventKind::Passage
                    },
                    ..util::synthetic_event(inv, seq)
                },
                vec![image(i)],
            )
            .unwrap();
        if i % 4 == 3 {
            violations.push(e.seq);
        }
        captured.insert(e.seq, e.captured_at);
    }
    let drops = store.drops().unwrap();
    assert!(
        drops.passage_evidence > 0,
        "the quota was reached: {drops:?}"
    );
    assert_eq!(
        (drops.passages, drops.violations, drops.violation_evidence),
        (0, 0, 0),
        "no undelivered record and no violation's image is ever deleted"
    );
    // With nothing deletable left, a new record is refused (held by the recognizer, raised as
    // `queue-full`), never made room for by deleting an undelivered one.
    let before = store.stats().unwrap();
    let mut store = store.with_quota(Some(1));
    let err = store
        .append(|seq| anpr_types::Event {
            kind: anpr_types::EventKind::Violation,
            ..util::synthetic_event(inv, seq)
        })
        .unwrap_err();
    assert!(err.is_quota_full() && err.is_disk_full(), "{err}");
    assert_eq!(
        store.stats().unwrap(),
        before,
        "nothing written, nothing removed"
    );
    let store = store.with_quota(Some(quota));
    assert_eq!(
        store.pruned().unwrap(),
        10,
        "delivered rows made room first"
    );
    assert!(store.bytes_used().unwrap() <= quota + 21_000);
    // Let the uplink see the drops, then bring the link back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.restart().unwrap();
    uplink.drain(Duration::from_mins(1)).await;
    let receiver = anpr_central::Receiver::open(&db).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(10), || receiver
            .health(inv)
            .unwrap()
            .is_some_and(|h| h.dropped == drops))
        .await,
        "the device's health with its drop counters reached the receiver"
    );
    central.stop().await;

    let got = receiver.events_of(inv).unwrap();
    // Every deletion is journaled, one row per batch: the delivered rows pruned first, then
    // the images of the oldest undelivered passages.
    let journal = store.journal(0).unwrap();
    assert!(journal.iter().all(|j| j.kind != "dropped-event"));
    let pruned: u64 = journal
        .iter()
        .filter(|j| j.kind == "pruned")
        .map(|j| j.detail["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(pruned, 10);
    let image_batches: Vec<&anpr_store::JournalEntry> = journal
        .iter()
        .filter(|j| j.kind == "dropped-evidence")
        .collect();
    let dropped_count: u64 = image_batches
        .iter()
        .map(|j| j.detail["images"].as_u64().unwrap())
        .sum();
    assert_eq!(dropped_count, drops.passage_evidence);
    let last_dropped = image_batches
        .iter()
        .map(|j| j.detail["last_seq"].as_u64().unwrap())
        .max()
        .unwrap();
    // Oldest passages lost their images first.
    let passages: Vec<u64> = (11..=70).filter(|s| !violations.contains(s)).collect();
    let dropped_images: Vec<u64> = passages
        .iter()
        .copied()
        .filter(|s| *s <= last_dropped)
        .collect();
    assert_eq!(
        dropped_images.len() as u64,
        drops.passage_evidence,
        "oldest passage images first"
    );
    // Every event not dropped arrived once, with its capture time, in order.
    assert_eq!(got.len(), 70, "every record arrived");
    for d in &got {
        assert_eq!(captured[&d.event.seq], d.event.captured_at);
        let has_image = receiver
            .image(d.event.event_id, "overview")
            .unwrap()
            .is_some();
        assert_eq!(
            has_image,
            !dropped_images.contains(&d.event.seq),
            "image of {} arrived unless it was dropped",
            d.event.seq
        );
    }
    for v in &violations {
        assert!(
            got.iter().any(|d| d.event.seq == *v),
            "violation {v} delivered"
        );
    }
    // The receiver sees the drops the device reported, and the fault.
    let report = &receiver.report().unwrap()[0];
    assert_eq!(report.dropped(), drops);
    assert_eq!(report.images_missing, drops.passage_evidence);
    assert!(
        report.gaps.is_empty(),
        "no record is missing: {:?}",
        report.gaps
    );
    let faults = receiver.faults(inv).unwrap();
    assert!(
        faults
            .iter()
            .any(|h| h.faults.iter().any(|f| f.code == "queue-quota")),
        "a queue-quota fault was reported: {faults:?}"
    );
    assert_eq!(store.pending_count().unwrap(), 0);
    assert_eq!(store.pending_evidence_count().unwrap(), 0);
}
