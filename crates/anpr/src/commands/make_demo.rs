//! `anpr make-demo`: writes the synthesised demo clip and its manifest.

use anyhow::Result;

use crate::MakeDemoArgs;
use crate::exit::ExitStatus;

/// Drawing and encoding the clip fail only for want of the font, GStreamer's plugins or a
/// writable output folder, so every error of this command is a setup error.
#[allow(clippy::print_stdout)]
pub(crate) fn make_demo(args: &MakeDemoArgs) -> Result<ExitStatus> {
    if args.scene {
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| "var/scene/scene.mp4".into());
        let m = anpr_scene::road::write_scene(&out).map_err(anpr_pipeline::StartError::from)?;
        println!(
            "wrote {} ({} frames) and its truth {}",
            out.display(),
            m.frames,
            anpr_scene::road::scene_manifest_path(&out).display()
        );
        for v in &m.vehicles {
            println!(
                "  {} {:<9} {} {} {:<7} crosses the line at frame {:>3}{}  violations: {}",
                v.id,
                v.plate.as_deref().unwrap_or("(none)"),
                v.kind.as_str(),
                v.lane.id(),
                match v.direction {
                    anpr_scene::road::Direction::Towards => "towards",
                    anpr_scene::road::Direction::Away => "away",
                },
                v.crossing_frame,
                v.stop.as_ref().map_or(String::new(), |s| format!(
                    ", stops frames {}-{}",
                    s.from_frame, s.to_frame
                )),
                if v.violations.is_empty() {
                    "none".to_string()
                } else {
                    v.violations.join(", ")
                }
            );
        }
        return Ok(ExitStatus::Success);
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| "var/demo/demo.mp4".into());
    let m = anpr_scene::clip::write_clip(&out).map_err(anpr_pipeline::StartError::from)?;
    println!(
        "wrote {} ({} frames, plates {:?})",
        out.display(),
        m.frames,
        m.vehicles.iter().map(|v| &v.plate).collect::<Vec<_>>()
    );
    Ok(ExitStatus::Success)
}
