//! The whole appliance on a generated clip: GStreamer decoding, ONNX Runtime recognition,
//! the SQLite queue, a real mosquitto broker and the reference central receiver.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_store::Store;
use anpr_testkit::Mosquitto;
use anpr_types::VehicleClass;

use crate::util;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plate_of_the_clip_reaches_the_receiver_with_its_text_class_and_capture_time_and_is_acknowledged()
 {
    let dir = tempfile::tempdir().unwrap();
    let has_vehicle_model = util::models_dir().join("vehicle_detector.onnx").is_file();
    let (manifest, summary) = run_clip(dir.path(), "KZ-TEST-E2E", |text| text).await;
    assert_eq!(
        summary.frames + summary.frames_skipped,
        manifest.frames,
        "every frame of a file is recognised, or skipped while no plate is in view"
    );
    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let got = receiver.events_of("KZ-TEST-E2E").unwrap();
    assert_eq!(
        got.len(),
        manifest.vehicles.len(),
        "one event per vehicle: {got:#?}"
    );
    let frame_ms = 1000 / i64::from(manifest.fps);
    // captured_at = stream start + frame timestamp, so this is the same instant for every event.
    let starts: Vec<_> = got
        .iter()
        .map(|d| {
            d.event.captured_at
                - chrono::Duration::milliseconds(d.event.frame.index as i64 * frame_ms)
        })
        .collect();
    for (d, v) in got.iter().zip(&manifest.vehicles) {
        let e = &d.event;
        assert_eq!(e.plate.text, v.plate);
        assert_eq!(e.device.inventory, "KZ-TEST-E2E");
        assert!(
            (v.first_frame..=v.last_frame).contains(&e.frame.index),
            "event of {} read from frame {} outside its {}..={}",
            v.plate,
            e.frame.index,
            v.first_frame,
            v.last_frame
        );
        let expected_class = if has_vehicle_model {
            v.class.as_str()
        } else {
            VehicleClass::Unknown.as_str()
        };
        assert_eq!(
            e.vehicle.class.as_str(),
            expected_class,
            "vehicle class of {}",
            v.plate
        );
        assert!(d.sent_at >= e.captured_at);
    }
    for s in &starts {
        assert!(
            (*s - starts[0]).num_milliseconds().abs() <= 2,
            "capture times follow the frame timestamps: {starts:?}"
        );
    }
    let seqs: Vec<u64> = got.iter().map(|d| d.event.seq).collect();
    assert_eq!(
        seqs,
        (1..=manifest.vehicles.len() as u64).collect::<Vec<_>>()
    );

    // Each event's two evidence images arrived after it, matching the sha256 it names.
    for d in &got {
        let kinds: Vec<&str> = d.event.evidence.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["overview", "plate"],
            "evidence of {}",
            d.event.plate.text
        );
        for r in &d.event.evidence {
            let bytes = receiver
                .image(d.event.event_id, &r.kind)
                .unwrap()
                .unwrap_or_else(|| panic!("{} image of {} missing", r.kind, d.event.plate.text));
            assert_eq!(anpr_store::sha256_hex(&bytes), r.sha256);
            let img = image::load_from_memory(&bytes).unwrap();
            if r.kind == "overview" {
                assert_eq!(
                    (img.width(), img.height()),
                    (d.event.frame.width, d.event.frame.height)
                );
            } else {
                let [_, _, w, h] = d.event.plate.bbox;
                assert!(img.width() as i32 >= w && img.height() as i32 >= h);
            }
        }
    }
    let report = &receiver.report().unwrap()[0];
    assert_eq!((report.images, report.images_missing), (6, 0));
    let health = report.health.as_ref().expect("the device's health arrived");
    assert_eq!(health.inventory, "KZ-TEST-E2E");
    assert!(
        !health.dropped.any() && health.faults.is_empty(),
        "{health:?}"
    );

    let store = Store::open(&dir.path().join("queue.sqlite")).unwrap();
    assert_eq!(store.pending_evidence_count().unwrap(), 0);
    let stats = store.stats().unwrap();
    assert_eq!(
        stats.pending, 0,
        "every event is acknowledged in the device's queue"
    );
    assert_eq!(stats.delivered, manifest.vehicles.len() as u64);
    assert_eq!(summary.delivered, manifest.vehicles.len() as u64);
}

/// Two frames recognised at a time (`parallel_frames = 2`, every frame recognised): the
/// tracker takes the frames in their order, so each vehicle of the clip is one passage with
/// its plate, in the clip's order, and no frame is lost on the way through the workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_recognised_two_at_a_time_make_the_same_passages_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, summary) = run_clip(dir.path(), "KZ-TEST-PAR", |text| {
        text.replace("uri = \"", "idle_every = 1\ntrack_every = 1\nuri = \"")
            .replace("[models]\n", "[models]\nparallel_frames = 2\n")
    })
    .await;
    assert_eq!(
        (summary.frames, summary.frames_skipped),
        (manifest.frames, 0),
        "every frame recognised once"
    );
    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let got = receiver.events_of("KZ-TEST-PAR").unwrap();
    let plates: Vec<&str> = got.iter().map(|d| d.event.plate.text.as_str()).collect();
    let expected: Vec<&str> = manifest.vehicles.iter().map(|v| v.plate.as_str()).collect();
    assert_eq!(
        plates, expected,
        "one passage per vehicle, in the clip's order"
    );
    for (d, v) in got.iter().zip(&manifest.vehicles) {
        assert!(
            (v.first_frame..=v.last_frame).contains(&d.event.frame.index),
            "event of {} read from frame {} outside its {}..={}",
            v.plate,
            d.event.frame.index,
            v.first_frame,
            v.last_frame
        );
    }
    assert_eq!(summary.delivered, manifest.vehicles.len() as u64);
}

/// Runs device `inventory` in `dir` on a generated clip of three vehicles, with its config
/// changed by `edit`, against a real mosquitto and the reference receiver (its archive
/// `dir/central.sqlite`); returns the clip's manifest and the device's summary, after checking
/// that no camera failed.
async fn run_clip(
    dir: &std::path::Path,
    inventory: &str,
    edit: impl FnOnce(String) -> String,
) -> (anpr_scene::clip::Manifest, anpr_pipeline::Summary) {
    let clip = dir.join("clip.mp4");
    let manifest = write_clip_with(&manifest_with(3), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, dir.join("central.sqlite"));
    let config = util::write_config(dir, inventory, clip.to_str().unwrap(), &broker);
    std::fs::write(&config, edit(std::fs::read_to_string(&config).unwrap())).unwrap();
    let summary = util::run_device(&config, Duration::from_secs(30)).await;
    central.stop().await;
    assert!(
        summary.camera_errors.is_empty(),
        "{:?}",
        summary.camera_errors
    );
    (manifest, summary)
}
