//! Snapshot tests on golden tensors: raw outputs of the real plate detector, plate reader and
//! vehicle type classifier for a drawn plate, stored in `tests/golden/`, and what the Rust
//! post-processing makes of them.
//!
//! Two kinds of check:
//! - the stored tensors decode to the stored boxes and text (box decoding, NMS and CTC decoding
//!   pinned without running a model);
//! - the models, fed by the Rust pre-processing, still give the stored tensors (letterbox,
//!   resampling, crop views and normalisation pinned end to end).
//!
//! After a deliberate change to the models or the pre-processing, regenerate with
//! `ANPR_UPDATE_GOLDEN=1 cargo test -p anpr --test it golden` and review the diff.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::PathBuf;

use anpr_types::{BBox, RgbFrame};
use anpr_vision::{Letterbox, PlateReader, YoloDetector, ctc_greedy_decode, init_runtime};
use ndarray::{Array2, Array3, ArrayD, Axis, Ix3};

use crate::util;

/// The drawn plate the tensors come from, and where it sits in a 640x360 frame.
const TEXT: &str = "123ABC02";
const PLATE_WIDTH: u32 = 200;
const AT: (u32, u32) = (220, 150);
/// Detector anchors stored: those scoring at least this.
const KEEP_SCORE: f32 = 0.001;
/// Detection threshold the stored boxes were decoded with.
const MIN_SCORE: f32 = 0.05;
/// Classes stored per reader step (the rest are taken as 0).
const TOP: usize = 3;

fn golden(name: &str) -> PathBuf {
    util::repo().join("tests/golden").join(name)
}

/// With `ANPR_UPDATE_GOLDEN` set, writes the golden files from the real models once, before
/// any test reads them.
fn update_if_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("ANPR_UPDATE_GOLDEN").is_some() {
        ONCE.call_once(|| {
            let (mut detector, mut reader) = models();
            write_golden(&mut detector, &mut reader);
        });
    }
}

/// The drawn plate in a grey frame, and the plate's box.
fn scene() -> (RgbFrame, BBox) {
    let (plate, [px, py, pw, ph]) = anpr_scene::one_row_plate(TEXT, PLATE_WIDTH).unwrap();
    let mut img = image::RgbImage::from_pixel(640, 360, image::Rgb([90, 95, 100]));
    image::imageops::overlay(&mut img, &plate, i64::from(AT.0), i64::from(AT.1));
    let bbox = BBox {
        x: (AT.0 + px) as f32,
        y: (AT.1 + py) as f32,
        w: pw as f32,
        h: ph as f32,
    };
    let frame = RgbFrame {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
    };
    (frame, bbox)
}

