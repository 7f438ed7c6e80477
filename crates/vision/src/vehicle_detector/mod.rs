//! Vehicle detector: a COCO-class YOLOv5 model (`models/vehicle_detector.md`); its classes
//! mapped to the device's vehicle types, and a type reported only when the detector is sure
//! enough of it. Pre- and post-processing are the shared YOLO ones ([`crate::yolo`]).

use std::time::Instant;

use anpr_types::{RgbFrame, VehicleClass, VehicleDetection};

use crate::{RecognizerConfig, VisionError, YoloDetector, ms};

/// COCO class index → vehicle class, for the classes a road camera sees.
#[must_use]
pub fn coco_vehicle_class(class: usize) -> Option<VehicleClass> {
    match class {
        2 => Some(VehicleClass::Car),
        3 => Some(VehicleClass::Motorcycle),
        5 => Some(VehicleClass::Bus),
        7 => Some(VehicleClass::Truck),
        _ => None,
    }
}

/// The types the detector can report besides `unknown`: those [`coco_vehicle_class`] maps
/// COCO's 80 classes to (`car`, `motorcycle`, `bus`, `truck`). `van`, `tractor-trailer` and
/// `special` are not among them: COCO has no such classes.
#[must_use]
pub fn reported_classes() -> Vec<VehicleClass> {
    (0..80).filter_map(coco_vehicle_class).collect()
}

/// The type to report for a vehicle found with `confidence`: its class when the detector is
/// sure enough (`least`, or `least_heavy` for a bus or a truck), `unknown` otherwise.
///
/// Heavy types ask for more: they decide offences of their own (class bans, weighing
/// stations), and the COCO detector calls close-up cars and vans `truck` or `bus` with middling
/// confidence (0.5–0.6 on the openalpr photos), while the trucks it is right about score higher.
#[must_use]
pub fn vehicle_class(
    class: VehicleClass,
    confidence: f32,
    least: f32,
    least_heavy: f32,
) -> VehicleClass {
    let needed = match class {
        VehicleClass::Bus | VehicleClass::Truck | VehicleClass::TractorTrailer => least_heavy,
        _ => least,
    };
    if confidence >= needed {
        class
    } else {
        VehicleClass::Unknown
    }
}

/// Vehicles in the frame (COCO vehicle classes only), and the milliseconds it took.
pub(crate) fn find_vehicles(
    det: &mut YoloDetector,
    frame: &RgbFrame,
    cfg: &RecognizerConfig,
) -> Result<(Vec<VehicleDetection>, f64), VisionError> {
    let t = Instant::now();
    let mut vehicles = Vec::new();
    for d in det.detect(frame, cfg.vehicle_confidence)? {
        if let Some(class) = coco_vehicle_class(d.class) {
            vehicles.push(VehicleDetection {
                class: vehicle_class(
                    class,
                    d.score,
                    cfg.vehicle_class_confidence,
                    cfg.heavy_vehicle_class_confidence,
                ),
                confidence: d.score,
                bbox: d.bbox,
            });
        }
    }
    Ok((vehicles, ms(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vehicle_found_without_enough_confidence_in_its_type_is_unknown() {
        assert_eq!(
            vehicle_class(VehicleClass::Truck, 0.8, 0.5, 0.65),
            VehicleClass::Truck
        );
        assert_eq!(
            vehicle_class(VehicleClass::Car, 0.4, 0.5, 0.65),
            VehicleClass::Unknown
        );
        assert_eq!(
            vehicle_class(VehicleClass::Car, 0.55, 0.5, 0.65),
            VehicleClass::Car
        );
        assert_eq!(
            vehicle_class(VehicleClass::Truck, 0.55, 0.5, 0.65),
            VehicleClass::Unknown,
            "a heavy type needs more confidence"
        );
        assert_eq!(
            vehicle_class(VehicleClass::Bus, 0.7, 0.5, 0.65),
            VehicleClass::Bus
        );
        assert_eq!(coco_vehicle_class(7), Some(VehicleClass::Truck));
        assert_eq!(
            reported_classes(),
            [
                VehicleClass::Car,
                VehicleClass::Motorcycle,
                VehicleClass::Bus,
                VehicleClass::Truck
            ]
        );
        assert_eq!(coco_vehicle_class(0), None, "a person is not a vehicle");
    }
}
