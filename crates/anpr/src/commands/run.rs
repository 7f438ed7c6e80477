//! `anpr run`: the device with a configuration file until its cameras end or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::RunArgs;
use crate::exit::ExitStatus;

/// A run with a camera fault ran but failed.
pub(crate) fn run(args: &RunArgs) -> Result<ExitStatus> {
    let cfg = anpr_config::load(&args.config)?;
    let opts = anpr_pipeline::RunOptions {
        drain_timeout: Duration::from_secs_f64(args.drain_timeout),
        delivered: None,
        counters: Arc::default(),
        uplink: Arc::default(),
    };
    let s = super::runtime()?.block_on(anpr_pipeline::run(cfg, opts))?;
    super::print_summary(&s);
    Ok(ExitStatus::success_if(s.camera_errors.is_empty()))
}
