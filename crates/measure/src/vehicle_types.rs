//! `anpr eval --vehicle-types FILE`: the vehicle type the recognizer reports, scored against
//! types a person gave by looking at the photos (`models/vehicle_types/openalpr.tsv`).
//!
//! Each label names one vehicle by the plate it carries (the plate box of the dataset's own
//! label), so the labels do not depend on the detector's boxes: the reported vehicle is the
//! smallest reported vehicle box holding the plate's centre ([`crate::eval::carrier`], the
//! same rule `eval` uses for its vehicle recall), and a plate no reported box holds is
//! `not found`. The result is a confusion matrix (labelled type × reported type, `unknown`
//! and `not found` included) with each class's precision and recall.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anpr_types::{BBox, VehicleClass};
use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::eval::{Prediction, carrier, pct};

/// The reported "type" of a labelled vehicle that no reported vehicle box holds.
pub const NOT_FOUND: &str = "not found";

/// Every class of the event schema a vehicle can be labelled with, in the schema's order
/// (`unknown` apart: a label of `unknown` means a person could not tell).
pub const CLASSES: [VehicleClass; 7] = [
    VehicleClass::Motorcycle,
    VehicleClass::Car,
    VehicleClass::Van,
    VehicleClass::Bus,
    VehicleClass::Truck,
    VehicleClass::TractorTrailer,
    VehicleClass::Special,
];

/// Where a reported type goes in the matrix's columns: the schema's classes in order, then
/// `unknown`, then `not found`, then anything else (a baseline's own names) after them. The
/// match is exhaustive so that a class added to the schema has to be placed here too.
fn column_rank(reported: &str) -> usize {
    let Ok(class) = serde_json::from_value::<VehicleClass>(serde_json::json!(reported)) else {
        return if reported == NOT_FOUND { 9 } else { 10 };
    };
    match class {
        VehicleClass::Motorcycle => 0,
        VehicleClass::Car => 1,
        VehicleClass::Van => 2,
        VehicleClass::Bus => 3,
        VehicleClass::Truck => 4,
        VehicleClass::TractorTrailer => 5,
        VehicleClass::Special => 6,
        VehicleClass::Unknown => 8,
    }
}

/// One labelled vehicle: the photo, the box of the plate it carries, the type a person gave
/// it and a free note (which kind of car or van it is).
#[derive(Debug, Clone, PartialEq)]
pub struct TypeLabel {
    pub image: PathBuf,
    pub plate: BBox,
    pub class: VehicleClass,
    pub note: String,
}

/// Parses a vehicle-type label file: `image x y w h type [note]` per line, separated by tabs
/// or spaces (the note may hold spaces); `#` starts a comment line, blank lines are skipped.
/// Images are resolved against `root`; `origin` names the file in errors.
pub fn parse_type_labels(text: &str, root: &Path, origin: &Path) -> Result<Vec<TypeLabel>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{} line {}", origin.display(), n + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 {
            bail!(
                "{}: expected `<image> x y w h <type> [note]`, found {line:?}",
                at()
            );
        }
        let num = |i: usize| {
            f[i].parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .with_context(|| format!("{}: {:?} is not a number", at(), f[i]))
        };
        let plate = BBox {
            x: num(1)?,
            y: num(2)?,
            w: num(3)?,
            h: num(4)?,
        };
        if plate.w <= 0.0 || plate.h <= 0.0 {
            bail!("{}: the plate box {} x {} is empty", at(), plate.w, plate.h);
        }
        let class: VehicleClass = serde_json::from_value(serde_json::json!(f[5])).map_err(|_| {
            anyhow::anyhow!(
                "{}: {:?} is not a vehicle class; use one of {}, or `unknown` when a person cannot tell",
                at(),
                f[5],
                CLASSES.map(VehicleClass::as_str).join(", ")
            )
        })?;
        out.push(TypeLabel {
            image: root.join(f[0]),
            plate,
            class,
            note: f[6..].join(" "),
        });
    }
    if out.is_empty() {
        bail!("{}: no vehicle-type labels in it", origin.display());
    }
    Ok(out)
}

/// Reads a vehicle-type label file, its images resolved against `root` (the folder the
/// paths in it are relative to: the one given to `eval --dataset`), and checks that every
/// image is there.
pub fn load_type_labels(path: &Path, root: &Path) -> Result<Vec<TypeLabel>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read vehicle-type labels {}", path.display()))?;
    let labels = parse_type_labels(&text, root, path)?;
    if let Some(missing) = labels.iter().find(|l| !l.image.is_file()) {
        bail!(
            "{} names {}, which is not there: its image paths are relative to the folder given to --dataset ({})",
            path.display(),
            missing.image.display(),
            root.display()
        );
    }
    Ok(labels)
}

