//! Pre-processing of the YOLO detectors: the frame fitted into the model input, a square or,
//! for a model with a free input size, the least rectangle of whole strides around it.

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
    let (scale, nw, nh) = fit(frame, size);
    place(frame, scale, (nw, nh), (size, size))
}

/// Like [`letterbox`] with the same scale (the longer side of the frame becomes `long`), but
/// into the least rectangle of whole strides that keeps at least one stride of grey on each
/// side the frame does not fill, instead of the square: a 1280×720 frame goes into 640×448
/// rather than 640×640, so a detector with a free input size sees the frame as in the square
/// and spends 30% less work on padding. The grey margin matters: with none (640×384), the
/// detector's outermost cells see the tensor's edge where training showed it grey, and on the
/// openalpr photos one small plate was lost and three reads changed; with one stride, the
/// scores equal the square's.
#[must_use]
pub fn letterbox_rect(frame: &RgbFrame, long: usize, stride: usize) -> (Array4<f32>, Letterbox) {
    let (scale, nw, nh) = fit(frame, long);
    let stride = stride.max(1);
    // At least one stride of grey on each side the frame does not fill, as in the square.
    let side = |n: usize| {
        if n >= long {
            n
        } else {
            (n + 2 * stride).min(long).div_ceil(stride) * stride
        }
    };
    let (w, h) = (side(nw), side(nh));
    place(frame, scale, (nw, nh), (w, h))
}

/// The scale fitting `frame` into a square of side `size`, and the frame's size at that scale.
fn fit(frame: &RgbFrame, size: usize) -> (f32, usize, usize) {
    let (fw, fh) = (frame.width as f32, frame.height as f32);
    let scale = (size as f32 / fw).min(size as f32 / fh);
    let nw = ((fw * scale).round() as usize).clamp(1, size);
    let nh = ((fh * scale).round() as usize).clamp(1, size);
    (scale, nw, nh)
}

/// `frame` resized to `nw`×`nh`, centred in a grey `w`×`h` NCHW tensor.
fn place(
    frame: &RgbFrame,
    scale: f32,
    (nw, nh): (usize, usize),
    (w, h): (usize, usize),
) -> (Array4<f32>, Letterbox) {
    let pad_x = ((w - nw) / 2) as f32;
    let pad_y = ((h - nh) / 2) as f32;
    let mut out = Array4::<f32>::from_elem((1, 3, h, w), PAD);
    let plane = w * h;
    let buf = out.as_slice_mut().expect("fresh array is contiguous");
    let (ox, oy) = (pad_x as usize, pad_y as usize);
    crate::resize::resample_rows(
        frame,
        (0, 0, frame.width as usize, frame.height as usize),
        nw,
        nh,
        |y, pixels| {
            let row = (oy + y) * w + ox;
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
    fn the_rectangle_keeps_the_square_scale_and_drops_most_of_the_padding() {
        let f = frame(1280, 720, 255);
        let (square, sq) = letterbox(&f, 640);
        let (rect, lb) = letterbox_rect(&f, 640, 32);
        assert_eq!(rect.shape(), &[1, 3, 448, 640]);
        assert!((lb.scale - sq.scale).abs() < 1e-6);
        assert_eq!((lb.pad_x, lb.pad_y), (0.0, 44.0));
        // The frame's pixels are the same, only the grey around them shrinks.
        assert_eq!(rect[[0, 1, 44 + 100, 300]], square[[0, 1, 140 + 100, 300]]);
        assert!((rect[[0, 0, 43, 0]] - PAD).abs() < 1e-6);
        assert!((rect[[0, 0, 44, 0]] - 1.0).abs() < 1e-6);
        assert!((rect[[0, 0, 403, 639]] - 1.0).abs() < 1e-6);
        assert!((rect[[0, 0, 404, 639]] - PAD).abs() < 1e-6);
        // A portrait frame: the height is the long side; 192 wide plus 32 each side.
        let (tall, lb) = letterbox_rect(&frame(300, 1000, 0), 640, 32);
        assert_eq!(tall.shape(), &[1, 3, 640, 256]);
        assert!((lb.scale - 0.64).abs() < 1e-6);
        assert_eq!((lb.pad_x, lb.pad_y), (32.0, 0.0));
        // A frame that nearly fills the square gets the square.
        let (near, _) = letterbox_rect(&frame(1000, 950, 0), 640, 32);
        assert_eq!(near.shape(), &[1, 3, 640, 640]);
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
