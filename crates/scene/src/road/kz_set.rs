//! A labelled set of road-like stills, one Kazakhstan plate each, for scoring the plate reader
//! in `kz` mode (`anpr eval --dataset`): the plate is mounted on the rear of a vehicle of the
//! road scene (a box truck or a bus) standing on the road, and the frame is seen straight or
//! from the side, under one of a few lighting levels, blurred and noisy as a camera's would be.
//!
//! # Contract
//!
//! - [`kz_sample`] is deterministic: the same seed and index give the same text, layout and
//!   pixels wherever the same fonts are installed (DejaVu Sans Bold, and DejaVu Sans Condensed
//!   Bold when installed; both from Debian's fonts-dejavu-core).
//! - Plates follow the 2012 standard's formats: three digits, two or three letters (every other
//!   index has a doubled letter, such as `AAT`), the region code 01–20. One-row plates (520 ×
//!   112 mm: flag and `KZ` band on the left, region code in a box on the right) are 100–240 px
//!   wide; two-row plates (280 × 200 mm) are 100–200 px wide, three in ten of the set.
//! - The label box is the box around the plate's four corners after the view is applied.
//!
//! The two-row layout is not given by the sources of `shared/mission/DOMAIN.md` ("a two-row
//! square variant"); this one keeps the reading order of the one-row plate: the flag band and
//! the digits on the upper row, the letters and the boxed region code on the lower one.

use ab_glyph::{FontVec, PxScale};
use anyhow::Result;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_text_mut, text_size};
use imageproc::geometric_transformations::{Interpolation, Projection, warp};

use super::bus::draw_bus;
use super::manifest::{Placement, VehicleType};
use super::paint::{fill_rect, outline};
use super::truck::draw_truck;
use super::{HEIGHT, WIDTH};
use crate::clip::draw_road;
use crate::font::load_font;

/// DejaVu Sans Condensed Bold: narrower glyphs, nearer to the plate font than the plain bold.
const CONDENSED: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf";

/// Letters of Kazakhstan 2012 plates (full Latin A–Z).
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The fonts plates of the set are drawn with: DejaVu Sans Bold, and the condensed bold when
/// it is installed (the plain bold stands in for it otherwise).
pub struct KzFonts {
    bold: FontVec,
    condensed: Option<FontVec>,
}

impl KzFonts {
    /// Loads the fonts; the error names the package to install.
    pub fn load() -> Result<Self> {
        let condensed = std::fs::read(CONDENSED)
            .ok()
            .and_then(|b| FontVec::try_from_vec(b).ok());
        Ok(Self {
            bold: load_font()?,
            condensed,
        })
    }

    /// The condensed bold two times in three (when installed), the plain bold otherwise.
    pub(super) fn pick(&self, rng: &mut Rng) -> &FontVec {
        match (&self.condensed, rng.below(3)) {
            (Some(c), 0 | 1) => c,
            _ => &self.bold,
        }
    }
}

/// One labelled frame of the set.
pub struct KzSample {
    /// The frame, 1280×720.
    pub image: RgbImage,
    /// The plate's box in the frame, `[x, y, w, h]`.
    pub plate_box: [u32; 4],
    /// The plate's text as it reads, top row first (`123AAT01`).
    pub text: String,
    /// Whether the plate has two rows.
    pub two_row: bool,
    /// Whether the text has a doubled letter.
    pub doubled: bool,
    /// The plate's width as drawn, before the view (px).
    pub plate_width: u32,
}

/// A small seeded generator (PCG-style LCG), so that the set is the same on every machine.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64, index: u32) -> Self {
        let mut r = Self(seed ^ (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.below(2);
        r
    }

    pub(super) fn below(&mut self, m: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % u64::from(m)) as u32
    }

    /// A value between `lo` and `hi`.
    pub(super) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.below(10_000) as f32 / 9_999.0
    }
}

/// A plate text of the 2012 private (three letters) or legal-entity (two letters) format, with
/// a doubled letter when `doubled`, and none otherwise.
pub(super) fn plate_text(rng: &mut Rng, doubled: bool) -> String {
    let letter = |rng: &mut Rng| char::from(LETTERS[rng.below(26) as usize]);
    let digits: String = (0..3)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect();
    let count = if rng.below(4) == 0 { 2 } else { 3 };
    let mut letters: Vec<char> = (0..count).map(|_| letter(rng)).collect();
    if doubled {
        let at = rng.below(count - 1) as usize;
        letters[at + 1] = letters[at];
    } else {
        for k in 1..letters.len() {
            while letters[k] == letters[k - 1] {
                letters[k] = letter(rng);
            }
        }
    }
    let region = 1 + rng.below(20);
    format!("{digits}{}{region:02}", letters.iter().collect::<String>())
}

