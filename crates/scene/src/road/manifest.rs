//! The truth about a scene, written as JSON beside its clip, and the motion that places each
//! vehicle on each frame (the drawing and the truth both come from [`SceneManifest::placement`]).

use serde::{Deserialize, Serialize};

use super::{bus, truck};

/// A point `[x, y]` in relative frame coordinates (`[0, 0]` top left, `[1, 1]` bottom right).
pub type Point = [f64; 2];

/// Where the road meets the sky, as a share of the frame's height.
pub const HORIZON: f64 = 1.0 / 6.0;
/// Where a vehicle's wheels are when it is farthest away and still in view.
pub const FAR_Y: f64 = 330.0 / 720.0;
/// Where a vehicle's wheels are when it is nearest and still in view.
pub const NEAR_Y: f64 = 690.0 / 720.0;
/// A vehicle's width, as a share of the frame's width, when it is farthest away.
pub const FAR_WIDTH: f64 = 240.0 / 1280.0;
/// A vehicle's width, as a share of the frame's width, when it is nearest.
pub const NEAR_WIDTH: f64 = 350.0 / 1280.0;

/// The type of vehicle, as the COCO vehicle detector names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VehicleType {
    /// A box truck seen from behind.
    Truck,
    /// A bus seen from behind.
    Bus,
}

impl VehicleType {
    /// The detector's name for the type (`truck`, `bus`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Truck => "truck",
            Self::Bus => "bus",
        }
    }

    /// Height of the vehicle's box as a share of its width.
    pub(crate) fn aspect(self) -> f32 {
        match self {
            Self::Truck => truck::ASPECT,
            Self::Bus => bus::ASPECT,
        }
    }
}

/// The way a vehicle drives, seen against the counting line drawn from its first point A to its
/// second B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Down the frame, growing: it crosses the line from the left of A→B to its right.
    Towards,
    /// Up the frame, shrinking: it crosses the line from the right of A→B to its left; the
    /// wrong way on this road.
    Away,
}

/// One of the road's two lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lane {
    /// The left half of the road, its vehicles centred at 30% of the width.
    #[serde(rename = "lane-1")]
    Left,
    /// The right half of the road, its vehicles centred at 70% of the width.
    #[serde(rename = "lane-2")]
    Right,
}

impl Lane {
    /// The lane's zone id (`lane-1`, `lane-2`).
    pub fn id(self) -> &'static str {
        match self {
            Self::Left => super::LANE_1,
            Self::Right => super::LANE_2,
        }
    }

    /// Where the lane's vehicles are centred, as a share of the frame's width.
    pub fn centre_x(self) -> f64 {
        match self {
            Self::Left => 0.30,
            Self::Right => 0.70,
        }
    }
}

/// A zone of the scene: an id and its outline in relative coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneZone {
    pub id: String,
    pub polygon: Vec<Point>,
}

/// The rules of the scene that its violations follow from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneRules {
    /// Plates on the hotlist, as the list writes them (one may differ from the plate on the
    /// road by one character, for a fuzzy match).
    pub hotlist: Vec<String>,
    /// The lane in which buses are banned; the clip has no time of day of its own, so the
    /// scene's configuration sets the ban's time window to cover the hours it is played in.
    pub bus_ban_lane: String,
}

/// The frames on which a vehicle stands still (both included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopFrames {
    pub from_frame: u64,
    pub to_frame: u64,
}

/// One vehicle of the scene and what the system must make of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneVehicle {
    /// `V1`, `V2`, …
    pub id: String,
    /// Plate text without separators, or `null` for a vehicle without a plate.
    pub plate: Option<String>,
    #[serde(rename = "type")]
    pub kind: VehicleType,
    pub lane: Lane,
    pub direction: Direction,
    /// First and last frame in which it is in view.
    pub first_frame: u64,
    pub last_frame: u64,
    /// The first frame on which its reference point (the bottom centre of its box) is past the
    /// counting line.
    pub crossing_frame: u64,
    /// When it stands still, if it does.
    pub stop: Option<StopFrames>,
    /// Body colour, RGB.
    pub colour: [u8; 3],
    /// Names of the rules it breaks ([`super::RULE_WANTED`], …), in that order.
    pub violations: Vec<String>,
}

/// What a scene clip shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneManifest {
    /// Version of the scene's drawing and motion; a clip of another version is drawn again.
    pub version: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u64,
    /// From A to B, relative coordinates; crossing it from the left of A→B to its right
    /// (downwards) is [`Direction::Towards`].
    pub counting_line: [Point; 2],
    pub lanes: Vec<LaneZone>,
    pub rules: SceneRules,
    pub vehicles: Vec<SceneVehicle>,
}

/// A box in pixels: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
}

impl PixelBox {
    /// Right edge (exclusive).
    pub fn right(&self) -> i32 {
        self.x + self.w as i32
    }

    /// Bottom edge (exclusive).
    pub fn bottom(&self) -> i32 {
        self.y + self.h as i32
    }

    /// Whether the two boxes share any pixel.
    pub fn overlaps(&self, other: &PixelBox) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }
}

/// Where a vehicle is on one frame, in pixels: the centre of its width, the line its wheels
/// stand on, and its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub cx: i32,
    pub bottom: i32,
    pub w: u32,
    pub kind: VehicleType,
}

