//! A box truck seen from behind, which the COCO vehicle detector classes as `truck`: 0.84–0.88
//! (median per vehicle) on the default scene, and 0.82–0.85 on average over widths of 240–350
//! px in each of eight body colours tried on this road.
//!
//! The demo clip's pickup is not used here: on this road the detector gives it 0.25–0.75 and
//! loses it on some frames, below the 0.65 a heavy type needs to be reported as such.

use ab_glyph::FontVec;
use image::{Rgb, RgbImage};
use imageproc::drawing::draw_filled_ellipse_mut;

use super::manifest::PixelBox;
use super::paint::{fill_rect, fill_rounded_rect, outline, painted, vline};
use crate::plate::draw_plate;
use crate::vehicle::shade;

/// Height of the truck as a share of its width.
pub(crate) const ASPECT: f32 = 1.0;
/// The plate's width as a share of the truck's width.
const PLATE_WIDTH: f32 = 0.38;
/// Bottom of the cargo box above the wheels' line, as a share of the height.
const CHASSIS: f32 = 0.22;
/// How far the cab's roof shows above the cargo box, as a share of the height.
const ROOF: f32 = 0.08;
/// Number of slats of the roller door.
const SLATS: u32 = 14;

/// The plate's box `[x, y, w, h]` on a truck `w` wide, centred at `cx`, wheels on `bottom`:
/// just under the cargo box, between the lights.
pub(crate) fn plate_box(cx: i32, bottom: i32, w: u32) -> [i32; 4] {
    let wf = w as f32;
    let h = wf * ASPECT;
    let pw = (wf * PLATE_WIDTH) as i32;
    let ph = (pw as f32 * 112.0 / 520.0).round() as i32;
    let top = bottom as f32 - h * CHASSIS + h * 0.005;
    [cx - pw / 2, top as i32, pw, ph]
}

/// The corners of the chassis panel under the cargo box, on a truck `w` wide centred at `cx`,
/// wheels on `bottom`.
fn chassis(cx: f32, bottom: f32, w: f32) -> ((f32, f32), (f32, f32)) {
    let h = w * ASPECT;
    let left = cx - w / 2.0;
    (
        (left + w * 0.08, bottom - h * CHASSIS),
        (left + w * 0.92, bottom - h * CHASSIS * 0.5),
    )
}

/// The corners of the under-run bar, on a truck `w` wide centred at `cx`, wheels on `bottom`.
fn under_run_bar(cx: f32, bottom: f32, w: f32) -> ((f32, f32), (f32, f32)) {
    let h = w * ASPECT;
    let left = cx - w / 2.0;
    let top = bottom - h * CHASSIS * 0.55;
    ((left + w * 0.02, top), (left + w * 0.98, top + h * 0.05))
}

/// The pixels of the rear the plate is mounted on, on a truck `w` wide centred at `cx`, wheels
/// on `bottom`: the cargo box and the chassis panel under it, as wide as the panel.
pub(crate) fn body_box(cx: i32, bottom: i32, w: u32) -> PixelBox {
    let (cx, bottom, w) = (cx as f32, bottom as f32, w as f32);
    let ((x0, _), (x1, y1)) = chassis(cx, bottom, w);
    let box_top = bottom - w * ASPECT + w * ASPECT * ROOF;
    painted((x0, box_top), (x1, y1))
}

/// The pixels of the under-run bar, on a truck `w` wide centred at `cx`, wheels on `bottom`.
pub(crate) fn bumper_box(cx: i32, bottom: i32, w: u32) -> PixelBox {
    let (a, b) = under_run_bar(cx as f32, bottom as f32, w as f32);
    painted(a, b)
}

/// Draws a box truck seen from behind, centred at `cx`, wheels on `bottom`, `w` wide: shadow,
/// twin tyres, chassis, the cab's roof above a cargo box with a slatted roller door split in
/// two, lock bars and a handle, lights, the under-run bar and, when it has one, the plate.
pub(crate) fn draw_truck(
    img: &mut RgbImage,
    font: &FontVec,
    plate: Option<&str>,
    colour: Rgb<u8>,
    cx: i32,
    bottom: i32,
    w: u32,
) {
    let [px, py, pw, _] = plate_box(cx, bottom, w);
    let (cx, bottom, w) = (cx as f32, bottom as f32, w as f32);
    let h = w * ASPECT;
    let (left, top) = (cx - w / 2.0, bottom - h);
    // Shadow, twin tyres and chassis.
    draw_filled_ellipse_mut(
        img,
        (cx.round() as i32, bottom.round() as i32),
        (w * 0.55) as i32,
        (h * 0.05) as i32,
        Rgb([25, 25, 27]),
    );
    let tyre_top = bottom - h * CHASSIS * 0.9;
    for x in [left + w * 0.03, left + w * 0.81] {
        fill_rounded_rect(
            img,
            (x, tyre_top),
            (x + w * 0.16, bottom),
            w * 0.03,
            Rgb([20, 20, 22]),
        );
        vline(
            img,
            x + w * 0.08,
            (tyre_top, bottom),
            w * 0.01,
            Rgb([50, 50, 55]),
        );
    }
    let (chassis_a, chassis_b) = chassis(cx, bottom, w);
    fill_rect(img, chassis_a, chassis_b, Rgb([35, 35, 38]));
    // The cab's roof, then the cargo box with a light band along its top and a dark frame.
    let (box_top, box_bottom) = (top + h * ROOF, bottom - h * CHASSIS);
    fill_rounded_rect(
        img,
        (cx - w * 0.42, top),
        (cx + w * 0.42, box_top + h * 0.05),
        w * 0.04,
        shade(colour, 0.8),
    );
    fill_rect(img, (left, box_top), (left + w, box_bottom), colour);
    fill_rect(
        img,
        (left, box_top),
        (left + w, box_top + h * 0.03),
        shade(colour, 1.15),
    );
    let frame = (w * 0.04).floor().max(2.0);
    outline(
        img,
        (left, box_top),
        (left + w, box_bottom),
        frame,
        shade(colour, 0.6),
    );
    // Slats of the roller door, its split, lock bars and handle.
    for k in 1..SLATS {
        let y = box_top + (box_bottom - box_top) * k as f32 / SLATS as f32;
        fill_rect(
            img,
            (left + frame, y),
            (left + w - frame, y + 1.0),
            shade(colour, 0.8),
        );
    }
    vline(
        img,
        cx,
        (box_top + frame, box_bottom - frame),
        (w * 0.008).floor(),
        shade(colour, 0.5),
    );
    for x in [left + w * 0.2, left + w * 0.8] {
        vline(
            img,
            x,
            (box_top + h * 0.04, box_bottom - h * 0.03),
            (w * 0.012).floor(),
            Rgb([90, 90, 95]),
        );
    }
    fill_rect(
        img,
        (cx - w * 0.08, box_bottom - h * 0.08),
        (cx + w * 0.08, box_bottom - h * 0.05),
        Rgb([70, 70, 75]),
    );
    // Under-run bar, lights and plate.
    let (bar_a, bar_b) = under_run_bar(cx, bottom, w);
    fill_rect(img, bar_a, bar_b, Rgb([40, 40, 45]));
    for x in [left + w * 0.02, left + w * 0.78] {
        fill_rounded_rect(
            img,
            (x, box_bottom - h * 0.01),
            (x + w * 0.2, box_bottom + h * 0.05),
            w * 0.01,
            Rgb([200, 20, 25]),
        );
    }
    if let Some(plate) = plate {
        draw_plate(img, font, plate, px, py, pw as u32);
    }
}
