//! Drawing one frame of a scene.

use ab_glyph::FontVec;
use image::{Rgb, RgbImage};

use super::bus::draw_bus;
use super::manifest::{SceneManifest, VehicleType};
use super::truck::draw_truck;
use crate::clip::draw_road;

/// Draws frame `index` of the scene `m`: the road, then its vehicles in view, farthest first.
#[must_use]
pub fn render_scene_frame(m: &SceneManifest, font: &FontVec, index: u64) -> RgbImage {
    let mut img = RgbImage::new(m.width, m.height);
    draw_road(&mut img);
    for (v, p) in m.in_view(index) {
        let colour = Rgb(v.colour);
        let plate = v.plate.as_deref();
        match v.kind {
            VehicleType::Truck => draw_truck(&mut img, font, plate, colour, p.cx, p.bottom, p.w),
            VehicleType::Bus => draw_bus(&mut img, font, plate, colour, p.cx, p.bottom, p.w),
        }
    }
    img
}
