//! Plate reading with a PP-OCR text-line recognizer and CTC decoding: greedy in generic mode,
//! a beam search constrained by the plate formats in a regional mode ([`beam`],
//! [`PlateReader::set_grammar`]). In every mode narrow crops are stretched to
//! [`MIN_CONTENT_WIDTH`] columns so doubled letters have time steps for the blank between them
//! (the bottom row of a two-row plate, where its letters are, to
//! [`BOTTOM_ROW_MIN_CONTENT_WIDTH`], and two thin strokes side by side there, a doubled `I`,
//! parted: [`prepare_bottom_row`]).
//!
//! The recognizer takes `[1, 3, 48, W]` BGR normalised to -1…1 and returns
//! `[1, T, classes]` probabilities; class 0 is the CTC blank, then the dictionary stored in
//! the model's `character` metadata, then (when the counts say so) a space.
//!
//! Each plate is read from up to three views of its box ([`VIEWS`]): the main character line
//! (the box trimmed a little at top and bottom, so a state name, a slogan or the frame above and
//! below the registration is not read with it); the whole plate with a margin, centred in blank
//! space (so characters at its edges are read whole); and the main character line again with its
//! contrast stretched (for dim, hazy or washed-out plates). The reading whose least certain
//! character is the most certain wins: a wrong or partial reading has at least one doubtful
//! character. As soon as every character of a reading is sure ([`SURE`]), no further view is
//! read. In a regional mode a reading that is a valid plate as the reader read it comes first,
//! then one the formats corrected, then one no format fits; only the first kind stops early.
//! Two-row plates are decoded there as one line through the formats ([`join_rows`]), and a
//! reading still unsettled after the three views is read once more from the box widened by a
//! fifth on each side ([`WIDE_VIEW`]: the region box a detector's box often leaves out).
//!
//! A plate whose character rows slant by more than [`SKEWED`] (dy/dx, measured by
//! [`crate::skew::estimate_slope`]) is also read from a deskewed copy of its box, and the surer
//! of the slanted and the deskewed readings is kept.
//!
//! A box closer to a square than [`TWO_ROW_ASPECT`] ([`REGIONAL_TWO_ROW_ASPECT`] in a regional
//! mode) may hold two rows of characters (motorcycle, trailer and square European plates): the
//! gap between the rows is found as the row with the least edge energy in the middle band of the
//! box, each row is read on its own (cut out with no blank space before it, and the top row
//! without the flag column at its left, [`without_flag_column`]), and the top row followed by
//! the bottom row is the reading when both rows read with every character at least
//! [`ROW_SURE`]. In a regional mode the two rows are decoded together through the formats
//! instead, and that reading is also taken when a row alone reads unsurely (the region box
//! beside the bottom row) as long as a format fits it; it is then ranked against the one-row
//! reading of the box. There a box squarish enough to be a two-row plate by its shape is cut at
//! its calmest middle row even when that row is not clearly a gap (a small, blurred plate), and
//! that reading is kept only when it is a plate of the formats as read ([`calmest_row`]).

pub mod beam;
mod crop;
mod ctc;
mod rows;
pub mod skew;

pub use beam::{BEAM_WIDTH, NO_FIT_RATIO, SymbolMap, ctc_format_decode};
pub use crop::{
    BOTTOM_ROW_MIN_CONTENT_WIDTH, CropView, MIN_CONTENT_WIDTH, VIEWS, WIDE_VIEW,
    prepare_bottom_row, prepare_crop, prepare_crop_wide,
};
pub use ctc::{CtcDecoded, FormatFit, SURE, ctc_greedy_decode, looks_like_a_plate};
pub use rows::{
    REGIONAL_TWO_ROW_ASPECT, ROW_SURE, TWO_ROW_ASPECT, calmest_row, join_rows, row_gap,
    without_flag_column,
};

use std::path::{Path, PathBuf};

use anpr_types::{BBox, RgbFrame};
use ort::session::Session;

use crate::VisionError;
use crate::grammar::{FormatAutomaton, GrammarMode};
use crop::{HEIGHT, ROW_VIEW};
use ctc::{surety, weakest};
use ndarray::Array4;

/// Slope (dy/dx) of the character rows from which a plate is also read deskewed (about 4°).
pub const SKEWED: f32 = 0.07;

