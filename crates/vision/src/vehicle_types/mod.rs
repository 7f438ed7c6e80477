//! Vehicle types the COCO detector cannot tell: an ImageNet-1k classifier
//! (EfficientNet-Lite0, `models/vehicle_types.md`) looks at each vehicle the detector found and
//! names `van`, `tractor-trailer` and `special` vehicles, and tells cars (pickups among them)
//! from the lorries COCO calls `truck` alike.
//!
//! Contract: the classifier takes `images` `[N, 3, 224, 224]` RGB in 0–1 and gives `probs`
//! `[N, 1000]`, ImageNet's class probabilities (the model's own input scaling and softmax are in
//! the graph). Each vehicle is cut out as the square around its box (the box's longer side,
//! kept inside the frame), the view ImageNet's photos give of an object. ImageNet's road
//! vehicle classes are grouped into the device's types ([`imagenet_vehicle_class`], by what each
//! class is, not by what scored well on the photos at hand); a vehicle takes the type whose
//! classes hold at least `least` of the probability (0.5 by default: at least half of it),
//! and for a heavy type (bus, truck, tractor-trailer) at least `least_heavy` too, as the
//! detector's heavy types need; otherwise it keeps the detector's type. Vehicles smaller than
//! [`MIN_SIDE`] pixels are not looked at.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anpr_types::{BBox, RgbFrame, VehicleClass, VehicleDetection};
use ort::session::Session;

use crate::{VisionError, ms};

/// Side of the classifier's square input.
pub const INPUT: usize = 224;
/// Number of classes of ImageNet-1k, the classifier's output.
pub const CLASSES: usize = 1000;
/// Vehicles whose box is narrower or lower than this (in frame pixels) keep the detector's
/// type: at under 48 px a vehicle is a few blobs to a 224 px classifier.
pub const MIN_SIDE: f32 = 48.0;
/// At most this many vehicles of a frame are looked at (the largest first), so a frame full of
/// far traffic costs no more than a few classifier runs.
pub const MAX_PER_FRAME: usize = 8;

/// ImageNet-1k class index → the device's vehicle type, for the classes that are road
/// vehicles. By the classes' own definitions (WordNet glosses):
/// - `car`: beach wagon, cab, convertible, jeep, limousine, minivan ("used as a family car":
///   an M1 passenger car), Model T, pickup (a light vehicle, not the heavy `truck`), racer,
///   sports car;
/// - `van`: police van (a closed van), the box-shaped body ImageNet shows for it;
/// - `bus`: minibus, school bus, trolleybus;
/// - `truck`: moving van ("a truck used to move furniture": a box lorry);
/// - `tractor-trailer`: trailer truck ("a truck consisting of a tractor and trailer");
/// - `special`: ambulance, fire engine, garbage truck, harvester, snowplow, tow truck,
///   tractor (working machines and emergency services);
/// - `motorcycle`: moped, motor scooter.
///
/// Parts of vehicles (grille, wheel, mirror) and rail, water and military vehicles are none.
#[must_use]
pub fn imagenet_vehicle_class(class: usize) -> Option<VehicleClass> {
    Some(match class {
        436 | 468 | 511 | 609 | 627 | 656 | 661 | 717 | 751 | 817 => VehicleClass::Car,
        734 => VehicleClass::Van,
        654 | 779 | 874 => VehicleClass::Bus,
        675 => VehicleClass::Truck,
        867 => VehicleClass::TractorTrailer,
        407 | 555 | 569 | 595 | 803 | 864 | 866 => VehicleClass::Special,
        665 | 670 => VehicleClass::Motorcycle,
        _ => return None,
    })
}

/// The types the classifier can name ([`imagenet_vehicle_class`]), in the schema's order.
#[must_use]
pub fn classified_types() -> Vec<VehicleClass> {
    let mut types: Vec<VehicleClass> = (0..CLASSES).filter_map(imagenet_vehicle_class).collect();
    types.sort_by_key(|c| *c as u8);
    types.dedup();
    types
}

/// The type holding the most of the probability in `probs` (ImageNet-1k class probabilities)
/// when it holds at least `least` of it, or for a heavy type (bus, truck, tractor-trailer)
/// at least `least_heavy` too, with that share; `None` otherwise.
#[must_use]
pub fn type_from_probs(probs: &[f32], least: f32, least_heavy: f32) -> Option<(VehicleClass, f32)> {
    let mut sums: Vec<(VehicleClass, f32)> = Vec::new();
    for (i, p) in probs.iter().enumerate() {
        if let Some(c) = imagenet_vehicle_class(i) {
            match sums.iter_mut().find(|(t, _)| *t == c) {
                Some((_, s)) => *s += p,
                None => sums.push((c, *p)),
            }
        }
    }
    sums.into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|(c, s)| {
            let heavy = matches!(
                c,
                VehicleClass::Bus | VehicleClass::Truck | VehicleClass::TractorTrailer
            );
            *s >= least && (!heavy || *s >= least_heavy)
        })
}

