//! `anpr eval --dataset DIR`: scores the recognizer on folders in the openalpr benchmark format
//! (`<image>\t x y w h \t TEXT` per `.txt`, one plate per image), per country and overall.
//!
//! The same scoring applies to predictions read from JSON lines in the `anpr detect` format
//! ([`load_predictions`]), such as those of the Python baseline (`benches/baseline.sh`), so both
//! pipelines are scored side by side on the same labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anpr_track::edit_distance;
use anpr_vision::Recognizer;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::HashMap;

pub use crate::labels::{Prediction, Sample, parse_labels, parse_predictions};

/// Scores of one group of images.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    pub images: usize,
    pub failed: usize,
    pub detected: usize,
    pub exact: usize,
    pub within_one: usize,
    pub ms_total: f64,
    /// Labelled plates whose centre lies in a reported vehicle box (every labelled plate is on
    /// a vehicle, so this is the vehicle detector's recall on these photos).
    pub vehicle_found: usize,
    /// Plates reported away from the labelled one (IoU below 0.3): false detections, or
    /// plates of other vehicles the labels leave out.
    pub extra_boxes: usize,
    /// Type reported for the vehicle carrying each labelled plate (the smallest vehicle box
    /// holding the plate's centre), counted by type.
    pub vehicle_types: BTreeMap<String, usize>,
}

impl Scores {
    fn pct(n: usize, d: usize) -> f64 {
        if d == 0 {
            0.0
        } else {
            100.0 * n as f64 / d as f64
        }
    }
    #[must_use]
    pub fn recall(&self) -> f64 {
        Self::pct(self.detected, self.images)
    }
    #[must_use]
    pub fn exact_rate(&self) -> f64 {
        Self::pct(self.exact, self.images)
    }
    #[must_use]
    pub fn within_one_rate(&self) -> f64 {
        Self::pct(self.within_one, self.images)
    }
    #[must_use]
    pub fn vehicle_rate(&self) -> f64 {
        Self::pct(self.vehicle_found, self.images)
    }
    #[must_use]
    pub fn ms_per_image(&self) -> f64 {
        self.ms_total / self.images.max(1) as f64
    }
    fn add(&mut self, o: &Scores) {
        self.images += o.images;
        self.failed += o.failed;
        self.detected += o.detected;
        self.exact += o.exact;
        self.within_one += o.within_one;
        self.ms_total += o.ms_total;
        self.vehicle_found += o.vehicle_found;
        self.extra_boxes += o.extra_boxes;
        for (k, n) in &o.vehicle_types {
            *self.vehicle_types.entry(k.clone()).or_default() += n;
        }
    }
}

/// Reads every `.txt` label under `dir` (recursively one level: `dir/<country>/*.txt`).
pub fn load_dataset(dir: &Path) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)
            .with_context(|| format!("cannot read dataset folder {}", d.display()))?
        {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "txt") {
                let text = std::fs::read_to_string(&p)?;
                let group = d
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().to_string());
                out.extend(parse_labels(&text, &d, &group, &p)?);
            }
        }
    }
    out.sort_by(|a, b| a.image.cmp(&b.image));
    if out.is_empty() {
        bail!("no labels (*.txt) found under {}", dir.display());
    }
    Ok(out)
}

/// Runs the recognizer over the samples; `None` for an image that could not be processed.
pub fn predict(
    rec: &mut Recognizer,
    samples: &[Sample],
    mut progress: impl FnMut(usize, usize),
) -> Vec<Option<Prediction>> {
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            progress(i, samples.len());
            let frame = crate::detect::load_rgb(&s.image).ok()?;
            let t = Instant::now();
            let r = rec.process(&frame).ok()?;
            Some(Prediction {
                plates: r.plates.into_iter().map(|p| (p.bbox, p.text)).collect(),
                vehicles: r
                    .vehicles
                    .into_iter()
                    .map(|v| (v.bbox, v.class.as_str().to_string()))
                    .collect(),
                ms: t.elapsed().as_secs_f64() * 1000.0,
            })
        })
        .collect()
}

