//! Skew of the characters in a plate box, and a deskewed copy of the box for reading.
//!
//! A plate seen from the side or a tilted camera shows its character rows on a slant. The slant
//! is measured by the projection-profile method: the row profile of horizontal edge energy is
//! sharpest (largest variance) when rows are summed along the slant of the characters. The box
//! is then cut out with that shear undone, so the reader sees level rows.

use anpr_types::{BBox, RgbFrame};

/// Slopes tried, as dy/dx: ±0.35 (about ±19°) in steps of 0.025.
const SLOPES: std::ops::RangeInclusive<i32> = -14..=14;
const STEP: f32 = 0.025;
/// Width the box is measured at (it is scaled down to this first).
const MEASURE_WIDTH: usize = 160;

/// The slope dy/dx of the character rows in `bbox` (0 when the box is too small to tell).
#[must_use]
pub fn estimate_slope(frame: &RgbFrame, bbox: &BBox) -> f32 {
    let x0 = bbox.x.max(0.0) as usize;
    let y0 = bbox.y.max(0.0) as usize;
    let x1 = ((bbox.x + bbox.w) as usize).min(frame.width as usize);
    let y1 = ((bbox.y + bbox.h) as usize).min(frame.height as usize);
    if x1 < x0 + 16 || y1 < y0 + 8 {
        return 0.0;
    }
    let (w, h) = (x1 - x0, y1 - y0);
    let mw = w.min(MEASURE_WIDTH);
    let mh = ((h * mw) / w).max(4);
    let rgb = crate::resize::resample(frame, (x0, y0, w, h), mw, mh);
    let gray: Vec<f32> = rgb.chunks_exact(3).map(|p| p[0] + p[1] + p[2]).collect();
    let mut best = (0.0f32, f32::MIN);
    let reach = (0.35 * mw as f32).ceil() as usize;
    let mut profile = vec![0f32; mh + 2 * reach + 2];
    let last = (profile.len() - 1) as f32;
    for k in SLOPES {
        let slope = k as f32 * STEP;
        profile.fill(0.0);
        for y in 0..mh {
            for x in 1..mw {
                let edge = (gray[y * mw + x] - gray[y * mw + x - 1]).abs();
                let shifted = y as f32 - slope * (x as f32 - mw as f32 / 2.0) + reach as f32;
                profile[shifted.round().clamp(0.0, last) as usize] += edge;
            }
        }
        let n = profile.len() as f32;
        let mean = profile.iter().sum::<f32>() / n;
        let var = profile.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        // Prefer the level reading on ties.
        if var > best.1 * 1.0001 || (k == 0 && var >= best.1) {
            best = (slope, var);
        }
    }
    best.0
}

/// A copy of the box with the shear of `slope` undone (bilinear), and the box of the plate
/// inside that copy: the level band the slanted rows fill.
#[must_use]
pub fn deskew(frame: &RgbFrame, bbox: &BBox, slope: f32) -> (RgbFrame, BBox) {
    let left = bbox.x.max(0.0);
    let top = bbox.y.max(0.0);
    let width = (bbox.w.min(frame.width as f32 - left)).max(1.0) as usize;
    let height = (bbox.h.min(frame.height as f32 - top)).max(1.0) as usize;
    let mut data = vec![0u8; width * height * 3];
    let (last_x, last_y) = (frame.width as f32 - 1.0, frame.height as f32 - 1.0);
    let centre = width as f32 / 2.0;
    for row in 0..height {
        for col in 0..width {
            let sx = left + col as f32;
            let sy = (top + row as f32 + slope * (col as f32 - centre)).clamp(0.0, last_y);
            let (x0, y0) = (sx.floor().min(last_x), sy.floor());
            let (x1, y1) = ((x0 + 1.0).min(last_x), (y0 + 1.0).min(last_y));
            let (fx, fy) = (sx - x0, sy - y0);
            let px = |xx: f32, yy: f32| frame.pixel(xx as u32, yy as u32);
            let corners = [px(x0, y0), px(x1, y0), px(x0, y1), px(x1, y1)];
            for ch in 0..3 {
                let upper = f32::from(corners[0][ch]) * (1.0 - fx) + f32::from(corners[1][ch]) * fx;
                let lower = f32::from(corners[2][ch]) * (1.0 - fx) + f32::from(corners[3][ch]) * fx;
                data[(row * width + col) * 3 + ch] =
                    (upper * (1.0 - fy) + lower * fy).round() as u8;
            }
        }
    }
    // The slanted plate spans `slope * width` more rows than it is high.
    let slant = (slope.abs() * width as f32).min(height as f32 * 0.6);
    let plate = BBox {
        x: 0.0,
        y: slant / 2.0,
        w: width as f32,
        h: height as f32 - slant,
    };
    (
        RgbFrame {
            width: width as u32,
            height: height as u32,
            data,
        },
        plate,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dark bars of text-like stripes along a line of slope `slope` on white.
    fn slanted_rows(slope: f32) -> RgbFrame {
        let (w, h) = (240u32, 120u32);
        let mut data = vec![240u8; (w * h * 3) as usize];
        for x in 20..220u32 {
            if (x / 6) % 2 == 0 {
                continue;
            }
            let centre = 60.0 + slope * (x as f32 - 120.0);
            for y in (centre - 12.0) as u32..(centre + 12.0) as u32 {
                let i = ((y * w + x) * 3) as usize;
                data[i..i + 3].copy_from_slice(&[20, 20, 20]);
            }
        }
        RgbFrame {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn the_slope_of_slanted_rows_is_found_and_level_rows_are_level() {
        let whole = BBox {
            x: 0.0,
            y: 0.0,
            w: 240.0,
            h: 120.0,
        };
        for slope in [0.0f32, 0.1, -0.15, 0.25] {
            let found = estimate_slope(&slanted_rows(slope), &whole);
            assert!(
                (found - slope).abs() <= 0.03,
                "slope {slope}: found {found}"
            );
        }
    }

    #[test]
    fn deskewing_levels_the_rows() {
        let frame = slanted_rows(0.2);
        let whole = BBox {
            x: 0.0,
            y: 0.0,
            w: 240.0,
            h: 120.0,
        };
        let (level, plate) = deskew(&frame, &whole, estimate_slope(&frame, &whole));
        assert!(estimate_slope(&level, &plate).abs() <= 0.03);
        // Two columns far apart now have their dark bar at the same height.
        let dark_rows = |x: u32| -> Vec<u32> {
            (0..level.height)
                .filter(|y| level.pixel(x, *y)[0] < 100)
                .collect()
        };
        let (left, right) = (dark_rows(33), dark_rows(201));
        assert!(!left.is_empty() && !right.is_empty());
        assert!(
            (i64::from(left[0]) - i64::from(right[0])).abs() <= 2,
            "{left:?} {right:?}"
        );
    }
}
