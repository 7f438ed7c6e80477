//! A generated road scene with its ground truth, for tests and for trying the system out.
//!
//! # Contract
//!
//! - The clip (1280×720, 25 fps, H.264 in MP4, encoded by the same GStreamer pipeline as the
//!   demo clip) and its manifest (JSON beside it, same name with `.json`) come from one
//!   declarative list of vehicles ([`SceneSpec`]). Every vehicle's place on every frame comes
//!   from [`SceneManifest::placement`], which both the drawing and the truth use, so the boxes,
//!   the crossing frames and the pixels agree exactly. The drawing is deterministic, as the
//!   demo clip's is.
//! - The road has two lanes below the horizon ([`HORIZON`]): `lane-1`, the left half, its
//!   vehicles centred at 30% of the width, and `lane-2`, the right half, centred at 70%. The
//!   counting line runs from `[0, 0.62]` to `[1, 0.62]` ([`COUNTING_LINE`]); a vehicle's
//!   reference point is the bottom centre of its box (the line its wheels stand on).
//! - Vehicles are seen from behind. One driving [`Direction::Towards`] comes into view with its
//!   wheels at [`FAR_Y`], moves down the frame growing from [`FAR_WIDTH`] to [`NEAR_WIDTH`] and
//!   leaves the view at [`NEAR_Y`]; one driving [`Direction::Away`] does the reverse. Like the
//!   demo clip's vehicles, they appear and disappear whole at those two ends; so that a
//!   tracker can tell them apart, no vehicle of the default scene comes into view within
//!   [`REAPPEAR_GAP`] frames (2 s) of another leaving the view where it comes into view.
//! - Every plate lies inside the part of the rear it is mounted on ([`Placement::body_box`])
//!   with a margin all round, and wholly above the bumper ([`Placement::bumper_box`]): a plate
//!   touching the bumper loses its last character to the plate reader.
//! - Two types, told apart by the COCO vehicle detector (`models/vehicle_detector.onnx`, with
//!   the type classifier `models/vehicle_types.onnx` after it): a
//!   box truck (`truck`) and a bus (`bus`). On the default scene, encoded and decoded again,
//!   every vehicle is classed as its type at 0.65 or more on every frame from 15 before to 15
//!   after its crossing; the exceptions elsewhere are frames at the ends of the view, and V3
//!   while it is right behind V1, when the detector returns one box for both.
//! - The clip is written to `<name>.mp4.part` and renamed when the encoder has finished; the
//!   manifest is written after that, so a manifest beside a clip means the clip was complete.
//!   Nothing is synced to disk: after a crash, [`ensure_scene`] draws again a clip whose
//!   manifest is missing, unreadable or different from today's scene ([`SCENE_VERSION`]).

mod bus;
mod kz_photo;
mod kz_set;
mod manifest;
mod paint;
mod render;
mod spec;
#[cfg(test)]
mod tests;
mod truck;

use std::path::{Path, PathBuf};

use ab_glyph::FontVec;
use anyhow::{Context, Result};

use crate::encode::write_mp4;
use crate::font::load_font;

pub use kz_photo::kz_photo_sample;
pub use kz_set::{KzFonts, KzSample, kz_sample};
pub use manifest::{
    Direction, FAR_WIDTH, FAR_Y, HORIZON, Lane, LaneZone, NEAR_WIDTH, NEAR_Y, PixelBox, Placement,
    Point, SceneManifest, SceneRules, SceneVehicle, StopFrames, VehicleType,
};
pub use render::render_scene_frame;
pub use spec::{REAPPEAR_GAP, SceneSpec, StopSpec, VehicleSpec, default_scene, lanes, rules};

/// Version of the scene's drawing and motion; bump it whenever either changes.
pub const SCENE_VERSION: u32 = 2;

/// Frame size and rate of the scene clip.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 720;
pub const FPS: u32 = 25;

/// The counting line, from A to B in relative coordinates.
pub const COUNTING_LINE: [Point; 2] = [[0.0, 0.62], [1.0, 0.62]];

/// Zone ids of the two lanes.
pub const LANE_1: &str = "lane-1";
pub const LANE_2: &str = "lane-2";

/// Names of the rules of the scene, shared by its configuration and its tests.
pub const RULE_WANTED: &str = "wanted";
pub const RULE_BUS_BAN: &str = "bus-ban";
pub const RULE_NO_PLATE: &str = "no-plate";
pub const RULE_WRONG_WAY: &str = "wrong-way";

/// The hotlist of the scene: `123ABC01` exactly as V1 carries it, and `777KZAO2`, one
/// character away from V3's `777KZA02` (a fuzzy match).
pub const HOTLIST: &[&str] = &["123ABC01", "777KZAO2"];

/// The lane in which buses are banned.
pub const BUS_BAN_LANE: &str = LANE_2;

/// The manifest of the default scene.
#[must_use]
pub fn default_manifest() -> SceneManifest {
    default_scene().manifest()
}

/// Path of the manifest written beside a scene clip.
#[must_use]
pub fn scene_manifest_path(clip: &Path) -> PathBuf {
    clip.with_extension("json")
}

/// Writes the default scene to `out` (H.264 in MP4) and its manifest beside it.
pub fn write_scene(out: &Path) -> Result<SceneManifest> {
    write_scene_with(&default_manifest(), out)
}

/// Writes the scene described by `m` to `out` and its manifest beside it.
pub fn write_scene_with(m: &SceneManifest, out: &Path) -> Result<SceneManifest> {
    let font = load_font()?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_mp4(out, (m.width, m.height, m.fps), m.frames, |i| {
        render_scene_frame(m, &font, i)
    })
    .with_context(|| format!("cannot write the scene clip {}", out.display()))?;
    let path = scene_manifest_path(out);
    std::fs::write(&path, serde_json::to_string_pretty(m)?)
        .with_context(|| format!("cannot write the scene manifest {}", path.display()))?;
    Ok(m.clone())
}

/// Reads the manifest of the default scene's clip at `out`, or writes the clip when it is
/// missing or its manifest differs from today's default scene.
pub fn ensure_scene(out: &Path) -> Result<SceneManifest> {
    ensure_scene_with(&default_manifest(), out)
}

/// Reads the manifest of the clip at `out` when it matches `m`, or writes the clip.
pub fn ensure_scene_with(m: &SceneManifest, out: &Path) -> Result<SceneManifest> {
    if out.is_file()
        && let Ok(text) = std::fs::read_to_string(scene_manifest_path(out))
        && let Ok(found) = serde_json::from_str::<SceneManifest>(&text)
        && found == *m
    {
        return Ok(found);
    }
    write_scene_with(m, out)
}

/// The font plates are drawn with (DejaVu Sans Bold), for [`render_scene_frame`]; the error
/// names the package to install.
pub fn font() -> Result<FontVec> {
    load_font()
}

/// Saves frame `index` of the default scene as a PNG (for looking at the scene without a
/// video player, or for probing a detector).
pub fn save_scene_frame_png(index: u64, out: &Path) -> Result<()> {
    let font = load_font()?;
    render_scene_frame(&default_manifest(), &font, index)
        .save(out)
        .with_context(|| format!("cannot save frame {index} to {}", out.display()))?;
    Ok(())
}
