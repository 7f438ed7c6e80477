//! Antialiased resampling of an RGB window: a separable triangle (bilinear) filter whose
//! support widens by the shrink factor when downscaling, so every source pixel contributes
//! (as Pillow's `BILINEAR` resize does). Plain bilinear sampling skips pixels when a frame is
//! shrunk by more than two, and the aliasing it leaves costs detections and readings.

use anpr_types::RgbFrame;

/// Filter taps of one output sample: the first source index and the normalised weights.
#[derive(Debug, Clone, PartialEq)]
struct Taps {
    first: usize,
    weights: Vec<f32>,
}

/// Taps mapping `src` samples onto `dst` samples.
fn taps(src: usize, dst: usize) -> Vec<Taps> {
    let scale = dst as f32 / src as f32;
    let support = if scale < 1.0 { 1.0 / scale } else { 1.0 };
    (0..dst)
        .map(|o| {
            let centre = (o as f32 + 0.5) / scale;
            let lo = ((centre - support).floor().max(0.0)) as usize;
            let hi = ((centre + support).ceil() as usize).min(src);
            let mut weights: Vec<f32> = (lo..hi)
                .map(|i| (1.0 - ((i as f32 + 0.5 - centre) / support).abs()).max(0.0))
                .collect();
            let sum: f32 = weights.iter().sum();
            if sum > 0.0 {
                for w in &mut weights {
                    *w /= sum;
                }
            } else {
                // A centre outside every pixel: take the nearest.
                weights = vec![1.0];
                return Taps {
                    first: (centre as usize).min(src - 1),
                    weights,
                };
            }
            Taps { first: lo, weights }
        })
        .collect()
}

/// Resamples the window `(x0, y0, w, h)` of `frame` to `dw`×`dh`, handing each output row
/// (packed RGB as f32 in 0–255, `dw * 3` values) to `row` with its index. Works one output
/// row at a time (vertical filter into one source-wide row, then horizontal), so it needs no
/// frame-sized scratch memory. The window must lie inside the frame and be at least 1×1.
pub fn resample_rows(
    frame: &RgbFrame,
    window: (usize, usize, usize, usize),
    dw: usize,
    dh: usize,
    mut row: impl FnMut(usize, &[f32]),
) {
    let (x0, y0, w, h) = window;
    let hx = taps(w, dw);
    let vy = taps(h, dh);
    let stride = frame.width as usize * 3;
    let mut column = vec![0f32; w * 3];
    let mut out = vec![0f32; dw * 3];
    for (o, t) in vy.iter().enumerate() {
        column.fill(0.0);
        for (k, wgt) in t.weights.iter().enumerate() {
            let y = y0 + t.first + k;
            let src = &frame.data[y * stride + x0 * 3..y * stride + (x0 + w) * 3];
            for (c, s) in column.iter_mut().zip(src) {
                *c += f32::from(*s) * wgt;
            }
        }
        for (x, t) in hx.iter().enumerate() {
            let mut acc = [0f32; 3];
            for (k, wgt) in t.weights.iter().enumerate() {
                let p = &column[(t.first + k) * 3..(t.first + k) * 3 + 3];
                acc[0] += p[0] * wgt;
                acc[1] += p[1] * wgt;
                acc[2] += p[2] * wgt;
            }
            out[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
        row(o, &out);
    }
}

/// As [`resample_rows`], collected into one packed RGB buffer of `dw * dh * 3` values.
#[must_use]
pub fn resample(
    frame: &RgbFrame,
    window: (usize, usize, usize, usize),
    dw: usize,
    dh: usize,
) -> Vec<f32> {
    let mut all = Vec::with_capacity(dw * dh * 3);
    resample_rows(frame, window, dw, dh, |_, r| all.extend_from_slice(r));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> RgbFrame {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = f(x, y);
                data.extend_from_slice(&[v, v, v]);
            }
        }
        RgbFrame {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn weights_sum_to_one_and_cover_the_source_when_shrinking() {
        for (src, dst) in [(1280, 640), (720, 360), (100, 48), (30, 48), (7, 3)] {
            let t = taps(src, dst);
            assert_eq!(t.len(), dst);
            for tap in &t {
                assert!((tap.weights.iter().sum::<f32>() - 1.0).abs() < 1e-4);
                assert!(tap.first + tap.weights.len() <= src);
            }
        }
        // Halving: each output sample spans four source samples.
        assert_eq!(taps(1280, 640)[10].weights.len(), 4);
    }

    #[test]
    fn a_flat_image_stays_flat_and_stripes_average_out_when_shrunk() {
        let flat = frame(64, 32, |_, _| 200);
        let out = resample(&flat, (0, 0, 64, 32), 16, 8);
        assert!(out.iter().all(|v| (v - 200.0).abs() < 1e-3));
        // One-pixel black and white columns, shrunk 4x: grey, not a sample of one colour.
        let stripes = frame(64, 8, |x, _| if x % 2 == 0 { 0 } else { 255 });
        let out = resample(&stripes, (0, 0, 64, 8), 16, 2);
        for v in &out {
            assert!((v - 127.5).abs() < 20.0, "{v}");
        }
    }

    #[test]
    fn a_window_is_taken_from_its_place_in_the_frame() {
        let f = frame(20, 10, |x, _| if x >= 10 { 255 } else { 0 });
        let right = resample(&f, (10, 0, 10, 10), 5, 5);
        assert!(right.iter().all(|v| (v - 255.0).abs() < 1e-3));
        let left = resample(&f, (0, 0, 10, 10), 5, 5);
        assert!(left.iter().all(|v| v.abs() < 1e-3));
    }

    #[test]
    fn enlarging_interpolates_between_neighbours() {
        let f = frame(2, 1, |x, _| if x == 0 { 0 } else { 100 });
        let out = resample(&f, (0, 0, 2, 1), 4, 1);
        let row: Vec<f32> = out.chunks(3).map(|p| p[0]).collect();
        assert!(
            row[0] < row[1] && row[1] < row[2] && row[2] < row[3],
            "{row:?}"
        );
        assert!((row[0] - 0.0).abs() < 1e-3 && (row[3] - 100.0).abs() < 1e-3);
    }
}
