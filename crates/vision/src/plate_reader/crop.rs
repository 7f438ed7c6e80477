//! How a plate box is cut out and scaled into the recognizer input (`[1, 3, 48, W]`, BGR,
//! -1…1), and which views of a box are read.

use anpr_types::{BBox, RgbFrame};
use ndarray::{Array4, Axis, Slice};

/// Height of the recognizer input.
pub(crate) const HEIGHT: usize = 48;
const MIN_WIDTH: usize = 320;
const MAX_WIDTH: usize = 960;

/// Whether a pixel belongs to the blue band printed at the left of many plates (the EU
/// country band, the flag area of others): clearly more blue than red and green.
fn is_band_blue(p: [u8; 3]) -> bool {
    let [r, g, b] = p.map(i32::from);
    b > 70 && b > r + 45 && b > g + 15
}

/// Columns from `x0` rightwards that are mostly band-blue, within the left quarter of the
/// crop; 0 when there is no band. The band's letters (a country code) are not part of the
/// registration, so the reader should not see them.
#[must_use]
pub fn left_band_width(frame: &RgbFrame, x0: usize, x1: usize, y0: usize, y1: usize) -> usize {
    let width = x1 - x0;
    let limit = x0 + width / 4;
    let mut last_blue = None;
    let rows = (y1 - y0).max(1);
    for x in x0..limit {
        let blue = (y0..y1)
            .filter(|&y| is_band_blue(frame.pixel(x as u32, y as u32)))
            .count();
        if blue * 10 >= rows * 6 {
            last_blue = Some(x);
        } else if last_blue.is_some() || x - x0 > width / 12 {
            break;
        }
    }
    // A country band is a narrow strip: anything wider is the plate's own colour or artwork.
    match last_blue {
        Some(x) if (x + 1 - x0) * 100 <= width * 16 => x + 1 - x0,
        _ => 0,
    }
}

/// How a plate box is cut out for reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropView {
    /// Margin added left and right, as a share of the box width.
    pub margin_x: f32,
    /// Margin added at top and bottom, as a share of the box height (negative: trimmed).
    pub margin_y: f32,
    /// Blank space left and right of the crop in the recognizer input, as a share of its
    /// height (48 px).
    pub pad: f32,
    /// Stretch the crop's contrast so its darkest and lightest 2% span the whole range (for
    /// dim, hazy or washed-out plates).
    pub stretch: bool,
}

/// How each row of a two-row plate is cut out: with no blank space before it, as the
/// recognizer saw text lines in training (cut at the first character, padded on the right only;
/// with blank space before them the rows' doubled letters were merged more often).
pub(crate) const ROW_VIEW: CropView = CropView {
    margin_x: 0.06,
    margin_y: 0.04,
    pad: 0.0,
    stretch: false,
};

/// The views each plate is read from; see the module documentation.
pub const VIEWS: [CropView; 3] = [
    CropView {
        margin_x: 0.03,
        margin_y: -0.10,
        pad: 0.0,
        stretch: false,
    },
    CropView {
        margin_x: 0.06,
        margin_y: 0.12,
        pad: 0.5,
        stretch: false,
    },
    CropView {
        margin_x: 0.03,
        margin_y: -0.10,
        pad: 0.0,
        stretch: true,
    },
];

/// In a regional mode, a fourth view, read only when [`VIEWS`] leave the reading unsettled: the
/// box with a fifth of its width added on each side. A plate detector trained on plates without
/// a region box often ends its box before it (the Kazakhstan plate's region code is in a box on
/// its right fifth, 0.815–0.98 of the plate's width); the formats need that code, so a reading
/// without it is corrected into another format or fits none. Read wider, the region code is
/// there; the ranking of readings (the fit to the formats first) decides between the views.
pub const WIDE_VIEW: CropView = CropView {
    margin_x: 0.2,
    margin_y: 0.12,
    pad: 0.5,
    stretch: false,
};

