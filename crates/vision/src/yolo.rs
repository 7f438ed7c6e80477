//! YOLO detectors: letterbox pre-processing, box decoding and NMS.
//!
//! The model takes `[1, 3, S, S]` RGB in 0–1. Two output layouts are understood:
//! - YOLOv8: `[1, 4 + classes, anchors]`, centre-x, centre-y, width, height in letterbox
//!   pixels followed by per-class scores;
//! - YOLOv5: `[1, anchors, 5 + classes]`, the box, an objectness score and per-class scores
//!   (score = objectness × class score). Chosen when the model's metadata says
//!   `anpr.layout = yolov5`; `anpr.box_units = normalized` means boxes are in 0–1 of the input.

use std::path::{Path, PathBuf};

use anpr_types::{BBox, RgbFrame};
use ndarray::{Array4, ArrayViewD, Axis};
use ort::session::Session;

use crate::VisionError;

/// Grey used by YOLO training for letterbox padding.
const PAD: f32 = 114.0 / 255.0;
/// IoU above which the weaker of two same-class boxes is dropped.
pub const NMS_IOU: f32 = 0.45;

/// How a frame was fitted into the square model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl Letterbox {
    /// Maps a box from model-input pixels back to source pixels, clipped to the frame.
    #[must_use]
    pub fn unmap(&self, cx: f32, cy: f32, w: f32, h: f32, fw: u32, fh: u32) -> BBox {
        let x0 = ((cx - w / 2.0 - self.pad_x) / self.scale).clamp(0.0, fw as f32);
        let y0 = ((cy - h / 2.0 - self.pad_y) / self.scale).clamp(0.0, fh as f32);
        let x1 = ((cx + w / 2.0 - self.pad_x) / self.scale).clamp(0.0, fw as f32);
        let y1 = ((cy + h / 2.0 - self.pad_y) / self.scale).clamp(0.0, fh as f32);
        BBox {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }
}

/// Resizes `frame` into a `size`×`size` NCHW tensor keeping the aspect ratio (antialiased
/// bilinear, see [`crate::resize`]), centred on grey padding, scaled to 0–1.
#[must_use]
pub fn letterbox(frame: &RgbFrame, size: usize) -> (Array4<f32>, Letterbox) {
    let (fw, fh) = (frame.width as f32, frame.height as f32);
    let scale = (size as f32 / fw).min(size as f32 / fh);
    let nw = ((fw * scale).round() as usize).clamp(1, size);
    let nh = ((fh * scale).round() as usize).clamp(1, size);
    let pad_x = ((size - nw) / 2) as f32;
    let pad_y = ((size - nh) / 2) as f32;
    let mut out = Array4::<f32>::from_elem((1, 3, size, size), PAD);
    let plane = size * size;
    let buf = out.as_slice_mut().expect("fresh array is contiguous");
    let (ox, oy) = (pad_x as usize, pad_y as usize);
    crate::resize::resample_rows(
        frame,
        (0, 0, frame.width as usize, frame.height as usize),
        nw,
        nh,
        |y, pixels| {
            let row = (oy + y) * size + ox;
            for (x, p) in pixels.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    buf[c * plane + row + x] = p[c] / 255.0;
                }
            }
        },
    );
    (
        out,
        Letterbox {
            scale,
            pad_x,
            pad_y,
        },
    )
}

/// One detection in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    pub class: usize,
}

/// Output layout of a YOLO model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[1, 4 + classes, anchors]`, boxes in input pixels.
    V8,
    /// `[1, anchors, 5 + classes]` with objectness; `scale` multiplies box values into input
    /// pixels (the input size for normalised boxes, else 1).
    V5 { scale: u32 },
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

/// A YOLO detector session with a square input.
pub struct YoloDetector {
    session: Session,
    path: PathBuf,
    size: usize,
    input: String,
    layout: Layout,
}

