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
use anpr_types::BBox;
use anpr_vision::Recognizer;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::HashMap;

pub use crate::labels::{Prediction, ReadDetail, Sample, parse_labels, parse_predictions};

/// Plates narrower than this (label box width, in the image's pixels) are scored apart as
/// small plates ([`Scores::small`]): the ones a second look at higher resolution is for.
pub const SMALL_PLATE_PX: f32 = 90.0;

/// Recall and exact reads of the plates of one size class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SizeScores {
    /// Labelled plates of this size (one per image).
    pub plates: usize,
    pub detected: usize,
    pub exact: usize,
}

impl SizeScores {
    #[must_use]
    pub fn recall(&self) -> f64 {
        pct(self.detected, self.plates)
    }
    #[must_use]
    pub fn exact_rate(&self) -> f64 {
        pct(self.exact, self.plates)
    }
    fn add(&mut self, o: &SizeScores) {
        self.plates += o.plates;
        self.detected += o.detected;
        self.exact += o.exact;
    }
}

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
    /// Found plates whose reading was flagged low-confidence, and how many of those were
    /// exact: a misread the device flags goes to a person, one it does not flag is taken as
    /// read.
    pub flagged: usize,
    pub flagged_exact: usize,
    /// Plates narrower than [`SMALL_PLATE_PX`] (by the label box).
    pub small: SizeScores,
    /// The other plates.
    pub large: SizeScores,
}

/// `n` of `d` in percent; 0 when `d` is 0.
pub(crate) fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

