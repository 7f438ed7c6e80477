//! Which vehicles the plate detector looks at again, and the crops it looks at.
//!
//! The detector sees the whole frame letterboxed to its input size (640 px on the longer
//! side): a 1280×720 frame is halved, so a plate 90 px wide in the frame is 45 px wide there,
//! and its characters a few pixels each. Run on the crop of one vehicle, the same detector sees
//! that vehicle at [`GAIN`] times the scale of the first pass, every plate on it at four times
//! the area. That recovers what the letterbox's downscale took, with the same model and
//! thresholds. The criteria are arithmetic on the detector's input size and the frame size:
//! - a vehicle is looked at again when no plate of the first pass has its centre in the
//!   vehicle's box ([`SecondLook::Missing`]), or also when it has only plates that are small
//!   *as the detector saw them* and that the reader was not sure of ([`SecondLook::Small`], the
//!   default): smaller than [`SMALL_AREA`] (32×32 px) in its input, the size below which
//!   detectors of this kind lose most of their recall and localisation (the "small object" of
//!   the COCO benchmark they are measured on), with a character below the reader's
//!   [`SURE`](crate::plate_reader::SURE) (the bound at which the reader reads no further view:
//!   a reading it stops at gains nothing from another box); a small plate found again there is
//!   read from the new box too, and the surer reading kept;
//! - and only when its crop can be seen at least [`MIN_GAIN`] times the first pass's scale: a
//!   vehicle that fills nearly the whole frame would be seen as the first pass saw it.
//!
//! The crop is seen at [`GAIN`] times the first pass's scale, not enlarged to fill the input
//! ([`input_long`]): a larger enlargement costs time with the square of the scale and adds no
//! pixel of the camera's. On the openalpr photos and the rendered Kazakhstan set, filling the
//! input (two to ten times the first pass's scale) found no plate that twice the scale did not,
//! at 10% more time a frame. A vehicle too large for twice the scale (more than half of the
//! input) is seen at the largest scale that fits the input. Its plate was not too small for the
//! first pass; but the detector scores a plate by its surroundings too, and without the rest of
//! the frame around it (signs, lettering, other vehicles) a plate it scored near zero can score
//! as a plate: on the openalpr photos with Kazakhstan plates drawn over their plates, two
//! plates 103 and 169 px wide that the first pass scored 0.03 and 0.02 scored 0.27 and 0.67 on
//! their vehicle's crop, and both then read exactly.
//!
//! At most [`MAX_REGIONS`] vehicles per frame, the largest first (the nearest: a vehicle far
//! away comes nearer in later frames, and its plate with it), so a frame costs at most that many
//! extra detector runs. A frame where every vehicle has a plate that is not small costs nothing.

use anpr_types::{BBox, PlateRead, RgbFrame, VehicleDetection};

/// Which vehicles the plate detector looks at again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecondLook {
    /// None.
    Off,
    /// Vehicles on which the first pass found no plate.
    Missing,
    /// Those, and vehicles on which it found only small plates not read surely (which are read
    /// again from the box found at the higher resolution, the surer reading kept).
    #[default]
    Small,
}

/// Area, in the detector's input pixels, below which a plate is small: 32×32, COCO's bound
/// of a small object.
pub const SMALL_AREA: f32 = 32.0 * 32.0;
/// The scale of the second look over the first pass's: each side twice, each plate four times
/// the area (a plate of 16×16 input pixels in the first pass reaches [`SMALL_AREA`]).
pub const GAIN: f32 = 2.0;
/// The least scale of a second look over the first pass's: a crop that cannot be seen at least
/// this much larger is nearly the whole frame again.
pub const MIN_GAIN: f32 = 1.25;
/// Most vehicles looked at again per frame.
pub const MAX_REGIONS: usize = 2;
/// Margin added on each side of a vehicle's box, as a share of its width and height: the plate
/// sits at the box's lower edge, and the vehicle detector's box may stop short of the bumper.
pub const MARGIN: f32 = 0.1;

