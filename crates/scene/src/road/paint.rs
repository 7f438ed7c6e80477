//! Filled shapes in floating-point coordinates, clipped to the image, for drawing vehicles.

use image::{Rgb, RgbImage};

use super::manifest::PixelBox;
use crate::vehicle::span;

/// The pixels [`fill_rect`] paints for the rectangle from `(x0, y0)` to `(x1, y1)`: the box
/// around those [`fill_rounded_rect`] paints, whatever its corners.
pub(crate) fn painted((x0, y0): (f32, f32), (x1, y1): (f32, f32)) -> PixelBox {
    let (top, bottom) = (y0.round() as i32, y1.round() as i32);
    PixelBox {
        x: x0.round() as i32,
        y: top,
        w: (x1 - x0).round().max(1.0) as u32,
        h: (bottom - top).max(0) as u32,
    }
}

/// Fills the rectangle from (x0, y0) to (x1, y1).
pub(crate) fn fill_rect(
    img: &mut RgbImage,
    (x0, y0): (f32, f32),
    (x1, y1): (f32, f32),
    c: Rgb<u8>,
) {
    fill_rounded_rect(img, (x0, y0), (x1, y1), 0.0, c);
}

/// Fills the rectangle from (x0, y0) to (x1, y1) with its corners rounded to radius `r`.
pub(crate) fn fill_rounded_rect(
    img: &mut RgbImage,
    (x0, y0): (f32, f32),
    (x1, y1): (f32, f32),
    r: f32,
    c: Rgb<u8>,
) {
    let r = r.min((x1 - x0) / 2.0).min((y1 - y0) / 2.0).max(0.0);
    for y in y0.round() as i32..y1.round() as i32 {
        let yc = y as f32 + 0.5;
        let dy = if yc < y0 + r {
            y0 + r - yc
        } else if yc > y1 - r {
            yc - (y1 - r)
        } else {
            0.0
        };
        let inset = if dy > 0.0 {
            r - (r * r - dy * dy).max(0.0).sqrt()
        } else {
            0.0
        };
        span(img, x0 + inset, x1 - inset, y, c);
    }
}

/// A vertical line `width` wide centred on `x`, from `y0` to `y1`.
pub(crate) fn vline(img: &mut RgbImage, x: f32, (y0, y1): (f32, f32), width: f32, c: Rgb<u8>) {
    let width = width.max(1.0);
    fill_rect(img, (x - width / 2.0, y0), (x + width / 2.0, y1), c);
}

/// The outline of the rectangle from (x0, y0) to (x1, y1), `width` wide, inside it.
pub(crate) fn outline(
    img: &mut RgbImage,
    (x0, y0): (f32, f32),
    (x1, y1): (f32, f32),
    width: f32,
    c: Rgb<u8>,
) {
    fill_rect(img, (x0, y0), (x1, y0 + width), c);
    fill_rect(img, (x0, y1 - width), (x1, y1), c);
    fill_rect(img, (x0, y0), (x0 + width, y1), c);
    fill_rect(img, (x1 - width, y0), (x1, y1), c);
}
