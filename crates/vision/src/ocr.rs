//! Plate reading with a PP-OCR text-line recognizer and greedy CTC decoding.
//!
//! The recognizer takes `[1, 3, 48, W]` BGR normalised to -1…1 and returns
//! `[1, T, classes]` probabilities; class 0 is the CTC blank, then the dictionary stored in
//! the model's `character` metadata, then (when the counts say so) a space.
//!
//! Each plate is read from two views of its box ([`VIEWS`]): the main character line (the box
//! trimmed a little at top and bottom, so a state name, a slogan or the frame above and below
//! the registration is not read with it), and the whole plate with a margin, centred in blank
//! space (so characters at its edges are read whole). The reading whose least certain character
//! is the more certain wins: a wrong or partial reading has at least one doubtful character.
//! When every character of the first view is already sure ([`SURE`]), the second is not run.
//!
//! A plate whose character rows slant by more than [`SKEWED`] (dy/dx, measured by
//! [`crate::skew::estimate_slope`]) is also read from a deskewed copy of its box, and the surer
//! of the slanted and the deskewed readings is kept.
//!
//! A box closer to a square than [`TWO_ROW_ASPECT`] may hold two rows of characters (motorcycle,
//! trailer and square European plates): the gap between the rows is found as the row with the
//! least edge energy in the middle band of the box, each row is read on its own, and the top row
//! followed by the bottom row is the reading when both rows read with every character at least
//! [`ROW_SURE`].

use std::path::{Path, PathBuf};

use anpr_types::{BBox, RgbFrame};
use ndarray::{Array4, ArrayView2};
use ort::session::Session;

use crate::VisionError;

const HEIGHT: usize = 48;
const MIN_WIDTH: usize = 320;
const MAX_WIDTH: usize = 960;

/// Text decoded from CTC probabilities, with one confidence per kept character.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CtcDecoded {
    pub text: String,
    pub char_confidences: Vec<f32>,
    pub confidence: f32,
}

/// Greedy CTC decoding: best class per step, repeats merged, blanks dropped. Only ASCII
/// letters and digits are kept (upper-cased): plates carry nothing else, and separators,
/// flags and frames must not become characters.
#[must_use]
pub fn ctc_greedy_decode(probs: &ArrayView2<'_, f32>, dict: &[String]) -> CtcDecoded {
    let mut out = CtcDecoded::default();
    let mut prev = usize::MAX;
    for step in probs.rows() {
        let (best, p) =
            step.iter().enumerate().fold(
                (0usize, f32::MIN),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        if best != prev
            && best != 0
            && let Some(s) = dict.get(best - 1)
        {
            for ch in s.chars().filter(char::is_ascii_alphanumeric) {
                out.text.push(ch.to_ascii_uppercase());
                out.char_confidences.push(p);
            }
        }
        prev = best;
    }
    if !out.char_confidences.is_empty() {
        out.confidence =
            out.char_confidences.iter().sum::<f32>() / out.char_confidences.len() as f32;
    }
    out
}

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
}

/// Confidence of the least certain character above which the first view's reading is kept
/// without trying the second.
pub const SURE: f32 = 0.8;

/// Slope (dy/dx) of the character rows from which a plate is also read deskewed (about 4°).
pub const SKEWED: f32 = 0.07;

/// Width over height below which a plate may have two rows of characters (single-row plates
/// are 2:1 in North America and 4–5:1 elsewhere; two-row plates about 1.3–1.5:1).
pub const TWO_ROW_ASPECT: f32 = 1.8;

/// Least confidence of every character of both rows for a two-row reading to be taken.
pub const ROW_SURE: f32 = 0.5;

/// How each row of a two-row plate is cut out.
const ROW_VIEW: CropView = CropView {
    margin_x: 0.06,
    margin_y: 0.04,
    pad: 0.5,
};

/// The views each plate is read from; see the module documentation.
pub const VIEWS: [CropView; 2] = [
    CropView {
        margin_x: 0.03,
        margin_y: -0.10,
        pad: 0.0,
    },
    CropView {
        margin_x: 0.06,
        margin_y: 0.12,
        pad: 0.5,
    },
];

