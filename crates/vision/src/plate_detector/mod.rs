//! Plate detector: a one-class YOLOv8n model (`models/plate_detector.md`). A box it is sure of
//! (`plate_confidence`) is a plate; a box it is less sure of (from
//! `plate_candidate_confidence`) is kept only when its reading looks like a plate
//! ([`crate::looks_like_a_plate`]). Every kept box is read by the plate reader and its text
//! checked against the plate grammar. Pre- and post-processing are the shared YOLO ones
//! ([`crate::yolo`]).

use std::time::Instant;

use anpr_types::{PlateRead, RgbFrame};

use crate::plate_reader::VIEWS;
use crate::{
    PlateReader, RecognizerConfig, Timings, VisionError, YoloDetector, interpret,
    looks_like_a_plate, ms,
};

/// Boxes below `plate_confidence` read per frame (the surest of them), each from the reader's
/// first view only (a plate worth keeping reads surely from it), so checking costs little.
const MAX_WEAK: usize = 1;
/// Overlap (IoU) with a plate already found above which a weak box is left out.
const WEAK_OVERLAP: f32 = 0.1;

/// Plates found and read in the frame; stage times go into `timings`.
pub(crate) fn find_plates(
    det: &mut YoloDetector,
    reader: &mut PlateReader,
    frame: &RgbFrame,
    cfg: &RecognizerConfig,
    timings: &mut Timings,
) -> Result<Vec<PlateRead>, VisionError> {
    let t = Instant::now();
    let found = det.detect(
        frame,
        cfg.plate_candidate_confidence.min(cfg.plate_confidence),
    )?;
    timings.plate_detect_ms = ms(t);
    let t = Instant::now();
    let mut plates = Vec::with_capacity(found.len());
    let mut weak_left = MAX_WEAK;
    // Boxes come surest first: once one is weak, the rest are too.
    for d in found {
        let read = if d.score >= cfg.plate_confidence {
            reader.read(frame, &d.bbox)?
        } else {
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
            let read = reader.read_view(frame, &d.bbox, VIEWS[0])?;
            if !looks_like_a_plate(&read) {
                continue;
            }
            read
        };
        let info = interpret(&read.text, cfg.grammar);
        plates.push(PlateRead {
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
        });
    }
    timings.plate_read_ms = ms(t);
    Ok(plates)
}
