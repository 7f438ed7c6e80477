//! The label format of `anpr eval` (`<image> x y w h TEXT` per line), parsed by
//! `anpr_measure::eval::parse_labels` as `load_dataset` reads each `.txt` file. The parser's
//! file is compiled here as it is (it needs only `anpr_types` and `anyhow`), which spares the
//! fuzz build the recognizer, GStreamer and ONNX Runtime that `anpr-measure` links.
//!
//! Invariants: no panic; one sample per non-blank line, each in the folder's group, its text
//! upper case without spaces; an error names the file. Text that is not UTF-8 is refused by the
//! file read before this.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/measure/src/labels.rs"]
mod labels;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = Path::new("/data/kz");
    let origin = dir.join("labels.txt");
    match labels::parse_labels(text, dir, "kz", &origin) {
        Ok(samples) => {
            let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
            assert_eq!(samples.len(), lines, "one sample per non-blank line");
            for s in &samples {
                assert_eq!(s.group, "kz");
                assert!(!s.image.as_os_str().is_empty(), "{s:?}");
                let _ = s.bbox.area();
                assert!(!s.text.contains(char::is_whitespace), "{s:?}");
                assert_eq!(s.text, s.text.to_uppercase(), "{s:?}");
            }
        }
        Err(e) => {
            let message = format!("{e:#}");
            assert!(message.contains("labels.txt"), "{message}");
        }
    }
});
