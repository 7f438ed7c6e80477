//! `anpr camera-sim`: a camera without hardware, serving a clip over RTSP until stopped.

use std::io::Write;

use anyhow::Result;

use crate::CameraSimArgs;
use crate::exit::ExitStatus;

/// Prints the stream's URL once the server listens, then serves until Ctrl-C. A clip or port
/// that does not work is a setup error.
#[allow(clippy::print_stdout)]
pub(crate) fn camera_sim(args: &CameraSimArgs) -> Result<ExitStatus> {
    let clip = if let Some(clip) = &args.clip {
        clip.clone()
    } else {
        let out = std::path::PathBuf::from("var/demo/demo.mp4");
        anpr_scene::clip::ensure_clip(&out).map_err(anpr_pipeline::StartError::from)?;
        out
    };
    let opts = anpr_camsim::SimOptions {
        clip,
        address: args.address.clone(),
        port: args.port,
        mount: args.mount.clone(),
        truth: args.truth.clone(),
        mark_frames: args.mark_frames,
    };
    let sim = anpr_camsim::CameraSim::start(&opts)
        .map_err(|e| anpr_pipeline::StartError::from(anyhow::Error::new(e)))?;
    let f = sim.format();
    println!(
        "{}  ({}x{} at {}/{} fps, looping {})",
        sim.url(),
        f.width,
        f.height,
        f.fps.0,
        f.fps.1,
        opts.clip.display()
    );
    std::io::stdout().flush()?;
    sim.wait()?;
    Ok(ExitStatus::Success)
}
