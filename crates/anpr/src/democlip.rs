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
use imageproc::drawing::{
    draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut, draw_text_mut, text_size,
};
use imageproc::rect::Rect;
use serde::{Deserialize, Serialize};

/// Version of the clip's drawing; bump it whenever the drawing changes.
pub const CLIP_VERSION: u32 = 2;

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

fn load_font() -> Result<FontVec> {
    for f in FONTS {
        if let Ok(bytes) = std::fs::read(f) {
            return FontVec::try_from_vec(bytes).map_err(|e| anyhow::anyhow!("font {f}: {e}"));
        }
    }
    bail!(
        "no DejaVu Sans Bold font found ({}); run deploy/setup.sh (package fonts-dejavu-core)",
        FONTS.join(", ")
    )
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
        draw_hollow_rect_mut(
            img,
            Rect::at(x + i, y + i).of_size(w - 2 * i as u32, h - 2 * i as u32),
            black,
        );
    }
    // Flag and KZ on the left.
    let fw = (w as f32 * 0.09) as u32;
    draw_filled_rect_mut(
        img,
        Rect::at(x + 4, y + 4).of_size(fw, h / 2),
        Rgb([0, 160, 200]),
    );
    let small = PxScale::from(h as f32 * 0.3);
    draw_text_mut(
        img,
        black,
        x + 5,
        y + (h as f32 * 0.58) as i32,
        small,
        font,
        "KZ",
    );
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
    draw_text_mut(
        img,
        black,
        main_left + spare / 2,
        y + ((h as f32 - scale.y) / 2.0) as i32,
        scale,
        font,
        main,
    );
    draw_line_segment_mut(
        img,
        (region_left as f32, y as f32 + 3.0),
        (region_left as f32, (y + h as i32) as f32 - 3.0),
        black,
    );
    draw_line_segment_mut(
        img,
        (region_left as f32 + 1.0, y as f32 + 3.0),
        (region_left as f32 + 1.0, (y + h as i32) as f32 - 3.0),
        black,
    );
    let rscale = PxScale::from(h as f32 * 0.7);
    draw_text_mut(
        img,
        black,
        region_left + 6,
        y + (h as f32 * 0.14) as i32,
        rscale,
        font,
        region,
    );
}

/// A Kazakhstan 2012 plate `w` pixels wide on a grey margin of `w / 4`; returns the image and
/// the plate's box `[x, y, w, h]`.
pub fn one_row_plate(text: &str, width: u32) -> Result<(RgbImage, [u32; 4])> {
    let font = load_font()?;
    let height = (width as f32 * 112.0 / 520.0).round() as u32;
    let margin = width / 4;
    let mut img = RgbImage::from_pixel(width + 2 * margin, height + 2 * margin, Rgb([90, 95, 100]));
    draw_plate(&mut img, &font, text, margin as i32, margin as i32, width);
    Ok((img, [margin, margin, width, height]))
}

/// A square two-row plate (as on motorcycles and trailers), `w` pixels wide on a grey
/// margin of `w / 4`: `top` on the upper row, `bottom` on the lower. Returns the image and
/// the plate's box `[x, y, w, h]`.
pub fn two_row_plate(top: &str, bottom: &str, width: u32) -> Result<(RgbImage, [u32; 4])> {
    let font = load_font()?;
    let (w, h) = (width, width * 5 / 7);
    let margin = width / 4;
    let mut img = RgbImage::from_pixel(w + 2 * margin, h + 2 * margin, Rgb([90, 95, 100]));
    let black = Rgb([20, 20, 20]);
    draw_filled_rect_mut(
        &mut img,
        Rect::at(margin as i32, margin as i32).of_size(w, h),
        Rgb([245, 245, 242]),
    );
    for i in 0..2 {
        draw_hollow_rect_mut(
            &mut img,
            Rect::at((margin + i) as i32, (margin + i) as i32).of_size(w - 2 * i, h - 2 * i),
            black,
        );
    }
    for (row, text) in [(0u32, top), (1, bottom)] {
        let mut scale = PxScale::from(h as f32 * 0.38);
        let (mut tw, _) = text_size(scale, &font, text);
        if tw as f32 > w as f32 * 0.86 {
            scale = PxScale::from(scale.y * w as f32 * 0.86 / tw as f32);
            tw = text_size(scale, &font, text).0;
        }
        let left = margin as i32 + (w as i32 - tw as i32) / 2;
        let baseline = margin as i32 + (h as f32 * (0.06 + 0.5 * row as f32)) as i32;
        draw_text_mut(&mut img, black, left, baseline, scale, &font, text);
    }
    Ok((img, [margin, margin, w, h]))
}