/// Width in input columns the plate's content is stretched to at least, in every mode:
/// the recognizer gives one time step per 8 columns, and CTC needs a blank step between two
/// equal characters to read both, so about two steps per character, for up to 10 characters
/// (a 9-character plate with the flag band's `KZ` before it, counted as one wide symbol), is
/// 8 x 2 x 10 = 160. A crop already wider is left as it is.
pub const MIN_CONTENT_WIDTH: usize = 160;

/// The same for the bottom row of a two-row plate, where its letters are, and so its doubled
/// letters (`540TTH16`). Cut from the plate, a row is about 2.8:1 and its characters fill its
/// height; its two or three letters take about two thirds of its width, so at 160 columns a
/// letter gets about four time steps (8 columns each), and two equal letters standing close
/// were read as one; at 240 it gets about six. Measured on the kz sets
/// (`models/plate_reader.md`, "Doubled letters in the bottom row"): more exact reads in both
/// modes, none lost; the top row (digits) read no better wider, so it keeps 160.
pub const BOTTOM_ROW_MIN_CONTENT_WIDTH: usize = 240;

/// Crops `bbox` as `view` says (clipped to the frame, without a blue band at its left) and
/// builds the recognizer input.
#[must_use]
pub fn prepare_crop(frame: &RgbFrame, bbox: &BBox, view: CropView) -> Array4<f32> {
    prepare_crop_wide(frame, bbox, view, 0)
}

/// As [`prepare_crop`], with the plate's content stretched to at least `min_content` columns
/// (see [`MIN_CONTENT_WIDTH`]).
#[must_use]
pub fn prepare_crop_wide(
    frame: &RgbFrame,
    bbox: &BBox,
    view: CropView,
    min_content: usize,
) -> Array4<f32> {
    crop_tensor(frame, bbox, view, min_content).0
}

/// The bottom row of a two-row plate as the recognizer input: cut out as [`ROW_VIEW`] says,
/// stretched to at least [`BOTTOM_ROW_MIN_CONTENT_WIDTH`] columns, and with two thin strokes
/// standing side by side parted ([`part_thin_strokes`]).
#[must_use]
pub fn prepare_bottom_row(frame: &RgbFrame, bbox: &BBox) -> Array4<f32> {
    let (t, content) = crop_tensor(frame, bbox, ROW_VIEW, BOTTOM_ROW_MIN_CONTENT_WIDTH);
    part_thin_strokes(t, content)
}

/// [`prepare_crop_wide`], and the columns of the input the plate's content fills.
fn crop_tensor(
    frame: &RgbFrame,
    bbox: &BBox,
    view: CropView,
    min_content: usize,
) -> (Array4<f32>, std::ops::Range<usize>) {
    let mx = bbox.w * view.margin_x;
    let my = bbox.h * view.margin_y;
    let x0 = (bbox.x - mx).max(0.0) as usize;
    let y0 = (bbox.y - my).max(0.0) as usize;
    let x0 = x0.min(frame.width as usize - 1);
    let y0 = y0.min(frame.height as usize - 1);
    let x1 = ((bbox.x + bbox.w + mx).min(frame.width as f32) as usize).max(x0 + 1);
    let y1 = ((bbox.y + bbox.h + my).min(frame.height as f32) as usize).max(y0 + 1);
    let band = left_band_width(frame, x0, x1, y0, y1);
    let x0 = if band > 0 {
        (x0 + band + 1).min(x1 - 1)
    } else {
        x0
    };
    let (cw, ch) = (x1 - x0, y1 - y0);
    let pad = (HEIGHT as f32 * view.pad).round() as usize;
    let rw = ((HEIGHT as f32 * cw as f32 / ch as f32).ceil() as usize)
        .max(min_content)
        .clamp(8, MAX_WIDTH - 2 * pad);
    let width = (rw + 2 * pad).max(MIN_WIDTH);
    let mut t = Array4::<f32>::zeros((1, 3, HEIGHT, width));
    crate::resize::resample_rows(frame, (x0, y0, cw, ch), rw, HEIGHT, |y, pixels| {
        for (x, p) in pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                // BGR channel order, as the recognizer was trained.
                t[[0, 2 - c, y, pad + x]] = p[c] / 127.5 - 1.0;
            }
        }
    });
    if view.stretch {
        stretch_contrast(&mut t, pad..pad + rw);
    }
    (t, pad..pad + rw)
}

