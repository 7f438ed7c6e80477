//! Kazakhstan plates drawn over the labelled plates of real photos, for scoring `kz` mode where
//! the vehicles, backgrounds and light are a camera's, not drawn (`anpr eval --dataset`).
//!
//! # Contract
//!
//! - [`kz_photo_sample`] is deterministic: the same seed, index, photo and label give the same
//!   text, layout and pixels wherever the same fonts are installed.
//! - The plate is drawn at the physical scale of the plate it covers: a label box wider than
//!   3:1 is taken for a 520 mm European plate, any other for a 305 mm North American one, and
//!   the Kazakhstan plate (520 × 112 mm, or 280 × 200 mm for two rows, three in ten) gets the
//!   same millimetres per pixel, centred on the old plate. A plate that would not fit the photo
//!   is shrunk to fit it.
//! - The old plate is covered first by continuing the rows above and below it over it (so
//!   none of its characters show), and the new plate is dimmed to the old plate's light and
//!   softened like the photo.
//! - The texts and layouts are those of the road set ([`super::kz_sample`]).
//!
//! The photos themselves are never part of this crate: the caller reads them from wherever
//! they are kept and writes the set where it wants it.

use image::imageops::{FilterType, resize};
use image::{Rgb, RgbImage};

use super::kz_set::{KzFonts, KzSample, Rng, draw_kz_plate, plate_text};

/// Mixed into the seed so that the photo set's texts are not the road set's.
const SALT: u64 = 0x6b7a_5f70_686f_746f;

/// Drawing scale before the plate is shrunk to its size in the photo (smooth edges).
const SUPERSAMPLE: f32 = 4.0;

/// The 90th percentile of the luminance in `[x, y, w, h]` of `img`: the light on the plate's
/// background, which is its brightest large part.
fn plate_light(img: &RgbImage, [left, top, width, height]: [u32; 4]) -> f32 {
    let mut luma: Vec<f32> = (top..top + height)
        .flat_map(|row| (left..left + width).map(move |col| (col, row)))
        .map(|(col, row)| {
            let [red, green, blue] = img.get_pixel(col, row).0.map(f32::from);
            0.299 * red + 0.587 * green + 0.114 * blue
        })
        .collect();
    if luma.is_empty() {
        return 240.0;
    }
    luma.sort_by(f32::total_cmp);
    luma[luma.len() * 9 / 10]
}

/// Covers `[x, y, w, h]` of `img` (clipped to it) with, in each column, the blend from the
/// pixel just above the box to the pixel just below it: the bumper or boot lid around a plate
/// continued over it, with no edge a detector could take for a plate's.
fn cover(img: &mut RgbImage, [left, top, width, height]: [u32; 4]) {
    let (img_w, img_h) = img.dimensions();
    let right = (left + width).min(img_w);
    let bottom = (top + height).min(img_h);
    let above = top.saturating_sub(1);
    let below = bottom.min(img_h - 1);
    for col in left..right {
        let upper = img.get_pixel(col, above).0.map(f32::from);
        let lower = img.get_pixel(col, below).0.map(f32::from);
        for row in top..bottom {
            let share = (row + 1 - top) as f32 / (bottom - top + 1) as f32;
            let px = [0, 1, 2].map(|c| (upper[c] + (lower[c] - upper[c]) * share).round() as u8);
            img.put_pixel(col, row, Rgb(px));
        }
    }
}

