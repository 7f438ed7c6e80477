//! Pre-processing of the YOLO detectors: the frame fitted into the square model input.

use anpr_types::{BBox, RgbFrame};
use ndarray::Array4;

/// Grey used by YOLO training for letterbox padding.
const PAD: f32 = 114.0 / 255.0;

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

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

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
}
