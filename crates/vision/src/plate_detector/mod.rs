//! Plate detector: a one-class YOLOv8n model (`models/plate_detector.md`). A box it is sure of
//! (`plate_confidence`) is a plate; a box it is less sure of (from
//! `plate_candidate_confidence`) is kept only when its reading looks like a plate
//! ([`crate::looks_like_a_plate`]) or, in a regional mode, is one of its formats as read; a
//! squarish weak box is read as two rows first. Every kept box is read by the plate reader and
//! its text checked against the plate grammar. Pre- and post-processing are the shared YOLO ones
//! ([`crate::yolo`]).
//!
//! With `second_look` set, vehicles the first pass found no plate on, or only a small one it
//! did not read surely ([`second_look`]), are looked at again: the detector runs on each such
//! vehicle's crop, which its letterbox enlarges, and what it finds there is merged with the
//! first pass.

pub mod second_look;

pub use second_look::SecondLook;

use std::time::Instant;

use anpr_types::{KnownPlate, PlateRead, RgbFrame, VehicleDetection};

use crate::grammar::{
    GrammarMode, NORTH_AMERICAN_ASPECT, RoundGlyph, final_round_glyph, north_american_zeros,
};
use crate::plate_reader::read_as_rows;
use crate::{
    Detection, FormatFit, PlateReader, RecognizerConfig, Timings, VisionError, YoloDetector,
    interpret, looks_like_a_plate, ms,
};

/// Boxes below `plate_confidence` read per frame (the surest of them), each from the reader's
/// first view only, or as two rows when squarish ([`PlateReader::read_quick`]: a plate worth
/// keeping reads surely from it), so checking costs little; in a regional mode, from every
/// view when that does not settle it.
const MAX_WEAK: usize = 1;
/// Overlap (IoU) with a plate already found above which a weak box is left out.
const WEAK_OVERLAP: f32 = 0.1;

/// Plates found and read in the frame; stage times go into `timings`, the view each plate
/// was read from into `views` (one per plate, in order).
pub(crate) fn find_plates(
    det: &mut YoloDetector,
    reader: &mut PlateReader,
    frame: &RgbFrame,
    cfg: &RecognizerConfig,
    known: &[KnownPlate],
    timings: &mut Timings,
    views: &mut Vec<String>,
) -> Result<Vec<PlateRead>, VisionError> {
    let t = Instant::now();
    let found = det.detect(frame, least_score(cfg))?;
    timings.plate_detect_ms = ms(t);
    let t = Instant::now();
    let mut plates = Vec::with_capacity(found.len());
    read_found(reader, frame, cfg, found, known, &mut plates, views)?;
    timings.plate_read_ms = ms(t);
    Ok(plates)
}

/// Least overlap (IoU) of a sure box with a known plate's expected box for the box to be
/// confirmed as that plate ([`Recognizer::process_known`](crate::Recognizer::process_known)).
/// A plate predicted a few frames ahead is seldom exactly where it is found; a box that
/// overlaps less is read from every view, which costs time, never a reading.
pub const KNOWN_OVERLAP: f32 = 0.3;

/// What a view's name ([`crate::plate_reader::view_name`]) is followed by in
/// [`FrameResult::plate_views`](crate::FrameResult::plate_views) for a plate confirmed from
/// that one view as a known plate.
pub const CONFIRMED: &str = " known";

/// Reads sure box `d` into a plate record and the view it was read from. Where a plate of
/// `known` is expected over the box, the box is first read from the reader's first view (or
/// as two rows when squarish, [`PlateReader::read_quick`]); a reading with the text of such a
/// plate, neither doubtful nor one no format fits, is taken as it is (its view marked
/// [`CONFIRMED`]). Otherwise, and where no plate is known, the box is read from every view
/// ([`PlateReader::read_after`]: the first view not read twice).
fn read_sure(
    reader: &mut PlateReader,
    frame: &RgbFrame,
    cfg: &RecognizerConfig,
    d: &Detection,
    known: &[KnownPlate],
) -> Result<(PlateRead, String), VisionError> {
    let mut there = known
        .iter()
        .filter(|k| k.bbox.iou(&d.bbox) >= KNOWN_OVERLAP)
        .peekable();
    let mut first = None;
    if there.peek().is_some() {
        let quick = reader.read_quick(frame, &d.bbox)?;
        let plate = plate_read(quick.clone(), d, cfg);
        if !plate.text.is_empty() && !plate.low_confidence && there.any(|k| k.text == plate.text) {
            return Ok((plate, quick.view + CONFIRMED));
        }
        first = Some(quick);
    }
    let read = match first {
        Some(quick) => reader.read_after(frame, &d.bbox, quick)?,
        None => reader.read(frame, &d.bbox)?,
    };
    let view = read.view.clone();
    Ok((plate_read(read, d, cfg), view))
}