/// Predictions from JSON lines in the `anpr detect` format ([`parse_predictions`]), matched
/// to the samples by image path (as given, or resolved); an image with no line, or with an
/// `error`, is `None`.
pub fn load_predictions(path: &Path, samples: &[Sample]) -> Result<Vec<Option<Prediction>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read predictions {}", path.display()))?;
    let key = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut by_image: HashMap<PathBuf, Prediction> = HashMap::new();
    for (image, prediction) in parse_predictions(&text, path)? {
        if let Some(p) = prediction {
            by_image.insert(key(Path::new(&image)), p);
        }
    }
    Ok(samples
        .iter()
        .map(|s| by_image.get(&key(&s.image)).cloned())
        .collect())
}

/// Overlap with the labelled box from which a reported plate counts as finding it.
const MATCH_IOU: f32 = 0.3;

/// Scores predictions (one per sample, in order) per group and overall.
#[must_use]
pub fn score(samples: &[Sample], predictions: &[Option<Prediction>]) -> BTreeMap<String, Scores> {
    let mut groups: BTreeMap<String, Scores> = BTreeMap::new();
    for (s, pred) in samples.iter().zip(predictions) {
        let g = groups.entry(s.group.clone()).or_default();
        g.images += 1;
        let Some(pred) = pred else {
            g.failed += 1;
            continue;
        };
        g.ms_total += pred.ms;
        let (cx, cy) = (s.bbox.x + s.bbox.w / 2.0, s.bbox.y + s.bbox.h / 2.0);
        let carrier = pred
            .vehicles
            .iter()
            .filter(|(b, _)| b.x <= cx && cx <= b.x + b.w && b.y <= cy && cy <= b.y + b.h)
            .min_by(|a, b| (a.0.w * a.0.h).total_cmp(&(b.0.w * b.0.h)));
        if let Some((_, class)) = carrier {
            g.vehicle_found += 1;
            *g.vehicle_types.entry(class.clone()).or_default() += 1;
        }
        g.extra_boxes += pred
            .plates
            .iter()
            .filter(|(b, _)| b.iou(&s.bbox) < MATCH_IOU)
            .count();
        let hit = pred
            .plates
            .iter()
            .filter(|(b, _)| b.iou(&s.bbox) >= MATCH_IOU)
            .max_by(|a, b| a.0.iou(&s.bbox).total_cmp(&b.0.iou(&s.bbox)));
        if let Some((_, text)) = hit {
            g.detected += 1;
            g.exact += usize::from(*text == s.text);
            g.within_one += usize::from(edit_distance(text, &s.text) <= 1);
        }
    }
    let mut all = Scores::default();
    for g in groups.values() {
        all.add(g);
    }
    groups.insert("all".into(), all);
    groups
}

/// The scores as a table, with the baseline's rows beside the device's when given, and for
/// each set the device's images per second as a multiple of the baseline's.
#[must_use]
pub fn table(
    scores: &BTreeMap<String, Scores>,
    baseline: Option<&BTreeMap<String, Scores>>,
) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{:<8} {:<9} {:>7} {:>10} {:>6} {:>8} {:>10} {:>9} {:>9}\n",
        "set",
        "pipeline",
        "images",
        "detected",
        "extra",
        "exact",
        "within 1",
        "vehicle",
        "ms/image"
    );
    let row = |out: &mut String, name: &str, who: &str, s: &Scores| {
        let _ = writeln!(
            out,
            "{name:<8} {who:<9} {:>7} {:>9.1}% {:>6} {:>7.1}% {:>9.1}% {:>8.1}% {:>9.1}",
            s.images,
            s.recall(),
            s.extra_boxes,
            s.exact_rate(),
            s.within_one_rate(),
            s.vehicle_rate(),
            s.ms_per_image()
        );
    };
    for (name, s) in scores {
        row(&mut out, name, "rust", s);
        let types: Vec<String> = s
            .vehicle_types
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !types.is_empty() {
            let _ = writeln!(out, "{name:<8} {:<9} {}", "types", types.join(", "));
        }
        if let Some(b) = baseline.and_then(|b| b.get(name)) {
            row(&mut out, name, "python", b);
            if s.ms_per_image() > 0.0 {
                let _ = writeln!(
                    out,
                    "{name:<8} {:<9} images per second {:.2}x the baseline's",
                    "speed",
                    b.ms_per_image() / s.ms_per_image()
                );
            }
        }
    }
    out
}

