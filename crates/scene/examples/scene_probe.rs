//! Looks at the default road scene from outside: saves frames as PNGs (for the eye, or for
//! running a detector over them) with the scene's manifest and each saved frame's vehicle and
//! plate boxes, or writes the whole clip.
//!
//! `cargo run -p anpr-scene --example scene_probe -- frames <dir> <frame> [<frame> ...]` writes
//! `f0000.png`, …, `manifest.json` and `boxes.json` (frame → the vehicles in view, farthest
//! first, boxes as `[x, y, w, h]` in pixels) into `<dir>`.
//!
//! `cargo run -p anpr-scene --example scene_probe -- clip <file.mp4>` writes the clip and its
//! manifest beside it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: scene_probe frames <dir> <frame>... | scene_probe clip <file.mp4>";
    let command = args.next().context(usage)?;
    let target = PathBuf::from(args.next().context(usage)?);
    match command.as_str() {
        "clip" => {
            anpr_scene::road::write_scene(&target)?;
            Ok(())
        }
        "frames" => save_frames(&target, args),
        _ => bail!("{usage}"),
    }
}

fn save_frames(dir: &std::path::Path, frames: impl Iterator<Item = String>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let m = anpr_scene::road::default_manifest();
    std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&m)?)?;
    let mut boxes = Map::new();
    for a in frames {
        let i: u64 = a
            .parse()
            .with_context(|| format!("{a} is not a frame number"))?;
        anpr_scene::road::save_scene_frame_png(i, &dir.join(format!("f{i:04}.png")))?;
        let in_view: Vec<Value> = m
            .in_view(i)
            .iter()
            .map(|(v, p)| {
                let (b, pl) = (p.vehicle_box(), p.plate_box());
                json!({
                    "id": v.id,
                    "type": v.kind.as_str(),
                    "box": [b.x, b.y, b.w, b.h],
                    "plate_box": v.plate.as_ref().map(|_| json!([pl.x, pl.y, pl.w, pl.h])),
                })
            })
            .collect();
        boxes.insert(i.to_string(), Value::Array(in_view));
    }
    std::fs::write(dir.join("boxes.json"), serde_json::to_string(&boxes)?)?;
    Ok(())
}