impl Placement {
    /// The vehicle's box, from the top of its roof to the line its wheels stand on (the shadow
    /// below is not part of it).
    pub fn vehicle_box(&self) -> PixelBox {
        let h = (self.w as f32 * self.kind.aspect()).round() as u32;
        PixelBox {
            x: self.cx - self.w as i32 / 2,
            y: self.bottom - h as i32,
            w: self.w,
            h,
        }
    }

    /// The box of the plate, where the drawing puts one.
    pub fn plate_box(&self) -> PixelBox {
        let [x, y, w, h] = match self.kind {
            VehicleType::Truck => truck::plate_box(self.cx, self.bottom, self.w),
            VehicleType::Bus => bus::plate_box(self.cx, self.bottom, self.w),
        };
        PixelBox {
            x,
            y,
            w: w as u32,
            h: h as u32,
        }
    }

    /// The box of the part of the rear the plate is mounted on: a bus's body below its rear
    /// window, a truck's cargo box and the chassis panel under it.
    pub fn body_box(&self) -> PixelBox {
        match self.kind {
            VehicleType::Truck => truck::body_box(self.cx, self.bottom, self.w),
            VehicleType::Bus => bus::body_box(self.cx, self.bottom, self.w),
        }
    }

    /// The box of what the plate must stay clear of below it: a bus's bumper, a truck's
    /// under-run bar.
    pub fn bumper_box(&self) -> PixelBox {
        match self.kind {
            VehicleType::Truck => truck::bumper_box(self.cx, self.bottom, self.w),
            VehicleType::Bus => bus::bumper_box(self.cx, self.bottom, self.w),
        }
    }
}

impl SceneVehicle {
    /// How far along its way through the view the vehicle is on `frame`, from 0 (just in view)
    /// to 1 (about to leave), or `None` when it is not in view.
    pub fn progress(&self, frame: u64) -> Option<f64> {
        if frame < self.first_frame || frame > self.last_frame {
            return None;
        }
        let still = self.stop.map_or(0, |s| s.to_frame - s.from_frame);
        let moving = (self.last_frame - self.first_frame - still).max(1);
        let done = match self.stop {
            Some(s) if frame > s.to_frame => frame - self.first_frame - still,
            Some(s) if frame >= s.from_frame => s.from_frame - self.first_frame,
            _ => frame - self.first_frame,
        };
        Some(done as f64 / moving as f64)
    }

    /// The relative height of the reference point (the line its wheels stand on) after moving
    /// `progress` of the way.
    pub(crate) fn reference_y(&self, progress: f64) -> f64 {
        match self.direction {
            Direction::Towards => FAR_Y + (NEAR_Y - FAR_Y) * progress,
            Direction::Away => NEAR_Y - (NEAR_Y - FAR_Y) * progress,
        }
    }
}

impl SceneManifest {
    /// The vehicle with this id.
    pub fn vehicle(&self, id: &str) -> Option<&SceneVehicle> {
        self.vehicles.iter().find(|v| v.id == id)
    }

    /// Where `v` is on `frame`, or `None` when it is not in view.
    pub fn placement(&self, v: &SceneVehicle, frame: u64) -> Option<Placement> {
        let y = v.reference_y(v.progress(frame)?);
        let width = FAR_WIDTH + (NEAR_WIDTH - FAR_WIDTH) * (y - FAR_Y) / (NEAR_Y - FAR_Y);
        Some(Placement {
            cx: (v.lane.centre_x() * f64::from(self.width)).round() as i32,
            bottom: (y * f64::from(self.height)).round() as i32,
            w: (width * f64::from(self.width)).round() as u32,
            kind: v.kind,
        })
    }

    /// The box of `v` on `frame` in pixels, or `None` when it is not in view.
    pub fn vehicle_box(&self, v: &SceneVehicle, frame: u64) -> Option<PixelBox> {
        self.placement(v, frame).map(|p| p.vehicle_box())
    }

    /// The box of the plate of `v` on `frame`, or `None` when it is not in view or has no plate.
    pub fn plate_box(&self, v: &SceneVehicle, frame: u64) -> Option<PixelBox> {
        v.plate.as_ref()?;
        self.placement(v, frame).map(|p| p.plate_box())
    }

    /// The reference point of `v` on `frame` (the bottom centre of its box) in relative
    /// coordinates, or `None` when it is not in view.
    pub fn reference_point(&self, v: &SceneVehicle, frame: u64) -> Option<Point> {
        let b = self.vehicle_box(v, frame)?;
        Some([
            (f64::from(b.x) + f64::from(b.w) / 2.0) / f64::from(self.width),
            f64::from(b.bottom()) / f64::from(self.height),
        ])
    }

    /// Which side of the counting line `p` lies on: positive to the right of A→B (below this
    /// scene's line), negative to its left, 0 on it.
    pub fn side_of_line(&self, p: Point) -> f64 {
        let [a, b] = self.counting_line;
        (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    }

    /// The vehicles in view on `frame` with their placements, farthest first (the order in
    /// which they are drawn, so that nearer vehicles cover farther ones).
    pub fn in_view(&self, frame: u64) -> Vec<(&SceneVehicle, Placement)> {
        let mut out: Vec<_> = self
            .vehicles
            .iter()
            .filter_map(|v| self.placement(v, frame).map(|p| (v, p)))
            .collect();
        out.sort_by_key(|(_, p)| p.bottom);
        out
    }
}
