//! The formats `anpr eval` reads: labels (the openalpr benchmark's: one `.txt` file per image
//! or per folder, each line `<image> x y w h TEXT`) and predictions (JSON lines in the
//! `anpr detect` format, such as the Python baseline's).
//!
//! This file depends on nothing but `anpr_types`, `anyhow` and `serde_json`, so that the fuzz
//! targets of the parsers (`fuzz/fuzz_targets/eval_labels.rs`, `eval_predictions.rs`) compile
//! it as it is without building the recognizer.

use std::path::{Path, PathBuf};

use anpr_types::BBox;
use anyhow::{Context, Result, bail};

/// One labelled image.
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: PathBuf,
    pub bbox: BBox,
    pub text: String,
    pub group: String,
}

/// Parses the text of one label file: `<image> x y w h TEXT` per line (the text may contain
/// spaces, which are dropped; blank lines are skipped). Images are resolved against `dir`, the
/// samples fall in `group`, and `origin` names the file in errors.
pub fn parse_labels(text: &str, dir: &Path, group: &str, origin: &Path) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 {
            bail!(
                "{}: expected `<image> x y w h TEXT`, found {line:?}",
                origin.display()
            );
        }
        let n = |i: usize| {
            f[i].parse::<f32>()
                .with_context(|| format!("{}: bad number {:?}", origin.display(), f[i]))
        };
        out.push(Sample {
            image: dir.join(f[0]),
            bbox: BBox {
                x: n(1)?,
                y: n(2)?,
                w: n(3)?,
                h: n(4)?,
            },
            text: f[5..].concat().to_uppercase(),
            group: group.to_string(),
        });
    }
    Ok(out)
}

/// What a pipeline found in one image: plate boxes with their texts, and the time it took
/// from decoded pixels to result.
#[derive(Debug, Clone, Default)]
pub struct Prediction {
    pub plates: Vec<(BBox, String)>,
    /// How each plate was read, one per plate in order when the pipeline tells (the
    /// recognizer does; a `detect` line does when it carries `char_confidences` and `view`);
    /// empty when it does not.
    pub reads: Vec<ReadDetail>,
    /// Vehicle boxes with their reported type (`car`, `truck`, …, `unknown`).
    pub vehicles: Vec<(BBox, String)>,
    pub ms: f64,
}

/// How one plate was read: what the HTML report shows beside a misread.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadDetail {
    /// One confidence (0–1) per character of the text.
    pub char_confidences: Vec<f32>,
    /// The view of the plate box that won (`line`, `margin`, `stretched`, `rows`, …); empty
    /// when not known.
    pub view: String,
    /// The reading was flagged low-confidence (the event's `plate.low_confidence`: a list
    /// match on it is to be confirmed by a person).
    pub low_confidence: bool,
}

/// Parses the text of a predictions file: JSON lines in the `anpr detect` format, blank lines
/// skipped. Each line gives the image it names and what was found there, `None` for a line
/// with an `error`; a plate or vehicle without a box of four numbers or without its text is
/// left out. `origin` names the file in errors (a line that is not JSON, or has no `image`).
pub fn parse_predictions(text: &str, origin: &Path) -> Result<Vec<(String, Option<Prediction>)>> {
    let mut out = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", origin.display(), n + 1))?;
        let Some(image) = v["image"].as_str() else {
            bail!("{} line {}: no \"image\" field", origin.display(), n + 1);
        };
        if v.get("error").is_some() {
            out.push((image.to_string(), None));
            continue;
        }
        let boxes = |key: &str, text: &str| -> Vec<(BBox, String)> {
            v[key]
                .as_array()
                .map(|a| a.iter().filter_map(|p| boxed_text(p, text)).collect())
                .unwrap_or_default()
        };
        let (plates, reads): (Vec<(BBox, String)>, Vec<ReadDetail>) = v["plates"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((boxed_text(p, "text")?, read_detail(p))))
                    .unzip()
            })
            .unwrap_or_default();
        let vehicles = boxes("vehicles", "class");
        let ms = v["timings_ms"]["total"].as_f64().unwrap_or_else(|| {
            ["vehicle", "plate_detect", "plate_read"]
                .iter()
                .filter_map(|k| v["timings_ms"][k].as_f64())
                .sum()
        });
        out.push((
            image.to_string(),
            Some(Prediction {
                plates,
                reads,
                vehicles,
                ms,
            }),
        ));
    }
    Ok(out)
}

/// A plate `{"box": [x, y, w, h], "text": ...}` or a vehicle `{"box": …, "class": …}` of a
/// `detect` line: its box and the string under `field`.
fn boxed_text(item: &serde_json::Value, field: &str) -> Option<(BBox, String)> {
    let nums: Vec<f32> = item["box"]
        .as_array()?
        .iter()
        .filter_map(|n| n.as_f64().map(|n| n as f32))
        .collect();
    let [x, y, w, h] = nums[..] else { return None };
    Some((BBox { x, y, w, h }, item[field].as_str()?.to_string()))
}

/// The `char_confidences` and `view` of a plate of a `detect` line (empty when absent).
fn read_detail(item: &serde_json::Value) -> ReadDetail {
    ReadDetail {
        char_confidences: item["char_confidences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_f64().map(|c| c as f32))
                    .collect()
            })
            .unwrap_or_default(),
        view: item["view"].as_str().unwrap_or_default().to_string(),
        low_confidence: item["low_confidence"].as_bool().unwrap_or(false),
    }
}
