//! Hot steps of recognition, each next to a baseline measured in the same run:
//! - letterbox (1280x720 → 640x640 NCHW f32): ours vs the `image` crate's resize plus a plain
//!   conversion loop;
//! - the whole plate detector call (letterbox, ONNX Runtime, decoding, NMS), so pre-processing
//!   can be read as a share of inference;
//! - CTC decoding of one plate read: greedy, and the format-aware beam search of `kz` mode
//!   (read as a ratio to greedy).
//!
//! `cargo bench -p anpr-vision --bench vision`. The model benches need `models/` (run
//! `models/fetch.sh`); without it they are skipped with a message.

use std::hint::black_box;
use std::path::Path;

use anpr_types::RgbFrame;
use anpr_vision::{
    FormatAutomaton, GrammarMode, SymbolMap, YoloDetector, ctc_format_decode, ctc_greedy_decode,
    init_runtime, letterbox,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array2, Array4};

fn test_frame() -> RgbFrame {
    let (w, h) = (1280u32, 720u32);
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&[(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8]);
        }
    }
    RgbFrame {
        width: w,
        height: h,
        data,
    }
}

/// The straightforward way: resize with the `image` crate, then pad and convert.
fn baseline_letterbox(frame: &RgbFrame, size: usize) -> Array4<f32> {
    let img = image::RgbImage::from_raw(frame.width, frame.height, frame.data.clone())
        .expect("sizes match");
    let scale = (size as f32 / frame.width as f32).min(size as f32 / frame.height as f32);
    let (nw, nh) = (
        (frame.width as f32 * scale) as u32,
        (frame.height as f32 * scale) as u32,
    );
    let resized = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    let (ox, oy) = ((size - nw as usize) / 2, (size - nh as usize) / 2);
    let mut out = Array4::<f32>::from_elem((1, 3, size, size), 114.0 / 255.0);
    for (x, y, p) in resized.enumerate_pixels() {
        for c in 0..3 {
            out[[0, c, oy + y as usize, ox + x as usize]] = f32::from(p[c]) / 255.0;
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let frame = test_frame();
    let mut g = c.benchmark_group("letterbox_1280x720_to_640");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ours", |b| b.iter(|| letterbox(black_box(&frame), 640)));
    g.bench_function("baseline_image_crate", |b| {
        b.iter(|| baseline_letterbox(black_box(&frame), 640));
    });
    g.finish();

    // A dictionary of the real size with the plate characters in it, and 40 steps reading the
    // flag band, then `123AAT01` with a blank between the two A, each step sure of one class
    // and the rest of its mass spread thinly (as the recognizer's softmax does).
    let dict: Vec<String> = ('0'..='9')
        .chain('A'..='Z')
        .chain('a'..='z')
        .map(String::from)
        .chain(
            (62..18708).map(|i| char::from_u32(0x4e00 + i).map_or_else(String::new, String::from)),
        )
        .collect();
    let class = |c: char| {
        dict.iter()
            .position(|s| *s == c.to_string())
            .map_or(0, |i| i + 1)
    };
    let steps = "_KZ__1_2_3_A_A_T__0_1___________________";
    let mut probs = Array2::<f32>::from_elem((40, 18710), 0.05 / 18710.0);
    for (t, c) in steps.chars().enumerate() {
        probs[[t, if c == '_' { 0 } else { class(c) }]] = 0.95;
    }
    let map = SymbolMap::new(&dict);
    let kz = FormatAutomaton::for_mode(GrammarMode::Kz).expect("kz has formats");
    assert_eq!(ctc_format_decode(&probs.view(), &map, &kz).text, "123AAT01");
    let mut g = c.benchmark_group("ctc_decode_40_steps");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ours", |b| {
        b.iter(|| ctc_greedy_decode(black_box(&probs.view()), &dict));
    });
    g.bench_function("format_beam_kz", |b| {
        b.iter(|| ctc_format_decode(black_box(&probs.view()), &map, &kz));
    });
    g.finish();

    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    if init_runtime(&models.join("libonnxruntime.so")).is_err()
        || !models.join("plate_detector.onnx").is_file()
    {
        eprintln!("skipping the model benches: run models/fetch.sh first");
        return;
    }
    let mut det = YoloDetector::load(&models.join("plate_detector.onnx"), "plate detector", 1)
        .expect("plate detector loads");
    let mut g = c.benchmark_group("plate_detector_1280x720");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.bench_function("letterbox_only", |b| {
        b.iter(|| letterbox(black_box(&frame), 640));
    });
    g.bench_function("detect_whole_call", |b| {
        b.iter(|| det.detect(black_box(&frame), 0.35).expect("runs"));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
