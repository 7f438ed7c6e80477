//! The demo clip: vehicles with Kazakhstan plates drive towards the camera, one every 2 s,
//! alternating lanes. A manifest beside the clip lists the plates it shows.

use std::path::{Path, PathBuf};

use ab_glyph::FontVec;
use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use imageproc::drawing::draw_filled_rect_mut;
use imageproc::rect::Rect;
use serde::{Deserialize, Serialize};

use crate::encode::write_mp4;
use crate::font::load_font;
use crate::vehicle::draw_vehicle;

/// Version of the clip's drawing; bump it whenever the drawing changes.
pub const CLIP_VERSION: u32 = 2;

/// Frame size and rate of the demo clip.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 720;
pub const FPS: u32 = 25;

/// One vehicle of the clip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DemoVehicle {
    /// Plate text without separators, e.g. `123ABC01`.
    pub plate: String,
    /// What the vehicle is drawn as.
    pub class: String,
    /// First and last frame in which it is visible.
    pub first_frame: u64,
    pub last_frame: u64,
}

/// What the clip shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Version of the drawing code; a clip from another version is drawn again.
    pub version: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u64,
    pub vehicles: Vec<DemoVehicle>,
}

/// The plates of the demo: 2012+ private and legal-entity formats of several regions.
/// Every vehicle is drawn as a pickup truck seen from behind, which the COCO vehicle
/// detector classes as `truck`.
pub const DEMO_PLATES: &[(&str, &str, &str)] = &[
    ("123ABC01", "truck", "2012 private, Astana"),
    ("777KZA02", "truck", "2012 private, Almaty"),
    ("505AB17", "truck", "2012 legal entity, Shymkent"),
    ("248EKM09", "truck", "2012 private, Karaganda"),
    ("901TRK14", "truck", "2012 private, Pavlodar"),
];

pub(crate) fn draw_road(img: &mut RgbImage) {
    for (y, row) in img.enumerate_rows_mut() {
        let shade = 70 + (y * 40 / HEIGHT) as u8;
        for (_, _, p) in row {
            *p = Rgb([shade, shade, shade + 4]);
        }
    }
    draw_filled_rect_mut(
        img,
        Rect::at(0, 0).of_size(WIDTH, 120),
        Rgb([150, 180, 210]),
    );
    for k in 0..12 {
        let y = 130 + k * 55;
        draw_filled_rect_mut(
            img,
            Rect::at(WIDTH as i32 / 2 - 4, y).of_size(8, 28),
            Rgb([230, 230, 230]),
        );
    }
}

/// The vehicles of the full demo clip and their timing.
#[must_use]
pub fn manifest() -> Manifest {
    manifest_with(DEMO_PLATES.len())
}

/// A clip with the first `vehicles` demo vehicles (shorter clips keep tests quick).
#[must_use]
pub fn manifest_with(vehicles: usize) -> Manifest {
    let per_vehicle = u64::from(FPS) * 3; // 3 s on screen each
    let stagger = u64::from(FPS) * 2; // a new vehicle every 2 s
    let vehicles: Vec<DemoVehicle> = DEMO_PLATES
        .iter()
        .take(vehicles)
        .enumerate()
        .map(|(i, (plate, class, _))| DemoVehicle {
            plate: (*plate).to_string(),
            class: (*class).to_string(),
            first_frame: i as u64 * stagger,
            last_frame: i as u64 * stagger + per_vehicle - 1,
        })
        .collect();
    let frames = vehicles
        .last()
        .map_or(u64::from(FPS), |v| v.last_frame + u64::from(FPS) / 2);
    Manifest {
        version: CLIP_VERSION,
        width: WIDTH,
        height: HEIGHT,
        fps: FPS,
        frames,
        vehicles,
    }
}

/// Draws frame `index` of the clip.
#[must_use]
pub fn render_frame(m: &Manifest, font: &FontVec, index: u64) -> RgbImage {
    const COLOURS: [[u8; 3]; 5] = [
        [170, 30, 35],
        [30, 60, 150],
        [210, 210, 215],
        [20, 110, 60],
        [200, 150, 30],
    ];
    let mut img = RgbImage::new(m.width, m.height);
    draw_road(&mut img);
    for (i, v) in m.vehicles.iter().enumerate() {
        if index < v.first_frame || index > v.last_frame {
            continue;
        }
        let t = (index - v.first_frame) as f32 / (v.last_frame - v.first_frame) as f32;
        // Drives down the frame and grows as it approaches; alternates lanes.
        let w = (240.0 + 110.0 * t) as u32;
        let bottom = (330.0 + 360.0 * t) as i32;
        let lane = if i % 2 == 0 { 0.30 } else { 0.70 };
        let cx = (m.width as f32 * lane) as i32;
        draw_vehicle(
            &mut img,
            font,
            &v.plate,
            Rgb(COLOURS[i % COLOURS.len()]),
            cx,
            bottom,
            w,
        );
    }
    img
}

/// Writes the full demo clip to `out` (H.264 in MP4) and its manifest beside it (`.json`).
pub fn write_clip(out: &Path) -> Result<Manifest> {
    write_clip_with(&manifest(), out)
}

/// Writes the clip described by `m` to `out` and its manifest beside it.
pub fn write_clip_with(m: &Manifest, out: &Path) -> Result<Manifest> {
    let m = m.clone();
    let font = load_font()?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_mp4(out, (m.width, m.height, m.fps), m.frames, |i| {
        render_frame(&m, &font, i)
    })?;
    std::fs::write(manifest_path(out), serde_json::to_string_pretty(&m)?)?;
    Ok(m)
}

/// Path of the manifest written beside a clip.
#[must_use]
pub fn manifest_path(clip: &Path) -> PathBuf {
    clip.with_extension("json")
}

/// Reads the manifest of an existing clip, or writes the clip when it is missing or stale.
pub fn ensure_clip(out: &Path) -> Result<Manifest> {
    if out.is_file()
        && let Ok(text) = std::fs::read_to_string(manifest_path(out))
        && let Ok(m) = serde_json::from_str::<Manifest>(&text)
        && m == manifest()
    {
        return Ok(m);
    }
    write_clip(out)
}

/// Saves frame `index` as a PNG (for looking at the demo without a video player).
pub fn save_frame_png(index: u64, out: &Path) -> Result<()> {
    let m = manifest();
    let font = load_font()?;
    render_frame(&m, &font, index).save(out)?;
    Ok(())
}