/// The rows of the ink of `text` drawn with `font` at `scale` from the origin (0, 0): the
/// first and one past the last.
fn ink_rows(font: &FontVec, text: &str, scale: PxScale) -> (f32, f32) {
    let (tw, th) = text_size(scale, font, text);
    let mut probe = RgbImage::from_pixel(tw + 4, th + 4, Rgb([255, 255, 255]));
    draw_text_mut(&mut probe, Rgb([0, 0, 0]), 0, 0, scale, font, text);
    let inked: Vec<u32> = probe
        .rows()
        .enumerate()
        .filter(|(_, row)| row.clone().any(|p| p.0[0] < 128))
        .map(|(y, _)| y as u32)
        .collect();
    match (inked.first(), inked.last()) {
        (Some(&a), Some(&b)) => (a as f32, b as f32 + 1.0),
        _ => (0.0, scale.y),
    }
}

/// Draws `text` with `font` so that its ink is `height` tall with its top at `top`, centred in
/// the span `[left, right)`, narrowed to fit the span.
fn centred_text(
    img: &mut RgbImage,
    font: &FontVec,
    text: &str,
    (left, right): (f32, f32),
    top: f32,
    height: f32,
) {
    let ink = Rgb([18, 18, 20]);
    let (a, b) = ink_rows(font, text, PxScale::from(100.0));
    let mut scale = PxScale::from(100.0 * height / (b - a).max(1.0));
    let (tw, _) = text_size(scale, font, text);
    let room = right - left;
    if tw as f32 > room {
        scale.x *= room / tw as f32;
    }
    let tw = text_size(scale, font, text).0 as f32;
    let y = top - a * scale.y / 100.0;
    draw_text_mut(
        img,
        ink,
        (left + (room - tw) / 2.0).round() as i32,
        y.round() as i32,
        scale,
        font,
        text,
    );
}

/// The flag (sky blue with the golden sun) and `KZ` under it, in the band `(x0, y0)`–`(x1, y1)`.
fn flag_band(img: &mut RgbImage, font: &FontVec, (x0, y0): (f32, f32), (x1, y1): (f32, f32)) {
    let (w, h) = (x1 - x0, y1 - y0);
    let flag_bottom = y0 + h * 0.5;
    fill_rect(img, (x0, y0), (x1, flag_bottom), Rgb([0, 165, 205]));
    let r = (w.min(h * 0.5) * 0.22).max(1.0);
    draw_filled_circle_mut(
        img,
        (
            (x0 + w * 0.55).round() as i32,
            f32::midpoint(y0, flag_bottom).round() as i32,
        ),
        r.round() as i32,
        Rgb([250, 200, 20]),
    );
    centred_text(img, font, "KZ", (x0, x1), y0 + h * 0.6, h * 0.32);
}

/// The region code in its box `(x0, y0)`–`(x1, y1)`: a dark frame, the digits inside.
fn region_box(
    img: &mut RgbImage,
    font: &FontVec,
    region: &str,
    (x0, y0): (f32, f32),
    (x1, y1): (f32, f32),
) {
    let h = y1 - y0;
    outline(
        img,
        (x0, y0),
        (x1, y1),
        (h * 0.05).max(1.0),
        Rgb([18, 18, 20]),
    );
    let pad = (h * 0.09).max(1.5);
    centred_text(
        img,
        font,
        region,
        (x0 + pad, x1 - pad),
        y0 + h * 0.16,
        h * 0.68,
    );
}

