//! Plate lists changed from the central side while the device runs: a new version sent on
//! `<prefix>/<inventory>/cmd` is in force from the next passage on, without a restart; a
//! malformed, half-written or older version is refused with a fault on the health channel and
//! the list in force keeps working; the version in force sent again is ignored.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anpr_pipeline::{DeviceCounters, RunOptions};
use anpr_rules::ListCommand;
use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_testkit::{BrokerOptions, Mosquitto};
use anpr_types::Topics;
use rumqttc::{AsyncClient, QoS};

use crate::util;

const HEADER: &str = "plate,reason,priority,valid_from,valid_to\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_update_takes_effect_without_a_restart_and_bad_or_older_ones_are_refused_with_a_fault()
 {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    // Three vehicles: 123ABC01 (on the list from the start), 777KZA02 (added by the update while
    // the device runs), 505AB17 (on no list).
    let manifest = write_clip_with(&manifest_with(3), &clip).unwrap();
    let broker = Mosquitto::start_with_options(BrokerOptions {
        central_side_users: vec!["central-commands".into()],
        ..BrokerOptions::default()
    })
    .unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
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
    // A second central-side client beside the receiver (the ACL gives it anpr-central's
    // rights; it cannot log in as anpr-central, whose session the receiver holds).
    let identity = broker.central_side_tls("central-commands").unwrap();
    let opts = broker
        .client_options("central-commands", Some(&identity))
        .unwrap();
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let topic = Topics::new("anpr/v1", inv).cmd();
    let both = format!("{HEADER}123ABC01,stolen vehicle,1,,\n777KZA02,unpaid fines,2,,\n");
    let malformed = ListCommand::new(
        "wanted",
        2,
        &format!("{HEADER}123ABC01,stolen vehicle,1,,\n777KZA02,unpaid fines,urgent,,\n"),
    )
    .to_json();
    let mut half = ListCommand::new("wanted", 2, &both).to_json();
    half.truncate(half.len() * 2 / 3);
    let mut wrong_sum = ListCommand::new("wanted", 2, &both);
    wrong_sum.csv.push_str("999ZZZ99,added on the way,1,,\n");
    let good = ListCommand::new("wanted", 2, &both).to_json();
    let older = ListCommand::new("wanted", 1, &both).to_json();
    // The good one twice: a QoS 1 duplicate of the version in force is neither news nor a fault.
    for payload in [
        malformed,
        half,
        wrong_sum.to_json(),
        good.clone(),
        older,
        good,
    ] {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

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
        (1, 4),
        "one update in force; malformed, half-written, wrong checksum and older refused"
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