/// Width, in input columns, below which a run of dark columns is a thin stroke (`I`, `1`, the
/// stem of `T`, `J` or `L` between its top and bottom fifths): under 0.3 of the input height,
/// where every other character of a plate font is wider.
const THIN_STROKE: usize = HEIGHT * 3 / 10;
/// Least distance, in input columns, from the start of one thin stroke to the start of the
/// next: five of the recognizer's time steps (8 columns each). A stroke at any offset touches
/// two steps, and CTC needs a blank step between two equal characters: two, one, and the
/// second stroke's two. (Measured: at four steps one of the two doubled `I` of the Kazakhstan
/// photo set was still merged, at five and six neither.)
const STROKE_PITCH: usize = 40;
/// Least width, in input columns, of a stroke: narrower runs of dark columns are specks.
const MIN_STROKE: usize = 3;

/// Parts two thin strokes standing side by side: where two thin runs of dark columns (see
/// [`THIN_STROKE`]; a column is dark when a pixel of its middle three fifths is darker than
/// halfway between the content's 10th and 90th grey percentiles) follow each other closer than
/// [`STROKE_PITCH`], columns of the content's light level are put in the gap between them.
///
/// A doubled `I` (`861IIS04`) is two strokes a few columns apart: the recognizer gives the
/// pair fewer time steps than two characters and a blank need, and CTC merges them into one
/// `I` at any stretch that keeps the row's shape. Spacing out only pairs of thin strokes leaves
/// every wider character, and the gaps beside it, as they were. `content` is the columns of
/// `t` the plate fills; the result is at least as wide as `t`, and as wide when nothing is
/// parted.
#[must_use]
pub(crate) fn part_thin_strokes(t: Array4<f32>, content: std::ops::Range<usize>) -> Array4<f32> {
    let Some((light, gaps)) = stroke_gaps(&t, &content) else {
        return t;
    };
    let mut parts = Vec::with_capacity(2 * gaps.len() + 1);
    let mut from = 0;
    let blanks: Vec<Array4<f32>> = gaps
        .iter()
        .map(|&(_, n)| Array4::from_elem((1, 3, t.shape()[2], n), light))
        .collect();
    for (&(at, _), blank) in gaps.iter().zip(&blanks) {
        let at = content.start + at;
        parts.push(t.slice_axis(Axis(3), Slice::from(from..at)));
        parts.push(blank.view());
        from = at;
    }
    parts.push(t.slice_axis(Axis(3), Slice::from(from..)));
    let Ok(out) = ndarray::concatenate(Axis(3), &parts) else {
        return t;
    };
    // The recognizer takes a tensor in standard layout only, which `concatenate` along the
    // last axis does not give.
    let width = out.shape()[3].min(MAX_WIDTH);
    out.slice_axis(Axis(3), Slice::from(..width))
        .as_standard_layout()
        .into_owned()
}

/// Grey level of input pixel (`y`, `x`): the mean of its three channels.
fn grey(t: &Array4<f32>, y: usize, x: usize) -> f32 {
    (t[[0, 0, y, x]] + t[[0, 1, y, x]] + t[[0, 2, y, x]]) / 3.0
}

