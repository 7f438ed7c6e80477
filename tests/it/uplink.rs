//! The uplink against a broker whose access control refuses its subscriptions: the refusal
//! reaches the central side as a fault on the health channel, and clears once a later
//! connection is granted the subscription.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use anpr_store::Store;
use anpr_testkit::{BrokerOptions, Mosquitto};
use anpr_types::Topics;

use crate::util;

/// The `subscription` faults about `topic` in the device's last health at the receiver
/// (`None` while the receiver has no health from it).
fn subscription_faults(db: &std::path::Path, inventory: &str, topic: &str) -> Option<usize> {
    let health = anpr_central::Receiver::open(db)
        .and_then(|r| r.health(inventory))
        .ok()
        .flatten()?;
    Some(
        health
            .faults
            .iter()
            .filter(|f| f.code == "subscription" && f.subject.as_deref() == Some(topic))
            .count(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_ack_subscription_is_reported_on_the_health_channel_and_cleared_when_a_reconnect_is_granted()
 {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let inv = "KZ-UPLINK-ACL";
    let ack_topic = Topics::new("anpr/v1", inv).ack();
    // Refused subscriptions need the dynamic security plugin on a plain broker (testkit).
    let mut broker = Mosquitto::start_with_options(BrokerOptions {
        plaintext: true,
        deny_subscribe: vec![ack_topic.clone()],
        ..BrokerOptions::default()
    })
    .unwrap();
    let central = util::Central::start(&broker, db.clone());
    util::append_events(&queue, inv, 3);
    let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(2));
    assert!(
        util::wait_for(Duration::from_secs(15), || subscription_faults(
            &db, inv, &ack_topic
        ) == Some(1))
        .await,
        "the subscription fault reached the receiver: {:?}",
        anpr_central::Receiver::open(&db)
            .unwrap()
            .health(inv)
            .unwrap()
    );
    let fault = uplink
        .counters
        .faults
        .active()
        .into_iter()
        .find(|f| f.code == "subscription")
        .unwrap();
    assert!(
        fault.message.contains("check the broker's ACL"),
        "{}",
        fault.message
    );
    // Without the subscription no acknowledgement can arrive: the receiver has the events,
    // the device cannot mark them delivered.
    assert!(
        util::wait_for(Duration::from_secs(10), || uplink
            .counters
            .published
            .load(Ordering::SeqCst)
            >= 3)
        .await
    );
    let store = Store::open(&queue).unwrap();
    assert_eq!(store.stats().unwrap().delivered, 0);

    // The broker's access control is put right; the uplink reconnects and subscribes again.
    broker.options_mut().deny_subscribe.clear();
    broker.restart().unwrap();
    assert!(
        util::wait_for(Duration::from_secs(20), || subscription_faults(
            &db, inv, &ack_topic
        ) == Some(0)
            && store.stats().unwrap().delivered == 3)
        .await,
        "the fault cleared at the receiver and the events were delivered: {:?}",
        store.stats().unwrap()
    );
    let history: Vec<bool> = uplink
        .counters
        .faults
        .history()
        .into_iter()
        .filter(|r| r.code == "subscription")
        .map(|r| r.raised)
        .collect();
    assert_eq!(history, [true, false], "raised once, then cleared");
    uplink.drain(Duration::from_secs(30)).await;
    central.stop().await;
    util::assert_delivered_exactly(&queue, &db, inv);
}
