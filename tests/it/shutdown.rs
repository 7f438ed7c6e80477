//! Stopping and supervision: SIGTERM (what systemd and `docker stop` send) records the vehicles
//! in view before the device exits, delivered once it can reach the central side again; a
//! recognition worker that fails is raised as a fault and restarted while the other camera goes
//! on.

use std::time::Duration;

use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_store::Store;
use anpr_testkit::Mosquitto;

use crate::util;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_vehicle_is_in_view_records_its_passage_which_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    // Three vehicles in view one after the other, overlapping: 0-74, 50-124, 100-174.
    write_clip_with(&manifest_with(3), &clip).unwrap();
    let inv = "KZ-TEST-SIGTERM";
    // No broker at first: nothing can be delivered, everything must be in the queue.
    let config = util::write_config(
        dir.path(),
        inv,
        clip.to_str().unwrap(),
        "mqtt://127.0.0.1:1",
    );
    let queue = dir.path().join("queue.sqlite");
    let mut device = std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The first vehicle has left the view (its passage is recorded): the second is in view.
    assert!(
        util::wait_for(Duration::from_mins(2), || Store::open(&queue)
            .and_then(|s| s.stats())
            .is_ok_and(|s| s.last_seq >= 1))
        .await,
        "the first passage is recorded"
    );
    let at_signal = Store::open(&queue).unwrap().stats().unwrap().last_seq;
    let sent = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", device.id())])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = device.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the device stops within 40 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "a clean stop: {status:?}");
    let store = Store::open(&queue).unwrap();
    let stats = store.stats().unwrap();
    let plates: Vec<String> = (1..=stats.last_seq)
        .filter_map(|s| store.get(s).unwrap())
        .map(|e| e.plate.text)
        .collect();
    assert!(
        stats.last_seq > at_signal && plates.contains(&"777KZA02".to_string()),
        "the vehicle in view at the signal was recorded: {plates:?} (had {at_signal} events at the signal)"
    );
    assert_eq!(stats.delivered, 0);

    // After a restart with the link up, everything recorded is delivered.
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(3));
    assert!(
        util::wait_for(Duration::from_secs(30), || store.stats().unwrap().pending
            == 0)
        .await,
        "{:?}",
        store.stats().unwrap()
    );
    let _ = uplink.mode.send(anpr_uplink::Mode::Stop);
    central.stop().await;
    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let got: Vec<String> = receiver
        .events_of(inv)
        .unwrap()
        .into_iter()
        .map(|d| d.event.plate.text)
        .collect();
    assert!(got.contains(&"777KZA02".to_string()), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recognition_worker_that_fails_is_restarted_with_a_fault_and_the_other_camera_keeps_recording()
 {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    // Two vehicles: 0-74 and 50-124.
    write_clip_with(&manifest_with(2), &clip).unwrap();
    let inv = "KZ-TEST-SUPERVISE";
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    let config = util::write_config(dir.path(), inv, clip.to_str().unwrap(), &broker);
    let text = std::fs::read_to_string(&config).unwrap();
    let second = format!(
        "\n[[camera]]\nid = \"cam2\"\nuri = \"{}\"\n",
        clip.display()
    );
    std::fs::write(&config, text + &second).unwrap();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
            .args([
                "run",
                "--config",
                config.to_str().unwrap(),
                "--drain-timeout",
                "20",
            ])
            .env("ANPR_INJECT_RECOGNITION_PANIC", "cam2@30")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    central.stop().await;
    assert!(status.success(), "{status:?}");
    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let events = receiver.events_of(inv).unwrap();
    let plates_of = |cam: &str| -> Vec<(String, u64)> {
        events
            .iter()
            .filter(|d| d.event.camera == cam)
            .map(|d| (d.event.plate.text.clone(), d.event.frame.index))
            .collect()
    };
    let cam1: Vec<String> = plates_of("cam1").into_iter().map(|p| p.0).collect();
    assert_eq!(
        cam1,
        ["123ABC01", "777KZA02"],
        "the other camera recorded throughout"
    );
    let cam2 = plates_of("cam2");
    assert!(
        cam2.iter().any(|(p, frame)| p == "777KZA02" && *frame > 30),
        "the restarted worker recorded the vehicle that came after the failure: {cam2:?}"
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
        faults
            .iter()
            .any(|f| f.starts_with("recognition: camera cam2") && f.contains("injected")),
        "the failure was raised on the health channel: {faults:?}"
    );
}
