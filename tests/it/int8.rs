//! The INT8 plate detector (`models/plate_detector.int8.onnx`, made by `models/fetch.sh`): it
//! is pinned in `SHA256SUMS`, loads, and finds the plates of the generated road scene where the
//! float detector finds them.
#![allow(clippy::unwrap_used)]

use anpr_types::RgbFrame;
use anpr_vision::integrity::{PinnedFile, verify};
use anpr_vision::{YoloDetector, init_runtime};

use crate::util;

const INT8: &str = "plate_detector.int8.onnx";
/// The device's default `plate_confidence`.
const PLATE_CONF: f32 = 0.35;
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

#[test]
fn the_int8_plate_detector_is_pinned_loads_and_finds_the_plates_the_float_one_finds() {
    let dir = util::models_dir();
    let int8 = dir.join(INT8);
    if !int8.is_file() {
        // models/fetch.sh always makes it; a checkout set up before it did has none.
        eprintln!("skipped: {} is absent; run models/fetch.sh", int8.display());
        return;
    }
    // Pinned by SHA256SUMS like the other models, so the device accepts it.
    verify(
        &dir,
        &[PinnedFile {
            name: "plate_detector".into(),
            path: int8.clone(),
            pin: None,
        }],
    )
    .unwrap();
    init_runtime(&dir.join("libonnxruntime.so")).unwrap();
    let mut float =
        YoloDetector::load(&dir.join("plate_detector.onnx"), "plate detector", 1).unwrap();
    let mut quant = YoloDetector::load(&int8, "plate detector", 1).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (mut float_boxes, mut agreed) = (0, 0);
    for index in FRAMES {
        let frame = scene_frame(tmp.path(), index);
        let f = float.detect(&frame, PLATE_CONF).unwrap();
        let q = quant.detect(&frame, PLATE_CONF * 0.5).unwrap();
        float_boxes += f.len();
        for d in &f {
            let best = q.iter().map(|e| d.bbox.iou(&e.bbox)).fold(0.0f32, f32::max);
            if best >= 0.5 {
                agreed += 1;
            } else {
                eprintln!("frame {index}: float box {d:?} not found by int8 ({q:?})");
            }
        }
        // Nothing the float model rejects outright is a sure plate for the int8 one.
        let sure: Vec<_> = quant.detect(&frame, PLATE_CONF).unwrap();
        for e in &sure {
            assert!(
                f.iter().any(|d| d.bbox.iou(&e.bbox) >= 0.5)
                    || float
                        .detect(&frame, PLATE_CONF * 0.5)
                        .unwrap()
                        .iter()
                        .any(|d| d.bbox.iou(&e.bbox) >= 0.5),
                "frame {index}: int8 box {e:?} is not near any float box ({f:?})"
            );
        }
    }
    eprintln!("int8 found {agreed} of the float detector's {float_boxes} plates");
    assert!(
        float_boxes >= FRAMES.len(),
        "the float detector found only {float_boxes} plates in {} scene frames",
        FRAMES.len()
    );
    assert_eq!(
        agreed, float_boxes,
        "the int8 detector found {agreed} of the float detector's {float_boxes} plates"
    );
}
