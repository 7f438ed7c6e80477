//! The demo input: a clip synthesised on this machine in which vehicles with Kazakhstan
//! plates drive towards the camera. Frames are drawn here and encoded by a real GStreamer
//! pipeline (`appsrc ! videoconvert ! x264enc ! mp4mux`), so the demo needs no camera and
//! nothing from outside the project. A manifest beside the clip lists the plates it shows.

use std::path::{Path, PathBuf};

use ab_glyph::{FontVec, PxScale};
use anyhow::{Context, Result, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;
use serde::{Deserialize, Serialize};

/// Frame size and rate of the demo clip.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 720;
pub const FPS: u32 = 25;

/// Fonts tried in order (Debian's fonts-dejavu-core, installed by deploy/setup.sh).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
];

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
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u64,
    pub vehicles: Vec<DemoVehicle>,
}

/// The plates of the demo: 2012+ private and legal-entity formats of several regions.
pub const DEMO_PLATES: &[(&str, &str, &str)] = &[
    ("123ABC01", "car", "2012 private, Astana"),
    ("777KZA02", "car", "2012 private, Almaty"),
    ("505AB17", "van", "2012 legal entity, Shymkent"),
    ("248EKM09", "car", "2012 private, Karaganda"),
    ("901TRK14", "truck", "2012 private, Pavlodar"),
];

fn load_font() -> Result<FontVec> {
    for f in FONTS {
        if let Ok(bytes) = std::fs::read(f) {
            return FontVec::try_from_vec(bytes).map_err(|e| anyhow::anyhow!("font {f}: {e}"));
        }
    }
    bail!("no DejaVu Sans Bold font found ({}); run deploy/setup.sh (package fonts-dejavu-core)", FONTS.join(", "))
}

/// Splits `123ABC01` into the main part and the region (the last two digits).
fn split_region(plate: &str) -> (&str, &str) {
    plate.split_at(plate.len() - 2)
}

/// Draws a Kazakhstan 2012 plate of width `w` with its top-left corner at (x, y).
fn draw_plate(img: &mut RgbImage, font: &FontVec, plate: &str, x: i32, y: i32, w: u32) {
    let h = (w as f32 * 112.0 / 520.0).round() as u32;
    let black = Rgb([20, 20, 20]);
    draw_filled_rect_mut(img, Rect::at(x, y).of_size(w, h), Rgb([245, 245, 242]));
    for i in 0..2 {
        draw_hollow_rect_mut(img, Rect::at(x + i, y + i).of_size(w - 2 * i as u32, h - 2 * i as u32), black);
    }
    // Flag and KZ on the left.
    let fw = (w as f32 * 0.09) as u32;
    draw_filled_rect_mut(img, Rect::at(x + 4, y + 4).of_size(fw, h / 2), Rgb([0, 160, 200]));
    let small = PxScale::from(h as f32 * 0.3);
    draw_text_mut(img, black, x + 5, y + (h as f32 * 0.58) as i32, small, font, "KZ");
    // Main characters and the boxed region code.
    let (main, region) = split_region(plate);
    let main_left = x + fw as i32 + 10;
    let region_left = x + (w as f32 * 0.80) as i32;
    let room = (region_left - main_left - 6).max(1) as f32;
    let mut scale = PxScale::from(h as f32 * 0.80);
    let (mut tw, _) = text_size(scale, font, main);
    if tw as f32 > room {
        scale = PxScale::from(scale.y * room / tw as f32);
        tw = text_size(scale, font, main).0;
    }
    let spare = (region_left - main_left - tw as i32).max(0);
    draw_text_mut(img, black, main_left + spare / 2, y + ((h as f32 - scale.y) / 2.0) as i32, scale, font, main);
    draw_line_segment_mut(img, (region_left as f32, y as f32 + 3.0), (region_left as f32, (y + h as i32) as f32 - 3.0), black);
    draw_line_segment_mut(img, (region_left as f32 + 1.0, y as f32 + 3.0), (region_left as f32 + 1.0, (y + h as i32) as f32 - 3.0), black);
    let rscale = PxScale::from(h as f32 * 0.7);
    draw_text_mut(img, black, region_left + 6, y + (h as f32 * 0.14) as i32, rscale, font, region);
}

