//! YOLO detectors: letterbox pre-processing, box decoding and NMS.
//!
//! The model takes `[1, 3, S, S]` RGB in 0–1, or, exported with a free input size (YOLOv8
//! layout only), `[1, 3, H, W]` with the frame letterboxed to the longer side `S` (the
//! `imgsz` it was trained at, from the model's metadata) inside the least rectangle of whole
//! strides: the same view of the frame as the square, without the padding's cost. Two output
//! layouts are understood:
//! - YOLOv8: `[1, 4 + classes, anchors]`, centre-x, centre-y, width, height in letterbox
//!   pixels followed by per-class scores;
//! - YOLOv5: `[1, anchors, 5 + classes]`, the box, an objectness score and per-class scores
//!   (score = objectness × class score). Chosen when the model's metadata says
//!   `anpr.layout = yolov5`; `anpr.box_units = normalized` means boxes are in 0–1 of the input.

mod decode;
mod letterbox;

pub use decode::{Detection, NMS_IOU, decode, decode_v5, nms};
pub use letterbox::{Letterbox, letterbox, letterbox_rect};

use std::path::{Path, PathBuf};

use anpr_types::RgbFrame;
use ort::session::Session;

use crate::VisionError;

/// Output layout of a YOLO model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[1, 4 + classes, anchors]`, boxes in input pixels.
    V8,
    /// `[1, anchors, 5 + classes]` with objectness; `scale` multiplies box values into input
    /// pixels (the input size for normalised boxes, else 1).
    V5 { scale: u32 },
}

/// The largest stride of the YOLO models' feature maps: a free input's sides are multiples.
pub(crate) const STRIDE: usize = 32;

/// A YOLO detector session.
pub struct YoloDetector {
    session: Session,
    path: PathBuf,
    /// Side of the square input, or the longer side of a free one.
    size: usize,
    /// Whether the input size is free (the frame is fitted into a rectangle).
    free: bool,
    input: String,
    layout: Layout,
}

/// The training image size an Ultralytics export records in its metadata (`imgsz`, e.g.
/// `[640, 640]`): the longer side of the letterbox for a model with a free input size.
fn trained_size(imgsz: Option<&str>) -> Option<usize> {
    let text = imgsz?.trim().trim_start_matches('[').trim_end_matches(']');
    let sides: Vec<usize> = text
        .split(',')
        .map(|v| v.trim().parse().ok())
        .collect::<Option<_>>()?;
    sides
        .into_iter()
        .max()
        .filter(|s| *s >= STRIDE && s % STRIDE == 0)
}

impl YoloDetector {
    /// Loads a detector and checks that its input is `[1, 3, S, S]` (or free in height and
    /// width, for the YOLOv8 layout) and its output has one of the layouts; `run` is a thread
    /// count (CPU) or a [`crate::RunOn`].
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
        let (input, dims) = crate::runtime::first_input(&session)
            .ok_or_else(|| shape_err("the model has no input".into()))?;
        let free = dims.len() == 4 && dims[1] == 3 && dims[2] < 0 && dims[3] < 0;
        if !free && (dims.len() != 4 || dims[1] != 3 || dims[2] != dims[3] || dims[2] <= 0) {
            return Err(shape_err(format!(
                "expected a square input [1, 3, S, S] or one free in height and width, found {dims:?}; export the model with a fixed imgsz or dynamic height and width"
            )));
        }
        let out_dims = crate::runtime::first_output_dims(&session);
        let meta = |key: &str| session.metadata().ok().and_then(|m| m.custom(key));
        let size = if free {
            trained_size(meta("imgsz").as_deref()).ok_or_else(|| {
                shape_err(format!(
                    "its input size is free but its metadata names no training size (imgsz, a multiple of {STRIDE}): export it with Ultralytics, or with a fixed imgsz"
                ))
            })?
        } else {
            dims[2] as usize
        };
        let layout = if meta("anpr.layout").as_deref() == Some("yolov5") {
            if free {
                return Err(shape_err(
                    "a YOLOv5-layout model needs a fixed square input (its boxes are fractions of it)".into(),
                ));
            }
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
            size,
            free,
            input,
            session,
            path: path.to_path_buf(),
        })
    }

    /// Side of the square model input, or the longer side of a free one: the scale at which
    /// the detector sees a frame is the same either way.
    #[must_use]
    pub fn input_size(&self) -> usize {
        self.size
    }

    /// The frame as the model takes it.
    fn fit(&self, frame: &RgbFrame) -> (ndarray::Array4<f32>, Letterbox) {
        if self.free {
            letterbox_rect(frame, self.size, STRIDE)
        } else {
            letterbox(frame, self.size)
        }
    }

    /// The model's raw output for `frame` and how the frame was letterboxed: what
    /// [`YoloDetector::detect`] decodes (used by the golden-tensor tests).
    pub fn raw_output(
        &mut self,
        frame: &RgbFrame,
    ) -> Result<(ndarray::ArrayD<f32>, Letterbox), VisionError> {
        let (tensor, lb) = self.fit(frame);
        let out = crate::runtime::run_first_output(
            &mut self.session,
            &self.input,
            &tensor,
            &self.path,
            |out| Ok(out.to_owned()),
        )?;
        Ok((out, lb))
    }

    /// Detects objects in `frame` scoring at least `min_score`.
    pub fn detect(
        &mut self,
        frame: &RgbFrame,
        min_score: f32,
    ) -> Result<Vec<Detection>, VisionError> {
        self.detect_at(frame, min_score, self.size)
    }

    /// Like [`YoloDetector::detect`], with the frame's longer side scaled to `long` (whole
    /// strides) instead of the input size, when the model's input size is free and `long` is
    /// smaller: a smaller input for a smaller picture. A fixed-size model, or a `long` at or above
    /// the input size, sees the frame as [`YoloDetector::detect`] does.
    pub fn detect_at(
        &mut self,
        frame: &RgbFrame,
        min_score: f32,
        long: usize,
    ) -> Result<Vec<Detection>, VisionError> {
        let (tensor, lb) = if self.free && long < self.size {
            letterbox_rect(frame, long.div_ceil(STRIDE).max(1) * STRIDE, STRIDE)
        } else {
            self.fit(frame)
        };
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
mod tests {
    use super::trained_size;

    #[test]
    fn the_training_size_is_read_from_the_ultralytics_metadata() {
        assert_eq!(trained_size(Some("[640, 640]")), Some(640));
        assert_eq!(trained_size(Some("[384, 640]")), Some(640));
        assert_eq!(trained_size(Some("640")), Some(640));
        assert_eq!(trained_size(Some("[650, 650]")), None, "not whole strides");
        assert_eq!(trained_size(Some("big")), None);
        assert_eq!(trained_size(None), None);
    }
}