/// `photo` with a Kazakhstan plate drawn over its plate at `label` (`[x, y, w, h]`); index
/// `index` of the set drawn from `seed` (a doubled letter on even indices, two rows on three
/// indices in ten). `None` when the label box lies outside the photo or is too small to hold a
/// readable plate (under 24 px wide).
#[must_use]
pub fn kz_photo_sample(
    fonts: &KzFonts,
    seed: u64,
    index: u32,
    photo: &RgbImage,
    label: [u32; 4],
) -> Option<KzSample> {
    let [lx, ly, lw, lh] = label;
    let (iw, ih) = photo.dimensions();
    if lw < 24 || lh == 0 || lx + lw > iw || ly + lh > ih {
        return None;
    }
    let mut rng = Rng::new(seed ^ SALT, index);
    let doubled = index.is_multiple_of(2);
    let two_row = index % 10 < 3;
    let text = plate_text(&mut rng, doubled);
    let font = fonts.pick(&mut rng);
    let old_mm = if lw as f32 / lh as f32 > 3.0 {
        520.0
    } else {
        305.0
    };
    let (mm_w, mm_h) = if two_row {
        (280.0, 200.0)
    } else {
        (520.0, 112.0)
    };
    let mut pw = lw as f32 * mm_w / old_mm;
    // Shrink to fit the photo around the old plate's centre.
    let (cx, cy) = (lx as f32 + lw as f32 / 2.0, ly as f32 + lh as f32 / 2.0);
    let room_w = 2.0 * cx.min(iw as f32 - cx) - 2.0;
    let room_h = 2.0 * cy.min(ih as f32 - cy) - 2.0;
    pw = pw.min(room_w).min(room_h * mm_w / mm_h);
    let ph = pw * mm_h / mm_w;
    if pw < 24.0 {
        return None;
    }
    // Draw the plate large, shrink it to its size, and dim it to the old plate's light.
    let big_w = (pw * SUPERSAMPLE).round();
    let big_h = (ph * SUPERSAMPLE).round() as u32 + 1;
    let mut big = RgbImage::from_pixel(big_w as u32 + 1, big_h, Rgb([244, 244, 240]));
    draw_kz_plate(&mut big, font, &text, (0.0, 0.0), big_w, two_row);
    let (plate_w, plate_h) = (pw.round() as u32, ph.round() as u32);
    let mut plate = resize(&big, plate_w, plate_h, FilterType::Triangle);
    let gain = (plate_light(photo, label) / 244.0).clamp(0.35, 1.05);
    let sigma = rng.range(0.4, 1.0);
    for px in plate.pixels_mut() {
        for c in &mut px.0 {
            *c = (f32::from(*c) * gain).clamp(0.0, 255.0) as u8;
        }
    }
    // Cover the old plate with what is around it, then put the new one on.
    let mut image = photo.clone();
    let grow_x = lw / 25 + 1;
    let grow_y = lh / 10 + 1;
    let covered = [
        lx.saturating_sub(grow_x),
        ly.saturating_sub(grow_y),
        lw + 2 * grow_x,
        lh + 2 * grow_y,
    ];
    cover(&mut image, covered);
    let left = (cx - plate_w as f32 / 2.0).round().max(0.0) as u32;
    let top = (cy - plate_h as f32 / 2.0).round().max(0.0) as u32;
    image::imageops::replace(&mut image, &plate, i64::from(left), i64::from(top));
    // Soften the plate and its edges as the photo's lens and compression would.
    let edge = 4;
    let (bx, by) = (left.saturating_sub(edge), top.saturating_sub(edge));
    let bw = (plate_w + 2 * edge).min(iw - bx);
    let bh = (plate_h + 2 * edge).min(ih - by);
    let patch = image::imageops::crop_imm(&image, bx, by, bw, bh).to_image();
    let soft = imageproc::filter::gaussian_blur_f32(&patch, sigma);
    image::imageops::replace(&mut image, &soft, i64::from(bx), i64::from(by));
    Some(KzSample {
        image,
        plate_box: [left, top, plate_w, plate_h],
        text,
        two_row,
        doubled,
        plate_width: plate_w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey_photo() -> RgbImage {
        RgbImage::from_fn(400, 300, |x, _| Rgb([(x % 200) as u8, 80, 80]))
    }

    #[test]
    fn the_plate_keeps_the_old_plates_millimetres_and_centre() {
        let fonts = KzFonts::load().unwrap();
        // A European box (4.6:1), index 5: one row, the same width.
        let s = kz_photo_sample(&fonts, 1, 5, &grey_photo(), [100, 150, 138, 30]).unwrap();
        assert!(!s.two_row);
        let [left, top, width, height] = s.plate_box;
        assert_eq!(width, 138);
        assert_eq!(height, (138.0f32 * 112.0 / 520.0).round() as u32);
        assert!((i64::from(left + width / 2) - 169).abs() <= 1);
        assert!((i64::from(top + height / 2) - 165).abs() <= 1);
        // A North American box (2:1), index 1: two rows, 280 of 305 mm.
        let s = kz_photo_sample(&fonts, 1, 1, &grey_photo(), [100, 150, 100, 50]).unwrap();
        assert!(s.two_row);
        assert_eq!(s.plate_box[2], (100.0f32 * 280.0 / 305.0).round() as u32);
    }

    #[test]
    fn a_plate_near_the_edge_is_shrunk_to_fit_and_tiny_boxes_are_skipped() {
        let fonts = KzFonts::load().unwrap();
        let s = kz_photo_sample(&fonts, 1, 5, &grey_photo(), [0, 140, 100, 50]).unwrap();
        let [left, _, width, _] = s.plate_box;
        assert!(left + width <= 400 && width < 170, "{:?}", s.plate_box);
        assert!(kz_photo_sample(&fonts, 1, 5, &grey_photo(), [10, 10, 20, 8]).is_none());
        assert!(kz_photo_sample(&fonts, 1, 5, &grey_photo(), [390, 10, 30, 8]).is_none());
    }
}
