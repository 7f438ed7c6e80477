//! Vehicles seen from behind, with their plate on the tailgate.

use ab_glyph::FontVec;
use image::{Rgb, RgbImage};
use imageproc::drawing::draw_filled_rect_mut;
use imageproc::rect::Rect;

use crate::plate::draw_plate;

/// Scales a colour's brightness by `k` (shading).
pub(crate) fn shade(c: Rgb<u8>, k: f32) -> Rgb<u8> {
    Rgb(c.0.map(|v| (f32::from(v) * k).clamp(0.0, 255.0) as u8))
}

/// A horizontal span from `x0` to `x1` (inclusive of `x0`) on row `y`, clipped to the image.
pub(crate) fn span(img: &mut RgbImage, x0: f32, x1: f32, y: i32, c: Rgb<u8>) {
    let w = (x1 - x0).round().max(1.0) as u32;
    draw_filled_rect_mut(img, Rect::at(x0.round() as i32, y).of_size(w, 1), c);
}

/// Draws a pickup truck seen from behind, centred at `cx`, wheels on `bottom`, `w` wide:
/// shadow, tyres, shaded tailgate and body, cab with rear window, lights, bumper and plate.
pub(crate) fn draw_vehicle(
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
