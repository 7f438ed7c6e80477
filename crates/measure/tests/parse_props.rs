//! Property tests of the label format of `anpr eval` (`<image> x y w h TEXT` per line, parsed
//! by `anpr_measure::eval::parse_labels`): written labels read back as written, and any text is
//! samples or an error naming the file, never a panic. The same parser has a cargo-fuzz target
//! (`fuzz/fuzz_targets/eval_labels.rs`); these run a bounded number of cases in every
//! `cargo test`.

use std::fmt::Write;
use std::path::Path;

use anpr_measure::eval::parse_labels;
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
}