/// The type reported for the vehicle carrying `plate`: the class of the smallest reported
/// vehicle box holding the plate's centre, or [`NOT_FOUND`] when none holds it or the image
/// could not be processed.
pub fn reported_type(plate: &BBox, pred: Option<&Prediction>) -> String {
    pred.and_then(|p| carrier(plate, &p.vehicles))
        .map_or_else(|| NOT_FOUND.to_string(), |(_, class)| class.clone())
}

/// Precision and recall of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub class: String,
    /// Vehicles labelled with this class.
    pub labelled: usize,
    /// Labelled vehicles (of any class) reported as this class.
    pub reported: usize,
    /// Vehicles labelled and reported as this class.
    pub correct: usize,
    /// `correct / reported` in percent; `None` when the class was never reported.
    pub precision: Option<f64>,
    /// `correct / labelled` in percent; `None` when no vehicle is labelled with it.
    pub recall: Option<f64>,
}

/// The reported types scored against the labelled ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TypeScores {
    /// Vehicles scored: those labelled with a class (not `unknown`).
    pub vehicles: usize,
    /// Vehicles labelled `unknown` (a person could not tell), left out of everything else.
    pub unidentified: usize,
    /// Scored vehicles whose image could not be processed (counted as `not found`).
    pub failed: usize,
    /// Vehicles reported with exactly their labelled class.
    pub correct: usize,
    /// Labelled class → reported type (a class, `unknown` or `not found`) → vehicles.
    pub matrix: BTreeMap<String, BTreeMap<String, usize>>,
    /// One row per schema class (`unknown` apart), in the schema's order.
    pub classes: Vec<ClassScore>,
    /// `class (note)` → reported type → vehicles: the matrix split by the labels' notes, so
    /// that e.g. pickups labelled `car` can be told from sedans.
    pub by_note: BTreeMap<String, BTreeMap<String, usize>>,
}

impl TypeScores {
    /// Share of scored vehicles reported with their labelled class, in percent.
    #[must_use]
    pub fn accuracy(&self) -> f64 {
        pct(self.correct, self.vehicles)
    }
}

/// Scores one prediction per label (in order; `None` for an image that could not be
/// processed).
#[must_use]
pub fn score_types(labels: &[TypeLabel], predictions: &[Option<Prediction>]) -> TypeScores {
    let mut s = TypeScores::default();
    for (label, pred) in labels.iter().zip(predictions) {
        if label.class == VehicleClass::Unknown {
            s.unidentified += 1;
            continue;
        }
        s.vehicles += 1;
        s.failed += usize::from(pred.is_none());
        let reported = reported_type(&label.plate, pred.as_ref());
        let labelled = label.class.as_str();
        s.correct += usize::from(reported == labelled);
        *s.matrix
            .entry(labelled.to_string())
            .or_default()
            .entry(reported.clone())
            .or_default() += 1;
        let key = if label.note.is_empty() {
            labelled.to_string()
        } else {
            format!("{labelled} ({})", label.note)
        };
        *s.by_note
            .entry(key)
            .or_default()
            .entry(reported)
            .or_default() += 1;
    }
    s.classes = CLASSES
        .iter()
        .map(|c| {
            let name = c.as_str();
            let labelled = s.matrix.get(name).map_or(0, |row| row.values().sum());
            let reported = s.matrix.values().filter_map(|row| row.get(name)).sum();
            let correct = s.matrix.get(name).and_then(|r| r.get(name)).copied();
            let correct = correct.unwrap_or(0);
            ClassScore {
                class: name.to_string(),
                labelled,
                reported,
                correct,
                precision: (reported > 0).then(|| pct(correct, reported)),
                recall: (labelled > 0).then(|| pct(correct, labelled)),
            }
        })
        .collect();
    s
}

