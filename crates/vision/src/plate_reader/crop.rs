//! How a plate box is cut out and scaled into the recognizer input (`[1, 3, 48, W]`, BGR,
//! -1…1), and which views of a box are read.

use anpr_types::{BBox, RgbFrame};
use ndarray::Array4;

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
    t
}

/// Stretches the grey levels of columns `content` so that their darkest and lightest 2% reach
/// -1 and 1 (every channel by the same map, so colours keep their order).
fn stretch_contrast(t: &mut Array4<f32>, content: std::ops::Range<usize>) {
    let (h, cols) = (t.shape()[2], content.len());
    let mut grey = Vec::with_capacity(h * cols);
    for y in 0..h {
        for x in content.clone() {
            grey.push((t[[0, 0, y, x]] + t[[0, 1, y, x]] + t[[0, 2, y, x]]) / 3.0);
        }
    }
    if grey.is_empty() {
        return;
    }
    grey.sort_by(f32::total_cmp);
    let lo = grey[grey.len() / 50];
    let hi = grey[grey.len() - 1 - grey.len() / 50];
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