/// Lines of a golden file that start with `tag`, split into the words after it.
fn tagged(text: &str, tag: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter_map(|l| l.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')))
        .map(|r| r.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn floats(words: &[String]) -> Vec<f32> {
    words.iter().map(|w| w.parse().unwrap()).collect()
}

struct DetectorGolden {
    letterbox: Letterbox,
    /// Dense `[1, rows, anchors]` output, zero where nothing was stored.
    output: Array3<f32>,
    stored: Vec<usize>,
    /// Expected detections: x, y, w, h, score, class.
    expect: Vec<Vec<f32>>,
}

fn read_detector_golden() -> DetectorGolden {
    update_if_asked();
    let text = std::fs::read_to_string(golden("plate_detector.txt")).unwrap();
    let lb = floats(&tagged(&text, "letterbox")[0]);
    let shape = floats(&tagged(&text, "shape")[0]);
    let (rows, anchors) = (shape[1] as usize, shape[2] as usize);
    let mut output = Array3::<f32>::zeros((1, rows, anchors));
    let mut stored = Vec::new();
    for words in tagged(&text, "anchor") {
        let i: usize = words[0].parse().unwrap();
        for (r, v) in floats(&words[1..]).into_iter().enumerate() {
            output[[0, r, i]] = v;
        }
        stored.push(i);
    }
    DetectorGolden {
        letterbox: Letterbox {
            scale: lb[0],
            pad_x: lb[1],
            pad_y: lb[2],
        },
        output,
        stored,
        expect: tagged(&text, "expect").iter().map(|w| floats(w)).collect(),
    }
}

struct ReaderGolden {
    /// Dense `[steps, classes]` probabilities, zero outside the stored top classes.
    probs: Array2<f32>,
    top: Vec<Vec<(usize, f32)>>,
    text: String,
    confidences: Vec<f32>,
}

fn read_reader_golden() -> ReaderGolden {
    update_if_asked();
    let text = std::fs::read_to_string(golden("plate_reader.txt")).unwrap();
    let shape = floats(&tagged(&text, "shape")[0]);
    let (steps, classes) = (shape[1] as usize, shape[2] as usize);
    let mut probs = Array2::<f32>::zeros((steps, classes));
    let mut top = Vec::new();
    for words in tagged(&text, "step") {
        let t: usize = words[0].parse().unwrap();
        let pairs: Vec<(usize, f32)> = words[1..]
            .iter()
            .map(|w| {
                let (c, p) = w.split_once(':').unwrap();
                (c.parse().unwrap(), p.parse().unwrap())
            })
            .collect();
        for &(c, p) in &pairs {
            probs[[t, c]] = p;
        }
        top.push(pairs);
    }
    ReaderGolden {
        probs,
        top,
        text: tagged(&text, "text")[0][0].clone(),
        confidences: floats(&tagged(&text, "confidences")[0]),
    }
}

/// Writes the golden files from the real models (only with `ANPR_UPDATE_GOLDEN` set).
fn write_golden(detector: &mut YoloDetector, reader: &mut PlateReader) {
    let (frame, bbox) = scene();
    let (out, lb) = detector.raw_output(&frame).unwrap();
    let out3 = out.view().into_dimensionality::<Ix3>().unwrap();
    let mut f = String::new();
    writeln!(
        f,
        "# Raw output of models/plate_detector.onnx for the drawn plate {TEXT} ({PLATE_WIDTH} px wide) at {AT:?} in a 640x360 grey frame,\n# anchors scoring at least {KEEP_SCORE}; `expect`: x y w h score class decoded at {MIN_SCORE}.\n# Regenerate: ANPR_UPDATE_GOLDEN=1 cargo test -p anpr --test it golden"
    )
    .unwrap();
    writeln!(f, "letterbox {} {} {}", lb.scale, lb.pad_x, lb.pad_y).unwrap();
    let shape = out3.shape();
    writeln!(f, "shape {} {} {}", shape[0], shape[1], shape[2]).unwrap();
    for (i, col) in out3.index_axis(Axis(0), 0).axis_iter(Axis(1)).enumerate() {
        let score = col.iter().skip(4).copied().fold(f32::MIN, f32::max);
        if score >= KEEP_SCORE {
            let values: Vec<String> = col.iter().map(f32::to_string).collect();
            writeln!(f, "anchor {i} {}", values.join(" ")).unwrap();
        }
    }
    for d in anpr_vision::yolo::decode(&out.view(), &lb, frame.width, frame.height, MIN_SCORE) {
        let b = d.bbox;
        writeln!(
            f,
            "expect {} {} {} {} {} {}",
            b.x, b.y, b.w, b.h, d.score, d.class
        )
        .unwrap();
    }
    std::fs::write(golden("plate_detector.txt"), f).unwrap();

    let view = anpr_vision::plate_reader::VIEWS[0];
    let out = reader.raw_output(&frame, &bbox, view).unwrap();
    let out3 = out.view().into_dimensionality::<Ix3>().unwrap();
    let probs = out3.index_axis(Axis(0), 0);
    let mut f = String::new();
    writeln!(
        f,
        "# Raw output of models/plate_reader.onnx for the same plate's box read as the first view,\n# the {TOP} likeliest classes per step; `text` and `confidences`: its greedy CTC decoding.\n# Regenerate: ANPR_UPDATE_GOLDEN=1 cargo test -p anpr --test it golden"
    )
    .unwrap();
    let shape = out3.shape();
    writeln!(f, "shape {} {} {}", shape[0], shape[1], shape[2]).unwrap();
    for (t, step) in probs.rows().into_iter().enumerate() {
        let mut classes: Vec<(usize, f32)> = step.iter().copied().enumerate().collect();
        classes.sort_by(|a, b| b.1.total_cmp(&a.1));
        let words: Vec<String> = classes[..TOP]
            .iter()
            .map(|(c, p)| format!("{c}:{p}"))
            .collect();
        writeln!(f, "step {t} {}", words.join(" ")).unwrap();
    }
    let decoded = ctc_greedy_decode(&probs, reader.dictionary());
    writeln!(f, "text {}", decoded.text).unwrap();
    let confidences: Vec<String> = decoded
        .char_confidences
        .iter()
        .map(f32::to_string)
        .collect();
    writeln!(f, "confidences {}", confidences.join(" ")).unwrap();
    std::fs::write(golden("plate_reader.txt"), f).unwrap();
}

fn models() -> (YoloDetector, PlateReader) {
    let dir = util::models_dir();
    init_runtime(&dir.join("libonnxruntime.so")).unwrap();
    let detector =
        YoloDetector::load(&dir.join("plate_detector.onnx"), "plate detector", 1).unwrap();
    let reader = PlateReader::load(&dir.join("plate_reader.onnx"), 1).unwrap();
    (detector, reader)
}

#[test]
fn the_golden_detector_output_decodes_to_the_stored_plate_box() {
    let g = read_detector_golden();
    let dyn_out: ArrayD<f32> = g.output.into_dyn();
    let found = anpr_vision::yolo::decode(&dyn_out.view(), &g.letterbox, 640, 360, MIN_SCORE);
    assert_eq!(found.len(), g.expect.len(), "{found:?}");
    for (d, e) in found.iter().zip(&g.expect) {
        let got = [
            d.bbox.x,
            d.bbox.y,
            d.bbox.w,
            d.bbox.h,
            d.score,
            d.class as f32,
        ];
        for (a, b) in got.iter().zip(e) {
            assert!((a - b).abs() < 1e-3, "decoded {got:?}, stored {e:?}");
        }
    }
    // The snapshot is of a real plate: one box, over the drawn plate.
    let (_, plate) = scene();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].bbox.iou(&plate) > 0.7, "{found:?} vs {plate:?}");
}

#[test]
fn the_golden_reader_output_decodes_to_the_stored_text_and_confidences() {
    let dict = {
        let (_, reader) = models();
        reader.dictionary().to_vec()
    };
    let g = read_reader_golden();
    let decoded = ctc_greedy_decode(&g.probs.view(), &dict);
    assert_eq!(decoded.text, g.text);
    assert_eq!(decoded.text, TEXT, "the snapshot is of a plate read right");
    assert_eq!(decoded.char_confidences.len(), g.confidences.len());
    for (a, b) in decoded.char_confidences.iter().zip(&g.confidences) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn the_models_fed_by_the_rust_pre_processing_still_give_the_golden_tensors() {
    let (mut detector, mut reader) = models();
    let (frame, bbox) = scene();

    let g = read_detector_golden();
    let (out, lb) = detector.raw_output(&frame).unwrap();
    assert_eq!(lb, g.letterbox);
    let out = out.into_dimensionality::<Ix3>().unwrap();
    assert_eq!(out.shape(), g.output.shape());
    for &i in &g.stored {
        for r in 0..out.shape()[1] {
            let (a, b) = (out[[0, r, i]], g.output[[0, r, i]]);
            // Box values are input pixels (0-640), scores 0-1.
            let tolerance = if r < 4 { 0.05 } else { 2e-3 };
            assert!(
                (a - b).abs() <= tolerance,
                "anchor {i} row {r}: {a} now, {b} stored"
            );
        }
    }
    let best_other = (0..out.shape()[2])
        .filter(|i| !g.stored.contains(i))
        .map(|i| out[[0, 4, i]])
        .fold(0.0f32, f32::max);
    assert!(
        best_other < KEEP_SCORE * 2.0,
        "an unstored anchor scores {best_other}"
    );

    let g = read_reader_golden();
    let view = anpr_vision::plate_reader::VIEWS[0];
    let out = reader.raw_output(&frame, &bbox, view).unwrap();
    let out = out.into_dimensionality::<Ix3>().unwrap();
    assert_eq!(out.shape()[1], g.probs.shape()[0], "steps");
    assert_eq!(out.shape()[2], g.probs.shape()[1], "classes");
    for (t, top) in g.top.iter().enumerate() {
        let step = out.index_axis(Axis(0), 0);
        let step = step.row(t);
        let best = step
            .iter()
            .copied()
            .enumerate()
            .fold((0, f32::MIN), |a, (c, p)| if p > a.1 { (c, p) } else { a });
        assert_eq!(
            best.0, top[0].0,
            "step {t}: class {} now, {} stored",
            best.0, top[0].0
        );
        for &(c, p) in top {
            assert!(
                (step[c] - p).abs() <= 2e-3,
                "step {t} class {c}: {} now, {p} stored",
                step[c]
            );
        }
    }
}

/// The type classifier's window in the drawn frame: the square around the plate's box.
fn classifier_window() -> (RgbFrame, (usize, usize, usize, usize)) {
    let (frame, plate) = scene();
    let window = anpr_vision::vehicle_types::square_window(&plate, frame.width, frame.height);
    (frame, window)
}

/// The type classifier's five likeliest ImageNet classes for [`classifier_window`], stored in
/// `tests/golden/vehicle_types.txt` (`top CLASS PROBABILITY` lines), written again with
/// `ANPR_UPDATE_GOLDEN`.
#[test]
fn the_type_classifier_fed_by_the_rust_pre_processing_still_gives_the_golden_probabilities() {
    let dir = util::models_dir();
    init_runtime(&dir.join("libonnxruntime.so")).unwrap();
    let mut classifier =
        anpr_vision::TypeClassifier::load(&dir.join("vehicle_types.onnx"), 1).unwrap();
    let (frame, window) = classifier_window();
    let probs = classifier.probabilities(&frame, &[window]).unwrap();
    assert_eq!(probs.len(), 1);
    let probs = &probs[0];
    assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-3, "a softmax");
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let path = golden("vehicle_types.txt");
    if std::env::var_os("ANPR_UPDATE_GOLDEN").is_some() {
        let mut f = format!(
            "# The type classifier on the square around the drawn plate {TEXT} (tests/it/golden.rs).\nwindow {} {} {} {}\n",
            window.0, window.1, window.2, window.3
        );
        for &c in &order[..5] {
            writeln!(f, "top {c} {}", probs[c]).unwrap();
        }
        std::fs::write(&path, f).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let stored_window: Vec<usize> = tagged(&text, "window")[0]
        .iter()
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(
        stored_window,
        [window.0, window.1, window.2, window.3],
        "the window is where it was"
    );
    let top: Vec<(usize, f32)> = tagged(&text, "top")
        .iter()
        .map(|w| (w[0].parse().unwrap(), w[1].parse().unwrap()))
        .collect();
    assert_eq!(top.len(), 5);
    assert_eq!(order[0], top[0].0, "the likeliest class: {} now", order[0]);
    for &(c, p) in &top {
        assert!(
            (probs[c] - p).abs() <= 2e-3,
            "class {c}: {} now, {p} stored",
            probs[c]
        );
    }
}
