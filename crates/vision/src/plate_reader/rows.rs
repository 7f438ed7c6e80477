//! Two-row plates: where the gap between the character rows is.

use anpr_types::{BBox, RgbFrame};
use ndarray::{Array2, ArrayView2, Axis};

/// Width over height below which a plate may have two rows of characters (single-row plates
/// are 2:1 in North America and 4–5:1 elsewhere; two-row plates about 1.3–1.5:1).
pub const TWO_ROW_ASPECT: f32 = 1.8;

/// The same bound where a country's formats are known (`kz` mode): the geometric mean of the
/// one-row plate's aspect (520 × 112 mm, 4.6:1) and the two-row plate's (280 × 200 mm, 1.4:1),
/// the point as far from either in ratio. A detector box is often wider than the plate it holds
/// (a plate recess, a frame), and 1.8 left those of two-row plates read as one line. The wider
/// bound costs no reading of one-row plates: there the two-row reading is ranked against the
/// one-row reading, the fit to the formats first.
pub const REGIONAL_TWO_ROW_ASPECT: f32 = 2.5;

/// Least confidence of every character of both rows for a two-row reading to be taken.
pub const ROW_SURE: f32 = 0.5;

/// The frame row (y) between the two character rows of a plate box: the row with the least
/// horizontal edge energy between 30% and 70% of the box height; `None` for a box too small to
/// tell, or when that row is not clearly calmer than the rows with characters.
#[must_use]
pub fn row_gap(frame: &RgbFrame, bbox: &BBox) -> Option<f32> {
    calmest_row(frame, bbox).and_then(|(gap, clear)| clear.then_some(gap))
}

/// The row [`row_gap`] looks for, and whether it is clearly calmer (three times) than the
/// busiest rows above and below it; `None` only for a box too small to tell. On a small or
/// blurred two-row plate the gap between the rows is blurred too, and is not clearly calmer,
/// yet it is still the calmest row: a caller with the plate formats to check the reading
/// against may cut there all the same.
#[must_use]
pub fn calmest_row(frame: &RgbFrame, bbox: &BBox) -> Option<(f32, bool)> {
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
    let clear = above > 3.0 * calm.max(1.0) && below > 3.0 * calm.max(1.0);
    Some((gap as f32, clear))
}

/// Share of the top row's height, from its top, in which the flag is looked for: the flag fills
/// the upper part of its column, the `KZ` mark or the country letters the lower part.
const FLAG_ROWS: f32 = 0.6;

/// Widest flag column looked for, as a share of the box width (the Kazakhstan two-row plate's
/// flag and `KZ` mark take its left fifth; a detector's box is often wider than the plate).
const FLAG_MAX_SHARE: f32 = 0.3;

/// Least share of a column's pixels (in the flag's rows) that are flag-blue for it to be part
/// of the flag (the sun and the ornament take the rest).
const FLAG_BLUE: f32 = 0.4;

/// Whether a pixel is of a flag's blue, in any light: blue clearly above red and a little above
/// green, by ratio rather than by level (the Kazakhstan flag's sky blue has nearly as much green
/// as blue, and a dim plate keeps the ratios but not the margins [`super::crop`]'s band test
/// asks for).
fn is_flag_blue(p: [u8; 3]) -> bool {
    let [r, g, b] = p.map(i32::from);
    b >= 40 && 3 * r < 2 * b && 16 * g < 15 * b
}