/// A region of the frame in whole pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Scale of the letterbox that fits `w`×`h` into an input of side `input` (the longer side
/// of a free one).
fn scale(w: f32, h: f32, input: usize) -> f32 {
    (input as f32 / w).min(input as f32 / h)
}

/// Whether `plate` is small as the detector saw it in a frame of `size` letterboxed into an
/// input of side `input`.
#[must_use]
pub fn is_small(plate: &BBox, size: (u32, u32), input: usize) -> bool {
    let s = scale(size.0 as f32, size.1 as f32, input);
    plate.area() * s * s < SMALL_AREA
}

/// Whether a plate of the first pass is worth seeing again in [`SecondLook::Small`]: small as
/// the detector saw it ([`is_small`]) and read with a character below the reader's
/// [`SURE`](crate::plate_reader::SURE).
#[must_use]
pub fn worth_seeing_again(plate: &PlateRead, size: (u32, u32), input: usize) -> bool {
    is_small(&plate.bbox, size, input) && super::weakest_char(plate) < crate::plate_reader::SURE
}

/// The regions to look at again in a frame of `size` for a detector of input side `input`,
/// given the vehicles and the plates of the first pass (see the module's criteria).
#[must_use]
pub fn regions(
    mode: SecondLook,
    size: (u32, u32),
    input: usize,
    vehicles: &[VehicleDetection],
    plates: &[PlateRead],
) -> Vec<Region> {
    if mode == SecondLook::Off {
        return Vec::new();
    }
    let (fw, fh) = (size.0 as f32, size.1 as f32);
    let frame_scale = scale(fw, fh, input);
    let mut wanted: Vec<(f32, Region)> = vehicles
        .iter()
        .filter(|v| {
            plates
                .iter()
                .filter(|p| v.bbox.contains_centre_of(&p.bbox))
                .all(|p| mode == SecondLook::Small && worth_seeing_again(p, size, input))
        })
        .filter_map(|v| {
            let b = &v.bbox;
            let x0 = (b.x - b.w * MARGIN).max(0.0).floor();
            let y0 = (b.y - b.h * MARGIN).max(0.0).floor();
            let x1 = (b.x + b.w * (1.0 + MARGIN)).min(fw).ceil();
            let y1 = (b.y + b.h * (1.0 + MARGIN)).min(fh).ceil();
            let (w, h) = (x1 - x0, y1 - y0);
            (w >= 8.0 && h >= 8.0 && scale(w, h, input) >= MIN_GAIN * frame_scale).then(|| {
                (
                    b.area(),
                    Region {
                        x: x0 as u32,
                        y: y0 as u32,
                        w: w as u32,
                        h: h as u32,
                    },
                )
            })
        })
        .collect();
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0));
    wanted
        .into_iter()
        .take(MAX_REGIONS)
        .map(|(_, r)| r)
        .collect()
}

/// The longer side of the detector input at which `region` of a frame of `size` is looked at
/// again: the region at [`GAIN`] times the scale at which a detector of input side `input`
/// saw the whole frame (at most `input`).
#[must_use]
pub fn input_long(region: &Region, size: (u32, u32), input: usize) -> usize {
    let gained = GAIN * scale(size.0 as f32, size.1 as f32, input);
    let long = region.w.max(region.h) as f32 * gained;
    (long.ceil() as usize).clamp(1, input)
}

/// The pixels of `region` as a frame of their own.
#[must_use]
pub fn crop(frame: &RgbFrame, region: &Region) -> RgbFrame {
    let stride = frame.width as usize * 3;
    let (x, w) = (region.x as usize * 3, region.w as usize * 3);
    let mut data = Vec::with_capacity(w * region.h as usize);
    for row in region.y as usize..(region.y + region.h) as usize {
        data.extend_from_slice(&frame.data[row * stride + x..row * stride + x + w]);
    }
    RgbFrame {
        width: region.w,
        height: region.h,
        data,
    }
}