/// The square window `(x, y, side, side)` of a `fw`×`fh` frame that the classifier sees for a
/// vehicle in `bbox`: centred on the box, as wide as its longer side, moved (and if need be
/// shrunk) to lie inside the frame. An empty frame gives an empty window.
#[must_use]
pub fn square_window(bbox: &BBox, fw: u32, fh: u32) -> (usize, usize, usize, usize) {
    if fw == 0 || fh == 0 {
        return (0, 0, 0, 0);
    }
    let side = bbox.w.max(bbox.h).min(fw.min(fh) as f32).max(1.0);
    let cx = bbox.x + bbox.w / 2.0;
    let cy = bbox.y + bbox.h / 2.0;
    let x = (cx - side / 2.0).clamp(0.0, fw as f32 - side);
    let y = (cy - side / 2.0).clamp(0.0, fh as f32 - side);
    let s = side.round().max(1.0) as usize;
    let x = (x.round() as usize).min(fw as usize - s.min(fw as usize));
    let y = (y.round() as usize).min(fh as usize - s.min(fh as usize));
    (x, y, s, s)
}

/// An ImageNet classifier session for vehicle types.
pub struct TypeClassifier {
    session: Session,
    path: PathBuf,
    input: String,
}

impl TypeClassifier {
    /// Loads the classifier and checks its input is `[N, 3, 224, 224]` and its output has
    /// 1000 classes.
    pub fn load(path: &Path, run: impl Into<crate::RunOn>) -> Result<Self, VisionError> {
        let session = crate::runtime::session(path, run.into())?;
        let shape_err = |message: String| VisionError::ModelShape {
            path: path.to_path_buf(),
            role: "vehicle type classifier",
            message,
        };
        let (input, dims) = crate::runtime::first_input(&session).ok_or_else(|| {
            shape_err(
                "the model has no input; install the classifier with `models/fetch.sh`".into(),
            )
        })?;
        if dims.len() != 4 || dims[1..] != [3, INPUT as i64, INPUT as i64] {
            return Err(shape_err(format!(
                "expected an input [N, 3, {INPUT}, {INPUT}], found {dims:?}; install the classifier with `models/fetch.sh`"
            )));
        }
        let out = crate::runtime::first_output_dims(&session);
        if out.len() != 2 || out[1] != CLASSES as i64 {
            return Err(shape_err(format!(
                "expected an output [N, {CLASSES}] (ImageNet-1k probabilities), found {out:?}; install the classifier with `models/fetch.sh`"
            )));
        }
        Ok(Self {
            session,
            path: path.to_path_buf(),
            input,
        })
    }

