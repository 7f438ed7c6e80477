//! Plate reading with the real plate reader on plates drawn here.
#![allow(clippy::unwrap_used)]

use anpr_types::{BBox, KnownPlate, RgbFrame};
use anpr_vision::{PlateReader, Recognizer, RecognizerConfig, init_runtime, row_gap};

use crate::util;

fn frame(img: image::RgbImage) -> RgbFrame {
    RgbFrame {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
    }
}

#[test]
fn a_two_row_plate_is_read_top_row_then_bottom_row() {
    init_runtime(&util::models_dir().join("libonnxruntime.so")).unwrap();
    let mut reader = PlateReader::load(&util::models_dir().join("plate_reader.onnx"), 1).unwrap();
    for (top, bottom) in [("1234", "AB77"), ("0521", "KZ02"), ("A725", "BC15")] {
        let (img, [x, y, w, h]) = anpr_scene::two_row_plate(top, bottom, 280).unwrap();
        let plate = frame(img);
        let bbox = BBox {
            x: x as f32,
            y: y as f32,
            w: w as f32,
            h: h as f32,
        };
        let gap = row_gap(&plate, &bbox).expect("the gap between the rows is found");
        assert!(
            (gap - (y as f32 + h as f32 / 2.0)).abs() < h as f32 * 0.15,
            "gap at {gap} for a plate from {y} to {}",
            y + h
        );
        let read = reader.read(&plate, &bbox).unwrap();
        assert_eq!(read.text, format!("{top}{bottom}"), "{read:?}");
        assert_eq!(read.char_confidences.len(), read.text.len());
    }
}

#[test]
fn a_one_row_plate_has_no_row_gap() {
    let (img, [x, y, w, h]) = anpr_scene::two_row_plate("", "AB77", 280).unwrap();
    // Only the lower row has characters: the calmest middle row is not between two rows.
    let plate = frame(img);
    let bbox = BBox {
        x: x as f32,
        y: y as f32 + h as f32 * 0.45,
        w: w as f32,
        h: h as f32 * 0.55,
    };
    assert_eq!(row_gap(&plate, &bbox), None);
}

#[test]
fn a_slanted_plate_is_read_after_its_slant_is_measured_and_undone() {
    init_runtime(&util::models_dir().join("libonnxruntime.so")).unwrap();
    let mut reader = PlateReader::load(&util::models_dir().join("plate_reader.onnx"), 1).unwrap();
    for (text, slope) in [("123ABC01", 0.2f32), ("777KZA02", -0.25)] {
        let (img, [x, y, w, h]) = anpr_scene::one_row_plate(text, 260).unwrap();
        let level = frame(img);
        let whole = BBox {
            x: 0.0,
            y: 0.0,
            w: level.width as f32,
            h: level.height as f32,
        };
        // Slant the picture: undoing a shear of -slope applies one of +slope.
        let (slanted, _) = anpr_vision::skew::deskew(&level, &whole, -slope);
        let rise = slope.abs() * w as f32 / 2.0;
        let bbox = BBox {
            x: x as f32,
            y: y as f32 - rise,
            w: w as f32,
            h: h as f32 + 2.0 * rise,
        };
        let found = anpr_vision::skew::estimate_slope(&slanted, &bbox);
        assert!(
            (found - slope).abs() <= 0.05,
            "slope {slope}: found {found}"
        );
        let read = reader.read(&slanted, &bbox).unwrap();
        assert_eq!(read.text, text, "{read:?}");
    }
}