/// The least detector score a box needs to be considered at all.
fn least_score(cfg: &RecognizerConfig) -> f32 {
    cfg.plate_candidate_confidence.min(cfg.plate_confidence)
}

/// Reads the boxes `found` (surest first) and adds those that are plates to `plates`: every
/// sure box (one over a plate of `known` first from one view, [`read_sure`]), and up to
/// [`MAX_WEAK`] weak ones that overlap no plate and read like a plate; the view each was read
/// from goes into `views`.
fn read_found(
    reader: &mut PlateReader,
    frame: &RgbFrame,
    cfg: &RecognizerConfig,
    found: Vec<Detection>,
    known: &[KnownPlate],
    plates: &mut Vec<PlateRead>,
    views: &mut Vec<String>,
) -> Result<(), VisionError> {
    let mut weak_left = MAX_WEAK;
    // Boxes come surest first: once one is weak, the rest are too.
    for d in found {
        if d.score >= cfg.plate_confidence {
            let (plate, view) = read_sure(reader, frame, cfg, &d, known)?;
            views.push(view);
            plates.push(plate);
            continue;
        }
        if weak_left == 0 {
            break;
        }
        // A part of a plate already found is not another plate.
        if plates
            .iter()
            .any(|p: &PlateRead| p.bbox.iou(&d.bbox) > WEAK_OVERLAP)
        {
            continue;
        }
        weak_left -= 1;
        let mut read = reader.read_quick(frame, &d.bbox)?;
        // In a regional mode a box the quick reading does not settle is read from every view
        // as a sure box is: the formats, not the detector's score, then decide whether it is a
        // plate, so the longer look cannot add a box that is none.
        if reader.is_regional() && !(looks_like_a_plate(&read) || reads_as_a_format(&read)) {
            read = reader.read(frame, &d.bbox)?;
        }
        if looks_like_a_plate(&read) || reads_as_a_format(&read) {
            views.push(read.view.clone());
            plates.push(plate_read(read, &d, cfg));
        }
    }
    Ok(())
}

/// Whether a reading of a weak box is a plate of the regional grammar's formats exactly as the
/// reader read it, every character at least [`ROW_SURE`]: in a regional mode, evidence that the
/// box holds a plate as good as [`looks_like_a_plate`]'s, and the one a two-row plate (whose
/// rows read less surely than a one-row plate's line) can give. Never in generic mode, where
/// no reading is checked against formats.
fn reads_as_a_format(read: &crate::CtcDecoded) -> bool {
    read.fit == FormatFit::Fits
        && read
            .char_confidences
            .iter()
            .all(|&c| c >= crate::plate_reader::ROW_SURE)
}

/// How sure a reading is, for choosing between two of one plate: one a plate format fits (or
/// generic mode) first, then the surer least certain character.
fn surety(p: &PlateRead) -> (bool, f32) {
    (!p.low_confidence && !p.text.is_empty(), weakest_char(p))
}

/// The confidence of the least certain character of a plate's reading; 0 when none was read.
pub(crate) fn weakest_char(p: &PlateRead) -> f32 {
    let weakest = p
        .char_confidences
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min);
    if weakest.is_finite() { weakest } else { 0.0 }
}

/// The text generic mode reports for a reading of box `d`. A one-row plate in a box narrower
/// than [`NORTH_AMERICAN_ASPECT`] is a North American plate ([`north_american_zeros`]); another
/// one-row plate's final round glyph is of the kind of the character before it
/// ([`final_round_glyph`]). A regional mode's formats decide `O` and `0` themselves, two rows
/// are read as they are, and so is everything with [`RoundGlyph::AsRead`].
fn generic_text(read: &crate::CtcDecoded, d: &Detection, cfg: &RecognizerConfig) -> String {
    if cfg.grammar != GrammarMode::Generic
        || cfg.round_glyph == RoundGlyph::AsRead
        || read_as_rows(&read.view)
    {
        read.text.clone()
    } else if d.bbox.w < NORTH_AMERICAN_ASPECT * d.bbox.h {
        north_american_zeros(&read.text)
    } else {
        final_round_glyph(&read.text)
    }
}

