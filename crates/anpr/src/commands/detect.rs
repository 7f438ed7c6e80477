//! `anpr detect PATH...`: plates found and read in images or folders, one JSON line per image.

use anyhow::Result;

use crate::DetectArgs;
use crate::exit::ExitStatus;

/// A run in which some image could not be processed ran but failed.
#[allow(clippy::print_stdout)]
pub(crate) fn detect(args: &DetectArgs) -> Result<ExitStatus> {
    let cfg = anpr_config::load(&args.config)?;
    let mut rec = anpr_pipeline::load_recognizer(&cfg)?;
    let failed = anpr_measure::detect::run(&mut rec, &args.paths, |line| println!("{line}"));
    Ok(ExitStatus::success_if(failed == 0))
}