impl YoloDetector {
    /// Loads the model and checks that its input is `[1, 3, S, S]` and its output has the
    /// YOLOv8 layout.
    /// Loads a detector; `run` is a thread count (CPU) or a [`crate::RunOn`].
    pub fn load(
        path: &Path,
        role: &'static str,
        run: impl Into<crate::RunOn>,
    ) -> Result<Self, VisionError> {
        let session = crate::runtime::session(path, run.into())?;
        let shape_err = |message: String| VisionError::ModelShape {
            path: path.to_path_buf(),
            role,
            message,
        };
        let input = session
            .inputs()
            .first()
            .ok_or_else(|| shape_err("the model has no input".into()))?;
        let dims: Vec<i64> = input
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if dims.len() != 4 || dims[1] != 3 || dims[2] != dims[3] || dims[2] <= 0 {
            return Err(shape_err(format!(
                "expected a fixed square input [1, 3, S, S], found {dims:?}; export the model with a fixed imgsz"
            )));
        }
        let out_dims: Vec<i64> = session
            .outputs()
            .first()
            .and_then(|o| {
                o.dtype()
                    .tensor_shape()
                    .map(|s| s.iter().copied().collect())
            })
            .unwrap_or_default();
        let meta = |key: &str| session.metadata().ok().and_then(|m| m.custom(key));
        let layout = if meta("anpr.layout").as_deref() == Some("yolov5") {
            let scale = if meta("anpr.box_units").as_deref() == Some("normalized") {
                dims[2] as u32
            } else {
                1
            };
            Layout::V5 { scale }
        } else {
            Layout::V8
        };
        let ok = match layout {
            Layout::V8 => out_dims.len() == 3 && out_dims[1] >= 5,
            Layout::V5 { .. } => out_dims.len() == 3 && out_dims[2] >= 6,
        };
        if !ok {
            return Err(shape_err(format!(
                "expected an output [1, 4 + classes, anchors] (YOLOv8) or [1, anchors, 5 + classes] (YOLOv5 with anpr.layout metadata), found {out_dims:?}"
            )));
        }
        Ok(Self {
            layout,
            size: dims[2] as usize,
            input: input.name().to_string(),
            session,
            path: path.to_path_buf(),
        })
    }

    /// Side of the square model input.
    #[must_use]
    pub fn input_size(&self) -> usize {
        self.size
    }

    /// Detects objects in `frame` scoring at least `min_score`.
    pub fn detect(
        &mut self,
        frame: &RgbFrame,
        min_score: f32,
    ) -> Result<Vec<Detection>, VisionError> {
        let (tensor, lb) = letterbox(frame, self.size);
        let layout = self.layout;
        crate::runtime::run_first_output(
            &mut self.session,
            &self.input,
            &tensor,
            &self.path,
            |out| {
                Ok(match layout {
                    Layout::V8 => decode(&out, &lb, frame.width, frame.height, min_score),
                    Layout::V5 { scale } => decode_v5(
                        &out,
                        scale as f32,
                        &lb,
                        frame.width,
                        frame.height,
                        min_score,
                    ),
                })
            },
        )
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn frame(w: u32, h: u32, v: u8) -> RgbFrame {
        RgbFrame {
            width: w,
            height: h,
            data: vec![v; (w * h * 3) as usize],
        }
    }

    #[test]
    fn letterbox_of_a_wide_frame_pads_top_and_bottom_equally() {
        let (t, lb) = letterbox(&frame(1280, 720, 255), 640);
        assert!((lb.scale - 0.5).abs() < 1e-6);
        assert_eq!(lb.pad_x, 0.0);
        assert_eq!(lb.pad_y, 140.0);
        assert!((t[[0, 0, 0, 0]] - PAD).abs() < 1e-6);
        assert!((t[[0, 1, 320, 320]] - 1.0).abs() < 1e-6);
        assert!((t[[0, 2, 639, 639]] - PAD).abs() < 1e-6);
    }

    #[test]
    fn unmap_inverts_the_letterbox() {
        let lb = Letterbox {
            scale: 0.5,
            pad_x: 0.0,
            pad_y: 140.0,
        };
        let b = lb.unmap(100.0, 240.0, 40.0, 20.0, 1280, 720);
        assert_eq!(
            b,
            BBox {
                x: 160.0,
                y: 180.0,
                w: 80.0,
                h: 40.0
            }
        );
    }

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