/// The plate record of a reading of box `d`.
fn plate_read(read: crate::CtcDecoded, d: &Detection, cfg: &RecognizerConfig) -> PlateRead {
    let text = generic_text(&read, d, cfg);
    let info = interpret(&text, cfg.grammar);
    PlateRead {
        text: info.text,
        confidence: read.confidence,
        char_confidences: read.char_confidences,
        detection_confidence: d.score,
        bbox: d.bbox,
        raw_text: read.text,
        country: info.country.map(str::to_string),
        plate_type: info.plate_type.map(str::to_string),
        region: info.region,
        format_confidence: info.confidence,
        low_confidence: read.fit == FormatFit::NoFormat || read.doubtful,
    }
}

/// The second look: the plate detector run again on the crops of the vehicles that need it
/// ([`second_look::regions`]), each at twice the first pass's scale
/// ([`second_look::input_long`]), its boxes mapped back to the frame and merged into `plates` by
/// non-maximum suppression: a box of the second look that overlaps a plate of the first is the
/// same plate (when that plate is small and the mode is [`SecondLook::Small`], the box is read
/// too and the surer reading kept); one that overlaps none is read as a new plate; one cut by
/// its crop's edge is dropped. Costs nothing when no vehicle needs it. Its time goes into the
/// detection and reading stages of `timings`, and into `second_look_ms`; `views` is kept
/// beside `plates` (one view per plate).
#[allow(clippy::too_many_arguments)]
pub(crate) fn look_again(
    det: &mut YoloDetector,
    reader: &mut PlateReader,
    frame: &RgbFrame,
    cfg: &RecognizerConfig,
    vehicles: &[VehicleDetection],
    plates: &mut Vec<PlateRead>,
    views: &mut Vec<String>,
    timings: &mut Timings,
) -> Result<(), VisionError> {
    let size = (frame.width, frame.height);
    let regions = second_look::regions(cfg.second_look, size, det.input_size(), vehicles, plates);
    if regions.is_empty() {
        return Ok(());
    }
    let t = Instant::now();
    let mut found = Vec::new();
    for r in &regions {
        let crop = second_look::crop(frame, r);
        let long = second_look::input_long(r, size, det.input_size());
        for mut d in det.detect_at(&crop, least_score(cfg), long)? {
            d.bbox.x += r.x as f32;
            d.bbox.y += r.y as f32;
            if !second_look::cut_by(r, &d.bbox, size) {
                found.push(d);
            }
        }
    }
    // Crops of overlapping vehicles may both hold the same plate.
    let found = crate::nms(found, crate::yolo::NMS_IOU);
    let detect_ms = ms(t);
    let t = Instant::now();
    let mut fresh = Vec::new();
    for d in found {
        let same = plates
            .iter()
            .position(|p| p.bbox.iou(&d.bbox) > WEAK_OVERLAP);
        match same {
            // A plate already found and read. In `small` mode, a small one not read surely and
            // seen again at a higher resolution is read from the box found there too, and the
            // surer reading kept (the reader's own rule for choosing between views).
            Some(i) => {
                if cfg.second_look == SecondLook::Small
                    && d.score >= cfg.plate_confidence
                    && second_look::worth_seeing_again(&plates[i], size, det.input_size())
                {
                    let read = reader.read(frame, &d.bbox)?;
                    let view = read.view.clone();
                    let again = plate_read(read, &d, cfg);
                    if surety(&again) > surety(&plates[i]) {
                        if let Some(v) = views.get_mut(i) {
                            *v = view;
                        }
                        plates[i] = again;
                    }
                }
            }
            None => fresh.push(d),
        }
    }
    // Plates the first pass did not find are read from every view: a known plate missed
    // there is a small or hard one.
    read_found(reader, frame, cfg, fresh, &[], plates, views)?;
    let read_ms = ms(t);
    timings.plate_detect_ms += detect_ms;
    timings.plate_read_ms += read_ms;
    timings.second_look_ms = detect_ms + read_ms;
    timings.second_looks = regions.len();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CtcDecoded, ExecutionProvider, GrammarMode};
    use anpr_types::BBox;

    fn cfg(grammar: GrammarMode) -> RecognizerConfig {
        RecognizerConfig {
            plate_detector: "p.onnx".into(),
            plate_reader: "r.onnx".into(),
            vehicle_detector: None,
            vehicle_types: None,
            vehicle_type_confidence: 0.5,
            intra_threads: 1,
            plate_confidence: 0.35,
            plate_candidate_confidence: 0.05,
            vehicle_confidence: 0.35,
            vehicle_class_confidence: 0.5,
            heavy_vehicle_class_confidence: 0.65,
            grammar,
            round_glyph: RoundGlyph::ByPlate,
            concurrent: false,
            second_look: SecondLook::Missing,
            execution_provider: ExecutionProvider::Cpu,
        }
    }

    #[test]
    fn a_weak_box_reading_as_a_format_counts_only_when_it_fits_as_read_and_every_character_is_half_sure()
     {
        let read = |conf: f32, fit| CtcDecoded {
            text: "825UUP19".into(),
            char_confidences: vec![0.95, 0.9, 0.9, conf, 0.9, 0.9, 0.95, 0.95],
            confidence: 0.9,
            fit,
            ..CtcDecoded::default()
        };
        // A two-row plate's rows: one character at 0.6 is not sure enough for
        // `looks_like_a_plate`, but the text is a plate of the formats as read.
        assert!(!looks_like_a_plate(&read(0.6, FormatFit::Fits)));
        assert!(reads_as_a_format(&read(0.6, FormatFit::Fits)));
        assert!(
            !reads_as_a_format(&read(0.4, FormatFit::Fits)),
            "a doubtful character"
        );
        assert!(
            !reads_as_a_format(&read(0.9, FormatFit::Corrected)),
            "changed by the formats"
        );
        assert!(!reads_as_a_format(&read(0.9, FormatFit::NoFormat)));
        assert!(
            !reads_as_a_format(&read(0.9, FormatFit::Unchecked)),
            "generic mode"
        );
    }

    #[test]
    fn a_reading_no_format_fits_is_a_low_confidence_plate_and_one_that_fits_is_not() {
        let d = Detection {
            bbox: BBox {
                x: 0.0,
                y: 0.0,
                w: 100.0,
                h: 25.0,
            },
            score: 0.9,
            class: 0,
        };
        let read = |text: &str, fit| CtcDecoded {
            text: text.into(),
            char_confidences: vec![0.9; text.len()],
            confidence: 0.9,
            fit,
            ..CtcDecoded::default()
        };
        let kz = cfg(GrammarMode::Kz);
        let p = plate_read(read("ABCDE", FormatFit::NoFormat), &d, &kz);
        assert!(p.low_confidence);
        assert!(surety(&p) < surety(&plate_read(read("123ABC01", FormatFit::Fits), &d, &kz)));
        assert!(!plate_read(read("123ABC01", FormatFit::Corrected), &d, &kz).low_confidence);
        let generic = cfg(GrammarMode::Generic);
        assert!(!plate_read(read("ABCDE", FormatFit::Unchecked), &d, &generic).low_confidence);
    }

    #[test]
    fn generic_mode_reads_round_glyphs_by_the_plate_s_shape_and_neighbours() {
        let boxed = |w: f32, h: f32| Detection {
            bbox: BBox {
                x: 0.0,
                y: 0.0,
                w,
                h,
            },
            score: 0.9,
            class: 0,
        };
        let read = |view: &str| CtcDecoded {
            text: "CHOP8Y".into(),
            char_confidences: vec![0.9; 6],
            confidence: 0.9,
            view: view.into(),
            ..CtcDecoded::default()
        };
        let generic = cfg(GrammarMode::Generic);
        // A 2:1 box, straight or deskewed: the digit, and the reading as it was kept beside it.
        for view in ["line", "margin deskewed"] {
            let p = plate_read(read(view), &boxed(100.0, 50.0), &generic);
            assert_eq!((p.text.as_str(), p.raw_text.as_str()), ("CH0P8Y", "CHOP8Y"));
        }
        // A European plate's box, even seen from the side (3:1), keeps its letter.
        let p = plate_read(read("line"), &boxed(120.0, 40.0), &generic);
        assert_eq!(p.text, "CHOP8Y");
        // There the final round glyph is of the kind of the character before it.
        let last = |text: &str| {
            let r = CtcDecoded {
                text: text.into(),
                view: "line".into(),
                ..CtcDecoded::default()
            };
            plate_read(r, &boxed(130.0, 30.0), &generic).text
        };
        assert_eq!(last("RK340A0"), "RK340AO");
        assert_eq!(last("M123O"), "M1230");
        assert_eq!(last("RK0990"), "RK0990", "only the last character");
        assert_eq!(last("4B04979"), "4B04979");
        // Asked for, every reading is reported as read.
        let as_read = RecognizerConfig {
            round_glyph: RoundGlyph::AsRead,
            ..generic.clone()
        };
        let p = plate_read(read("line"), &boxed(100.0, 50.0), &as_read);
        assert_eq!(p.text, "CHOP8Y");
        // Two rows are no North American plate; a regional mode's formats decide for themselves.
        let p = plate_read(read("rows"), &boxed(100.0, 50.0), &generic);
        assert_eq!(p.text, "CHOP8Y");
        let p = plate_read(read("line"), &boxed(100.0, 50.0), &cfg(GrammarMode::Kz));
        assert_eq!(p.text, "CHOP8Y");
    }
}