/// Where [`part_thin_strokes`] puts columns in, and their level: the row's light level and, for
/// each pair of thin strokes to part, (content column to put them in before, how many). `None`
/// when there is nothing to part.
fn stroke_gaps(
    t: &Array4<f32>,
    content: &std::ops::Range<usize>,
) -> Option<(f32, Vec<(usize, usize)>)> {
    let h = t.shape()[2];
    let (band_lo, band_hi) = (h / 5, h - h / 5);
    let mut levels: Vec<f32> = content
        .clone()
        .flat_map(|x| (band_lo..band_hi).map(move |y| grey(t, y, x)))
        .collect();
    if levels.len() < 10 {
        return None;
    }
    let n = levels.len();
    let dark = *levels.select_nth_unstable_by(n / 10, f32::total_cmp).1;
    let light = *levels.select_nth_unstable_by(n * 9 / 10, f32::total_cmp).1;
    if light - dark < 0.2 {
        return None;
    }
    let threshold = f32::midpoint(dark, light);
    // Dark pixels of each content column within the band.
    let dark_rows: Vec<usize> = content
        .clone()
        .map(|x| {
            (band_lo..band_hi)
                .filter(|&y| grey(t, y, x) < threshold)
                .count()
        })
        .collect();
    // Runs of dark columns, as (first, end) in content columns.
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &n) in dark_rows.iter().chain(std::iter::once(&0)).enumerate() {
        match (n > 0, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    // A run at either end of the content is the plate's edge or a character the crop cut.
    let edge = (content.len() * 3).div_ceil(100);
    runs.retain(|&(s, e)| s > edge && e + edge < content.len());
    // A thin stroke: a few columns wide, and dark down most of the band in one of them (a
    // speck or the end of a serif is not).
    let tall = (band_hi - band_lo) * 3 / 5;
    let is_stroke = |s: usize, e: usize| {
        (MIN_STROKE..THIN_STROKE).contains(&(e - s)) && dark_rows[s..e].iter().any(|&n| n >= tall)
    };
    // Rows dark across most of the content: the plate's frame or the edge of the row above,
    // not a part of a character.
    let across: Vec<bool> = (0..h)
        .map(|y| {
            content
                .clone()
                .filter(|&x| grey(t, y, x) < threshold)
                .count()
                * 10
                >= content.len() * 7
        })
        .collect();
    // Two strokes joined above or below the band (the arms of `U`; `H`'s bar is within it) are
    // one character: the middle of the gap between them is dark somewhere.
    let joined = |a1: usize, b0: usize| {
        let x = content.start + usize::midpoint(a1, b0);
        (h / 10..h - h / 10).any(|y| !across[y] && grey(t, y, x) < threshold)
    };
    let gaps: Vec<(usize, usize)> = runs
        .windows(2)
        .filter(|pair| {
            let ((a0, a1), (b0, b1)) = (pair[0], pair[1]);
            is_stroke(a0, a1) && is_stroke(b0, b1) && b0 - a0 < STROKE_PITCH && !joined(a1, b0)
        })
        .map(|pair| {
            let ((a0, a1), (b0, _)) = (pair[0], pair[1]);
            (usize::midpoint(a1, b0), STROKE_PITCH - (b0 - a0))
        })
        .collect();
    (!gaps.is_empty()).then_some((light, gaps))
}

/// Stretches the grey levels of columns `content` so that their darkest and lightest 2% reach
/// -1 and 1 (every channel by the same map, so colours keep their order).
fn stretch_contrast(t: &mut Array4<f32>, content: std::ops::Range<usize>) {
    let (h, cols) = (t.shape()[2], content.len());
    let mut levels = Vec::with_capacity(h * cols);
    for y in 0..h {
        for x in content.clone() {
            levels.push(grey(t, y, x));
        }
    }
    if levels.is_empty() {
        return;
    }
    levels.sort_by(f32::total_cmp);
    let lo = levels[levels.len() / 50];
    let hi = levels[levels.len() - 1 - levels.len() / 50];
    if hi - lo < 0.05 {
        return;
    }
    for c in 0..3 {
        for y in 0..h {
            for x in content.clone() {
                let v = &mut t[[0, c, y, x]];
                *v = ((*v - lo) / (hi - lo) * 2.0 - 1.0).clamp(-1.0, 1.0);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    #[test]
    fn a_blue_band_at_the_left_of_the_plate_is_measured_and_a_white_plate_has_none() {
        let (w, h) = (100u32, 20u32);
        let mut data = vec![240u8; (w * h * 3) as usize];
        for y in 0..h {
            for x in 0..12 {
                let i = ((y * w + x) * 3) as usize;
                data[i..i + 3].copy_from_slice(&[10, 50, 160]);
            }
        }
        let frame = RgbFrame {
            width: w,
            height: h,
            data,
        };
        assert_eq!(left_band_width(&frame, 0, 100, 0, 20), 12);
        let white = RgbFrame {
            width: w,
            height: h,
            data: vec![240; (w * h * 3) as usize],
        };
        assert_eq!(left_band_width(&white, 0, 100, 0, 20), 0);
    }

    /// A white row `width` columns wide, 48 high, with black ink where `ink(y, x)` says.
    fn row(width: usize, ink: impl Fn(usize, usize) -> bool) -> Array4<f32> {
        let mut t = Array4::<f32>::from_elem((1, 3, HEIGHT, width), 1.0);
        for y in 0..HEIGHT {
            for x in 0..width {
                if ink(y, x) {
                    for c in 0..3 {
                        t[[0, c, y, x]] = -1.0;
                    }
                }
            }
        }
        t
    }

    /// Columns of `t` with ink in its middle row.
    fn inked_columns(t: &Array4<f32>) -> Vec<usize> {
        (0..t.shape()[3])
            .filter(|&x| t[[0, 0, HEIGHT / 2, x]] < 0.0)
            .collect()
    }

    #[test]
    fn two_thin_strokes_side_by_side_are_parted_to_the_stroke_pitch() {
        // `IIS`: two 6-column strokes 8 columns apart, then a wide character.
        let letters = |y: usize, x: usize| {
            (3..45).contains(&y)
                && ((40..46).contains(&x) || (54..60).contains(&x) || (70..100).contains(&x))
        };
        let t = row(240, letters);
        let parted = part_thin_strokes(t, 0..240);
        let inked = inked_columns(&parted);
        let starts: Vec<usize> = inked
            .iter()
            .enumerate()
            .filter(|&(i, &x)| i == 0 || inked[i - 1] + 1 != x)
            .map(|(_, &x)| x)
            .collect();
        assert_eq!(starts.len(), 3, "three characters still: {starts:?}");
        assert_eq!(starts[1] - starts[0], STROKE_PITCH, "the strokes parted");
        assert_eq!(
            starts[2] - starts[1],
            70 - 54,
            "the wide character keeps its distance"
        );
        assert_eq!(parted.shape()[3], 240 + STROKE_PITCH - 14);
        assert!(parted.is_standard_layout(), "the recognizer's input layout");
        // What was put in is the row's light level, top to bottom.
        assert!((47..54).all(|x| (0..HEIGHT).all(|y| parted[[0, 1, y, x]] == 1.0)));
    }

    #[test]
    fn wide_characters_the_arms_of_a_u_and_specks_are_left_as_they_are() {
        // Two wide characters close together.
        let wide = row(240, |y, x| {
            (3..45).contains(&y) && ((40..70).contains(&x) || (74..104).contains(&x))
        });
        assert_eq!(part_thin_strokes(wide.clone(), 0..240), wide);
        // `U`: two thin arms joined below the middle band.
        let u = row(240, |y, x| {
            (3..45).contains(&y) && ((40..46).contains(&x) || (56..62).contains(&x))
                || (38..45).contains(&y) && (40..62).contains(&x)
        });
        assert_eq!(part_thin_strokes(u.clone(), 0..240), u);
        // A one-column speck beside a stroke, and strokes already a pitch apart.
        let speck = row(240, |y, x| {
            (3..45).contains(&y) && (x == 40 || (44..50).contains(&x))
        });
        assert_eq!(part_thin_strokes(speck.clone(), 0..240), speck);
        let apart = row(240, |y, x| {
            (3..45).contains(&y) && ((40..46).contains(&x) || (80..86).contains(&x))
        });
        assert_eq!(part_thin_strokes(apart.clone(), 0..240), apart);
        // A plate's frame line across the row does not join two strokes.
        let framed = row(240, |y, x| {
            (3..45).contains(&y)
                && ((40..46).contains(&x) || (54..60).contains(&x) || (70..100).contains(&x))
                || y == 43
        });
        assert!(part_thin_strokes(framed, 0..240).shape()[3] > 240);
    }

    #[test]
    fn crop_keeps_the_aspect_ratio_and_pads_to_the_minimum_width() {
        let frame = RgbFrame {
            width: 200,
            height: 100,
            data: vec![255; 200 * 100 * 3],
        };
        let bbox = BBox {
            x: 50.0,
            y: 40.0,
            w: 100.0,
            h: 22.0,
        };
        let t = prepare_crop(&frame, &bbox, VIEWS[0]);
        assert_eq!(t.shape(), &[1, 3, 48, 320]);
        assert!((t[[0, 0, 10, 10]] - 1.0).abs() < 1e-5);
        assert_eq!(t[[0, 0, 10, 319]], 0.0);
        // The padded view starts with blank space, then the plate.
        let t = prepare_crop(&frame, &bbox, VIEWS[1]);
        assert_eq!(t[[0, 0, 10, 0]], 0.0);
        assert!((t[[0, 0, 10, 30]] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn a_narrow_crop_is_stretched_to_the_least_content_width() {
        let frame = RgbFrame {
            width: 200,
            height: 100,
            data: vec![255; 200 * 100 * 3],
        };
        // A 2:1 box trimmed to about 2.6:1 is about 126 columns at height 48; stretched, 160.
        let bbox = BBox {
            x: 50.0,
            y: 40.0,
            w: 60.0,
            h: 30.0,
        };
        let white = |t: &Array4<f32>| (0..320).filter(|&x| t[[0, 0, 20, x]] > 0.99).count();
        assert!((120..=130).contains(&white(&prepare_crop(&frame, &bbox, VIEWS[0]))));
        let wide = prepare_crop_wide(&frame, &bbox, VIEWS[0], MIN_CONTENT_WIDTH);
        assert_eq!(white(&wide), MIN_CONTENT_WIDTH);
    }

    #[test]
    fn a_stretched_view_spreads_a_dim_plate_over_the_whole_range() {
        // A dim plate: characters at 40, background at 70.
        let mut frame = RgbFrame {
            width: 120,
            height: 40,
            data: vec![70; 120 * 40 * 3],
        };
        for y in 10..30 {
            for x in (10..110).step_by(10) {
                for c in 0..3 {
                    frame.data[(y * 120 + x) * 3 + c] = 40;
                }
            }
        }
        let bbox = BBox {
            x: 0.0,
            y: 0.0,
            w: 120.0,
            h: 40.0,
        };
        // The plate fills the first 180 columns (120x32 after trimming, scaled to 48 high).
        let range = |t: &Array4<f32>| {
            t.slice_axis(ndarray::Axis(3), ndarray::Slice::from(0..150))
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
        };
        let plain = prepare_crop(&frame, &bbox, VIEWS[0]);
        let stretched = prepare_crop(&frame, &bbox, VIEWS[2]);
        let (lo, hi) = range(&plain);
        assert!(hi - lo < 0.3, "dim: {lo}..{hi}");
        let (lo, hi) = range(&stretched);
        assert!(lo <= -0.99 && hi >= 0.99, "stretched: {lo}..{hi}");
    }

    #[test]
    fn a_box_at_the_edge_of_the_frame_still_gives_a_crop() {
        let frame = RgbFrame {
            width: 50,
            height: 20,
            data: vec![128; 50 * 20 * 3],
        };
        for view in VIEWS {
            let t = prepare_crop(
                &frame,
                &BBox {
                    x: 49.5,
                    y: 19.5,
                    w: 3.0,
                    h: 2.0,
                },
                view,
            );
            assert_eq!(t.shape()[2], 48);
        }
    }
}
