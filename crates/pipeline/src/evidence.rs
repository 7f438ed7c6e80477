//! Evidence images of a passage: the whole frame and the plate with a margin, as JPEG; for a
//! violation also the overlay for people ([`crate::overlay`]).
//!
//! Encoded once when the passage is recorded, from the frame the tracker kept with the best
//! read (or, with no plate read, its best view of the vehicle); stored with the event in the
//! same transaction (see `anpr_store`).

use anpr_config::EvidenceKind;
use anpr_store::NewEvidence;
use anpr_types::{BBox, RgbFrame};
use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;

/// JPEG bytes of packed RGB pixels.
pub fn jpeg(data: &[u8], width: u32, height: u32, quality: u8) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality).encode(
        data,
        width,
        height,
        ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

/// The plate box grown by half its width and its height on each side, clipped to the frame;
/// `None` when nothing of it is inside.
#[must_use]
pub fn plate_window(frame: &RgbFrame, plate: &BBox) -> Option<(u32, u32, u32, u32)> {
    let x0 = (plate.x - plate.w * 0.5).floor().max(0.0) as u32;
    let y0 = (plate.y - plate.h * 0.5).floor().max(0.0) as u32;
    let x1 = ((plate.x + plate.w * 1.5).ceil().max(0.0) as u32).min(frame.width);
    let y1 = ((plate.y + plate.h * 1.5).ceil().max(0.0) as u32).min(frame.height);
    (x1 > x0 && y1 > y0).then(|| (x0, y0, x1 - x0, y1 - y0))
}

/// Copies a window of the frame out as packed RGB.
fn crop(frame: &RgbFrame, (x, y, w, h): (u32, u32, u32, u32)) -> Vec<u8> {
    let stride = frame.width as usize * 3;
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for row in y..y + h {
        let start = row as usize * stride + x as usize * 3;
        out.extend_from_slice(&frame.data[start..start + w as usize * 3]);
    }
    out
}

/// The evidence images asked for by `kinds`, encoded from `frame`. An image that cannot be
/// made is left out with a warning; the event is recorded without it.
#[must_use]
pub fn images(
    frame: &RgbFrame,
    plate: Option<&BBox>,
    kinds: &[EvidenceKind],
    quality: u8,
) -> Vec<NewEvidence> {
    let mut out = Vec::new();
    for kind in kinds {
        let encoded = match kind {
            EvidenceKind::Overview => jpeg(&frame.data, frame.width, frame.height, quality),
            EvidenceKind::Plate => match plate.and_then(|p| plate_window(frame, p)) {
                Some(win) => jpeg(&crop(frame, win), win.2, win.3, quality),
                None => continue,
            },
        };
        match encoded {
            Ok(data) => out.push(NewEvidence {
                kind: kind.as_str().to_string(),
                content_type: "image/jpeg".to_string(),
                data,
            }),
            Err(e) => tracing::warn!(kind = kind.as_str(), error = %e, "Evidence image not made."),
        }
    }
    out
}

/// The overlay image of a violation (kind `overlay`), encoded from `frame`; `None` (with a
/// warning) when it cannot be encoded.
#[must_use]
pub fn overlay_image(
    frame: &RgbFrame,
    overlay: &crate::overlay::Overlay<'_>,
    quality: u8,
) -> Option<NewEvidence> {
    let img = crate::overlay::draw(frame, overlay);
    match jpeg(img.as_raw(), img.width(), img.height(), quality) {
        Ok(data) => Some(NewEvidence {
            kind: "overlay".to_string(),
            content_type: "image/jpeg".to_string(),
            data,
        }),
        Err(e) => {
            tracing::warn!(kind = "overlay", error = %e, "Evidence image not made.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32) -> RgbFrame {
        let data = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
        RgbFrame {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn the_plate_window_has_a_margin_and_stays_inside_the_frame() {
        let f = frame(100, 50);
        let b = BBox {
            x: 10.0,
            y: 10.0,
            w: 20.0,
            h: 10.0,
        };
        assert_eq!(plate_window(&f, &b), Some((0, 5, 40, 20)));
        let edge = BBox {
            x: 90.0,
            y: 45.0,
            w: 20.0,
            h: 10.0,
        };
        assert_eq!(plate_window(&f, &edge), Some((80, 40, 20, 10)));
        let outside = BBox {
            x: 300.0,
            y: 10.0,
            w: 20.0,
            h: 10.0,
        };
        assert_eq!(plate_window(&f, &outside), None);
    }

    #[test]
    fn both_images_decode_back_to_their_sizes() {
        let f = frame(64, 48);
        let b = BBox {
            x: 20.0,
            y: 20.0,
            w: 16.0,
            h: 8.0,
        };
        let imgs = images(
            &f,
            Some(&b),
            &[EvidenceKind::Overview, EvidenceKind::Plate],
            85,
        );
        assert_eq!(imgs.len(), 2);
        let overview = image::load_from_memory(&imgs[0].data).unwrap();
        assert_eq!((overview.width(), overview.height()), (64, 48));
        let plate = image::load_from_memory(&imgs[1].data).unwrap();
        assert_eq!((plate.width(), plate.height()), (32, 16));
        assert_eq!(imgs[1].kind, "plate");
    }
}
