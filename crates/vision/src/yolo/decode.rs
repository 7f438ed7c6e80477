//! Post-processing of the YOLO detectors: box decoding for both output layouts and NMS.

use anpr_types::BBox;
use ndarray::{ArrayViewD, Axis};

use super::Letterbox;

/// IoU above which the weaker of two same-class boxes is dropped.
pub const NMS_IOU: f32 = 0.45;

/// One detection in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    pub class: usize,
}

/// Decodes YOLOv8 output `[1, 4 + classes, anchors]` into detections above `min_score`.
#[must_use]
pub fn decode(
    out: &ArrayViewD<'_, f32>,
    lb: &Letterbox,
    fw: u32,
    fh: u32,
    min_score: f32,
) -> Vec<Detection> {
    let out = out.index_axis(Axis(0), 0);
    let rows = out.shape()[0];
    let anchors = out.shape()[1];
    let mut dets = Vec::new();
    for i in 0..anchors {
        let mut best = (0usize, f32::MIN);
        for c in 4..rows {
            let s = out[[c, i]];
            if s > best.1 {
                best = (c - 4, s);
            }
        }
        if best.1 < min_score {
            continue;
        }
        let bbox = lb.unmap(out[[0, i]], out[[1, i]], out[[2, i]], out[[3, i]], fw, fh);
        if bbox.w < 1.0 || bbox.h < 1.0 {
            continue;
        }
        dets.push(Detection {
            bbox,
            score: best.1,
            class: best.0,
        });
    }
    nms(dets, NMS_IOU)
}

/// Decodes YOLOv5 output `[1, anchors, 5 + classes]` into detections above `min_score`.
#[must_use]
pub fn decode_v5(
    out: &ArrayViewD<'_, f32>,
    scale: f32,
    lb: &Letterbox,
    fw: u32,
    fh: u32,
    min_score: f32,
) -> Vec<Detection> {
    let out = out.index_axis(Axis(0), 0);
    let mut dets = Vec::new();
    for row in out.rows() {
        let obj = row[4];
        if obj < min_score {
            continue;
        }
        let (class, cls) =
            row.iter()
                .skip(5)
                .enumerate()
                .fold(
                    (0usize, f32::MIN),
                    |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
                );
        let score = obj * cls;
        if score < min_score {
            continue;
        }
        let bbox = lb.unmap(
            row[0] * scale,
            row[1] * scale,
            row[2] * scale,
            row[3] * scale,
            fw,
            fh,
        );
        if bbox.w < 1.0 || bbox.h < 1.0 {
            continue;
        }
        dets.push(Detection { bbox, score, class });
    }
    nms(dets, NMS_IOU)
}

/// Class-aware non-maximum suppression, highest score first.
#[must_use]
pub fn nms(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::with_capacity(dets.len());
    for d in dets {
        if keep
            .iter()
            .all(|k| k.class != d.class || k.bbox.iou(&d.bbox) <= iou)
        {
            keep.push(d);
        }
    }
    keep
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_other_classes() {
        let b = |x: f32, s: f32, c: usize| Detection {
            bbox: BBox {
                x,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
            score: s,
            class: c,
        };
        let kept = nms(
            vec![
                b(0.0, 0.6, 0),
                b(1.0, 0.9, 0),
                b(1.0, 0.5, 1),
                b(50.0, 0.4, 0),
            ],
            0.45,
        );
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0].score, 0.9);
        assert!(kept.iter().any(|d| d.class == 1));
    }

    #[test]
    fn decode_v5_multiplies_objectness_and_scales_normalised_boxes() {
        // anchors x (cx, cy, w, h, obj, c0, c1)
        let mut out = Array3::<f32>::zeros((1, 2, 7));
        for (k, v) in [0.5, 0.5, 0.1, 0.05, 0.9, 0.1, 0.8].iter().enumerate() {
            out[[0, 0, k]] = *v;
        }
        for (k, v) in [0.2, 0.2, 0.1, 0.1, 0.3, 0.9, 0.1].iter().enumerate() {
            out[[0, 1, k]] = *v;
        }
        let lb = Letterbox {
            scale: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
        };
        let dets = decode_v5(&out.into_dyn().view(), 640.0, &lb, 640, 640, 0.35);
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class, 1);
        assert!((dets[0].score - 0.72).abs() < 1e-6);
        assert_eq!(
            dets[0].bbox,
            BBox {
                x: 288.0,
                y: 304.0,
                w: 64.0,
                h: 32.0
            }
        );
    }

    #[test]
    fn decode_reads_the_best_class_and_drops_weak_anchors() {
        // two anchors, two classes: rows cx, cy, w, h, s0, s1
        let mut out = Array3::<f32>::zeros((1, 6, 2));
        for (r, v) in [320.0, 320.0, 64.0, 32.0, 0.1, 0.8].iter().enumerate() {
            out[[0, r, 0]] = *v;
        }
        for (r, v) in [10.0, 10.0, 4.0, 4.0, 0.2, 0.1].iter().enumerate() {
            out[[0, r, 1]] = *v;
        }
        let lb = Letterbox {
            scale: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
        };
        let dets = decode(&out.into_dyn().view(), &lb, 640, 640, 0.5);
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class, 1);
        assert_eq!(
            dets[0].bbox,
            BBox {
                x: 288.0,
                y: 304.0,
                w: 64.0,
                h: 32.0
            }
        );
    }
}
