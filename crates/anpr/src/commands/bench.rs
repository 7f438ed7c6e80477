//! `anpr bench INPUT`: recognition throughput on a video file or an image folder, for the model
//! set and thread count of a configuration, as changed by the flags.

use anyhow::{Context, Result};

use crate::BenchArgs;
use crate::exit::{ExitStatus, Usage};

#[allow(clippy::print_stdout)]
pub(crate) fn bench(args: &BenchArgs) -> Result<ExitStatus> {
    if args.width.is_some_and(|w| !(64..=7680).contains(&w)) {
        return Err(Usage("--width must be 64 to 7680 pixels".into()).into());
    }
    let cfg = anpr_config::load(&args.config)?;
    let mut rc = anpr_pipeline::recognizer_config(&cfg);
    if let Some(n) = args.intra_threads {
        if !(1..=64).contains(&n) {
            return Err(Usage("--intra-threads must be 1 to 64".into()).into());
        }
        rc.intra_threads = n;
    }
    if args.no_vehicles {
        rc.vehicle_detector = None;
    }
    if args.sequential {
        rc.concurrent = false;
    }
    // The same check of the files against their pinned sha256 as every other loader.
    anpr_pipeline::verify_models(&cfg)?;
    anpr_vision::init_runtime(&cfg.models.path(&cfg.models.onnxruntime))?;
    let parallel = args
        .parallel_frames
        .unwrap_or(cfg.models.parallel_frames as usize);
    if !(1..=4).contains(&parallel) {
        return Err(Usage("--parallel-frames must be 1 to 4".into()).into());
    }
    let (threads, concurrent) = (rc.intra_threads, rc.concurrent);
    let mut recs = (0..parallel)
        .map(|_| anpr_vision::Recognizer::new(rc.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let report = anpr_measure::bench::run(
        &mut recs,
        &args.input,
        args.frames,
        args.width,
        threads,
        concurrent,
    )?;
    print!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, anpr_measure::report::bench_page(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitStatus::Success)
}
