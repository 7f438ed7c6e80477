//! Property tests of the files `anpr eval` reads: the label format (`<image> x y w h TEXT` per
//! line, parsed by `anpr_measure::eval::parse_labels`) and the predictions of another pipeline
//! (`--baseline`, JSON lines in the `anpr detect` format, `parse_predictions`). Written files
//! read back as written, and any text is read or refused with an error naming the file, never
//! a panic. Both parsers have cargo-fuzz targets (`fuzz/fuzz_targets/eval_labels.rs`,
//! `eval_predictions.rs`); these run a bounded number of cases in every `cargo test`.

use std::fmt::Write;
use std::path::Path;

use anpr_measure::eval::{parse_labels, parse_predictions};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// `cases` cases from a fixed seed unless `PROPTEST_RNG_SEED` gives one, so that a run in CI
/// is repeatable.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x1A_BE15);
    }
    config
}

/// One label line: image, box, and the plate text as written (maybe with spaces, lower case).
fn label() -> impl Strategy<Value = (String, [f32; 4], String)> {
    (
        "[a-z0-9_-]{1,12}\\.(jpg|png)",
        [0f32..4000.0, 0f32..4000.0, 0f32..500.0, 0f32..500.0],
        "[0-9A-Za-z]{1,4}( [0-9A-Za-z]{1,4}){0,2}",
    )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn written_labels_read_back_as_written(
        labels in proptest::collection::vec(label(), 0..20),
        blank in proptest::collection::vec(any::<bool>(), 20),
    ) {
        let mut text = String::new();
        for (i, (image, b, plate)) in labels.iter().enumerate() {
            if blank[i] {
                text.push_str("  \n");
            }
            writeln!(text, "{image}\t {} {} {} {} \t{plate}", b[0], b[1], b[2], b[3])
                .expect("a String takes text");
        }
        let dir = Path::new("/data/kz");
        let samples = parse_labels(&text, dir, "kz", &dir.join("labels.txt")).expect("labels parse");
        prop_assert_eq!(samples.len(), labels.len());
        for (s, (image, b, plate)) in samples.iter().zip(&labels) {
            prop_assert_eq!(&s.image, &dir.join(image));
            let read = [s.bbox.x, s.bbox.y, s.bbox.w, s.bbox.h];
            prop_assert_eq!(read.map(f32::to_bits), b.map(f32::to_bits), "{:?}", read);
            prop_assert_eq!(&s.text, &plate.replace(' ', "").to_uppercase());
            prop_assert_eq!(&s.group, "kz");
        }
    }

    #[test]
    fn any_text_is_samples_or_an_error_naming_the_file(text in "(\\PC{0,40}\n){0,8}") {
        let dir = Path::new("/data/kz");
        match parse_labels(&text, dir, "kz", &dir.join("labels.txt")) {
            Ok(samples) => {
                let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
                prop_assert_eq!(samples.len(), lines);
            }
            Err(e) => {
                let message = format!("{e:#}");
                prop_assert!(message.contains("labels.txt"), "{}", message);
            }
        }
    }

    #[test]
    fn written_predictions_read_back_as_written(
        lines in proptest::collection::vec(
            (
                "[a-z0-9_/-]{1,16}\\.jpg",
                any::<bool>(),
                proptest::collection::vec(([0u16..4000, 0u16..4000, 1u16..500, 1u16..500], "[0-9A-Z]{1,10}"), 0..4),
                0.0f64..5000.0,
            ),
            0..12,
        ),
    ) {
        let mut text = String::new();
        for (image, failed, plates, ms) in &lines {
            let line = if *failed {
                serde_json::json!({"image": image, "error": "cannot decode"})
            } else {
                let plates: Vec<_> = plates
                    .iter()
                    .map(|(b, t)| serde_json::json!({"box": b, "text": t}))
                    .collect();
                serde_json::json!({"image": image, "plates": plates, "timings_ms": {"total": ms}})
            };
            writeln!(text, "{line}").unwrap();
        }
        let read = parse_predictions(&text, Path::new("baseline.jsonl")).expect("written predictions parse");
        prop_assert_eq!(read.len(), lines.len());
        for ((image, prediction), (want_image, failed, plates, ms)) in read.iter().zip(&lines) {
            prop_assert_eq!(image, want_image);
            prop_assert_eq!(prediction.is_none(), *failed);
            if let Some(p) = prediction {
                prop_assert_eq!(p.plates.len(), plates.len());
                for ((b, t), (want_b, want_t)) in p.plates.iter().zip(plates) {
                    prop_assert_eq!(t, want_t);
                    prop_assert_eq!(
                        [b.x, b.y, b.w, b.h].map(f32::to_bits),
                        want_b.map(|v| f32::from(v).to_bits())
                    );
                }
                prop_assert!((p.ms - ms).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn any_text_is_predictions_or_an_error_naming_the_file(text in "(\\PC{0,60}\n){0,6}") {
        match parse_predictions(&text, Path::new("baseline.jsonl")) {
            Ok(read) => {
                let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
                prop_assert_eq!(read.len(), lines);
            }
            Err(e) => {
                let message = format!("{e:#}");
                prop_assert!(message.contains("baseline.jsonl"), "{}", message);
            }
        }
    }
}
