//! The INT8 detectors (`models/plate_detector.int8.onnx` and `models/vehicle_detector.int8.onnx`,
//! made by `models/fetch.sh`): each is pinned in `SHA256SUMS`, loads, and finds the plates or
//! vehicles of the generated road scene where the float detector finds them.
#![allow(clippy::unwrap_used)]

use anpr_types::RgbFrame;
use anpr_vision::integrity::{PinnedFile, verify};
use anpr_vision::{YoloDetector, init_runtime};

use crate::util;

/// The device's default `plate_confidence`.
const PLATE_CONF: f32 = 0.35;
/// The device's default `vehicle_confidence`.
const VEHICLE_CONF: f32 = 0.35;
/// The device's default `vehicle_class_confidence`.
const TYPE_SURE: f32 = 0.5;
/// Frames of the demo scene drawn afresh here (rendered, not decoded from the encoded clip
/// that calibrated the model), spread over its vehicles.
const FRAMES: [u64; 8] = [10, 45, 70, 95, 130, 165, 200, 255];

fn scene_frame(dir: &std::path::Path, index: u64) -> RgbFrame {
    let path = dir.join(format!("{index}.png"));
    anpr_scene::clip::save_frame_png(index, &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    RgbFrame {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
    }
}

/// The INT8 build `int8` of a detector (`float`) is pinned by `SHA256SUMS` under `pin_name`,
/// loads, and finds every box the float model finds at `conf` in the scene frames (IoU >= 0.5,
/// of the same class where the float model is sure enough of it to report it), while nothing it is sure of lies away from the float model's boxes.
/// Skipped, saying so, when `models/fetch.sh` has not made the INT8 file.
fn int8_finds_what_float_finds(
    float: &str,
    int8: &str,
    what: &'static str,
    pin_name: &str,
    conf: f32,
) {
    let dir = util::models_dir();
    let int8 = dir.join(int8);
    if !int8.is_file() {
        // models/fetch.sh always makes it; a checkout set up before it did has none.
        eprintln!("skipped: {} is absent; run models/fetch.sh", int8.display());
        return;
    }
    // Pinned by SHA256SUMS like the other models, so the device accepts it.
    verify(
        &dir,
        &[PinnedFile {
            name: pin_name.into(),
            path: int8.clone(),
            pin: None,
        }],
    )
    .unwrap();
    init_runtime(&dir.join("libonnxruntime.so")).unwrap();
    let mut float = YoloDetector::load(&dir.join(float), what, 1).unwrap();
    let mut quant = YoloDetector::load(&int8, what, 1).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (mut float_boxes, mut agreed) = (0, 0);
    for index in FRAMES {
        let frame = scene_frame(tmp.path(), index);
        let f = float.detect(&frame, conf).unwrap();
        let q = quant.detect(&frame, conf * 0.5).unwrap();
        float_boxes += f.len();
        for d in &f {
            let best = q
                .iter()
                // A type is reported only from `vehicle_class_confidence` (0.5): below it the
                // float model's class is not a type the device would report.
                .filter(|e| e.class == d.class || d.score < TYPE_SURE)
                .map(|e| d.bbox.iou(&e.bbox))
                .fold(0.0f32, f32::max);
            if best >= 0.5 {
                agreed += 1;
            } else {
                eprintln!("frame {index}: float box {d:?} not found by int8 ({q:?})");
            }
        }
        // Nothing the float model rejects outright is a sure box for the int8 one.
        let loose = float.detect(&frame, conf * 0.5).unwrap();
        for e in &quant.detect(&frame, conf).unwrap() {
            assert!(
                loose.iter().any(|d| d.bbox.iou(&e.bbox) >= 0.5),
                "frame {index}: int8 {what} box {e:?} is not near any float box ({f:?})"
            );
        }
    }
    eprintln!("int8 {what}: found {agreed} of the float model's {float_boxes} boxes");
    assert!(
        float_boxes >= FRAMES.len(),
        "the float {what} found only {float_boxes} boxes in {} scene frames",
        FRAMES.len()
    );
    assert_eq!(
        agreed, float_boxes,
        "the int8 {what} found {agreed} of the float model's {float_boxes} boxes"
    );
}

#[test]
fn the_int8_plate_detector_is_pinned_loads_and_finds_the_plates_the_float_one_finds() {
    int8_finds_what_float_finds(
        "plate_detector.onnx",
        "plate_detector.int8.onnx",
        "plate detector",
        "plate_detector",
        PLATE_CONF,
    );
}

#[test]
fn the_int8_vehicle_detector_is_pinned_loads_and_finds_the_vehicles_the_float_one_finds() {
    int8_finds_what_float_finds(
        "vehicle_detector.onnx",
        "vehicle_detector.int8.onnx",
        "vehicle detector",
        "vehicle_detector",
        VEHICLE_CONF,
    );
}