#[test]
fn a_plate_its_track_has_read_is_confirmed_from_one_view_and_read_in_full_when_it_differs() {
    init_runtime(&util::models_dir().join("libonnxruntime.so")).unwrap();
    let models = util::models_dir();
    let mut rec = Recognizer::new(RecognizerConfig {
        grammar: anpr_vision::GrammarMode::Kz,
        concurrent: false,
        second_look: anpr_vision::SecondLook::Off,
        ..util::recognizer_config(models.join("plate_detector.onnx"))
    })
    .unwrap();
    let (plate, [px, py, ..]) = anpr_scene::one_row_plate("123ABC02", 200).unwrap();
    let mut img = image::RgbImage::from_pixel(640, 360, image::Rgb([90, 95, 100]));
    image::imageops::overlay(&mut img, &plate, 220, 150);
    let image = frame(img);
    let first = rec.process_known(&image, false, &[]).unwrap();
    assert_eq!(first.plates.len(), 1, "{:?}", first.plates);
    let read = &first.plates[0];
    assert_eq!(read.text, "123ABC02", "{read:?}");
    assert!(
        (read.bbox.x - (220 + px) as f32).abs() < 20.0
            && (read.bbox.y - (150 + py) as f32).abs() < 20.0
    );
    assert_eq!(first.confirmed_reads(), 0, "nothing known yet");
    let known = |text: &str, dx: f32| KnownPlate {
        bbox: BBox {
            x: read.bbox.x + dx,
            ..read.bbox
        },
        text: text.into(),
    };
    // Expected a little off where it is found: the one view reads the known text.
    let again = rec
        .process_known(&image, false, &[known("123ABC02", read.bbox.w * 0.2)])
        .unwrap();
    assert_eq!(again.confirmed_reads(), 1);
    assert_eq!(again.plates[0].text, "123ABC02");
    assert_eq!(again.plate_views[0], "line known");
    // Two plates expected there (two tracks): the one whose text the view reads.
    let both = rec
        .process_known(
            &image,
            false,
            &[known("777KZA02", 0.0), known("123ABC02", 0.0)],
        )
        .unwrap();
    assert_eq!(both.plate_views[0], "line known");
    // Known as another text, or expected elsewhere: read from every view, as with nothing
    // known, and reported as read.
    for other in [known("123ABC03", 0.0), known("123ABC02", read.bbox.w * 2.0)] {
        let full = rec.process_known(&image, false, &[other]).unwrap();
        assert_eq!(full.confirmed_reads(), 0);
        assert_eq!(full.plates[0].text, "123ABC02");
        assert_eq!(full.plate_views, first.plate_views);
    }
}

#[test]
fn a_box_read_in_full_after_its_quick_reading_reads_as_if_read_in_full_at_once() {
    init_runtime(&util::models_dir().join("libonnxruntime.so")).unwrap();
    let mut reader = PlateReader::load(&util::models_dir().join("plate_reader.onnx"), 1).unwrap();
    // A drawn plate at a third of `width`, its contrast scaled by `contrast` and blurred by
    // `blur`: small, washed-out and soft plates read unsurely from the first view.
    let worn = |text: &str, width: u32, contrast: f32, blur: f32| {
        let (img, [x, y, w, h]) = anpr_scene::one_row_plate(text, width).unwrap();
        let mut small = image::imageops::resize(
            &img,
            img.width() / 3,
            img.height() / 3,
            image::imageops::FilterType::Triangle,
        );
        if blur > 0.0 {
            small = image::imageops::blur(&small, blur);
        }
        for p in small.pixels_mut() {
            for c in &mut p.0 {
                *c = (128.0 + (f32::from(*c) - 128.0) * contrast) as u8;
            }
        }
        (small, [x / 3, y / 3, w / 3, h / 3])
    };
    let plates = [
        worn("123ABC01", 780, 1.0, 0.0),
        worn("505AB17", 270, 0.3, 0.0),
        worn("248EKM09", 210, 1.0, 1.5),
        anpr_scene::two_row_plate("1234", "AB77", 200).unwrap(),
    ];
    let mut further = 0;
    for mode in [
        anpr_vision::GrammarMode::Generic,
        anpr_vision::GrammarMode::Kz,
    ] {
        reader.set_grammar(mode);
        for (img, [x, y, w, h]) in &plates {
            let plate = frame(img.clone());
            let bbox = BBox {
                x: *x as f32,
                y: *y as f32,
                w: *w as f32,
                h: *h as f32,
            };
            let whole = reader.read(&plate, &bbox).unwrap();
            let quick = reader.read_quick(&plate, &bbox).unwrap();
            further += usize::from(
                quick
                    .char_confidences
                    .iter()
                    .any(|&c| c < anpr_vision::plate_reader::SURE),
            );
            let after = reader.read_after(&plate, &bbox, quick).unwrap();
            assert_eq!(after, whole, "{mode:?}");
        }
    }
    assert!(
        further > 0,
        "no plate read unsurely from its first view: the further views are not exercised"
    );
}
