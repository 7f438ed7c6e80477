//! Kazakhstan plates: the 2012 one-row plate (flag, `KZ`, main characters, boxed region code)
//! and the square two-row plate of motorcycles and trailers.

use ab_glyph::{FontVec, PxScale};
use anyhow::Result;
use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut, draw_text_mut, text_size,
};
use imageproc::rect::Rect;

use crate::font::load_font;

/// Splits `123ABC01` into the main part and the region (the last two digits).
fn split_region(plate: &str) -> (&str, &str) {
    plate.split_at(plate.len() - 2)
}

/// Draws a Kazakhstan 2012 plate of width `w` with its top-left corner at (x, y).
pub(crate) fn draw_plate(img: &mut RgbImage, font: &FontVec, plate: &str, x: i32, y: i32, w: u32) {
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