/// Draws a vehicle seen from the front, centred at `cx`, bottom at `bottom`, `w` wide.
fn draw_vehicle(img: &mut RgbImage, font: &FontVec, v: &DemoVehicle, colour: Rgb<u8>, cx: i32, bottom: i32, w: u32) {
    let tall = match v.class.as_str() {
        "truck" => 1.15,
        "van" => 0.95,
        _ => 0.62,
    };
    let h = (w as f32 * tall) as u32;
    let left = cx - w as i32 / 2;
    let top = bottom - h as i32;
    // Wheels, body, windscreen, lights, grille and bumper.
    let wheel = Rgb([25, 25, 25]);
    let ww = w / 7;
    draw_filled_rect_mut(img, Rect::at(left + 4, bottom - (h / 8) as i32).of_size(ww, h / 8 + 6), wheel);
    draw_filled_rect_mut(img, Rect::at(left + w as i32 - 4 - ww as i32, bottom - (h / 8) as i32).of_size(ww, h / 8 + 6), wheel);
    draw_filled_rect_mut(img, Rect::at(left, top + (h / 3) as i32).of_size(w, h - h / 3 - h / 10), colour);
    let roof_inset = (w / 8) as i32;
    draw_filled_rect_mut(img, Rect::at(left + roof_inset, top).of_size(w - 2 * roof_inset as u32, h / 3 + 2), colour);
    draw_filled_rect_mut(
        img,
        Rect::at(left + roof_inset + 8, top + 8).of_size(w - 2 * roof_inset as u32 - 16, (h / 3).saturating_sub(10).max(4)),
        Rgb([60, 80, 100]),
    );
    let light_y = top + (h as f32 * 0.48) as i32;
    draw_filled_rect_mut(img, Rect::at(left + 10, light_y).of_size(w / 6, h / 12 + 2), Rgb([250, 245, 210]));
    draw_filled_rect_mut(img, Rect::at(left + w as i32 - 10 - (w / 6) as i32, light_y).of_size(w / 6, h / 12 + 2), Rgb([250, 245, 210]));
    draw_filled_rect_mut(img, Rect::at(left + (w / 4) as i32, light_y).of_size(w / 2, h / 12 + 2), Rgb([40, 40, 40]));
    let bumper_y = bottom - (h as f32 * 0.25) as i32;
    draw_filled_rect_mut(img, Rect::at(left - 4, bumper_y).of_size(w + 8, h / 7), Rgb([50, 50, 55]));
    // The plate sits on the bumper, 40% of the vehicle's width.
    let pw = (w as f32 * 0.40) as u32;
    let ph = (pw as f32 * 112.0 / 520.0) as i32;
    draw_plate(img, font, &v.plate, cx - pw as i32 / 2, bumper_y + (h as i32 / 14) - ph / 2, pw);
}

fn draw_road(img: &mut RgbImage) {
    for (y, row) in img.enumerate_rows_mut() {
        let shade = 70 + (y * 40 / HEIGHT) as u8;
        for (_, _, p) in row {
            *p = Rgb([shade, shade, shade + 4]);
        }
    }
    draw_filled_rect_mut(img, Rect::at(0, 0).of_size(WIDTH, 120), Rgb([150, 180, 210]));
    for k in 0..12 {
        let y = 130 + k * 55;
        draw_filled_rect_mut(img, Rect::at(WIDTH as i32 / 2 - 4, y).of_size(8, 28), Rgb([230, 230, 230]));
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
    let frames = vehicles.last().map_or(u64::from(FPS), |v| v.last_frame + u64::from(FPS) / 2);
    Manifest { width: WIDTH, height: HEIGHT, fps: FPS, frames, vehicles }
}

/// Draws frame `index` of the clip.
#[must_use]
pub fn render_frame(m: &Manifest, font: &FontVec, index: u64) -> RgbImage {
    const COLOURS: [[u8; 3]; 5] = [[170, 30, 35], [30, 60, 150], [210, 210, 215], [20, 110, 60], [200, 150, 30]];
    let mut img = RgbImage::new(m.width, m.height);
    draw_road(&mut img);
    for (i, v) in m.vehicles.iter().enumerate() {
        if index < v.first_frame || index > v.last_frame {
            continue;
        }
        let t = (index - v.first_frame) as f32 / (v.last_frame - v.first_frame) as f32;
        // Drives down the frame and grows as it approaches; alternates lanes.
        let w = (260.0 + 260.0 * t) as u32;
        let bottom = (260.0 + 470.0 * t) as i32;
        let lane = if i % 2 == 0 { 0.30 } else { 0.70 };
        let cx = (m.width as f32 * lane) as i32;
        draw_vehicle(&mut img, font, v, Rgb(COLOURS[i % COLOURS.len()]), cx, bottom, w);
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
    gst::init().context("GStreamer could not be initialised; run deploy/setup.sh")?;
    let tmp = out.with_extension("mp4.part");
    let desc = format!(
        "appsrc name=src format=time is-live=false caps=video/x-raw,format=RGB,width={},height={},framerate={}/1 \
         ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=veryfast tune=zerolatency key-int-max=25 bitrate=6000 \
         ! mp4mux ! filesink location=\"{}\"",
        m.width,
        m.height,
        m.fps,
        tmp.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .context("the encoder pipeline could not be built; x264enc comes with gstreamer1.0-plugins-ugly (deploy/setup.sh)")?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .context("appsrc missing")?;
    pipeline.set_state(gst::State::Playing)?;
    let frame_ns = 1_000_000_000 / u64::from(m.fps);
    for i in 0..m.frames {
        let img = render_frame(&m, &font, i);
        let mut buf = gst::Buffer::from_mut_slice(img.into_raw());
        {
            let b = buf.get_mut().context("fresh buffer")?;
            b.set_pts(gst::ClockTime::from_nseconds(i * frame_ns));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
        }
        src.push_buffer(buf).map_err(|e| anyhow::anyhow!("encoder refused a frame: {e:?}"))?;
    }
    src.end_of_stream().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let bus = pipeline.bus().context("pipeline without bus")?;
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(300), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => bail!("encoding the demo clip failed: {}", e.error()),
        _ => bail!("encoding the demo clip did not finish within 300 s"),
    }
    std::fs::rename(&tmp, out)?;
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