/// The top row `top` of a two-row plate without the flag column at its left: the flag, and the
/// `KZ` mark or country letters under it, are not characters, and the reader would read the
/// mark as one (`K969` for `969`). The flag is found by colour in the upper part of the row:
/// columns in the left `FLAG_MAX_SHARE` of the box at least `FLAG_BLUE` flag-blue; the
/// row is cut after the rightmost of them. A row with no flag is returned as it is.
#[must_use]
pub fn without_flag_column(frame: &RgbFrame, top: &BBox) -> BBox {
    let x0 = top.x.max(0.0) as usize;
    let x1 = ((top.x + top.w * FLAG_MAX_SHARE) as usize).min(frame.width as usize);
    let y0 = top.y.max(0.0) as usize;
    let y1 = ((top.y + top.h * FLAG_ROWS) as usize).min(frame.height as usize);
    if x1 <= x0 || y1 <= y0 {
        return *top;
    }
    let rows = (y1 - y0) as f32;
    let flag_end = (x0..x1)
        .filter(|&x| {
            let blue = (y0..y1)
                .filter(|&y| is_flag_blue(frame.pixel(x as u32, y as u32)))
                .count();
            blue as f32 >= rows * FLAG_BLUE
        })
        .max();
    match flag_end {
        Some(x) => {
            let cut = (x + 1) as f32 - top.x;
            BBox {
                x: top.x + cut,
                w: top.w - cut,
                ..*top
            }
        }
        None => *top,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::{FormatAutomaton, GrammarMode};
    use crate::plate_reader::ctc::weakest;
    use crate::plate_reader::{FormatFit, SymbolMap, ctc_format_decode, ctc_greedy_decode};

    /// The plate characters as the dictionary.
    fn dict() -> Vec<String> {
        ('0'..='9').chain('A'..='Z').map(String::from).collect()
    }

    /// One step per entry: `(char, p)` gets `p`, the blank the rest; `_` is a sure blank.
    fn steps(entries: &[(char, f32)]) -> Array2<f32> {
        let d = dict();
        let mut m = Array2::<f32>::zeros((entries.len(), d.len() + 1));
        for (t, &(c, p)) in entries.iter().enumerate() {
            if c == '_' {
                m[[t, 0]] = 1.0;
            } else {
                let k = d.iter().position(|s| s == &c.to_string()).unwrap() + 1;
                m[[t, k]] = p;
                m[[t, 0]] = 1.0 - p;
            }
        }
        m
    }

    #[test]
    fn two_rows_read_unsurely_alone_make_a_plate_through_the_formats() {
        // Top row of a two-row Kazakhstan plate: the flag band's `KZ` beside the digits, its
        // `Z` doubtful; bottom row: the letters, a doubled `U`, and the boxed region code.
        let mut upper = steps(&[
            ('K', 0.9),
            ('Z', 0.4),
            ('_', 1.0),
            ('8', 0.97),
            ('_', 1.0),
            ('2', 0.97),
            ('_', 1.0),
            ('5', 0.97),
        ]);
        let lower = steps(&[
            ('U', 0.97),
            ('_', 1.0),
            ('U', 0.96),
            ('_', 1.0),
            ('P', 0.97),
            ('_', 1.0),
            ('1', 0.95),
            ('_', 1.0),
            ('9', 0.95),
        ]);
        // The `Z` step is torn between `Z` (0.4), `2` (0.35) and the blank (0.25).
        upper[[1, 0]] = 0.25;
        upper[[1, 3]] = 0.35;
        let top = ctc_greedy_decode(&upper.view(), &dict());
        assert!(
            weakest(&top) < ROW_SURE,
            "the top row alone reads doubtfully"
        );
        let joint = join_rows(&upper.view(), &lower.view()).unwrap();
        let a = FormatAutomaton::for_mode(GrammarMode::Kz).unwrap();
        let read = ctc_format_decode(&joint.view(), &SymbolMap::new(&dict()), &a);
        assert_eq!(read.text, "825UUP19");
        assert_ne!(read.fit, FormatFit::NoFormat);
    }

    #[test]
    fn joined_rows_keep_a_blank_step_between_them() {
        // The top row ends with `5` and the bottom row starts with `5`: without the blank step
        // between them, CTC would merge the two into one.
        let upper = steps(&[
            ('1', 0.97),
            ('_', 1.0),
            ('2', 0.97),
            ('_', 1.0),
            ('5', 0.97),
        ]);
        let lower = steps(&[('5', 0.97), ('_', 1.0), ('A', 0.97)]);
        let joint = join_rows(&upper.view(), &lower.view()).unwrap();
        assert_eq!(joint.nrows(), 9);
        assert_eq!(ctc_greedy_decode(&joint.view(), &dict()).text, "1255A");
    }

    /// A frame `w` x `h` painted by `paint(x, y)`.
    fn frame(w: u32, h: u32, paint: impl Fn(u32, u32) -> [u8; 3]) -> RgbFrame {
        let data = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .flat_map(|(x, y)| paint(x, y))
            .collect();
        RgbFrame {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn the_flag_column_is_cut_from_the_top_row_in_bright_and_dim_light() {
        let row = BBox {
            x: 10.0,
            y: 0.0,
            w: 100.0,
            h: 30.0,
        };
        // A flag (the Kazakhstan sky blue, a yellow sun in it) over columns 12..30 of the row's
        // upper half, the `KZ` mark's black strokes under it, digits after it.
        for (blue, white) in [([0u8, 175, 202], 244u8), ([0, 57, 71], 84)] {
            let plate = frame(120, 30, |x, y| {
                if (12..30).contains(&x) && y < 15 {
                    if (18..22).contains(&x) && (5..9).contains(&y) {
                        [230, 200, 0]
                    } else {
                        blue
                    }
                } else if ((14..16).contains(&x) || (40..44).contains(&x)) && y >= 17 {
                    [10, 10, 10]
                } else {
                    [white; 3]
                }
            });
            let cut = without_flag_column(&plate, &row);
            assert_eq!(
                (cut.x, cut.w, cut.y, cut.h),
                (30.0, 80.0, 0.0, 30.0),
                "{blue:?}"
            );
        }
        // A row without a flag, and a row whose blue is on the right, are kept whole.
        let plain = frame(120, 30, |x, _| {
            if (40..44).contains(&x) {
                [10; 3]
            } else {
                [244; 3]
            }
        });
        assert_eq!(without_flag_column(&plain, &row), row);
        let right = frame(
            120,
            30,
            |x, _| if x >= 80 { [0, 175, 202] } else { [244; 3] },
        );
        assert_eq!(without_flag_column(&right, &row), row);
    }

    #[test]
    fn a_blurred_gap_between_rows_is_still_the_calmest_row_but_not_a_clear_one() {
        let bbox = BBox {
            x: 0.0,
            y: 0.0,
            w: 60.0,
            h: 40.0,
        };
        // Vertical strokes (edges along each row) everywhere, lighter by `calm` in rows 19-21.
        let rows = |calm: u8| {
            frame(60, 40, move |x, y| {
                let ink = if (19..22).contains(&y) { 20 + calm } else { 20 };
                if x % 6 < 3 { [ink; 3] } else { [220; 3] }
            })
        };
        let sharp = rows(190);
        assert_eq!(calmest_row(&sharp, &bbox), Some((19.0, true)));
        assert_eq!(row_gap(&sharp, &bbox), Some(19.0));
        let blurred = rows(120);
        assert_eq!(calmest_row(&blurred, &bbox), Some((19.0, false)));
        assert_eq!(row_gap(&blurred, &bbox), None);
    }
}
