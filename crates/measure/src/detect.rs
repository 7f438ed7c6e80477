//! `anpr detect PATH...`: one JSON line per image, for people who evaluate the recognizer.

use std::path::{Path, PathBuf};

use anpr_types::RgbFrame;
use anpr_vision::Recognizer;
use serde_json::json;

/// Image files under `paths` (folders are walked one level, sorted).
pub fn collect_images(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|f| is_image(f))
                .collect();
            v.sort();
            if v.is_empty() {
                eprintln!(
                    "warning: folder {} holds no images (jpg, jpeg, png)",
                    p.display()
                );
            }
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

/// Loads an image file as an RGB frame.
pub fn load_rgb(path: &Path) -> Result<RgbFrame, String> {
    let img = image::open(path).map_err(|e| e.to_string())?.to_rgb8();
    let (w, h) = img.dimensions();
    Ok(RgbFrame {
        width: w,
        height: h,
        data: img.into_raw(),
    })
}

/// Runs the recognizer on every image and hands `line` one JSON value each (the `detect`
/// format); errors are reported per image and the rest goes on. Returns the number of images
/// that failed.
pub fn run(
    rec: &mut Recognizer,
    paths: &[PathBuf],
    mut line: impl FnMut(&serde_json::Value),
) -> usize {
    let images = collect_images(paths);
    let mut failed = 0;
    for path in images {
        let value = match load_rgb(&path) {
            Err(e) => {
                failed += 1;
                json!({"image": path, "error": format!("cannot decode image: {e}")})
            }
            Ok(frame) => match rec.process(&frame) {
                Err(e) => {
                    failed += 1;
                    json!({"image": path, "error": e.to_string()})
                }
                Ok(r) => json!({
                    "image": path,
                    "width": frame.width,
                    "height": frame.height,
                    "plates": r.plates.iter().enumerate().map(|(i, p)| json!({
                        "text": p.text,
                        "char_confidences": p.char_confidences,
                        "view": r.plate_views.get(i),
                        "raw_text": p.raw_text,
                        "low_confidence": p.low_confidence,
                        "country": p.country,
                        "type": p.plate_type,
                        "region": p.region,
                        "confidence": p.confidence,
                        "detection_confidence": p.detection_confidence,
                        "box": p.bbox.to_wire(),
                    })).collect::<Vec<_>>(),
                    "vehicles": r.vehicles.iter().map(|v| json!({
                        "class": v.class,
                        "confidence": v.confidence,
                        "box": v.bbox.to_wire(),
                    })).collect::<Vec<_>>(),
                    "timings_ms": {
                        "vehicle": r.timings.vehicle_ms,
                        // Part of vehicle, not added to it.
                        "vehicle_types": r.timings.vehicle_type_ms,
                        "plate_detect": r.timings.plate_detect_ms,
                        "plate_read": r.timings.plate_read_ms,
                        // Part of plate_detect and plate_read, not added to them.
                        "second_look": r.timings.second_look_ms,
                    },
                }),
            },
        };
        line(&value);
    }
    failed
}