/// The name of a view in reports: `line`, `margin` and `stretched` for [`VIEWS`] in order,
/// `wide` for [`WIDE_VIEW`], `rows` for a row of a two-row plate, `other` for any other.
#[must_use]
pub fn view_name(view: CropView) -> &'static str {
    match VIEWS.iter().position(|v| *v == view) {
        Some(0) => "line",
        Some(1) => "margin",
        Some(_) => "stretched",
        None if view == ROW_VIEW => "rows",
        None if view == WIDE_VIEW => "wide",
        None => "other",
    }
}

/// Whether a reading's `view` (its [`view_name`], ` deskewed` perhaps after it) is the two rows
/// of a two-row plate.
#[must_use]
pub fn read_as_rows(view: &str) -> bool {
    view.split(' ').next() == Some(view_name(ROW_VIEW))
}

/// The plate reader session and its dictionary.
pub struct PlateReader {
    session: Session,
    path: PathBuf,
    input: String,
    dict: Vec<String>,
    symbols: SymbolMap,
    /// The active grammar's formats; `None` in generic mode (greedy decoding).
    formats: Option<FormatAutomaton>,
}

/// Decodes one view's `[T, classes]` probabilities: format-aware when `formats` is set,
/// greedy otherwise.
fn decode(
    probs: &ndarray::ArrayView2<'_, f32>,
    dict: &[String],
    symbols: &SymbolMap,
    formats: Option<&FormatAutomaton>,
) -> CtcDecoded {
    match formats {
        Some(a) => ctc_format_decode(probs, symbols, a),
        None => ctc_greedy_decode(probs, dict),
    }
}