/// The scores as text: the matrix (rows: labelled classes that have vehicles; columns: those
/// classes, every other type reported, `unknown` and `not found`), the per-class precision and
/// recall, the classes never reported, and the notes of the vehicles reported with another
/// type.
#[must_use]
pub fn types_table(s: &TypeScores) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "vehicle types: {} labelled vehicles scored, {} exact ({:.1}%); {} labelled unknown and left out; {} images failed\n",
        s.vehicles,
        s.correct,
        s.accuracy(),
        s.unidentified,
        s.failed
    );
    let mut columns: Vec<&str> = s
        .matrix
        .iter()
        .flat_map(|(labelled, row)| row.keys().chain([labelled]).map(String::as_str))
        .chain(["unknown", NOT_FOUND])
        .collect();
    columns.sort_by_key(|c| (column_rank(c), c.to_string()));
    columns.dedup();
    let rows: Vec<&str> = CLASSES
        .iter()
        .map(|c| c.as_str())
        .filter(|c| s.matrix.contains_key(*c))
        .collect();
    let _ = write!(out, "{:<20}", "labelled \\ reported");
    for c in &columns {
        let _ = write!(out, " {c:>10}");
    }
    out.push('\n');
    for r in &rows {
        let _ = write!(out, "{r:<20}");
        for c in &columns {
            let n = s.matrix[*r].get(*c).copied().unwrap_or(0);
            let _ = write!(out, " {n:>10}");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "class", "labelled", "reported", "correct", "precision", "recall"
    );
    let rate = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}%"));
    for c in &s.classes {
        let _ = writeln!(
            out,
            "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10}",
            c.class,
            c.labelled,
            c.reported,
            c.correct,
            rate(c.precision),
            rate(c.recall)
        );
    }
    let never: Vec<&str> = s
        .classes
        .iter()
        .filter(|c| c.reported == 0)
        .map(|c| c.class.as_str())
        .collect();
    if !never.is_empty() {
        let _ = writeln!(out, "never reported: {}", never.join(", "));
    }
    for (note, row) in &s.by_note {
        let class = note.split(' ').next().unwrap_or_default();
        if row.keys().all(|k| k == class) {
            continue;
        }
        let mut cells: Vec<(&String, &usize)> = row.iter().collect();
        cells.sort_by_key(|(k, _)| (column_rank(k), (*k).clone()));
        let cells: Vec<String> = cells.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "  {note}: reported {}", cells.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox { x, y, w, h }
    }

    fn label(class: VehicleClass, note: &str) -> TypeLabel {
        TypeLabel {
            image: PathBuf::from("/nowhere/a.jpg"),
            plate: boxed(100.0, 100.0, 40.0, 10.0),
            class,
            note: note.into(),
        }
    }

    fn seen(vehicles: &[(BBox, &str)]) -> Prediction {
        Prediction {
            vehicles: vehicles.iter().map(|(b, c)| (*b, (*c).into())).collect(),
            ..Prediction::default()
        }
    }

    #[test]
    fn labels_are_read_with_comments_notes_and_paths_under_the_root() {
        let text = "# comment\n\neu/a.jpg\t1 2 30 10\tcar\tsedan\nus/b.jpg 5 6 70 20 tractor-trailer\nus/c.jpg 1 1 9 9 unknown plate only\n";
        let got = parse_type_labels(text, Path::new("/data"), Path::new("t.tsv")).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].image, PathBuf::from("/data/eu/a.jpg"));
        assert_eq!(got[0].plate, boxed(1.0, 2.0, 30.0, 10.0));
        assert_eq!(
            (got[0].class, got[0].note.as_str()),
            (VehicleClass::Car, "sedan")
        );
        assert_eq!(
            (got[1].class, got[1].note.as_str()),
            (VehicleClass::TractorTrailer, "")
        );
        assert_eq!(got[2].note, "plate only");
    }

    #[test]
    fn a_bad_label_line_is_refused_with_its_line_and_the_fix() {
        let err = |text: &str| {
            parse_type_labels(text, Path::new("/d"), Path::new("t.tsv"))
                .unwrap_err()
                .to_string()
        };
        let e = err("# c\na.jpg 1 2 3 4 lorry\n");
        assert!(e.contains("t.tsv line 2"), "{e}");
        assert!(e.contains("\"lorry\" is not a vehicle class"), "{e}");
        assert!(e.contains("tractor-trailer"), "{e}");
        assert!(err("a.jpg 1 2 x 4 car").contains("\"x\" is not a number"));
        assert!(err("a.jpg 1 2 0 4 car").contains("empty"));
        assert!(err("a.jpg 1 2 3 car").contains("expected"));
        assert!(err("# only comments\n").contains("no vehicle-type labels"));
    }

    #[test]
    fn the_vehicle_holding_the_plate_centre_is_the_one_scored() {
        let plate = boxed(100.0, 100.0, 40.0, 10.0);
        let big = boxed(0.0, 0.0, 400.0, 300.0);
        let small = boxed(80.0, 50.0, 100.0, 80.0);
        let aside = boxed(300.0, 0.0, 50.0, 50.0);
        let p = seen(&[(big, "truck"), (small, "car"), (aside, "bus")]);
        assert_eq!(
            reported_type(&plate, Some(&p)),
            "car",
            "the smallest holder"
        );
        let p = seen(&[(aside, "bus")]);
        assert_eq!(reported_type(&plate, Some(&p)), NOT_FOUND);
        assert_eq!(reported_type(&plate, None), NOT_FOUND);
    }

    #[test]
    fn the_matrix_counts_each_labelled_vehicle_once_with_precision_and_recall() {
        let on = boxed(50.0, 50.0, 200.0, 150.0);
        let labels = [
            label(VehicleClass::Car, "sedan"),
            label(VehicleClass::Car, "pickup"),
            label(VehicleClass::Car, "pickup"),
            label(VehicleClass::Van, ""),
            label(VehicleClass::Truck, "box-truck"),
            label(VehicleClass::Unknown, "cut-off"),
            label(VehicleClass::Car, "suv"),
        ];
        let preds = [
            Some(seen(&[(on, "car")])),
            Some(seen(&[(on, "truck")])),
            Some(seen(&[(on, "unknown")])),
            Some(seen(&[(on, "truck")])),
            Some(seen(&[(on, "truck")])),
            Some(seen(&[(on, "car")])),
            None,
        ];
        let s = score_types(&labels, &preds);
        assert_eq!(
            (s.vehicles, s.unidentified, s.failed, s.correct),
            (6, 1, 1, 2)
        );
        assert_eq!(s.matrix["car"]["car"], 1);
        assert_eq!(s.matrix["car"]["truck"], 1);
        assert_eq!(s.matrix["car"]["unknown"], 1);
        assert_eq!(s.matrix["car"][NOT_FOUND], 1, "a failed image is not found");
        assert_eq!(s.matrix["van"]["truck"], 1);
        assert!(
            !s.matrix.contains_key("unknown"),
            "unknown labels are left out"
        );
        let total: usize = s.matrix.values().flat_map(|r| r.values()).sum();
        assert_eq!(total, s.vehicles);
        let class = |name: &str| s.classes.iter().find(|c| c.class == name).unwrap();
        let truck = class("truck");
        assert_eq!((truck.labelled, truck.reported, truck.correct), (1, 3, 1));
        assert!((truck.precision.unwrap() - 100.0 / 3.0).abs() < 1e-9);
        assert!((truck.recall.unwrap() - 100.0).abs() < 1e-9);
        let car = class("car");
        assert_eq!((car.labelled, car.reported, car.correct), (4, 1, 1));
        assert_eq!(class("van").precision, None, "never reported");
        assert_eq!(class("van").recall, Some(0.0));
        assert_eq!(class("bus").recall, None, "nothing labelled bus");
        assert_eq!(s.by_note["car (pickup)"]["truck"], 1);
        assert_eq!(s.by_note["van"]["truck"], 1);
        assert!((s.accuracy() - 100.0 / 3.0).abs() < 1e-9);

        let text = types_table(&s);
        assert!(
            text.contains("6 labelled vehicles scored, 2 exact (33.3%); 1 labelled unknown"),
            "{text}"
        );
        let header = text.lines().nth(1).unwrap();
        let cols: Vec<&str> = header
            .split("  ")
            .filter(|c| !c.trim().is_empty())
            .collect();
        assert_eq!(
            cols.iter().map(|c| c.trim()).collect::<Vec<_>>(),
            [
                "labelled \\ reported",
                "car",
                "van",
                "truck",
                "unknown",
                "not found"
            ],
            "{text}"
        );
        let row = |name: &str| -> Vec<String> {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap()
                .split_whitespace()
                .skip(1)
                .map(str::to_string)
                .collect()
        };
        assert_eq!(row("car")[..5], ["1", "0", "1", "1", "1"]);
        assert_eq!(row("van")[..5], ["0", "0", "1", "0", "0"]);
        assert!(text.contains("never reported: motorcycle, van, bus, tractor-trailer, special"));
        assert!(
            text.contains("  car (pickup): reported truck 1, unknown 1"),
            "{text}"
        );
        assert!(
            !text.contains("car (sedan)"),
            "a note reported as labelled is not listed"
        );
    }
}
