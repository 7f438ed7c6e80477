//! YOLO detectors: letterbox pre-processing, box decoding and NMS.
//!
//! The model takes `[1, 3, S, S]` RGB in 0–1. Two output layouts are understood:
//! - YOLOv8: `[1, 4 + classes, anchors]`, centre-x, centre-y, width, height in letterbox
//!   pixels followed by per-class scores;
//! - YOLOv5: `[1, anchors, 5 + classes]`, the box, an objectness score and per-class scores
//!   (score = objectness × class score). Chosen when the model's metadata says
//!   `anpr.layout = yolov5`; `anpr.box_units = normalized` means boxes are in 0–1 of the input.

mod decode;
mod letterbox;

pub use decode::{Detection, NMS_IOU, decode, decode_v5, nms};
pub use letterbox::{Letterbox, letterbox};

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
        let (input, dims) = crate::runtime::first_input(&session)
            .ok_or_else(|| shape_err("the model has no input".into()))?;
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
            input,
            session,
            path: path.to_path_buf(),
        })
    }

    /// Side of the square model input.
    #[must_use]
    pub fn input_size(&self) -> usize {
        self.size
    }

    /// The model's raw output for `frame` and how the frame was letterboxed: what
    /// [`YoloDetector::detect`] decodes (used by the golden-tensor tests).
    pub fn raw_output(
        &mut self,
        frame: &RgbFrame,
    ) -> Result<(ndarray::ArrayD<f32>, Letterbox), VisionError> {
        let (tensor, lb) = letterbox(frame, self.size);
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
