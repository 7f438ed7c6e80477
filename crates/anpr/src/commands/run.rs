//! `anpr run`: the device with a configuration file until its cameras end or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::RunArgs;
use crate::exit::ExitStatus;

/// A run with a camera fault ran but failed. The status page (`[status]`) is served while
/// the device runs; when it cannot be, the device runs without it.
#[allow(clippy::print_stdout)]
pub(crate) fn run(args: &RunArgs) -> Result<ExitStatus> {
    let cfg = anpr_config::load(&args.config)?;
    let counters = Arc::new(anpr_pipeline::DeviceCounters::default());
    let uplink = Arc::default();
    let opts = anpr_pipeline::RunOptions {
        drain_timeout: Duration::from_secs_f64(args.drain_timeout),
        delivered: None,
        counters: counters.clone(),
        uplink: Arc::clone(&uplink),
    };
    let s = super::runtime()?.block_on(async {
        // Served until the run ends (dropped with `_status`).
        let _status = match anpr_status::start(&cfg, counters, uplink).await {
            Ok(Some(server)) => {
                println!(
                    "status page: {} (metrics: {}metrics)",
                    server.url, server.url
                );
                Some(server)
            }
            Ok(None) => None,
            Err(e) => {
                println!("status page: not served: {e}");
                None
            }
        };
        anpr_pipeline::run(cfg, opts).await
    })?;
    super::print_summary(&s);
    Ok(ExitStatus::success_if(s.camera_errors.is_empty()))
}
