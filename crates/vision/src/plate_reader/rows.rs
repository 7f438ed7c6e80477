//! Two-row plates: where the gap between the character rows is.

use anpr_types::{BBox, RgbFrame};
use ndarray::{Array2, ArrayView2, Axis};

/// Width over height below which a plate may have two rows of characters (single-row plates
/// are 2:1 in North America and 4–5:1 elsewhere; two-row plates about 1.3–1.5:1).
pub const TWO_ROW_ASPECT: f32 = 1.8;

/// Least confidence of every character of both rows for a two-row reading to be taken.
pub const ROW_SURE: f32 = 0.5;

/// The frame row (y) between the two character rows of a plate box: the row with the least
/// horizontal edge energy between 30% and 70% of the box height; `None` for a box too small to
/// tell, or when that row is not clearly calmer than the rows with characters.
#[must_use]
pub fn row_gap(frame: &RgbFrame, bbox: &BBox) -> Option<f32> {
    let x0 = bbox.x.max(0.0) as usize;
    let x1 = ((bbox.x + bbox.w) as usize).min(frame.width as usize);
    let y0 = bbox.y.max(0.0) as usize;
    let y1 = ((bbox.y + bbox.h) as usize).min(frame.height as usize);
    if x1 < x0 + 8 || y1 < y0 + 12 {
        return None;
    }
    let energy = |y: usize| -> f32 {
        (x0 + 1..x1)
            .map(|x| {
                let a = frame.pixel(x as u32 - 1, y as u32).map(i32::from);
                let b = frame.pixel(x as u32, y as u32).map(i32::from);
                ((a[0] + a[1] + a[2]) - (b[0] + b[1] + b[2])).unsigned_abs() as f32
            })
            .sum::<f32>()
            / (x1 - x0) as f32
    };
    let h = y1 - y0;
    let band = (y0 + h * 3 / 10)..(y0 + h * 7 / 10);
    let (gap, calm) = band
        .map(|y| (y, energy(y)))
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    // The busiest rows above and below the gap (where the characters are).
    let busiest = |rows: std::ops::Range<usize>| rows.map(energy).fold(0.0f32, f32::max);
    let above = busiest(y0 + h / 10..gap);
    let below = busiest(gap + 1..y1 - h / 10);
    (above > 3.0 * calm.max(1.0) && below > 3.0 * calm.max(1.0)).then_some(gap as f32)
}

/// The recognizer's per-step probabilities of the two rows as one line, top row first, with
/// one sure blank step between them so the last character of the top row and the first of the
/// bottom row are not merged (`None` when the rows have different class counts).
#[must_use]
pub fn join_rows(upper: &ArrayView2<'_, f32>, lower: &ArrayView2<'_, f32>) -> Option<Array2<f32>> {
    let mut gap = Array2::<f32>::zeros((1, upper.ncols()));
    gap[[0, 0]] = 1.0;
    ndarray::concatenate(Axis(0), &[upper.view(), gap.view(), lower.view()]).ok()
}
