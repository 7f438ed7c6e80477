//! A bus seen from behind: a tall box with a wide rear window, which the COCO vehicle detector
//! classes as `bus`. Its plate sits on the body below the tail lights, above the bumper with a
//! margin of body colour all round: a plate overlapping the bumper is read without its last
//! character. The bumper is low and thin to leave room for the plate low on the body: the
//! higher the plate, the lower the detector scores the bus.

use ab_glyph::FontVec;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_ellipse_mut, draw_polygon_mut};
use imageproc::point::Point;

use super::manifest::PixelBox;
use super::paint::{fill_rect, fill_rounded_rect, painted};
use crate::plate::draw_plate;
use crate::vehicle::shade;

/// Height of the bus as a share of its width.
pub(crate) const ASPECT: f32 = 0.95;
/// The plate's width as a share of the bus's width.
pub(crate) const PLATE_WIDTH: f32 = 0.38;
/// Top of the body (below the greenhouse) as a share of the height, from the top.
const BODY_TOP: f32 = 0.48;
/// Top of the plate below the body's top, as a share of the height: the plate ends about 0.77
/// of the height down, above the bumper at 0.8.
const PLATE_TOP: f32 = 0.2;
/// Bottom of the body above the wheels' line, as a share of the height.
const BODY_BOTTOM: f32 = 0.08;
/// Top and bottom of the bumper above the wheels' line, as shares of the height.
const BUMPER_TOP: f32 = 0.2;
const BUMPER_BOTTOM: f32 = 0.1;

/// Height of a plate `w` pixels wide (Kazakhstan 2012 plates are 520 × 112 mm).
pub(crate) fn plate_height(w: f32) -> f32 {
    (w * 112.0 / 520.0).round()
}

/// The plate's box `[x, y, w, h]` on a bus `w` wide, centred at `cx`, wheels on `bottom`.
pub(crate) fn plate_box(cx: i32, bottom: i32, w: u32) -> [i32; 4] {
    let wf = w as f32;
    let h = wf * ASPECT;
    let pw = (wf * PLATE_WIDTH) as i32;
    let top = bottom as f32 - h + h * (BODY_TOP + PLATE_TOP);
    [cx - pw / 2, top as i32, pw, plate_height(pw as f32) as i32]
}

/// The corners of the body below the greenhouse, on a bus `w` wide centred at `cx`, wheels on
/// `bottom`.
fn body(cx: f32, bottom: f32, w: f32) -> ((f32, f32), (f32, f32)) {
    let h = w * ASPECT;
    let left = cx - w / 2.0;
    (
        (left, bottom - h + h * BODY_TOP),
        (left + w, bottom - h * BODY_BOTTOM),
    )
}

/// The corners of the bumper, on a bus `w` wide centred at `cx`, wheels on `bottom`.
fn bumper(cx: f32, bottom: f32, w: f32) -> ((f32, f32), (f32, f32)) {
    let h = w * ASPECT;
    let left = cx - w / 2.0;
    (
        (left - w * 0.01, bottom - h * BUMPER_TOP),
        (left + w * 1.01, bottom - h * BUMPER_BOTTOM),
    )
}

/// The pixels of the body below the greenhouse (its rounded corners included), on a bus `w`
/// wide centred at `cx`, wheels on `bottom`.
pub(crate) fn body_box(cx: i32, bottom: i32, w: u32) -> PixelBox {
    let (a, b) = body(cx as f32, bottom as f32, w as f32);
    painted(a, b)
}

/// The pixels of the bumper (its rounded corners included), on a bus `w` wide centred at `cx`,
/// wheels on `bottom`.
pub(crate) fn bumper_box(cx: i32, bottom: i32, w: u32) -> PixelBox {
    let (a, b) = bumper(cx as f32, bottom as f32, w as f32);
    painted(a, b)
}

/// Draws a bus seen from behind, centred at `cx`, wheels on `bottom`, `w` wide: shadow, tyres,
/// body with a highlight band, greenhouse with its rear window and a reflection, tail lights,
/// bumper and, when it has one, the plate.
pub(crate) fn draw_bus(
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
    let body_top = top + h * BODY_TOP;
    // Shadow and tyres.
    draw_filled_ellipse_mut(
        img,
        (cx.round() as i32, bottom.round() as i32),
        (w * 0.55) as i32,
        (h * 0.06) as i32,
        Rgb([25, 25, 27]),
    );
    for x in [left + w * 0.04, left + w * 0.80] {
        fill_rounded_rect(
            img,
            (x, bottom - h * 0.2),
            (x + w * 0.16, bottom),
            w * 0.03,
            Rgb([20, 20, 22]),
        );
    }
    // Body with a lighter band along its top.
    let (body_a, body_b) = body(cx, bottom, w);
    fill_rounded_rect(img, body_a, body_b, w * 0.08, colour);
    fill_rect(
        img,
        (left + w * 0.03, body_top + h * 0.02),
        (left + w * 0.97, body_top + h * 0.06),
        shade(colour, 1.35),
    );
    // Greenhouse, rear window and a reflection across the glass.
    let gw = w * 0.97;
    fill_rounded_rect(
        img,
        (cx - gw / 2.0, top),
        (cx + gw / 2.0, body_top + h * 0.02),
        w * 0.1,
        shade(colour, 0.9),
    );
    let ww = gw * 0.92;
    fill_rounded_rect(
        img,
        (cx - ww / 2.0, top + h * 0.06),
        (cx + ww / 2.0, body_top - h * 0.02),
        w * 0.06,
        Rgb([50, 65, 85]),
    );
    let wl = cx - ww / 2.0;
    let glint = [
        Point::new((wl + w * 0.05) as i32, (top + h * 0.08) as i32),
        Point::new((wl + w * 0.15) as i32, (top + h * 0.08) as i32),
        Point::new((wl + w * 0.08) as i32, (body_top - h * 0.04) as i32),
    ];
    draw_polygon_mut(img, &glint, Rgb([120, 140, 160]));
    // Tail lights and bumper.
    for x in [left + w * 0.01, left + w * 0.79] {
        fill_rounded_rect(
            img,
            (x, body_top + h * 0.08),
            (x + w * 0.2, body_top + h * 0.2),
            w * 0.02,
            Rgb([200, 20, 25]),
        );
    }
    let (bumper_a, bumper_b) = bumper(cx, bottom, w);
    fill_rounded_rect(img, bumper_a, bumper_b, w * 0.03, Rgb([40, 40, 45]));
    if let Some(plate) = plate {
        draw_plate(img, font, plate, px, py, pw as u32);
    }
}