/// Draws a Kazakhstan plate `w` wide with its top-left corner at `(x, y)`: one row (520 × 112
/// mm) or two rows (280 × 200 mm). Returns its height.
pub(super) fn draw_kz_plate(
    img: &mut RgbImage,
    font: &FontVec,
    text: &str,
    (x, y): (f32, f32),
    w: f32,
    two_row: bool,
) -> f32 {
    let (digits, rest) = text.split_at(3);
    let (letters, region) = rest.split_at(rest.len() - 2);
    let height = if two_row {
        (w * 200.0 / 280.0).round()
    } else {
        (w * 112.0 / 520.0).round()
    };
    fill_rect(img, (x, y), (x + w, y + height), Rgb([244, 244, 240]));
    outline(
        img,
        (x, y),
        (x + w, y + height),
        (w * 0.008).max(1.0),
        Rgb([18, 18, 20]),
    );
    let pad = (w * 0.018).max(1.5);
    if two_row {
        let row = (height - 3.0 * pad) / 2.0;
        let (top, bottom) = (y + pad, y + 2.0 * pad + row);
        flag_band(
            img,
            font,
            (x + pad, top + row * 0.08),
            (x + w * 0.2, top + row * 0.92),
        );
        centred_text(
            img,
            font,
            digits,
            (x + w * 0.22, x + w - pad),
            top + row * 0.14,
            row * 0.72,
        );
        centred_text(
            img,
            font,
            letters,
            (x + pad, x + w * 0.66),
            bottom + row * 0.14,
            row * 0.72,
        );
        region_box(
            img,
            font,
            region,
            (x + w * 0.69, bottom + row * 0.04),
            (x + w - pad, bottom + row * 0.96),
        );
    } else {
        let inner = height - 2.0 * pad;
        flag_band(
            img,
            font,
            (x + pad, y + pad),
            (x + w * 0.1, y + height - pad),
        );
        centred_text(
            img,
            font,
            &format!("{digits}{letters}"),
            (x + w * 0.12, x + w * 0.79),
            y + pad + inner * 0.16,
            inner * 0.68,
        );
        region_box(
            img,
            font,
            region,
            (x + w * 0.815, y + pad),
            (x + w - pad, y + height - pad),
        );
    }
    height
}

/// Body colours of the vehicles.
const COLOURS: &[[u8; 3]] = &[
    [200, 200, 205],
    [235, 235, 232],
    [40, 60, 120],
    [150, 30, 30],
    [60, 110, 70],
    [35, 35, 38],
    [190, 160, 60],
];

/// The view: a turn of `yaw` radians about the vertical line through `(cx, cy)` seen through a
/// lens of focal length `f` px, then a roll of `roll` radians, as a map of frame points.
fn view(cx: f32, cy: f32, yaw: f32, roll: f32) -> impl Fn((f32, f32)) -> (f32, f32) {
    let f = 2000.0;
    move |(x, y)| {
        let (dx, dy) = (x - cx, y - cy);
        let z = f + dx * yaw.sin();
        let (px, py) = (f * dx * yaw.cos() / z, f * dy / z);
        (
            cx + px * roll.cos() - py * roll.sin(),
            cy + px * roll.sin() + py * roll.cos(),
        )
    }
}

