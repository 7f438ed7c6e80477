//! The overlay image of a violation, for people: the frame actually read, with the vehicle's
//! and the plate's boxes drawn on it and a caption band giving the plate text, the capture
//! time, the camera and the rule.
//!
//! The caption's lines share one size, made smaller when the longest would not fit the width.
//! Text needs a TrueType font: DejaVu Sans (Debian's `fonts-dejavu-core`, installed by
//! `deploy/setup.sh`). Without one the boxes are still drawn and the caption is left out,
//! with a warning once: the violation is never held back for want of a font.

use std::sync::OnceLock;

use ab_glyph::{FontVec, PxScale};
use anpr_types::{BBox, RgbFrame};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;

/// Fonts tried in order.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
];

fn font() -> Option<&'static FontVec> {
    static FONT: OnceLock<Option<FontVec>> = OnceLock::new();
    FONT.get_or_init(|| {
        let found = FONTS
            .iter()
            .find_map(|f| std::fs::read(f).ok())
            .and_then(|bytes| FontVec::try_from_vec(bytes).ok());
        if found.is_none() {
            tracing::warn!(
                fonts = FONTS.join(", "),
                "No font for the captions of violation overlays; boxes are drawn without text. Install fonts-dejavu-core."
            );
        }
        found
    })
    .as_ref()
}

/// What the overlay shows.
#[derive(Debug, Clone)]
pub struct Overlay<'a> {
    pub vehicle: Option<BBox>,
    pub plate: Option<BBox>,
    /// Caption lines, top to bottom (plate and type; time and camera; the rules).
    pub lines: &'a [String],
}

fn rect(b: &BBox, w: u32, h: u32) -> Option<Rect> {
    let x0 = b.x.max(0.0).round() as i32;
    let y0 = b.y.max(0.0).round() as i32;
    let x1 = ((b.x + b.w).round() as i32).min(w as i32 - 1);
    let y1 = ((b.y + b.h).round() as i32).min(h as i32 - 1);
    (x1 > x0 && y1 > y0).then(|| Rect::at(x0, y0).of_size((x1 - x0) as u32, (y1 - y0) as u32))
}

fn thick_box(img: &mut RgbImage, r: Rect, colour: Rgb<u8>, thickness: i32) {
    for i in 0..thickness {
        let (w, h) = (r.width() as i32 - 2 * i, r.height() as i32 - 2 * i);
        if w <= 1 || h <= 1 {
            break;
        }
        draw_hollow_rect_mut(
            img,
            Rect::at(r.left() + i, r.top() + i).of_size(w as u32, h as u32),
            colour,
        );
    }
}

/// Draws the overlay on a copy of `frame`; returns packed RGB of the same size.
#[must_use]
pub fn draw(frame: &RgbFrame, overlay: &Overlay<'_>) -> RgbImage {
    let (w, h) = (frame.width, frame.height);
    let mut img = RgbImage::from_raw(w, h, frame.data.clone())
        .unwrap_or_else(|| RgbImage::new(w.max(1), h.max(1)));
    let line = (h / 240).max(2) as i32;
    if let Some(r) = overlay.vehicle.as_ref().and_then(|b| rect(b, w, h)) {
        thick_box(&mut img, r, Rgb([255, 200, 0]), line);
    }
    if let Some(r) = overlay.plate.as_ref().and_then(|b| rect(b, w, h)) {
        thick_box(&mut img, r, Rgb([255, 40, 40]), line);
    }
    if let Some(font) = font() {
        // One size for every line, small enough that the longest fits the frame's width.
        let mut size = (h as f32 / 28.0).clamp(12.0, 48.0);
        let room = w as f32 * 0.96;
        let widest = overlay
            .lines
            .iter()
            .map(|t| text_size(PxScale::from(size), font, t).0)
            .max()
            .unwrap_or(0) as f32;
        if widest > room {
            size = (size * room / widest).max(6.0);
        }
        let band = (size * 1.25) as u32 * overlay.lines.len() as u32 + (size * 0.5) as u32;
        draw_filled_rect_mut(
            &mut img,
            Rect::at(0, 0).of_size(w, band.min(h)),
            Rgb([0, 0, 0]),
        );
        for (i, text) in overlay.lines.iter().enumerate() {
            let y = (size * 0.25 + i as f32 * size * 1.25) as i32;
            draw_text_mut(
                &mut img,
                Rgb([255, 255, 255]),
                (size * 0.4) as i32,
                y,
                PxScale::from(size),
                font,
                text,
            );
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boxes_are_drawn_where_the_vehicle_and_plate_are_and_nothing_leaves_the_frame() {
        let frame = RgbFrame {
            width: 320,
            height: 240,
            data: vec![100; 320 * 240 * 3],
        };
        let vehicle = BBox {
            x: 50.0,
            y: 100.0,
            w: 100.0,
            h: 80.0,
        };
        let plate = BBox {
            x: 80.0,
            y: 150.0,
            w: 40.0,
            h: 10.0,
        };
        let outside = BBox {
            x: 300.0,
            y: 230.0,
            w: 100.0,
            h: 100.0,
        };
        let lines = ["123ABC01 truck".to_string()];
        let img = draw(
            &frame,
            &Overlay {
                vehicle: Some(vehicle),
                plate: Some(plate),
                lines: &lines,
            },
        );
        assert_eq!(img.dimensions(), (320, 240));
        assert_eq!(img.get_pixel(50, 140).0, [255, 200, 0], "vehicle box edge");
        assert_eq!(img.get_pixel(80, 155).0, [255, 40, 40], "plate box edge");
        assert_eq!(
            img.get_pixel(100, 120).0,
            [100, 100, 100],
            "inside untouched"
        );
        let clipped = draw(
            &frame,
            &Overlay {
                vehicle: Some(outside),
                plate: None,
                lines: &[],
            },
        );
        assert_eq!(clipped.get_pixel(300, 235).0, [255, 200, 0]);
    }

    #[test]
    fn a_long_caption_is_made_smaller_to_stay_inside_the_frame() {
        let frame = RgbFrame {
            width: 320,
            height: 240,
            data: vec![100; 320 * 240 * 3],
        };
        let lines = ["wanted: a reason far too long to fit on one line of a small frame at the usual size of the caption".to_string()];
        let img = draw(
            &frame,
            &Overlay {
                vehicle: None,
                plate: None,
                lines: &lines,
            },
        );
        let band = (0..240)
            .take_while(|&y| img.get_pixel(0, y).0 != [100, 100, 100])
            .count() as u32;
        assert!(band > 0, "a caption band is drawn");
        for y in 0..band {
            assert_eq!(
                img.get_pixel(319, y).0,
                [0, 0, 0],
                "text reaches the right edge at row {y}"
            );
        }
    }
}
