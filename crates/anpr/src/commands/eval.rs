//! `anpr eval --dataset DIR`: plate detection and reading scored on labelled images, with a
//! baseline's predictions beside them when given; as JSON and as an HTML page too when asked.
//! With `--vehicle-types FILE`, also the vehicle types reported against types labelled by eye
//! (a confusion matrix, [`anpr_measure::vehicle_types`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anpr_measure::eval::{Prediction, Sample};
use anpr_measure::vehicle_types::{self, TypeLabel};
use anpr_measure::{eval, report};
use anpr_vision::Recognizer;
use anyhow::{Context, Result};

use crate::EvalArgs;
use crate::exit::ExitStatus;

#[allow(clippy::print_stdout)]
pub(crate) fn eval(args: &EvalArgs) -> Result<ExitStatus> {
    let cfg = anpr_config::load(&args.config)?;
    let mut rec = anpr_pipeline::load_recognizer(&cfg)?;
    let samples = eval::load_dataset(&args.dataset)?;
    // Read before the long run, so that a bad label file is refused at once.
    let type_labels = args
        .vehicle_types
        .as_deref()
        .map(|p| vehicle_types::load_type_labels(p, &args.dataset))
        .transpose()?;
    let base = args
        .baseline
        .as_deref()
        .map(|p| eval::load_predictions(p, &samples))
        .transpose()?;
    let predictions = eval::predict(&mut rec, &samples, |i, n| {
        if i % 25 == 0 {
            eprintln!("eval: {i}/{n} images");
        }
    });
    let scores = eval::score(&samples, &predictions);
    let base = base.map(|p| eval::score(&samples, &p));
    print!("{}", eval::table(&scores, base.as_ref()));
    let types = type_labels.map(|labels| {
        let typed = type_predictions(&mut rec, &labels, &samples, &predictions);
        vehicle_types::score_types(&labels, &typed)
    });
    if let Some(t) = &types {
        print!("{}", vehicle_types::types_table(t));
    }
    if let Some(path) = &args.json {
        let mut report = match &base {
            None => serde_json::to_value(&scores)?,
            Some(b) => serde_json::json!({"rust": scores, "baseline": b}),
        };
        if let (Some(t), Some(object)) = (&types, report.as_object_mut()) {
            object.insert("vehicle_types".into(), serde_json::to_value(t)?);
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        let page = report::eval_page(&report::EvalPage {
            dataset: &args.dataset.display().to_string(),
            samples: &samples,
            predictions: &predictions,
            scores: &scores,
            baseline: base.as_ref(),
        });
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitStatus::Success)
}

/// One prediction per vehicle-type label: the plate evaluation's own for an image it already
/// ran (the same file), the recognizer run afresh on any other image.
fn type_predictions(
    rec: &mut Recognizer,
    labels: &[TypeLabel],
    samples: &[Sample],
    predictions: &[Option<Prediction>],
) -> Vec<Option<Prediction>> {
    let key = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut known: HashMap<PathBuf, Option<Prediction>> = samples
        .iter()
        .zip(predictions)
        .map(|(s, p)| (key(&s.image), p.clone()))
        .collect();
    let fresh: Vec<Sample> = labels
        .iter()
        .filter(|l| !known.contains_key(&key(&l.image)))
        .map(|l| Sample {
            image: l.image.clone(),
            bbox: l.plate,
            text: String::new(),
            group: "vehicle-types".into(),
        })
        .collect();
    let more = eval::predict(rec, &fresh, |i, n| {
        if i % 25 == 0 {
            eprintln!("eval: vehicle types, {i}/{n} more images");
        }
    });
    for (s, p) in fresh.iter().zip(more) {
        known.insert(key(&s.image), p);
    }
    labels
        .iter()
        .map(|l| known.get(&key(&l.image)).cloned().flatten())
        .collect()
}