/// Crops `bbox` as `view` says (clipped to the frame, without a blue band at its left) and
/// builds the recognizer input.
#[must_use]
pub fn prepare_crop(frame: &RgbFrame, bbox: &BBox, view: CropView) -> Array4<f32> {
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
    let rw =
        ((HEIGHT as f32 * cw as f32 / ch as f32).ceil() as usize).clamp(8, MAX_WIDTH - 2 * pad);
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
    t
}

/// The plate reader session and its dictionary.
pub struct PlateReader {
    session: Session,
    path: PathBuf,
    input: String,
    dict: Vec<String>,
}

impl PlateReader {
    /// Loads the recognizer and its dictionary from the model metadata.
    pub fn load(path: &Path, run: impl Into<crate::RunOn>) -> Result<Self, VisionError> {
        let session = crate::runtime::session(path, run.into())?;
        let shape_err = |message: String| VisionError::ModelShape {
            path: path.to_path_buf(),
            role: "plate reader",
            message,
        };
        let dict_text = session
            .metadata()
            .ok()
            .and_then(|m| m.custom("character"))
            .ok_or_else(|| shape_err("the model has no `character` dictionary in its metadata; use a PP-OCR recognizer exported with its dictionary".into()))?;
        let mut dict: Vec<String> = dict_text.lines().map(str::to_string).collect();
        let classes = session
            .outputs()
            .first()
            .and_then(|o| {
                o.dtype()
                    .tensor_shape()
                    .and_then(|s| s.iter().last().copied())
            })
            .unwrap_or(-1);
        if classes > 0 {
            let classes = classes as usize;
            if classes == dict.len() + 2 {
                dict.push(" ".into());
            } else if classes != dict.len() + 1 {
                return Err(shape_err(format!(
                    "output has {classes} classes but the dictionary has {} entries",
                    dict.len()
                )));
            }
        }
        let input = session
            .inputs()
            .first()
            .ok_or_else(|| shape_err("the model has no input".into()))?;
        let dims: Vec<i64> = input
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if dims.len() != 4 || dims[1] != 3 || dims[2] != HEIGHT as i64 {
            return Err(shape_err(format!(
                "expected an input [N, 3, 48, W], found {dims:?}"
            )));
        }
        Ok(Self {
            input: input.name().to_string(),
            session,
            path: path.to_path_buf(),
            dict,
        })
    }

    /// Reads the plate inside `bbox` from each of [`VIEWS`]; keeps the reading whose least
    /// certain character is the most certain.
    pub fn read(&mut self, frame: &RgbFrame, bbox: &BBox) -> Result<CtcDecoded, VisionError> {
        if bbox.w < bbox.h * TWO_ROW_ASPECT
            && let Some(rows) = self.read_two_rows(frame, bbox)?
        {
            return Ok(rows);
        }
        let straight = self.read_views(frame, bbox)?;
        let slope = crate::skew::estimate_slope(frame, bbox);
        if slope.abs() < SKEWED {
            return Ok(straight);
        }
        let (level, plate) = crate::skew::deskew(frame, bbox, slope);
        let deskewed = self.read_views(&level, &plate)?;
        Ok(if weakest(&deskewed) > weakest(&straight) {
            deskewed
        } else {
            straight
        })
    }

    /// Reads `bbox` from [`VIEWS`], stopping early when the first is sure.
    fn read_views(&mut self, frame: &RgbFrame, bbox: &BBox) -> Result<CtcDecoded, VisionError> {
        let mut best: Option<CtcDecoded> = None;
        for view in VIEWS {
            if best.as_ref().is_some_and(|b| weakest(b) >= SURE) {
                break;
            }
            let r = self.read_view(frame, bbox, view)?;
            if best.as_ref().is_none_or(|b| weakest(&r) > weakest(b)) {
                best = Some(r);
            }
        }
        Ok(best.unwrap_or_default())
    }

    /// Reads the two rows of a squarish plate, top then bottom; `None` when no gap between
    /// rows is found or a row does not read surely.
    fn read_two_rows(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
    ) -> Result<Option<CtcDecoded>, VisionError> {
        let Some(gap) = row_gap(frame, bbox) else {
            return Ok(None);
        };
        let top = BBox {
            h: gap - bbox.y,
            ..*bbox
        };
        let bottom = BBox {
            y: gap,
            h: bbox.y + bbox.h - gap,
            ..*bbox
        };
        let upper = self.read_view(frame, &top, ROW_VIEW)?;
        let lower = self.read_view(frame, &bottom, ROW_VIEW)?;
        if upper.text.is_empty()
            || lower.text.is_empty()
            || weakest(&upper) < ROW_SURE
            || weakest(&lower) < ROW_SURE
        {
            return Ok(None);
        }
        let mut both = upper;
        both.text.push_str(&lower.text);
        both.char_confidences.extend(lower.char_confidences);
        both.confidence =
            both.char_confidences.iter().sum::<f32>() / both.char_confidences.len() as f32;
        Ok(Some(both))
    }