    /// ImageNet-1k probabilities for each window `(x, y, width, height)` of `frame`, one row
    /// per window; a window that is empty or not inside the frame is an error.
    pub fn probabilities(
        &mut self,
        frame: &RgbFrame,
        windows: &[(usize, usize, usize, usize)],
    ) -> Result<Vec<Vec<f32>>, VisionError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let (fw, fh) = (frame.width as usize, frame.height as usize);
        if frame.data.len() != fw * fh * 3 {
            return Err(VisionError::BadFrame {
                width: frame.width,
                height: frame.height,
                message: "its buffer does not match its size".into(),
            });
        }
        if let Some(w) = windows
            .iter()
            .find(|w| w.2 == 0 || w.3 == 0 || w.0 + w.2 > fw || w.1 + w.3 > fh)
        {
            return Err(VisionError::BadFrame {
                width: frame.width,
                height: frame.height,
                message: format!(
                    "the window {w:?} (x, y, width, height) is empty or not inside it"
                ),
            });
        }
        let plane = INPUT * INPUT;
        let mut tensor = ndarray::Array4::<f32>::zeros((windows.len(), 3, INPUT, INPUT));
        let data = tensor.as_slice_mut().expect("a fresh array is contiguous");
        for (n, w) in windows.iter().enumerate() {
            let img = &mut data[n * 3 * plane..(n + 1) * 3 * plane];
            crate::resize::resample_rows(frame, *w, INPUT, INPUT, |y, row| {
                for (x, px) in row.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        img[c * plane + y * INPUT + x] = px[c] / 255.0;
                    }
                }
            });
        }
        crate::runtime::run_first_output(
            &mut self.session,
            &self.input,
            &tensor,
            &self.path,
            |out| {
                if out.ndim() != 2 || out.shape() != [windows.len(), CLASSES] {
                    return Err(format!(
                        "expected probabilities [{}, {CLASSES}], got {:?}",
                        windows.len(),
                        out.shape()
                    ));
                }
                Ok(out
                    .outer_iter()
                    .map(|r| r.iter().copied().collect())
                    .collect())
            },
        )
    }

    /// Gives the vehicles of `frame` (at most [`MAX_PER_FRAME`] of the largest, each at least
    /// [`MIN_SIDE`] pixels on both sides) the type the classifier is sure of
    /// ([`type_from_probs`] with `least` and `least_heavy`); the others keep theirs. Returns
    /// the milliseconds it took.
    pub fn classify(
        &mut self,
        frame: &RgbFrame,
        vehicles: &mut [VehicleDetection],
        least: f32,
        least_heavy: f32,
    ) -> Result<f64, VisionError> {
        let t = Instant::now();
        let mut chosen: Vec<usize> = (0..vehicles.len())
            .filter(|&i| vehicles[i].bbox.w >= MIN_SIDE && vehicles[i].bbox.h >= MIN_SIDE)
            .collect();
        chosen.sort_by(|&a, &b| {
            let area = |i: usize| vehicles[i].bbox.w * vehicles[i].bbox.h;
            area(b).total_cmp(&area(a))
        });
        chosen.truncate(MAX_PER_FRAME);
        // One vehicle a run: a batch takes no less time on one thread, and ONNX Runtime keeps
        // the memory of the largest batch it ran for the rest of the session.
        for i in chosen {
            let window = square_window(&vehicles[i].bbox, frame.width, frame.height);
            let probs = self.probabilities(frame, &[window])?;
            if let Some((class, _)) = probs
                .first()
                .and_then(|p| type_from_probs(p, least, least_heavy))
            {
                vehicles[i].class = class;
            }
        }
        Ok(ms(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(mass: &[(usize, f32)]) -> Vec<f32> {
        let mut p = vec![0.0; CLASSES];
        for &(i, v) in mass {
            p[i] = v;
        }
        p
    }

    #[test]
    fn the_type_is_the_one_holding_most_of_the_probability_when_it_holds_enough() {
        // Minivan 0.3 + cab 0.3: a car, though no single class is sure.
        assert_eq!(
            type_from_probs(&probs(&[(656, 0.3), (468, 0.3), (867, 0.2)]), 0.5, 0.65),
            Some((VehicleClass::Car, 0.6))
        );
        assert_eq!(
            type_from_probs(&probs(&[(867, 0.7), (675, 0.1)]), 0.5, 0.65),
            Some((VehicleClass::TractorTrailer, 0.7))
        );
        assert_eq!(
            type_from_probs(&probs(&[(407, 0.3), (555, 0.3)]), 0.5, 0.65).map(|t| t.0),
            Some(VehicleClass::Special),
            "an ambulance and a fire engine are both special"
        );
        assert_eq!(
            type_from_probs(&probs(&[(734, 0.45), (656, 0.4)]), 0.5, 0.65),
            None,
            "not sure enough: the detector's type stays"
        );
        assert_eq!(
            type_from_probs(&probs(&[(581, 0.9)]), 0.5, 0.65),
            None,
            "a grille is part of a vehicle, not a type"
        );
        assert_eq!(
            type_from_probs(&probs(&[(675, 0.6)]), 0.5, 0.65),
            None,
            "a heavy type needs the heavy types' confidence too"
        );
        assert_eq!(
            type_from_probs(&probs(&[(734, 0.6)]), 0.5, 0.65),
            Some((VehicleClass::Van, 0.6)),
            "a van is not heavy"
        );
    }

    #[test]
    fn imagenet_names_every_type_the_detector_cannot() {
        let types = classified_types();
        for t in [
            VehicleClass::Van,
            VehicleClass::TractorTrailer,
            VehicleClass::Special,
        ] {
            assert!(types.contains(&t), "{t:?} in {types:?}");
        }
        assert!(!types.contains(&VehicleClass::Unknown));
        assert_eq!(
            imagenet_vehicle_class(717),
            Some(VehicleClass::Car),
            "pickup"
        );
        assert_eq!(imagenet_vehicle_class(0), None, "a tench is no vehicle");
    }

    #[test]
    fn the_window_is_the_square_around_the_box_kept_inside_the_frame() {
        let b = |x, y, w, h| BBox { x, y, w, h };
        // In the middle: centred, as wide as the longer side.
        assert_eq!(
            square_window(&b(100.0, 100.0, 200.0, 100.0), 1280, 720),
            (100, 50, 200, 200)
        );
        // At the left edge: moved right, not cut.
        assert_eq!(
            square_window(&b(0.0, 300.0, 300.0, 120.0), 1280, 720),
            (0, 210, 300, 300)
        );
        // A box wider than the frame is high: shrunk to the frame's height.
        let wide = square_window(&b(0.0, 0.0, 1000.0, 300.0), 1280, 720);
        assert_eq!((wide.1, wide.2, wide.3), (0, 720, 720));
        assert!(wide.0 + wide.2 <= 1280);
        // Near the bottom-right corner.
        let corner = square_window(&b(1200.0, 680.0, 80.0, 40.0), 1280, 720);
        assert!(
            corner.0 + corner.2 <= 1280 && corner.1 + corner.3 <= 720,
            "{corner:?}"
        );
        assert_eq!(square_window(&b(0.0, 0.0, 10.0, 10.0), 0, 0), (0, 0, 0, 0));
    }
}
