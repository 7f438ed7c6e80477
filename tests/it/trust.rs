//! Signed acknowledgements and signed, chained events against a real mosquitto and the real
//! receiver: what a forger on the broker can and cannot do, and what `anpr verify` finds in a
//! queue or a receiver's database that was edited behind the software's back.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anpr_store::Store;
use anpr_testkit::{BrokerOptions, Mosquitto};
use anpr_types::{Ack, Delivery, Topics};
use rumqttc::{AsyncClient, QoS};

use crate::util;

/// A plain broker that lets anyone publish anything: the misconfigured broker the device's
/// checks must hold against.
fn open_broker() -> Mosquitto {
    Mosquitto::start_with_options(BrokerOptions {
        plaintext: true,
        ..BrokerOptions::default()
    })
    .unwrap()
}

/// A client of `broker` that publishes whatever it is given, as anyone could on an open broker.
fn anyone(broker: &Mosquitto, id: &str) -> AsyncClient {
    let opts = broker.client_options(id, None).unwrap();
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

/// `anpr verify` with `args`: its exit code and what it printed.
fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anpr"))
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_acknowledgements_on_an_open_broker_mark_nothing_delivered_and_raise_ack_signature()
{
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let inv = "KZ-TRUST-ACK";
    let broker = open_broker();
    util::append_events(&queue, inv, 3);
    let events: Vec<_> = (1..=3)
        .map(|s| Store::open(&queue).unwrap().get(s).unwrap().unwrap())
        .collect();
    let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(30));
    assert!(
        util::wait_for(Duration::from_secs(10), || uplink
            .counters
            .published
            .load(Ordering::SeqCst)
            >= 3)
        .await
    );
    // The attack of issue 12: read each event, answer with an ack naming it. Then the same
    // with every field the device checks filled in but no signature, a signature by another
    // key, and the central key's signature for another device.
    let forger = anyone(&broker, "forger");
    let topic = Topics::new("anpr/v1", inv).ack();
    let mallory = anpr_trust::SigningKey::generate(&mut rand_core::OsRng);
    let central = util::keys(dir.path()).central_signer();
    let mut forged: Vec<Vec<u8>> = Vec::new();
    for e in &events {
        let hash = anpr_trust::event::event_hash(e);
        forged.push(format!(r#"{{"event_id":"{}","seq":{}}}"#, e.event_id, e.seq).into_bytes());
        let unsigned = Ack {
            signature: None,
            ..anpr_trust::ack::event_ack(&central, inv, e.seq, e.event_id, &hash)
        };
        forged.push(serde_json::to_vec(&unsigned).unwrap());
        let by_mallory = anpr_trust::ack::event_ack(&mallory, inv, e.seq, e.event_id, &hash);
        forged.push(serde_json::to_vec(&by_mallory).unwrap());
    }
    let elsewhere = anpr_trust::ack::event_ack(
        &central,
        "KZ-OTHER",
        1,
        events[0].event_id,
        &anpr_trust::event::event_hash(&events[0]),
    );
    forged.push(serde_json::to_vec(&elsewhere).unwrap());
    let n = forged.len() as u64;
    for body in forged {
        forger
            .publish(&topic, QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }
    assert!(
        util::wait_for(Duration::from_secs(10), || uplink
            .counters
            .bad_acks
            .load(Ordering::SeqCst)
            == n)
        .await,
        "every forged ack counted: {}",
        uplink.counters.bad_acks.load(Ordering::SeqCst)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = Store::open(&queue).unwrap();
    assert_eq!(
        store.stats().unwrap().delivered,
        0,
        "nothing marked delivered"
    );
    assert_eq!(uplink.counters.acked.load(Ordering::SeqCst), 0);
    let fault = uplink
        .counters
        .faults
        .active()
        .into_iter()
        .find(|f| f.code == "ack-signature")
        .expect("an ack-signature fault");
    assert!(
        fault
            .message
            .contains(&format!("{n} acknowledgement(s) refused")),
        "{fault:?}"
    );

    // The real receiver's acks are taken.
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    uplink.drain(Duration::from_mins(1)).await;
    central.stop().await;
    assert_eq!(Store::open(&queue).unwrap().stats().unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_plate_is_named_by_verify_and_refused_by_the_receiver_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let inv = "KZ-TRUST-EDIT";
    let keys = util::keys(dir.path());
    let public = keys.devices().join(format!("{inv}.pub"));
    util::append_events(&queue, inv, 5);
    let (code, out) = verify(&["--queue", s(&queue), "--key", s(&public)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("intact") && out.contains("signatures checked"),
        "{out}"
    );

    // Someone with the SQLite file changes the plate read in event 3.
    rusqlite::Connection::open(&queue)
        .unwrap()
        .execute(
            "UPDATE events SET payload = json_set(payload, '$.plate.text', '777KZA02') WHERE seq = 3",
            [],
        )
        .unwrap();
    for args in [
        vec!["--queue", s(&queue), "--key", s(&public)],
        vec!["--queue", s(&queue)],
    ] {
        let (code, out) = verify(&args);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("MISMATCH at row 3:"), "{out}");
    }

    // Delivered: the receiver refuses event 3 (its signature no longer holds) and stores the
    // others; event 3 stays owed on the device.
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, db.clone());
    let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(2));
    let store = Store::open(&queue).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(20), || store.stats().unwrap().delivered
            == 4)
        .await,
        "{:?}",
        store.stats().unwrap()
    );
    let receiver = anpr_central::Receiver::open(&db).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(10), || receiver
            .quarantined_of(inv)
            .unwrap()
            .first()
            .is_some_and(|q| q.copies >= 2))
        .await,
        "event 3 sent again after its ack timeout, refused again"
    );
    let _ = uplink.mode.send(anpr_uplink::Mode::Stop);
    central.stop().await;
    assert_eq!(
        store.is_delivered(3).unwrap(),
        Some(false),
        "event 3 not acknowledged"
    );
    let q = receiver.quarantined_of(inv).unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].seq, 3);
    assert!(
        q[0].reason.contains("not signed by this device's key"),
        "{}",
        q[0].reason
    );
    let got: Vec<u64> = receiver
        .events_of(inv)
        .unwrap()
        .iter()
        .map(|d| d.event.seq)
        .collect();
    assert_eq!(got, [1, 2, 4, 5]);
    let line = receiver.report().unwrap()[0].to_string();
    assert!(
        line.contains("QUARANTINED 1") && line.contains("seq 3:"),
        "{line}"
    );

    // The receiver's own copy: intact (3 never stored), then edited behind its back.
    let (code, out) = verify(&[
        "--central",
        s(&db),
        "--inventory",
        inv,
        "--devices",
        s(&keys.devices()),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("never received (not checked across): 3"),
        "{out}"
    );
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE events SET payload = json_set(payload, '$.plate.text', 'X') WHERE seq = 4",
            [],
        )
        .unwrap();
    let (code, out) = verify(&["--central", s(&db), "--inventory", inv]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MISMATCH at row 4:"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_row_is_named_by_verify_as_a_chain_break() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    util::append_events(&queue, "KZ-TRUST-DEL", 5);
    rusqlite::Connection::open(&queue)
        .unwrap()
        .execute("DELETE FROM events WHERE seq = 2", [])
        .unwrap();
    let (code, out) = verify(&["--queue", s(&queue)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("MISMATCH at row 2:") && out.contains("a break in the chain"),
        "{out}"
    );
    // The last row deleted too: the queue's sequence counter still names it.
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    util::append_events(&queue, "KZ-TRUST-DEL", 3);
    rusqlite::Connection::open(&queue)
        .unwrap()
        .execute("DELETE FROM events WHERE seq = 3", [])
        .unwrap();
    let (code, out) = verify(&["--queue", s(&queue)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MISMATCH at row 3:"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_head_reaches_the_receiver_in_health_and_verify_names_an_edited_journal_row() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let inv = "KZ-TRUST-JOURNAL";
    util::append_events(&queue, inv, 2);
    // Two journal entries, as the device writes them: a clock jump and a camera gap.
    let mut store = util::signed_store(&queue, inv);
    let now = chrono::Utc::now();
    store
        .record_clock_jump(now - chrono::Duration::hours(1), now, 3600.0)
        .unwrap();
    store
        .append_journaled(
            |seq| util::synthetic_event(inv, seq),
            "camera-gap",
            &serde_json::json!({"camera": "cam1", "reason": "test"}),
        )
        .unwrap();
    let head = store.journal_head().unwrap().expect("a journal head");
    assert_eq!(head.seq, 2);

    // The head is in the health message the receiver stores.
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, db.clone());
    let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(30));
    let receiver = anpr_central::Receiver::open(&db).unwrap();
    assert!(
        util::wait_for(Duration::from_secs(20), || receiver
            .health(inv)
            .ok()
            .flatten()
            .and_then(|h| h.journal_head)
            .as_ref()
            == Some(&head))
        .await,
        "the journal head in the stored health: {:?}",
        receiver.health(inv).ok().flatten()
    );
    uplink.drain(Duration::from_secs(20)).await;
    central.stop().await;

    // `anpr verify` walks to the same head.
    let (code, out) = verify(&["--queue", s(&queue)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "journal: 2 rows checked, head row 2 hash {}",
            head.hash
        )) && out.contains("intact"),
        "{out}"
    );
    // Someone shrinks the clock jump in the journal: named, by its row.
    let conn = rusqlite::Connection::open(&queue).unwrap();
    let original: String = conn
        .query_row("SELECT detail FROM journal WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    conn.execute(
        "UPDATE journal SET detail = json_set(detail, '$.step_s', 1.0) WHERE id = 1",
        [],
    )
    .unwrap();
    let (code, out) = verify(&["--queue", s(&queue)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("MISMATCH at journal row 1:") && out.contains("edited"),
        "{out}"
    );
    assert!(
        !out.contains("MISMATCH at row"),
        "the events are intact: {out}"
    );
    // Or deletes the camera gap's entry: the recorded head names it.
    conn.execute("UPDATE journal SET detail = ?1 WHERE id = 1", [&original])
        .unwrap();
    assert_eq!(verify(&["--queue", s(&queue)]).0, 0, "restored");
    conn.execute("DELETE FROM journal WHERE id = 2", [])
        .unwrap();
    let (code, out) = verify(&["--queue", s(&queue)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("MISMATCH at journal row 2:") && out.contains("deleted"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_not_signed_by_their_device_are_quarantined_and_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("central.sqlite");
    let inv = "KZ-TRUST-FORGE";
    let keys = util::keys(dir.path());
    let device = keys.device_signer(inv);
    let broker = open_broker();
    let central = util::Central::start(&broker, db.clone());
    // Whoever listens for acks on every device's topic.
    let opts = broker.client_options("ack-watch", None).unwrap();
    let (watch, mut eventloop) = AsyncClient::new(opts, 64);
    watch
        .subscribe("anpr/v1/+/ack", QoS::AtLeastOnce)
        .await
        .unwrap();
    let acks = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Ack>::new()));
    let seen = acks.clone();
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = ev
                && let Ok(a) = serde_json::from_slice::<Ack>(&p.payload)
            {
                seen.lock().unwrap().push(a);
            }
        }
    });
    let delivery = |inventory: &str, seq: u64, key: Option<&anpr_trust::SigningKey>| {
        let mut event = util::synthetic_event(inventory, seq);
        event.prev_hash = Some(anpr_trust::ZERO_HASH.into());
        if let Some(k) = key {
            anpr_trust::event::sign_event(&mut event, k);
        }
        Delivery {
            event,
            sent_at: chrono::Utc::now(),
            delayed: false,
        }
    };
    let mallory = anpr_trust::SigningKey::generate(&mut rand_core::OsRng);
    let forger = anyone(&broker, "forger");
    let good = delivery(inv, 1, Some(&device));
    let sent = [
        (inv, delivery(inv, 2, None)),
        (inv, delivery(inv, 3, Some(&mallory))),
        // Signed by the device, sent as another (known) device's event.
        ("KZ-TRUST-OTHER", good.clone()),
        (
            "KZ-TRUST-UNKNOWN",
            delivery("KZ-TRUST-UNKNOWN", 1, Some(&mallory)),
        ),
        (inv, good.clone()),
    ];
    keys.device_key("KZ-TRUST-OTHER");
    // Once the receiver is subscribed (it stores a status it is sent), the events go.
    let receiver = anpr_central::Receiver::open(&db).unwrap();
    let health = Topics::new("anpr/v1", inv).health();
    let mut subscribed = false;
    for _ in 0..100 {
        forger
            .publish(&health, QoS::AtLeastOnce, false, r#"{"status":"online"}"#)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if receiver.status(inv).unwrap().is_some() {
            subscribed = true;
            break;
        }
    }
    assert!(subscribed, "the receiver did not subscribe");
    for (topic_inv, d) in &sent {
        forger
            .publish(
                Topics::new("anpr/v1", topic_inv).events(),
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(d).unwrap(),
            )
            .await
            .unwrap();
    }
    assert!(
        util::wait_for(Duration::from_secs(10), || !acks.lock().unwrap().is_empty()).await,
        "the good event is acknowledged"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    central.stop().await;
    let acks = acks.lock().unwrap().clone();
    assert_eq!(acks.len(), 1, "only the good event: {acks:?}");
    assert_eq!(
        (acks[0].inventory.as_str(), acks[0].seq, acks[0].event_id),
        (inv, 1, good.event.event_id)
    );
    anpr_trust::ack::verify_ack(&acks[0], inv, &keys.central_signer().verifying_key()).unwrap();
    let reasons: Vec<(u64, String)> = receiver
        .quarantined_of(inv)
        .unwrap()
        .into_iter()
        .map(|q| (q.seq, q.reason))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].1.starts_with("no signature"), "{reasons:?}");
    assert!(reasons[1].1.contains("does not verify"), "{reasons:?}");
    let other = receiver.quarantined_of("KZ-TRUST-OTHER").unwrap();
    assert!(
        other[0].reason.contains("names device \"KZ-TRUST-FORGE\""),
        "{other:?}"
    );
    let unknown = receiver.quarantined_of("KZ-TRUST-UNKNOWN").unwrap();
    assert!(
        unknown[0].reason.starts_with("unknown device"),
        "{unknown:?}"
    );
    assert_eq!(receiver.events_of(inv).unwrap(), vec![good]);
    assert!(receiver.events_of("KZ-TRUST-OTHER").unwrap().is_empty());
    let report = receiver.report().unwrap();
    assert_eq!(
        report
            .iter()
            .map(|r| r.inventory.as_str())
            .collect::<Vec<_>>(),
        ["KZ-TRUST-FORGE", "KZ-TRUST-OTHER", "KZ-TRUST-UNKNOWN"],
        "every device with refused events is reported"
    );
}