/// Runs the recognizer over the samples; returns scores per group.
pub fn evaluate(
    rec: &mut Recognizer,
    samples: &[Sample],
    progress: impl FnMut(usize, usize),
) -> BTreeMap<String, Scores> {
    score(samples, &predict(rec, samples, progress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_types::BBox;

    fn sample(group: &str, text: &str) -> Sample {
        Sample {
            image: PathBuf::from(format!("/nowhere/{group}/{text}.jpg")),
            bbox: BBox {
                x: 10.0,
                y: 10.0,
                w: 100.0,
                h: 20.0,
            },
            text: text.into(),
            group: group.into(),
        }
    }

    #[test]
    fn scores_count_detections_exact_and_near_reads_per_group() {
        let samples = [
            sample("eu", "AB123CD"),
            sample("eu", "XY987ZZ"),
            sample("us", "7ABC123"),
        ];
        let at = |x: f32, text: &str| Prediction {
            plates: vec![(
                BBox {
                    x,
                    y: 10.0,
                    w: 100.0,
                    h: 20.0,
                },
                text.into(),
            )],
            vehicles: vec![(
                BBox {
                    x: 0.0,
                    y: 0.0,
                    w: 200.0,
                    h: 100.0,
                },
                "car".into(),
            )],
            ms: 10.0,
        };
        let preds = vec![
            Some(at(12.0, "AB123CD")),
            Some(at(12.0, "XY987Z")),
            Some(at(500.0, "7ABC123")),
        ];
        let s = score(&samples, &preds);
        assert_eq!(
            (s["eu"].detected, s["eu"].exact, s["eu"].within_one),
            (2, 1, 2)
        );
        assert_eq!(s["us"].detected, 0, "a box elsewhere is not a detection");
        assert_eq!(s["us"].extra_boxes, 1, "and it is counted as an extra box");
        assert_eq!(s["eu"].extra_boxes, 0);
        assert_eq!(s["all"].vehicle_found, 3, "every plate is on the car");
        assert_eq!(s["all"].vehicle_types["car"], 3);
        assert_eq!(s["all"].images, 3);
        assert!((s["all"].ms_per_image() - 10.0).abs() < 1e-9);
        let missing = score(&samples, &[None, None, None]);
        assert_eq!(missing["all"].failed, 3);
    }

    #[test]
    fn predictions_are_read_from_detect_json_lines_by_image() {
        let dir = tempfile::tempdir().unwrap();
        let samples = [sample("eu", "AB123CD"), sample("us", "7ABC123")];
        let lines = format!(
            "{}\n{}\n",
            serde_json::json!({"image": "/nowhere/us/7ABC123.jpg", "plates": [{"text": "7ABC123", "box": [10, 10, 100, 20]}], "vehicles": [{"class": "truck", "confidence": 0.9, "box": [0, 0, 300, 200]}], "timings_ms": {"total": 5.0}}),
            serde_json::json!({"image": "/nowhere/eu/AB123CD.jpg", "error": "cannot decode image"})
        );
        let file = dir.path().join("p.jsonl");
        std::fs::write(&file, lines).unwrap();
        let preds = load_predictions(&file, &samples).unwrap();
        assert!(preds[0].is_none());
        let us = preds[1].as_ref().unwrap();
        assert_eq!(us.plates[0].1, "7ABC123");
        assert_eq!(us.vehicles[0].1, "truck");
        assert!((us.ms - 5.0).abs() < 1e-9);
    }
}
