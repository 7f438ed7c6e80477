//! `anpr eval --dataset DIR`: plate detection and reading scored on labelled images, with a
//! baseline's predictions beside them when given; as JSON and as an HTML page too when asked.

use anpr_measure::{eval, report};
use anyhow::{Context, Result};

use crate::EvalArgs;
use crate::exit::ExitStatus;

#[allow(clippy::print_stdout)]
pub(crate) fn eval(args: &EvalArgs) -> Result<ExitStatus> {
    let cfg = anpr_config::load(&args.config)?;
    let mut rec = anpr_pipeline::load_recognizer(&cfg)?;
    let samples = eval::load_dataset(&args.dataset)?;
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
    if let Some(path) = &args.json {
        let report = match &base {
            None => serde_json::to_value(&scores)?,
            Some(b) => serde_json::json!({"rust": scores, "baseline": b}),
        };
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
