//! `anpr make-demo`: writes the synthesised demo clip and its manifest.

use anyhow::Result;

use crate::MakeDemoArgs;
use crate::exit::ExitStatus;

/// Drawing and encoding the clip fail only for want of the font, GStreamer's plugins or a
/// writable output folder, so every error of this command is a setup error.
#[allow(clippy::print_stdout)]
pub(crate) fn make_demo(args: &MakeDemoArgs) -> Result<ExitStatus> {
    let m = anpr_scene::clip::write_clip(&args.out).map_err(anpr_pipeline::StartError::from)?;
    println!(
        "wrote {} ({} frames, plates {:?})",
        args.out.display(),
        m.frames,
        m.vehicles.iter().map(|v| &v.plate).collect::<Vec<_>>()
    );
    Ok(ExitStatus::Success)
}