/// Whether a box found in the crop of `region` touches one of the crop's edges that is not an
/// edge of the frame of `size`: a plate cut by the crop, which the first pass saw whole if at
/// all.
#[must_use]
pub fn cut_by(region: &Region, bbox: &BBox, size: (u32, u32)) -> bool {
    const EDGE: f32 = 1.0;
    let (x0, y0) = (region.x as f32, region.y as f32);
    let (x1, y1) = (x0 + region.w as f32, y0 + region.h as f32);
    (region.x > 0 && bbox.x <= x0 + EDGE)
        || (region.y > 0 && bbox.y <= y0 + EDGE)
        || (region.x + region.w < size.0 && bbox.x + bbox.w >= x1 - EDGE)
        || (region.y + region.h < size.1 && bbox.y + bbox.h >= y1 - EDGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_types::VehicleClass;

    fn vehicle(x: f32, y: f32, w: f32, h: f32) -> VehicleDetection {
        VehicleDetection {
            class: VehicleClass::Car,
            confidence: 0.9,
            bbox: BBox { x, y, w, h },
        }
    }

    fn plate(x: f32, y: f32, w: f32, h: f32) -> PlateRead {
        PlateRead {
            text: "ABC123".into(),
            confidence: 0.9,
            char_confidences: vec![0.9; 6],
            detection_confidence: 0.8,
            bbox: BBox { x, y, w, h },
            raw_text: "ABC123".into(),
            country: None,
            plate_type: None,
            region: None,
            format_confidence: 0.0,
            low_confidence: false,
        }
    }

    const HD: (u32, u32) = (1280, 720);

    #[test]
    fn a_region_is_looked_at_again_at_twice_the_first_pass_scale() {
        let region = |w, h| Region { x: 0, y: 0, w, h };
        // 1280x720 into 640: the first pass halves the frame, so the second look is 1:1.
        assert_eq!(input_long(&region(300, 200), HD, 640), 300);
        assert_eq!(input_long(&region(150, 301), HD, 640), 301);
        // 1920x1080 into 640: a third, so two thirds.
        assert_eq!(input_long(&region(300, 200), (1920, 1080), 640), 200);
        // Never above the input.
        assert_eq!(input_long(&region(1280, 720), HD, 640), 640);
    }

    #[test]
    fn a_plate_is_small_by_its_area_in_the_detector_input() {
        // 1280x720 into 640: halved, so 90x45 frame pixels are 45x22.5 = 1012 < 1024.
        assert!(is_small(
            &BBox {
                x: 0.0,
                y: 0.0,
                w: 90.0,
                h: 45.0
            },
            HD,
            640
        ));
        assert!(!is_small(
            &BBox {
                x: 0.0,
                y: 0.0,
                w: 120.0,
                h: 60.0
            },
            HD,
            640
        ));
        // The same plate in a frame that is not shrunk is not small.
        assert!(!is_small(
            &BBox {
                x: 0.0,
                y: 0.0,
                w: 90.0,
                h: 45.0
            },
            (640, 640),
            640
        ));
    }

    #[test]
    fn every_vehicle_with_a_plate_that_is_not_small_costs_no_second_look() {
        let vehicles = [
            vehicle(100.0, 100.0, 400.0, 300.0),
            vehicle(700.0, 200.0, 300.0, 250.0),
        ];
        let plates = [
            plate(250.0, 330.0, 140.0, 60.0),
            plate(800.0, 380.0, 130.0, 60.0),
        ];
        assert!(regions(SecondLook::Small, HD, 640, &vehicles, &plates).is_empty());
    }

    #[test]
    fn a_vehicle_without_a_plate_or_with_a_small_one_is_looked_at_again_largest_first() {
        let vehicles = [
            vehicle(100.0, 100.0, 400.0, 300.0),
            vehicle(700.0, 200.0, 300.0, 250.0),
            vehicle(1000.0, 100.0, 200.0, 150.0),
        ];
        // The first has a small plate read unsurely, the other two none.
        let mut small = plate(250.0, 330.0, 60.0, 30.0);
        small.char_confidences[2] = 0.6;
        let plates = [small];
        assert_eq!(
            regions(SecondLook::Missing, HD, 640, &vehicles, &plates).len(),
            MAX_REGIONS,
            "the two without a plate"
        );
        assert!(regions(SecondLook::Off, HD, 640, &vehicles, &plates).is_empty());
        let r = regions(SecondLook::Small, HD, 640, &vehicles, &plates);
        assert_eq!(r.len(), MAX_REGIONS);
        assert_eq!(
            r[0],
            Region {
                x: 60,
                y: 70,
                w: 480,
                h: 360
            },
            "the box with a margin of a tenth on each side"
        );
        assert_eq!(r[1].x, 670);
    }

    #[test]
    fn a_small_plate_read_surely_costs_no_second_look() {
        let vehicles = [vehicle(100.0, 100.0, 400.0, 300.0)];
        let mut plates = [plate(250.0, 330.0, 60.0, 30.0)];
        assert!(regions(SecondLook::Small, HD, 640, &vehicles, &plates).is_empty());
        plates[0].char_confidences[0] = 0.79;
        assert_eq!(
            regions(SecondLook::Small, HD, 640, &vehicles, &plates).len(),
            1
        );
        plates[0].char_confidences.clear();
        assert!(
            worth_seeing_again(&plates[0], HD, 640),
            "no characters read"
        );
    }

    #[test]
    fn a_vehicle_too_large_to_be_enlarged_twice_is_looked_at_filling_the_input() {
        // Its crop reaches the detector at 640/704 = 0.91 of its size, the frame at 0.5: 1.8x.
        let vehicles = [vehicle(300.0, 0.0, 640.0, 600.0)];
        let r = regions(SecondLook::Missing, HD, 640, &vehicles, &[]);
        assert_eq!(r.len(), 1);
        assert_eq!(input_long(&r[0], HD, 640), 640);
        // One filling nearly the frame (640/1280 = 0.5 of its size, as the first pass) is not.
        let vehicles = [vehicle(10.0, 10.0, 1200.0, 650.0)];
        assert!(regions(SecondLook::Missing, HD, 640, &vehicles, &[]).is_empty());
    }

    #[test]
    fn a_crop_holds_the_pixels_of_its_region_and_a_box_on_its_inner_edge_is_cut() {
        let mut frame = RgbFrame {
            width: 4,
            height: 3,
            data: vec![0; 36],
        };
        // Pixel (2, 1) is red.
        frame.data[(4 + 2) * 3] = 255;
        let region = Region {
            x: 1,
            y: 1,
            w: 2,
            h: 2,
        };
        let c = crop(&frame, &region);
        assert_eq!((c.width, c.height, c.data.len()), (2, 2, 12));
        assert_eq!(c.data[3], 255, "(2, 1) is (1, 0) in the crop");
        let b = |x: f32, y: f32, w: f32, h: f32| BBox { x, y, w, h };
        let region = Region {
            x: 100,
            y: 100,
            w: 200,
            h: 200,
        };
        assert!(
            cut_by(&region, &b(100.0, 150.0, 50.0, 20.0), HD),
            "left edge"
        );
        assert!(!cut_by(&region, &b(150.0, 150.0, 50.0, 20.0), HD));
        let at_origin = Region {
            x: 0,
            y: 0,
            w: 200,
            h: 200,
        };
        assert!(
            !cut_by(&at_origin, &b(0.0, 150.0, 50.0, 20.0), HD),
            "the frame's own edge"
        );
        assert!(
            cut_by(&at_origin, &b(150.0, 150.0, 50.0, 20.0), HD),
            "the crop's right edge"
        );
    }
}