/// Frame `index` of the set drawn from `seed`: its plate text (a doubled letter on even
/// indices), a two-row plate on three indices in ten, the vehicle, the view, light, blur and
/// noise all drawn from the seeded generator.
#[must_use]
pub fn kz_sample(fonts: &KzFonts, seed: u64, index: u32) -> KzSample {
    let mut rng = Rng::new(seed, index);
    let doubled = index.is_multiple_of(2);
    let two_row = index % 10 < 3;
    let text = plate_text(&mut rng, doubled);
    let font = fonts.pick(&mut rng);
    let plate_width = if two_row {
        100 + rng.below(101)
    } else {
        100 + rng.below(141)
    };
    let pw = plate_width as f32;
    let mut img = RgbImage::new(WIDTH, HEIGHT);
    draw_road(&mut img);
    // A vehicle farther away in the other half of the road, for clutter.
    let left_half = rng.below(2) == 0;
    if rng.below(2) == 0 {
        let cx = if left_half { 1000 } else { 280 } + rng.below(60) as i32;
        let colour = Rgb(COLOURS[rng.below(COLOURS.len() as u32) as usize]);
        draw_truck(
            &mut img,
            font,
            None,
            colour,
            cx,
            330 + rng.below(40) as i32,
            180,
        );
    }
    // The vehicle carrying the plate: its width follows from the plate's (one-row plates are
    // 38% of it, two-row ones 30%), its wheels low in the frame.
    let kind = if rng.below(2) == 0 {
        VehicleType::Truck
    } else {
        VehicleType::Bus
    };
    let vw = (pw / if two_row { 0.30 } else { 0.38 }).round() as u32;
    let bottom = 600 + rng.below(110) as i32;
    let half = vw as i32 / 2;
    let span = (WIDTH as i32 - 2 * half).max(1) as u32;
    let cx = half + rng.below(span) as i32;
    let colour = Rgb(COLOURS[rng.below(COLOURS.len() as u32) as usize]);
    let placement = Placement {
        cx,
        bottom,
        w: vw,
        kind,
    };
    match kind {
        VehicleType::Truck => draw_truck(&mut img, font, None, colour, cx, bottom, vw),
        VehicleType::Bus => draw_bus(&mut img, font, None, colour, cx, bottom, vw),
    }
    // The plate where the vehicle carries one: a one-row plate in its place, a two-row plate
    // centred on the same spot, ending where the one-row plate would.
    let slot = placement.plate_box();
    let slot_bottom = slot.y as f32 + slot.h as f32;
    let px = cx as f32 - pw / 2.0;
    let ph = if two_row {
        (pw * 200.0 / 280.0).round()
    } else {
        (pw * 112.0 / 520.0).round()
    };
    let py = if two_row {
        slot_bottom - ph
    } else {
        slot.y as f32
    };
    draw_kz_plate(&mut img, font, &text, (px, py), pw, two_row);
    // The view: straight on, or turned (the plate foreshortened to 0.5–0.85 of its width),
    // with a slight roll on some.
    let turned = rng.below(5) >= 2;
    let yaw = if turned {
        let s = rng.range(0.5, 0.85);
        s.acos() * if rng.below(2) == 0 { 1.0 } else { -1.0 }
    } else {
        0.0
    };
    let roll = if rng.below(3) == 0 {
        rng.range(-0.06, 0.06)
    } else {
        0.0
    };
    let corners = [(px, py), (px + pw, py), (px + pw, py + ph), (px, py + ph)];
    let mut label = [px, py, pw, ph];
    if turned || roll != 0.0 {
        let map = view(cx as f32, py + ph / 2.0, yaw, roll);
        let far = [(0.0, 0.0), (1280.0, 0.0), (1280.0, 720.0), (0.0, 720.0)];
        if let Some(p) = Projection::from_control_points(far, far.map(&map)) {
            img = warp(&img, &p, Interpolation::Bilinear, Rgb([88, 88, 92]));
            let moved = corners.map(&map);
            let (x0, x1) = moved
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), c| (a.min(c.0), b.max(c.0)));
            let (y0, y1) = moved
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), c| (a.min(c.1), b.max(c.1)));
            label = [x0, y0, x1 - x0, y1 - y0];
        }
    }
    // Light: day, overcast, dusk (dim and blue) or low sun (bright, washed out).
    let (gain, lift, tint) = match rng.below(4) {
        0 => (1.0, 0.0, [1.0, 1.0, 1.0]),
        1 => (0.8, 12.0, [1.0, 1.0, 1.02]),
        2 => (0.45, 4.0, [0.9, 0.95, 1.1]),
        _ => (0.85, 45.0, [1.03, 1.0, 0.95]),
    };
    let sigma = rng.range(0.5, 1.3);
    let amp = rng.range(2.0, 8.0);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let mut h = ((u64::from(x) << 32) | u64::from(y)) ^ seed ^ (u64::from(index) << 48);
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 29;
        let n = ((h & 0xffff) as f32 / 65_535.0 - 0.5) * 2.0 * amp;
        for (c, t) in p.0.iter_mut().zip(tint) {
            *c = (f32::from(*c) * gain * t + lift + n).clamp(0.0, 255.0) as u8;
        }
    }
    let image = imageproc::filter::gaussian_blur_f32(&img, sigma);
    let to_px = |v: f32| v.round().max(0.0) as u32;
    KzSample {
        image,
        plate_box: [
            to_px(label[0]),
            to_px(label[1]),
            to_px(label[2]),
            to_px(label[3]),
        ],
        text,
        two_row,
        doubled,
        plate_width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_follow_the_2012_formats_and_double_a_letter_on_even_indices() {
        for index in 0..40 {
            let mut rng = Rng::new(7, index);
            let doubled = index.is_multiple_of(2);
            let t = plate_text(&mut rng, doubled);
            let b = t.as_bytes();
            assert!(t.len() == 7 || t.len() == 8, "{t}");
            assert!(b[..3].iter().all(u8::is_ascii_digit), "{t}");
            let letters = &b[3..b.len() - 2];
            assert!(letters.iter().all(u8::is_ascii_uppercase), "{t}");
            let region: u32 = t[t.len() - 2..].parse().unwrap();
            assert!((1..=20).contains(&region), "{t}");
            let has_double = letters.windows(2).any(|w| w[0] == w[1]);
            assert_eq!(has_double, doubled, "{t}");
        }
    }

    #[test]
    fn the_view_keeps_its_centre_and_foreshortens_the_width() {
        let map = view(600.0, 400.0, 0.5f32.acos(), 0.0);
        let c = map((600.0, 400.0));
        assert!((c.0 - 600.0).abs() < 1e-3 && (c.1 - 400.0).abs() < 1e-3);
        let (l, r) = (map((500.0, 400.0)), map((700.0, 400.0)));
        let w = r.0 - l.0;
        assert!(w > 95.0 && w < 105.0, "{w}");
    }
}
