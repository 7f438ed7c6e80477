//! Bad input gets a clear error and no crash.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use anpr_scene::clip::{manifest, manifest_with, save_frame_png, write_clip_with};
use anpr_store::Store;
use anpr_testkit::{BrokerOptions, BrokerPki, Mosquitto, free_port};
use anpr_vision::{Recognizer, VisionError, init_runtime};

use crate::util;

#[test]
fn a_missing_model_file_is_an_error_naming_the_file_and_the_fix() {
    init_runtime(&util::models_dir().join("libonnxruntime.so")).unwrap();
    let err = Recognizer::new(util::recognizer_config("/nonexistent/plates.onnx".into()))
        .err()
        .unwrap();
    assert!(matches!(err, VisionError::ModelMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/plates.onnx") && msg.contains("models/fetch.sh"),
        "{msg}"
    );
}

#[test]
fn a_corrupt_model_file_is_an_error_not_a_crash() {
    init_runtime(&util::models_dir().join("libonnxruntime.so")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("plates.onnx");
    std::fs::write(&bad, b"this is not an ONNX model").unwrap();
    let err = Recognizer::new(util::recognizer_config(bad.clone()))
        .err()
        .unwrap();
    assert!(matches!(err, VisionError::ModelLoad { .. }), "{err}");
    assert!(err.to_string().contains(bad.to_str().unwrap()));
}

#[test]
fn a_model_with_the_wrong_input_shape_is_rejected_with_what_was_expected() {
    init_runtime(&util::models_dir().join("libonnxruntime.so")).unwrap();
    // The plate reader is a valid ONNX model, but not a square-input detector.
    let err = Recognizer::new(util::recognizer_config(
        util::models_dir().join("plate_reader.onnx"),
    ))
    .err()
    .unwrap();
    assert!(matches!(err, VisionError::ModelShape { .. }), "{err}");
    assert!(err.to_string().contains("expected"), "{err}");
}

/// Another model where the type classifier belongs (the plate detector, a valid ONNX model
/// with an image input) is refused at load, naming the classifier, what it expects and the fix;
/// a missing classifier only leaves the detector's types.
#[test]
fn a_wrong_or_missing_type_classifier_is_refused_or_left_out_by_name() {
    init_runtime(&util::models_dir().join("libonnxruntime.so")).unwrap();
    let models = util::models_dir();
    let mut cfg = util::recognizer_config(models.join("plate_detector.onnx"));
    cfg.vehicle_detector = Some(models.join("vehicle_detector.onnx"));
    cfg.vehicle_types = Some(models.join("plate_detector.onnx"));
    let err = Recognizer::new(cfg.clone()).err().unwrap();
    assert!(matches!(err, VisionError::ModelShape { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("vehicle type classifier")
            && msg.contains("[N, 3, 224, 224]")
            && msg.contains("models/fetch.sh"),
        "{msg}"
    );
    cfg.vehicle_types = Some("/nonexistent/vehicle_types.onnx".into());
    let rec = Recognizer::new(cfg.clone()).unwrap();
    assert!(rec.has_vehicle_detector() && !rec.has_type_classifier());
    assert!(
        !rec.vehicle_classes()
            .contains(&anpr_types::VehicleClass::Van)
    );
    cfg.vehicle_types = Some(models.join("vehicle_types.onnx"));
    let rec = Recognizer::new(cfg).unwrap();
    assert!(rec.has_type_classifier());
    assert!(
        rec.vehicle_classes()
            .contains(&anpr_types::VehicleClass::Van)
    );
}

fn anpr(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_config_with_an_unknown_key_or_a_wrong_type_exits_with_a_message_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = util::write_config(dir.path(), "INV-1", "clip.mp4", "mqtt://127.0.0.1:1");
    let text = std::fs::read_to_string(&good).unwrap();
    for (bad, key) in [
        (text.replace("site = ", "sight = "), "sight"),
        (
            text.replace("ack_timeout_s = 3.0", "ack_timeout_s = \"soon\""),
            "invalid type",
        ),
    ] {
        std::fs::write(&good, bad).unwrap();
        let out = anpr(&["run", "--config", good.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("device.toml") && err.contains(key), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A vehicle-type ban naming only types the vehicle models never report (`van`, without the
/// type classifier: COCO has no such class) could never raise a violation: the device does not
/// start, and says which rule, which types it does report and what to do. With the classifier
/// installed (as `models/fetch.sh` does) vans are reported, and the same rule is accepted.
#[test]
fn a_vehicle_type_ban_on_types_never_reported_stops_the_start_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(dir.path(), "INV-1", "clip.mp4", "mqtt://127.0.0.1:1");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[[rule]]\nname = \"no-vans\"\nkind = \"vehicle-type-ban\"\nclasses = [\"van\"]\n",
    );
    std::fs::write(&config, &text).unwrap();
    let without = dir.path().join("without-classifier.toml");
    assert!(text.contains("[models]\n"), "{text}");
    std::fs::write(
        &without,
        text.replace("[models]\n", "[models]\nvehicle_types = \"absent.onnx\"\n"),
    )
    .unwrap();
    let out = anpr(&["run", "--config", without.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("rule `no-vans`") && err.contains("it reports car, motorcycle, bus, truck"),
        "{err}"
    );
    assert!(err.contains("models/fetch.sh"), "the fix is named: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // With the classifier the rule passes the check; the run ends on the missing clip instead.
    let (code, stdout, err) = run_without_draining(&config);
    assert_eq!(code, Some(1), "{stdout}\n{err}");
    assert!(!err.contains("rule `no-vans`"), "{err}");
    assert!(stdout.contains("does not open"), "{stdout}");
}

/// An INT8 detector asked for by `*_variant = "int8"` whose file is missing stops the start with
/// an error naming the file and `models/fetch.sh`: the device does not fall back to the float
/// model, nor (for vehicles) run without a vehicle detector, unasked.
#[test]
fn a_missing_int8_detector_asked_for_stops_the_start_naming_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = util::write_config(dir.path(), "INV-1", "clip.mp4", "mqtt://127.0.0.1:1");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("[models]\n"), "{text}");
    for (keys, file) in [
        (
            "plate_detector_variant = \"int8\"\nplate_detector_int8 = \"absent-plates.int8.onnx\"\n",
            "absent-plates.int8.onnx",
        ),
        (
            "vehicle_detector_variant = \"int8\"\nvehicle_detector_int8 = \"absent-vehicles.int8.onnx\"\n",
            "absent-vehicles.int8.onnx",
        ),
    ] {
        std::fs::write(
            &config,
            text.replace("[models]\n", &format!("[models]\n{keys}")),
        )
        .unwrap();
        let (code, stdout, err) = run_without_draining(&config);
        assert_ne!(code, Some(0), "{stdout}\n{err}");
        assert!(
            err.contains(file) && err.contains("models/fetch.sh"),
            "the file and the fix are named: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !stdout.contains("does not open"),
            "it stopped before the camera: {stdout}"
        );
    }
}

/// `anpr run --config CONFIG --drain-timeout 0`: its exit code, stdout and stderr.
fn run_without_draining(config: &std::path::Path) -> (Option<i32>, String, String) {
    let out = anpr(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--drain-timeout",
        "0",
    ]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A file that does not open ends the run; a live camera that does not open is a fault the
/// device keeps trying to clear (`rtsp::an_rtsp_camera_that_does_not_open_...`).
#[test]
fn a_camera_that_does_not_open_is_reported_by_name_without_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let uri = "/nonexistent/road.mp4".to_string();
        let config = util::write_config(dir.path(), "INV-1", &uri, "mqtt://127.0.0.1:1");
        let (code, stdout, stderr) = run_without_draining(&config);
        assert_eq!(code, Some(1), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("camera cam1")
                && stdout.contains(&uri)
                && stdout.contains("does not open"),
            "{stdout}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_unreachable_the_device_keeps_recording_and_delivers_the_queue_later() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let manifest = write_clip_with(&manifest_with(2), &clip).unwrap();
    let port = free_port().unwrap(); // nothing listens here
    // The broker that comes up later is one of this PKI: the device has its identity already.
    let pki = BrokerPki::temporary().unwrap();
    let config = util::write_config(
        dir.path(),
        "KZ-TEST-DOWN",
        clip.to_str().unwrap(),
        &util::Via::new(format!("127.0.0.1:{port}"), &pki),
    );

    let offline = util::run_device(&config, Duration::from_secs(1)).await;
    assert_eq!(
        offline.events,
        manifest.vehicles.len() as u64,
        "recording goes on without a link"
    );
    assert_eq!(offline.delivered, 0);
    assert_eq!(offline.pending, manifest.vehicles.len() as u64);
    let queued = Store::open(&dir.path().join("queue.sqlite"))
        .unwrap()
        .pending(0, 100)
        .unwrap();

    // The link comes back: a broker and the receiver on that port. A clip with no plates keeps
    // the second run short; the queue is replayed with the original capture times.
    util::switch_to_blank_clip(&config, dir.path(), &clip);
    let broker = Mosquitto::start_with_pki(BrokerOptions::default(), pki.clone()).unwrap();
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&format!(":{port}"), &format!(":{}", broker.port())),
    )
    .unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    let online = util::run_device(&config, Duration::from_secs(30)).await;
    central.stop().await;
    assert_eq!(online.pending, 0);
    let got = anpr_central::Receiver::open(&dir.path().join("central.sqlite"))
        .unwrap()
        .events_of("KZ-TEST-DOWN")
        .unwrap();
    assert_eq!(got.len(), queued.len());
    for (d, q) in got.iter().zip(&queued) {
        assert_eq!(d.event.event_id, q.event_id);
        assert_eq!(
            d.event.captured_at, q.captured_at,
            "the original capture time travels with the replay"
        );
        assert!(d.delayed, "a replayed event says it was delayed");
    }
}

#[test]
fn detect_reports_each_bad_image_by_name_and_goes_on_with_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    // A good frame of the demo clip (it shows a plate), then bad files around it.
    let v = &manifest().vehicles[0];
    save_frame_png(
        u64::midpoint(v.first_frame, v.last_frame),
        &images.join("b_good.png"),
    )
    .unwrap();
    let good = std::fs::read(images.join("b_good.png")).unwrap();
    std::fs::write(images.join("a_truncated.png"), &good[..good.len() / 3]).unwrap();
    std::fs::write(images.join("c_empty.jpg"), b"").unwrap();
    std::fs::write(images.join("d_not_an_image.jpg"), b"plain text, not a JPEG").unwrap();
    image::RgbImage::new(1, 1)
        .save(images.join("e_one_pixel.png"))
        .unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let config = util::write_config(
        dir.path(),
        "KZ-TEST-DETECT",
        "unused.mp4",
        "mqtt://127.0.0.1:1",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(["detect", "--config", config.to_str().unwrap()])
        .arg(&images)
        .arg(&empty)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "some images failed: {stderr}");
    assert!(
        stderr.contains(&format!("folder {} holds no images", empty.display())),
        "{stderr}"
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<String> = lines
        .iter()
        .map(|l| {
            std::path::Path::new(l["image"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "a_truncated.png",
            "b_good.png",
            "c_empty.jpg",
            "d_not_an_image.jpg",
            "e_one_pixel.png"
        ],
        "one line per image, in order"
    );
    for (name, line) in names.iter().zip(&lines) {
        if name == "b_good.png" {
            assert!(line.get("error").is_none(), "{line}");
            assert_eq!(line["width"], 1280);
            assert!(!line["plates"].as_array().unwrap().is_empty(), "{line}");
        } else {
            let err = line["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {line}"));
            let expected = if name == "e_one_pixel.png" {
                "frame of 1x1 cannot be processed"
            } else {
                "cannot decode image"
            };
            assert!(err.contains(expected), "{name}: {err}");
        }
    }
}

#[test]
fn bench_measures_a_video_and_names_what_is_wrong_with_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    write_clip_with(&manifest_with(1), &clip).unwrap();
    let config = util::write_config(
        dir.path(),
        "KZ-TEST-BENCH",
        "unused.mp4",
        "mqtt://127.0.0.1:1",
    );
    let json = dir.path().join("bench.json");
    let bench = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_anpr"))
            .args(["bench", "--config", config.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = bench(&[
        "--frames".as_ref(),
        "6".as_ref(),
        "--json".as_ref(),
        json.as_os_str(),
        clip.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["frames"], 6);
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert!(report["fps"].as_f64().unwrap() > 0.0);
    assert!(report["peak_rss_mb"].as_f64().unwrap() > 10.0);
    assert!(
        report["total_ms"]["p99"].as_f64().unwrap() >= report["total_ms"]["p50"].as_f64().unwrap()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("plate detect"));

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = bench(&[empty.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no images"));
    let out = bench(&[dir.path().join("missing.mp4").as_os_str()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("neither a video file nor a folder"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_does_not_open_is_reported_as_a_fault_on_the_health_channel() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let db = dir.path().join("central.sqlite");
    let central = util::Central::start(&broker, db.clone());
    let config = util::write_config(
        dir.path(),
        "KZ-TEST-CAMFAULT",
        "/nonexistent/road.mp4",
        &broker,
    );
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--drain-timeout",
            "5",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(1), "a camera fault is a failed run");
    let receiver = anpr_central::Receiver::open(&db).unwrap();
    let reported = || {
        receiver
            .faults("KZ-TEST-CAMFAULT")
            .unwrap()
            .iter()
            .any(|h| {
                h.faults
                    .iter()
                    .any(|f| f.code == "camera" && f.message.contains("/nonexistent/road.mp4"))
            })
    };
    assert!(
        util::wait_for(Duration::from_secs(10), reported).await,
        "the receiver got a health message with the camera fault"
    );
    central.stop().await;
}
