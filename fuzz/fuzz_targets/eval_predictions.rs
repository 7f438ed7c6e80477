//! The predictions `anpr eval --predictions` reads (JSON lines in the `anpr detect` format,
//! such as the Python baseline's), parsed by `anpr_measure::eval::parse_predictions` as
//! `load_predictions` reads the file. The parser's file is compiled here as it is (it needs
//! only `anpr_types`, `anyhow` and `serde_json`), as for `eval_labels`.
//!
//! Invariants: no panic; one entry per non-blank line, naming the line's `image`; a line with
//! an `error` has no prediction; every plate and vehicle kept has the box and text of one in
//! its line (so never more than the line lists); an error names the file and a line within
//! the text. Text that is not UTF-8 is refused by the file read before this.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/measure/src/labels.rs"]
mod labels;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("/data/predictions.jsonl");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match labels::parse_predictions(text, origin) {
        Ok(entries) => {
            assert_eq!(entries.len(), lines.len(), "one entry per non-blank line");
            for ((image, prediction), line) in entries.iter().zip(&lines) {
                let v: serde_json::Value = serde_json::from_str(line).expect("the line parsed");
                assert_eq!(v["image"].as_str(), Some(image.as_str()));
                assert_eq!(prediction.is_none(), v.get("error").is_some(), "{line}");
                let Some(p) = prediction else { continue };
                for (key, list) in [("plates", &p.plates), ("vehicles", &p.vehicles)] {
                    let listed = v[key].as_array().map_or(0, Vec::len);
                    assert!(list.len() <= listed, "{key}: {line}");
                    for (b, _) in list {
                        let _ = b.area();
                    }
                }
            }
        }
        Err(e) => {
            let message = format!("{e:#}");
            assert!(message.contains("predictions.jsonl line "), "{message}");
            let n: usize = message
                .split(" line ")
                .nth(1)
                .and_then(|s| s.split(':').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("a line number in {message}"));
            assert!((1..=text.lines().count()).contains(&n), "{message}");
        }
    }
});