/// How good a reading is, for choosing between views: one the reader read as a valid plate by
/// itself beats one the formats had to correct, which beats one no format fits; then the surer
/// reading wins: the surer least certain character, and between corrections the surer
/// correction (a look-alike swap before a dropped character, [`ctc::surety`]). (In generic
/// mode every reading is `Unchecked`: only the weakest character counts, as before.)
fn rank(r: &CtcDecoded) -> (u8, f32) {
    let fit = match r.fit {
        FormatFit::Fits | FormatFit::Unchecked => 2,
        FormatFit::Corrected => 1,
        FormatFit::NoFormat => 0,
    };
    (fit, surety(r))
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
        let classes = crate::runtime::first_output_dims(&session)
            .last()
            .copied()
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
        let (input, dims) = crate::runtime::first_input(&session)
            .ok_or_else(|| shape_err("the model has no input".into()))?;
        if dims.len() != 4 || dims[1] != 3 || dims[2] != HEIGHT as i64 {
            return Err(shape_err(format!(
                "expected an input [N, 3, 48, W], found {dims:?}"
            )));
        }
        Ok(Self {
            input,
            session,
            path: path.to_path_buf(),
            symbols: SymbolMap::new(&dict),
            dict,
            formats: None,
        })
    }

    /// Decodes with the formats of `mode` from now on: format-aware beam search for a regional
    /// mode, greedy decoding in generic mode.
    pub fn set_grammar(&mut self, mode: GrammarMode) {
        self.formats = FormatAutomaton::for_mode(mode);
    }

    /// Whether a regional grammar is active (format-aware decoding).
    #[must_use]
    pub fn is_regional(&self) -> bool {
        self.formats.is_some()
    }

    /// Reads the plate inside `bbox` from each of [`VIEWS`]; keeps the reading whose least
    /// certain character is the most certain.
    ///
    /// A squarish box is first read as two rows (`PlateReader::read_two_rows`). In generic
    /// mode that reading is taken whenever it is made; in a regional mode it is taken at once
    /// only when it is a valid plate as read and sure, and otherwise ranked against the
    /// one-row reading (`rank`): the rows of a two-row plate read as one line are a fragment
    /// no format fits, and the one-row reading of a plate that only looks squarish wins.
    pub fn read(&mut self, frame: &RgbFrame, bbox: &BBox) -> Result<CtcDecoded, VisionError> {
        if bbox.w < bbox.h * self.two_row_aspect()
            && let Some(rows) = self.read_two_rows(frame, bbox)?
        {
            return self.rows_or_line(frame, bbox, rows);
        }
        self.read_one_row(frame, bbox)
    }

    /// The reading of a box whose two rows read as `rows`: that reading, or the one-row
    /// reading of the box when it ranks higher ([`PlateReader::read`]).
    fn rows_or_line(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
        rows: CtcDecoded,
    ) -> Result<CtcDecoded, VisionError> {
        if self.formats.is_none() || (rows.fit == FormatFit::Fits && weakest(&rows) >= SURE) {
            return Ok(rows);
        }
        let one = self.read_one_row(frame, bbox)?;
        Ok(if rank(&rows) >= rank(&one) { rows } else { one })
    }

    /// Width over height below which a box is also read as two rows: [`TWO_ROW_ASPECT`], or
    /// [`REGIONAL_TWO_ROW_ASPECT`] where the formats decide between the readings.
    fn two_row_aspect(&self) -> f32 {
        if self.formats.is_some() {
            REGIONAL_TWO_ROW_ASPECT
        } else {
            TWO_ROW_ASPECT
        }
    }

    /// Reads a box that may hold a plate the detector is unsure of, cheaply: as two rows when
    /// it is squarish and they read, otherwise from the first of [`VIEWS`] only.
    pub fn read_quick(&mut self, frame: &RgbFrame, bbox: &BBox) -> Result<CtcDecoded, VisionError> {
        if bbox.w < bbox.h * self.two_row_aspect()
            && let Some(rows) = self.read_two_rows(frame, bbox)?
        {
            return Ok(rows);
        }
        self.read_view(frame, bbox, VIEWS[0])
    }

    /// As [`PlateReader::read`], for a box [`PlateReader::read_quick`] already read as `first`:
    /// the same reading, without reading again what `first` was read from (the two rows, or
    /// the first of [`VIEWS`]). Any other `first` is no such reading: the box is read anew.
    pub fn read_after(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
        first: CtcDecoded,
    ) -> Result<CtcDecoded, VisionError> {
        if read_as_rows(&first.view) {
            return self.rows_or_line(frame, bbox, first);
        }
        if first.view != view_name(VIEWS[0]) {
            return self.read(frame, bbox);
        }
        self.read_one_row_from(frame, bbox, Some(first))
    }

    /// Reads `bbox` as one line of characters from [`VIEWS`], and deskewed when it slants.
    fn read_one_row(&mut self, frame: &RgbFrame, bbox: &BBox) -> Result<CtcDecoded, VisionError> {
        self.read_one_row_from(frame, bbox, None)
    }

    /// [`PlateReader::read_one_row`], the straight box's first view already read as `first`
    /// when given.
    fn read_one_row_from(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
        first: Option<CtcDecoded>,
    ) -> Result<CtcDecoded, VisionError> {
        let straight = self.read_views(frame, bbox, first)?;
        let slope = crate::skew::estimate_slope(frame, bbox);
        if slope.abs() < SKEWED {
            return Ok(straight);
        }
        let (level, plate) = crate::skew::deskew(frame, bbox, slope);
        let mut deskewed = self.read_views(&level, &plate, None)?;
        deskewed.view.push_str(" deskewed");
        Ok(if rank(&deskewed) > rank(&straight) {
            deskewed
        } else {
            straight
        })
    }

    /// Reads `bbox` from [`VIEWS`] (and [`WIDE_VIEW`] in a regional mode), stopping early when
    /// one is sure; the first view is not read again when its reading is given (`first`).
    fn read_views(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
        first: Option<CtcDecoded>,
    ) -> Result<CtcDecoded, VisionError> {
        let skip = usize::from(first.is_some());
        let mut best = first;
        let wide = self.formats.is_some().then_some(WIDE_VIEW);
        for view in VIEWS.into_iter().chain(wide).skip(skip) {
            if best
                .as_ref()
                .is_some_and(|b| weakest(b) >= SURE && rank(b).0 == 2)
            {
                break;
            }
            let r = self.read_view(frame, bbox, view)?;
            if best.as_ref().is_none_or(|b| rank(&r) > rank(b)) {
                best = Some(r);
            }
        }
        Ok(best.unwrap_or_default())
    }

    /// Reads the two rows of a squarish plate, top then bottom; `None` when no gap between
    /// rows is found or a row does not read surely. In a regional mode a box squarish enough to be
    /// a two-row plate by its shape alone ([`TWO_ROW_ASPECT`]) whose calmest middle row is not
    /// clearly a gap (a small or blurred plate) is still cut there, and the reading kept only
    /// when the two rows together are a plate of the formats as read.
    fn read_two_rows(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
    ) -> Result<Option<CtcDecoded>, VisionError> {
        let Some((gap, clear)) = calmest_row(frame, bbox) else {
            return Ok(None);
        };
        if !clear && (self.formats.is_none() || bbox.w >= bbox.h * TWO_ROW_ASPECT) {
            return Ok(None);
        }
        let top = without_flag_column(
            frame,
            &BBox {
                h: gap - bbox.y,
                ..*bbox
            },
        );
        let bottom = BBox {
            y: gap,
            h: bbox.y + bbox.h - gap,
            ..*bbox
        };
        let upper = self.raw_output_min(frame, &top, ROW_VIEW, MIN_CONTENT_WIDTH)?;
        let lower = self.run_raw(&prepare_bottom_row(frame, &bottom))?;
        let as_steps = |a: ndarray::ArrayD<f32>| {
            let shape = a.shape().to_vec();
            a.into_shape_with_order((shape[1], shape[2]))
                .map_err(|e| VisionError::Inference {
                    path: self.path.clone(),
                    message: e.to_string(),
                })
        };
        let (upper, lower) = (as_steps(upper)?, as_steps(lower)?);
        let (up, low) = (
            ctc_greedy_decode(&upper.view(), &self.dict),
            ctc_greedy_decode(&lower.view(), &self.dict),
        );
        let rows_sure = !up.text.is_empty()
            && !low.text.is_empty()
            && weakest(&up) >= ROW_SURE
            && weakest(&low) >= ROW_SURE;
        let Some(formats) = &self.formats else {
            if !rows_sure {
                return Ok(None);
            }
            let mut both = up;
            both.view = "rows".into();
            both.text.push_str(&low.text);
            both.char_confidences.extend(low.char_confidences);
            both.doubtful |= low.doubtful;
            both.confidence =
                both.char_confidences.iter().sum::<f32>() / both.char_confidences.len() as f32;
            return Ok(Some(both));
        };
        // Both rows decoded as one line (a blank step between them, so the last character of
        // the top row and the first of the bottom are not merged), through the formats.
        let joint =
            join_rows(&upper.view(), &lower.view()).ok_or_else(|| VisionError::Inference {
                path: self.path.clone(),
                message: "the two rows' outputs have different class counts".into(),
            })?;
        // A row read unsurely by itself (the flag band beside the top row's digits, the region
        // box's frame beside the bottom row's letters) is still taken when the two rows
        // together make a plate of the formats.
        let joint = ctc_format_decode(&joint.view(), &self.symbols, formats);
        if (!rows_sure && joint.fit == FormatFit::NoFormat)
            || (!clear && joint.fit != FormatFit::Fits)
        {
            return Ok(None);
        }
        Ok(Some(CtcDecoded {
            view: "rows".into(),
            ..joint
        }))
    }

    /// The recognizer's raw output `[1, T, classes]` for `bbox` cut out as `view` says: what
    /// [`PlateReader::read_view`] decodes (used by the golden-tensor tests).
    pub fn raw_output(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
        view: CropView,
    ) -> Result<ndarray::ArrayD<f32>, VisionError> {
        self.raw_output_min(frame, bbox, view, MIN_CONTENT_WIDTH)
    }

    /// [`PlateReader::raw_output`] with the content stretched to at least `min` columns.
    fn raw_output_min(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
        view: CropView,
        min: usize,
    ) -> Result<ndarray::ArrayD<f32>, VisionError> {
        self.run_raw(&prepare_crop_wide(frame, bbox, view, min))
    }

    /// The recognizer's raw output `[1, T, classes]` for an input tensor.
    fn run_raw(&mut self, tensor: &Array4<f32>) -> Result<ndarray::ArrayD<f32>, VisionError> {
        crate::runtime::run_first_output(
            &mut self.session,
            &self.input,
            tensor,
            &self.path,
            |out| Ok(out.to_owned()),
        )
    }

    /// The dictionary: class `i + 1` of the output is `dictionary()[i]` (class 0 is the blank).
    #[must_use]
    pub fn dictionary(&self) -> &[String] {
        &self.dict
    }

    /// Reads the plate inside `bbox` cut out as `view` says.
    pub fn read_view(
        &mut self,
        frame: &RgbFrame,
        bbox: &BBox,
        view: CropView,
    ) -> Result<CtcDecoded, VisionError> {
        let tensor = prepare_crop_wide(frame, bbox, view, MIN_CONTENT_WIDTH);
        let (dict, symbols, formats) = (&self.dict, &self.symbols, self.formats.as_ref());
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
                Ok(decode(&probs.view(), dict, symbols, formats))
            },
        )
        .map(|r| CtcDecoded {
            view: view_name(view).into(),
            ..r
        })
    }
}