impl Scores {
    #[must_use]
    pub fn recall(&self) -> f64 {
        pct(self.detected, self.images)
    }
    #[must_use]
    pub fn exact_rate(&self) -> f64 {
        pct(self.exact, self.images)
    }
    #[must_use]
    pub fn within_one_rate(&self) -> f64 {
        pct(self.within_one, self.images)
    }
    #[must_use]
    pub fn vehicle_rate(&self) -> f64 {
        pct(self.vehicle_found, self.images)
    }
    /// The low-confidence figures in the order `eval` prints them: found plates flagged,
    /// found plates, flagged and exact, misreads flagged, misreads, misreads unflagged.
    #[must_use]
    pub fn flag_figures(&self) -> [usize; 6] {
        let misread = self.detected - self.exact;
        let flagged_wrong = self.flagged - self.flagged_exact;
        [
            self.flagged,
            self.detected,
            self.flagged_exact,
            flagged_wrong,
            misread,
            misread - flagged_wrong,
        ]
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
        self.flagged += o.flagged;
        self.flagged_exact += o.flagged_exact;
        for (k, n) in &o.vehicle_types {
            *self.vehicle_types.entry(k.clone()).or_default() += n;
        }
        self.small.add(&o.small);
        self.large.add(&o.large);
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
            let mut views = r.plate_views.into_iter();
            Some(Prediction {
                reads: r
                    .plates
                    .iter()
                    .map(|p| ReadDetail {
                        char_confidences: p.char_confidences.clone(),
                        view: views.next().unwrap_or_default(),
                        low_confidence: p.low_confidence,
                    })
                    .collect(),
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

/// The reported plate that finds the labelled one: the one overlapping its box most, from
/// [`MATCH_IOU`]; its index in `pred.plates`.
fn matching_plate(s: &Sample, pred: &Prediction) -> Option<usize> {
    pred.plates
        .iter()
        .enumerate()
        .filter(|(_, (b, _))| b.iou(&s.bbox) >= MATCH_IOU)
        .max_by(|a, b| a.1.0.iou(&s.bbox).total_cmp(&b.1.0.iou(&s.bbox)))
        .map(|(i, _)| i)
}

/// The reported vehicle carrying a plate: the smallest of the `vehicles` (box, type) whose box
/// holds the plate box's centre; `None` when none does.
#[must_use]
pub fn carrier<'a>(plate: &BBox, vehicles: &'a [(BBox, String)]) -> Option<&'a (BBox, String)> {
    let (cx, cy) = (plate.x + plate.w / 2.0, plate.y + plate.h / 2.0);
    vehicles
        .iter()
        .filter(|(b, _)| b.x <= cx && cx <= b.x + b.w && b.y <= cy && cy <= b.y + b.h)
        .min_by(|a, b| (a.0.w * a.0.h).total_cmp(&(b.0.w * b.0.h)))
}

/// Whether a labelled plate counts as small ([`SMALL_PLATE_PX`]).
#[must_use]
pub fn is_small(s: &Sample) -> bool {
    s.bbox.w < SMALL_PLATE_PX
}

/// Scores predictions (one per sample, in order) per group and overall.
#[must_use]
pub fn score(samples: &[Sample], predictions: &[Option<Prediction>]) -> BTreeMap<String, Scores> {
    let mut groups: BTreeMap<String, Scores> = BTreeMap::new();
    for (s, pred) in samples.iter().zip(predictions) {
        let g = groups.entry(s.group.clone()).or_default();
        g.images += 1;
        let size = if is_small(s) {
            &mut g.small
        } else {
            &mut g.large
        };
        size.plates += 1;
        let Some(pred) = pred else {
            g.failed += 1;
            continue;
        };
        if let Some(i) = matching_plate(s, pred) {
            size.detected += 1;
            size.exact += usize::from(pred.plates[i].1 == s.text);
        }
        g.ms_total += pred.ms;
        if let Some((_, class)) = carrier(&s.bbox, &pred.vehicles) {
            g.vehicle_found += 1;
            *g.vehicle_types.entry(class.clone()).or_default() += 1;
        }
        g.extra_boxes += pred
            .plates
            .iter()
            .filter(|(b, _)| b.iou(&s.bbox) < MATCH_IOU)
            .count();
        if let Some(i) = matching_plate(s, pred) {
            let text = &pred.plates[i].1;
            g.detected += 1;
            g.exact += usize::from(*text == s.text);
            g.within_one += usize::from(edit_distance(text, &s.text) <= 1);
            if pred.reads.get(i).is_some_and(|r| r.low_confidence) {
                g.flagged += 1;
                g.flagged_exact += usize::from(*text == s.text);
            }
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
        size_row(&mut out, name, "rust", s);
        flag_row(&mut out, name, s);
        if let Some(b) = baseline.and_then(|b| b.get(name)) {
            row(&mut out, name, "python", b);
            size_row(&mut out, name, "python", b);
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

/// The low-confidence line of one set in [`table`]: of the plates found, how many readings
/// were flagged and how many of those were exact, and the misreads left unflagged.
fn flag_row(out: &mut String, name: &str, s: &Scores) {
    use std::fmt::Write;
    let [flagged, found, flagged_exact, caught, misread, missed] = s.flag_figures();
    let _ = writeln!(
        out,
        "{name:<8} {:<9} {flagged} of {found} found flagged ({flagged_exact} exact); misreads flagged {caught} of {misread}, unflagged {missed}",
        "flagged",
    );
}

/// The small/large line of one set in [`table`]: counts and rates of plates narrower than
/// [`SMALL_PLATE_PX`] and of the rest.
fn size_row(out: &mut String, name: &str, who: &str, s: &Scores) {
    use std::fmt::Write;
    let part = |z: &SizeScores| {
        format!(
            "{} found ({:.1}%), {} exact ({:.1}%)",
            z.detected,
            z.recall(),
            z.exact,
            z.exact_rate()
        )
    };
    let _ = writeln!(
        out,
        "{name:<8} {who:<9} {} plates < {SMALL_PLATE_PX} px wide: {}; {} wider: {}",
        s.small.plates,
        part(&s.small),
        s.large.plates,
        part(&s.large)
    );
}

/// A labelled plate the pipeline did not read exactly: not found, misread, or its image not
/// processed.
#[derive(Debug, Clone)]
pub struct Miss<'a> {
    pub sample: &'a Sample,
    /// The text read from the plate found over the label; `None` when none was found.
    pub read: Option<&'a str>,
    /// How it was read, when the pipeline tells.
    pub detail: Option<&'a ReadDetail>,
    /// The image could not be decoded or processed.
    pub failed: bool,
}

/// Every labelled plate not read exactly, in sample order.
#[must_use]
pub fn misses<'a>(samples: &'a [Sample], predictions: &'a [Option<Prediction>]) -> Vec<Miss<'a>> {
    samples
        .iter()
        .zip(predictions)
        .filter_map(|(s, pred)| {
            let Some(pred) = pred else {
                return Some(Miss {
                    sample: s,
                    read: None,
                    detail: None,
                    failed: true,
                });
            };
            let hit = matching_plate(s, pred);
            let read = hit.map(|i| pred.plates[i].1.as_str());
            (read != Some(s.text.as_str())).then(|| Miss {
                sample: s,
                read,
                detail: hit.and_then(|i| pred.reads.get(i)),
                failed: false,
            })
        })
        .collect()
}

/// How often each truth character was read as each other one, over misreads (plates found
/// but not read exactly), by aligning the read with the truth (the least edits, as
/// [`edit_distance`] counts them): a substitution pairs two characters, a character missing
/// from the read pairs it with `None` as read, a character read in excess pairs `None` as
/// truth with it. Characters read right are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confusion {
    /// (truth, read) → count.
    pub pairs: BTreeMap<Aligned, usize>,
    /// Misreads aligned.
    pub misreads: usize,
}

impl Confusion {
    /// The confusions of every miss that has a read.
    #[must_use]
    pub fn of(misses: &[Miss<'_>]) -> Self {
        let mut c = Self::default();
        for m in misses {
            if let Some(read) = m.read {
                c.add(&m.sample.text, read);
            }
        }
        c
    }

    /// Aligns `read` with `truth` and counts the characters that differ.
    pub fn add(&mut self, truth: &str, read: &str) {
        self.misreads += 1;
        for pair in align(truth, read) {
            if pair.0 != pair.1 {
                *self.pairs.entry(pair).or_default() += 1;
            }
        }
    }

    /// The pairs, most frequent first (then in character order).
    #[must_use]
    pub fn ranked(&self) -> Vec<(Aligned, usize)> {
        let mut v: Vec<_> = self.pairs.iter().map(|(k, n)| (*k, *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// One aligned pair of [`align`]: (truth character, read character), `None` for a gap.
pub type Aligned = (Option<char>, Option<char>);

/// The least-edit alignment of `read` with `truth`: pairs of (truth, read) characters, `None`
/// where one side has no character; on ties a substitution is preferred to a gap.
#[must_use]
pub fn align(truth: &str, read: &str) -> Vec<Aligned> {
    let truth: Vec<char> = truth.chars().collect();
    let read: Vec<char> = read.chars().collect();
    let cols = read.len() + 1;
    // cost[row * cols + col]: edits between the first `row` truth and `col` read characters.
    let mut cost = vec![0usize; (truth.len() + 1) * cols];
    let at = |row: usize, col: usize| row * cols + col;
    for row in 0..=truth.len() {
        for col in 0..cols {
            cost[at(row, col)] = match (row, col) {
                (0, _) => col,
                (_, 0) => row,
                _ => (cost[at(row - 1, col - 1)] + usize::from(truth[row - 1] != read[col - 1]))
                    .min(cost[at(row - 1, col)] + 1)
                    .min(cost[at(row, col - 1)] + 1),
            };
        }
    }
    let (mut row, mut col) = (truth.len(), read.len());
    let mut out = Vec::with_capacity(row.max(col));
    while row > 0 || col > 0 {
        let here = cost[at(row, col)];
        if row > 0
            && col > 0
            && here == cost[at(row - 1, col - 1)] + usize::from(truth[row - 1] != read[col - 1])
        {
            out.push((Some(truth[row - 1]), Some(read[col - 1])));
            row -= 1;
            col -= 1;
        } else if row > 0 && here == cost[at(row - 1, col)] + 1 {
            out.push((Some(truth[row - 1]), None));
            row -= 1;
        } else {
            out.push((None, Some(read[col - 1])));
            col -= 1;
        }
    }
    out.reverse();
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
            reads: Vec::new(),
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

    fn plate(x: f32, w: f32, text: &str) -> Prediction {
        Prediction {
            plates: vec![(
                BBox {
                    x,
                    y: 10.0,
                    w,
                    h: 20.0,
                },
                text.into(),
            )],
            reads: vec![ReadDetail {
                char_confidences: vec![0.9; text.len()],
                view: "margin".into(),
                low_confidence: false,
            }],
            ..Prediction::default()
        }
    }

    #[test]
    fn flagged_readings_are_counted_with_the_misreads_they_catch_and_those_they_miss() {
        let samples = [
            sample("kz", "123ABC01"),
            sample("kz", "456DEF02"),
            sample("kz", "789GHI03"),
            sample("kz", "111JKL04"),
        ];
        let flagged = |text: &str| {
            let mut p = plate(10.0, 100.0, text);
            p.reads[0].low_confidence = true;
            p
        };
        let preds = vec![
            Some(flagged("123ABC01")),
            Some(flagged("E456DEF")),
            Some(plate(10.0, 100.0, "789GH103")),
            Some(plate(10.0, 100.0, "111JKL04")),
        ];
        let s = score(&samples, &preds);
        assert_eq!((s["kz"].flagged, s["kz"].flagged_exact), (2, 1));
        let text = table(&s, None);
        assert!(
            text.contains("2 of 4 found flagged (1 exact); misreads flagged 1 of 2, unflagged 1"),
            "{text}"
        );
    }

    #[test]
    fn plates_narrower_than_90_px_are_scored_apart_from_the_rest() {
        let sized = |w: f32, text: &str| Sample {
            bbox: BBox {
                x: 10.0,
                y: 10.0,
                w,
                h: 20.0,
            },
            ..sample("us", text)
        };
        let samples = [
            sized(60.0, "SMALL1"),
            sized(89.9, "SMALL2"),
            sized(89.9, "SMALL3"),
            sized(90.0, "LARGE1"),
            sized(200.0, "LARGE2"),
        ];
        let preds = vec![
            Some(plate(10.0, 60.0, "SMALL1")),
            Some(plate(10.0, 89.9, "SMA112")),
            Some(plate(600.0, 89.9, "SMALL3")),
            Some(plate(10.0, 90.0, "LARGE1")),
            None,
        ];
        let s = score(&samples, &preds);
        let us = &s["us"];
        assert_eq!(
            us.small,
            SizeScores {
                plates: 3,
                detected: 2,
                exact: 1
            },
            "one read exactly, one misread, one not found"
        );
        assert_eq!(
            us.large,
            SizeScores {
                plates: 2,
                detected: 1,
                exact: 1
            },
            "90 px is large; a failed image counts as not found"
        );
        assert_eq!(s["all"].small, us.small);
        assert!((us.small.recall() - 200.0 / 3.0).abs() < 1e-9);
        let text = table(&s, None);
        assert!(
            text.contains("3 plates < 90 px wide: 2 found (66.7%), 1 exact (33.3%); 2 wider: 1 found (50.0%), 1 exact (50.0%)"),
            "{text}"
        );
        let m = misses(&samples, &preds);
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.sample.text.as_str(), m.read, m.failed))
            .collect();
        assert_eq!(
            got,
            [
                ("SMALL2", Some("SMA112"), false),
                ("SMALL3", None, false),
                ("LARGE2", None, true)
            ]
        );
        assert_eq!(m[0].detail.unwrap().view, "margin");
    }

    #[test]
    fn the_confusion_table_aligns_reads_with_the_truth() {
        let mut c = Confusion::default();
        // Same length: two substitutions.
        c.add("AB1O0", "AB100");
        c.add("IB8", "1B8");
        // A doubled letter collapsed: one A missing from the read.
        c.add("123AAT01", "123AT01");
        // A border read as a character in excess.
        c.add("ABC123", "1ABC123");
        assert_eq!(c.misreads, 4);
        let pairs: Vec<_> = c.ranked();
        assert_eq!(
            pairs,
            [
                ((None, Some('1')), 1),
                ((Some('A'), None), 1),
                ((Some('I'), Some('1')), 1),
                ((Some('O'), Some('0')), 1),
            ]
        );
        c.add("O", "0");
        assert_eq!(c.ranked()[0], ((Some('O'), Some('0')), 2));
        assert_eq!(
            align("AB", "AB"),
            [(Some('A'), Some('A')), (Some('B'), Some('B'))]
        );
        assert_eq!(align("", "X"), [(None, Some('X'))]);
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