/// Scales a colour's brightness by `k` (shading).
fn shade(c: Rgb<u8>, k: f32) -> Rgb<u8> {
    Rgb(c.0.map(|v| (f32::from(v) * k).clamp(0.0, 255.0) as u8))
}

/// A horizontal span from `x0` to `x1` (inclusive of `x0`) on row `y`, clipped to the image.
fn span(img: &mut RgbImage, x0: f32, x1: f32, y: i32, c: Rgb<u8>) {
    let w = (x1 - x0).round().max(1.0) as u32;
    draw_filled_rect_mut(img, Rect::at(x0.round() as i32, y).of_size(w, 1), c);
}

/// Draws a pickup truck seen from behind, centred at `cx`, wheels on `bottom`, `w` wide:
/// shadow, tyres, shaded tailgate and body, cab with rear window, lights, bumper and plate.
fn draw_vehicle(
    img: &mut RgbImage,
    font: &FontVec,
    plate: &str,
    colour: Rgb<u8>,
    cx: i32,
    bottom: i32,
    w: u32,
) {
    let wf = w as f32;
    let h = wf * 0.80;
    let (left, top, cxf, bot) = (
        cx as f32 - wf / 2.0,
        bottom as f32 - h,
        cx as f32,
        bottom as f32,
    );
    // Shadow and tyres.
    imageproc::drawing::draw_filled_ellipse_mut(
        img,
        (cx, bottom),
        (wf * 0.56) as i32,
        (h * 0.07) as i32,
        Rgb([28, 28, 30]),
    );
    for x in [left + wf * 0.05, left + wf * 0.79] {
        draw_filled_rect_mut(
            img,
            Rect::at(x as i32, (bot - h * 0.22) as i32)
                .of_size((wf * 0.16) as u32, (h * 0.24) as u32),
            Rgb([22, 22, 24]),
        );
    }
    // Tailgate and body, lit from above.
    let (y0, y1) = (top + h * 0.36, bot - h * 0.08);
    for y in y0 as i32..y1 as i32 {
        let t = (y as f32 - y0) / (y1 - y0);
        let inset = wf * 0.02 * (1.0 - t);
        span(
            img,
            left + inset,
            left + wf - inset,
            y,
            shade(colour, 1.25 - 0.55 * t),
        );
    }
    // Cab and its rear window.
    let (ct, cb) = (top + h * 0.02, top + h * 0.38);
    for y in ct as i32..cb as i32 {
        let t = (y as f32 - ct) / (cb - ct);
        let half = wf * (0.25 + 0.09 * t);
        span(img, cxf - half, cxf + half, y, shade(colour, 1.3 - 0.2 * t));
    }
    let (gt, gb) = (top + h * 0.06, top + h * 0.35);
    for y in gt as i32..gb as i32 {
        let t = (y as f32 - gt) / (gb - gt);
        let half = wf * (0.21 + 0.09 * t);
        span(
            img,
            cxf - half,
            cxf + half,
            y,
            shade(Rgb([70, 90, 110]), 1.4 - 0.7 * t),
        );
    }
    // Tail lights, the bed's edge, bumper.
    for x in [left + wf * 0.02, left + wf * 0.76] {
        draw_filled_rect_mut(
            img,
            Rect::at(x as i32, (top + h * 0.44) as i32)
                .of_size((wf * 0.22) as u32, (h * 0.13) as u32),
            Rgb([210, 25, 25]),
        );
        draw_filled_rect_mut(
            img,
            Rect::at((x + wf * 0.02) as i32, (top + h * 0.46) as i32)
                .of_size((wf * 0.06) as u32, (h * 0.09) as u32),
            Rgb([250, 200, 160]),
        );
    }
    draw_filled_rect_mut(
        img,
        Rect::at((left + wf * 0.05) as i32, (top + h * 0.42) as i32)
            .of_size((wf * 0.9) as u32, (wf * 0.006).max(1.0) as u32),
        shade(colour, 0.6),
    );
    draw_filled_rect_mut(
        img,
        Rect::at((left - wf * 0.01) as i32, (bot - h * 0.27) as i32)
            .of_size((wf * 1.02) as u32, (h * 0.19) as u32),
        Rgb([45, 45, 50]),
    );
    // The plate on the tailgate, 38% of the vehicle's width.
    let pw = (wf * 0.38) as u32;
    draw_plate(
        img,
        font,
        plate,
        cx - pw as i32 / 2,
        (top + h * 0.58) as i32,
        pw,
    );
}

fn draw_road(img: &mut RgbImage) {
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
        src.push_buffer(buf)
            .map_err(|e| anyhow::anyhow!("encoder refused a frame: {e:?}"))?;
    }
    src.end_of_stream().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let bus = pipeline.bus().context("pipeline without bus")?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(300),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
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