    /// Reads the plate inside `bbox` cut out as `view` says.
    pub fn read_view(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
        view: CropView,
    ) -> Result<CtcDecoded, VisionError> {
        let tensor = prepare_crop(frame, bbox, view);
        let dict = &self.dict;
        crate::runtime::run_first_output(
            &mut self.session,
            &self.input,
            &tensor,
            &self.path,
            |probs| {
                let shape = probs.shape().to_vec();
                let probs = probs
                    .into_shape_with_order((shape[1], shape[2]))
                    .map_err(|e| e.to_string())?;
                Ok(ctc_greedy_decode(&probs, dict))
            },
        )
    }
}

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

/// Whether a reading is good evidence that its box holds a plate, for boxes the detector is
/// unsure of: 4 to 10 characters, letters and digits both, every one read surely ([`SURE`]).
/// Signs, slogans and stickers the detector half-takes for plates are mostly words or
/// numbers alone, or read with a doubtful character.
#[must_use]
pub fn looks_like_a_plate(r: &CtcDecoded) -> bool {
    (4..=10).contains(&r.text.len())
        && r.text.chars().any(|c| c.is_ascii_digit())
        && r.text.chars().any(|c| c.is_ascii_alphabetic())
        && weakest(r) >= SURE
}

/// Confidence of the least certain character (0 for an empty reading).
fn weakest(r: &CtcDecoded) -> f32 {
    r.char_confidences
        .iter()
        .copied()
        .reduce(f32::min)
        .unwrap_or(0.0)
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn ctc_merges_repeats_drops_blanks_and_keeps_plate_characters() {
        let dict: Vec<String> = ["1", "A", "-", "b"]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        // steps: 1 1 blank 1 A - b blank
        let seq = [1usize, 1, 0, 1, 2, 3, 4, 0];
        let mut probs = Array2::<f32>::zeros((seq.len(), dict.len() + 1));
        for (t, &c) in seq.iter().enumerate() {
            probs[[t, c]] = 0.9;
        }
        let d = ctc_greedy_decode(&probs.view(), &dict);
        assert_eq!(d.text, "11AB");
        assert_eq!(d.char_confidences.len(), 4);
        assert!((d.confidence - 0.9).abs() < 1e-6);
    }

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

    #[test]
    fn the_reading_with_the_surer_weakest_character_is_the_surer_one() {
        let sure = CtcDecoded {
            text: "AB12".into(),
            char_confidences: vec![0.9, 0.8, 0.9, 0.9],
            confidence: 0.875,
        };
        let shaky = CtcDecoded {
            text: "AB123".into(),
            char_confidences: vec![0.99, 0.99, 0.99, 0.99, 0.3],
            confidence: 0.852,
        };
        assert!(weakest(&sure) > weakest(&shaky));
        assert_eq!(weakest(&CtcDecoded::default()), 0.0);
    }

    #[test]
    fn only_a_sure_mix_of_letters_and_digits_counts_as_a_plate_reading() {
        let read = |text: &str, weakest: f32| {
            let mut c = vec![0.99; text.len()];
            if let Some(first) = c.first_mut() {
                *first = weakest;
            }
            CtcDecoded {
                text: text.into(),
                char_confidences: c,
                confidence: 0.9,
            }
        };
        assert!(looks_like_a_plate(&read("CDK575", 0.95)));
        assert!(looks_like_a_plate(&read("123ABC02", 0.9)));
        assert!(
            !looks_like_a_plate(&read("CDK575", 0.5)),
            "a doubtful character"
        );
        assert!(!looks_like_a_plate(&read("REFERRAL", 0.99)), "a word");
        assert!(!looks_like_a_plate(&read("3768750", 0.99)), "a number");
        assert!(!looks_like_a_plate(&read("A1", 0.99)), "too short");
        assert!(!looks_like_a_plate(&read("SOUTHBORDER1", 0.99)), "too long");
    }
}
