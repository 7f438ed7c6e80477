//! Property tests of the config parser (`anpr_config::parse`, what `load` runs on a file's
//! text): arbitrary text, and the shipped configs with one edit (a number replaced by any
//! other, including NaN, infinities and huge ones; a piece cut out; stray text put in). Every
//! outcome is a validated config or an error that names the file and, where it gives one, a
//! line of the text; never a panic. The same parser has a cargo-fuzz target
//! (`fuzz/fuzz_targets/config.rs`); these run a bounded number of cases in every `cargo test`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;

/// `cases` cases from a fixed seed unless `PROPTEST_RNG_SEED` gives one, so that a run in CI
/// is repeatable.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0xC0_4F16);
    }
    config
}

const PATH: &str = "/etc/anpr/device.toml";

fn shipped(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../config")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses `text` and checks the outcome: a config with cameras, or an error naming the file.
fn check(text: &str) -> Result<(), TestCaseError> {
    match anpr_config::parse(text, Path::new(PATH)) {
        Ok(cfg) => {
            prop_assert!(!cfg.cameras.is_empty());
            for (i, cam) in cfg.cameras.iter().enumerate() {
                prop_assert!(cfg.cameras[..i].iter().all(|o| o.id != cam.id));
            }
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert!(message.contains(PATH), "{}", message);
            if let Some(line) = e.line() {
                prop_assert!(
                    (1..=text.lines().count().max(1) + 1).contains(&line),
                    "line {} of {}: {}",
                    line,
                    text.lines().count(),
                    message
                );
            }
        }
    }
    Ok(())
}

/// Byte ranges of the numbers in `text` (outside comments; good enough for the shipped files).
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = &line[..line.find('#').unwrap_or(line.len())];
        let bytes = code.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let starts = bytes[i].is_ascii_digit()
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
            if starts && !code[..i].contains('"') {
                let end = (i..bytes.len())
                    .find(|&j| !(bytes[j].is_ascii_digit() || matches!(bytes[j], b'.' | b'_')))
                    .unwrap_or(bytes.len());
                out.push((offset + i, offset + end));
                i = end;
            } else {
                i += 1;
            }
        }
        offset += line.len();
    }
    out
}

/// A TOML number or something that looks like one.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        (-2.0f64..2.0).prop_map(|n| format!("{n:?}")),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("1e309".to_string()),
        Just("0".to_string()),
        Just("-0.0".to_string()),
    ]
}

fn shipped_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(shipped("example.toml")),
        Just(shipped("demo.toml")),
        Just(shipped("scene.toml")),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_is_a_config_or_an_error_naming_the_file(text in "\\PC{0,300}") {
        check(&text)?;
    }

    #[test]
    fn toml_shaped_text_is_a_config_or_an_error_naming_the_file(
        text in "(\\[{1,2}[a-z.]{1,12}\\]{1,2}\n|[a-z_]{1,10} = (\"[a-z:/.]{0,10}\"|-?[0-9.e]{1,6}|\\[[0-9., \\[\\]]{0,20}\\]|true)\n){0,12}",
    ) {
        check(&text)?;
    }

    #[test]
    fn a_shipped_config_with_one_number_changed_loads_or_is_refused(
        text in shipped_text(),
        which in any::<Index>(),
        value in number(),
    ) {
        let spots = numbers(&text);
        prop_assume!(!spots.is_empty());
        let (start, end) = spots[which.index(spots.len())];
        let mut edited = text.clone();
        edited.replace_range(start..end, &value);
        check(&edited)?;
    }

    #[test]
    fn a_shipped_config_with_a_piece_cut_or_stray_text_put_in_loads_or_is_refused(
        text in shipped_text(),
        at in any::<Index>(),
        len in 0usize..80,
        stray in "\\PC{0,12}",
    ) {
        let mut start = at.index(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut edited = text.clone();
        edited.replace_range(start..end, &stray);
        check(&edited)?;
    }
}
