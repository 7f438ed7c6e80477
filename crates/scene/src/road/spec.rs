//! The declarative list of a scene's vehicles, and the manifest that follows from it.

use super::manifest::{
    Direction, Lane, LaneZone, SceneManifest, SceneRules, SceneVehicle, StopFrames, VehicleType,
};
use super::manifest::{FAR_Y, HORIZON, NEAR_Y};
use super::{
    BUS_BAN_LANE, COUNTING_LINE, FPS, HEIGHT, HOTLIST, LANE_1, LANE_2, RULE_BUS_BAN, RULE_NO_PLATE,
    RULE_WANTED, RULE_WRONG_WAY, SCENE_VERSION, WIDTH,
};

/// Where and for how long a vehicle stands still.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopSpec {
    /// Where its reference point stops, as a share of the frame's height (between
    /// [`FAR_Y`] and [`NEAR_Y`]).
    pub at_y: f64,
    /// How many frames it stands still.
    pub frames: u64,
}

/// One vehicle as a scene declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleSpec {
    pub id: String,
    pub plate: Option<String>,
    pub kind: VehicleType,
    pub lane: Lane,
    pub direction: Direction,
    /// The frame on which it comes into view.
    pub enter_frame: u64,
    /// How many frames it takes to drive through the view, not counting a stop.
    pub travel_frames: u64,
    pub stop: Option<StopSpec>,
    pub colour: [u8; 3],
}

/// A scene: its vehicles, and how long the clip runs after the last one leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneSpec {
    pub vehicles: Vec<VehicleSpec>,
    /// Frames of empty road at the end.
    pub tail_frames: u64,
}

impl VehicleSpec {
    /// A vehicle without a plate that comes into view on the first frame and takes 4 s to
    /// drive through it, grey.
    pub fn new(id: &str, kind: VehicleType, lane: Lane, direction: Direction) -> Self {
        Self {
            id: id.to_string(),
            plate: None,
            kind,
            lane,
            direction,
            enter_frame: 0,
            travel_frames: u64::from(FPS) * 4,
            stop: None,
            colour: [160, 160, 165],
        }
    }

    /// With this plate.
    #[must_use]
    pub fn plate(mut self, text: &str) -> Self {
        self.plate = Some(text.to_string());
        self
    }

    /// Coming into view on `frame`.
    #[must_use]
    pub fn enter(mut self, frame: u64) -> Self {
        self.enter_frame = frame;
        self
    }

    /// Taking `frames` frames to drive through the view, not counting a stop.
    #[must_use]
    pub fn travel(mut self, frames: u64) -> Self {
        self.travel_frames = frames;
        self
    }

    /// Standing still for `frames` frames when its reference point reaches `at_y`.
    #[must_use]
    pub fn stop(mut self, at_y: f64, frames: u64) -> Self {
        self.stop = Some(StopSpec { at_y, frames });
        self
    }

    /// With this body colour.
    #[must_use]
    pub fn colour(mut self, rgb: [u8; 3]) -> Self {
        self.colour = rgb;
        self
    }
}

/// The default scene, about 17 s:
///
/// - V1, truck `123ABC01`, left lane, towards the camera: on the hotlist;
/// - V2, bus `505AB17`, right lane, towards, beside V1: a bus in the bus lane;
/// - V3, truck `777KZA02`, left lane, towards, close behind V1: it comes into view while V1 is
///   still in view, its wheels behind V1's roof, and reaches the line a second after V1 has
///   gone; on the hotlist as `777KZAO2`;
/// - V4, truck without a plate, right lane, towards;
/// - V5, bus `248EKM09`, left lane, towards: it crosses the line, stands still for 8 s with its
///   wheels well past it (as at a checkpoint beyond the line), then drives on;
/// - V6, truck `901TRK14`, right lane, driving away from the camera: the wrong way. It comes
///   into view where V4 left it, so it waits [`REAPPEAR_GAP`] frames and more after V4 has
///   gone: a vehicle that comes into view where another has just left cannot be told from it.
pub fn default_scene() -> SceneSpec {
    use Direction::{Away, Towards};
    use Lane::{Left, Right};
    use VehicleType::{Bus, Truck};
    SceneSpec {
        vehicles: vec![
            VehicleSpec::new("V1", Truck, Left, Towards)
                .plate("123ABC01")
                .enter(0)
                .travel(80)
                .colour([170, 30, 35]),
            VehicleSpec::new("V2", Bus, Right, Towards)
                .plate("505AB17")
                .enter(2)
                .travel(80)
                .colour([210, 90, 30]),
            VehicleSpec::new("V3", Truck, Left, Towards)
                .plate("777KZA02")
                .enter(70)
                .travel(100)
                .colour([30, 60, 150]),
            VehicleSpec::new("V4", Truck, Right, Towards)
                .enter(90)
                .travel(80)
                .colour([220, 160, 40]),
            VehicleSpec::new("V5", Bus, Left, Towards)
                .plate("248EKM09")
                .enter(171)
                .travel(64)
                .stop(540.0 / 720.0, u64::from(FPS) * 8)
                .colour([200, 150, 30]),
            VehicleSpec::new("V6", Truck, Right, Away)
                .plate("901TRK14")
                .enter(225)
                .travel(80)
                .colour([20, 120, 130]),
        ],
        tail_frames: 5,
    }
}

/// How many frames (2 s) must pass after a vehicle leaves the view before another comes into
/// view where it left.
pub const REAPPEAR_GAP: u64 = 2 * FPS as u64;

/// Whether `plate` is on the list as `entry`: the same text, or the same length with one
/// character different (a fuzzy match such as `777KZA02` against `777KZAO2`).
fn matches_entry(plate: &str, entry: &str) -> bool {
    plate.len() == entry.len()
        && plate
            .chars()
            .zip(entry.chars())
            .filter(|(a, b)| a != b)
            .count()
            <= 1
}

/// The scene's zones: `lane-1` the left half of the road below the horizon, `lane-2` the right.
pub fn lanes() -> Vec<LaneZone> {
    let zone = |id: &str, x0: f64, x1: f64| LaneZone {
        id: id.to_string(),
        polygon: vec![[x0, HORIZON], [x1, HORIZON], [x1, 1.0], [x0, 1.0]],
    };
    vec![zone(LANE_1, 0.0, 0.5), zone(LANE_2, 0.5, 1.0)]
}

/// The scene's rules.
pub fn rules() -> SceneRules {
    SceneRules {
        hotlist: HOTLIST.iter().map(|s| (*s).to_string()).collect(),
        bus_ban_lane: BUS_BAN_LANE.to_string(),
    }
}

impl SceneSpec {
    /// The manifest of this scene: each vehicle's frames in view, its stop, the frame on which
    /// it crosses the counting line (found by following its motion), and its violations.
    #[must_use]
    pub fn manifest(&self) -> SceneManifest {
        let rules = rules();
        let mut m = SceneManifest {
            version: SCENE_VERSION,
            width: WIDTH,
            height: HEIGHT,
            fps: FPS,
            frames: 0,
            counting_line: COUNTING_LINE,
            lanes: lanes(),
            vehicles: Vec::with_capacity(self.vehicles.len()),
            rules,
        };
        for spec in &self.vehicles {
            let travel = spec.travel_frames.max(1);
            let stop = spec.stop.map(|s| {
                let share = match spec.direction {
                    Direction::Towards => (s.at_y - FAR_Y) / (NEAR_Y - FAR_Y),
                    Direction::Away => (NEAR_Y - s.at_y) / (NEAR_Y - FAR_Y),
                };
                let from =
                    spec.enter_frame + (share.clamp(0.0, 1.0) * travel as f64).round() as u64;
                StopFrames {
                    from_frame: from,
                    to_frame: from + s.frames,
                }
            });
            let still = stop.map_or(0, |s| s.to_frame - s.from_frame);
            let mut v = SceneVehicle {
                id: spec.id.clone(),
                plate: spec.plate.clone(),
                kind: spec.kind,
                lane: spec.lane,
                direction: spec.direction,
                first_frame: spec.enter_frame,
                last_frame: spec.enter_frame + travel + still,
                crossing_frame: 0,
                stop,
                colour: spec.colour,
                violations: Vec::new(),
            };
            v.crossing_frame = (v.first_frame..=v.last_frame)
                .find(|&i| {
                    m.reference_point(&v, i)
                        .is_some_and(|p| past_line(&m, &v, p))
                })
                .unwrap_or(v.last_frame);
            v.violations = violations(&m.rules, &v);
            m.frames = m.frames.max(v.last_frame + 1);
            m.vehicles.push(v);
        }
        m.frames += self.tail_frames;
        m
    }
}

/// Whether `p` lies past the counting line for a vehicle driving as `v` does.
pub(crate) fn past_line(m: &SceneManifest, v: &SceneVehicle, p: [f64; 2]) -> bool {
    let side = m.side_of_line(p);
    match v.direction {
        Direction::Towards => side > 0.0,
        Direction::Away => side < 0.0,
    }
}

/// The rules `v` breaks, in the order wanted, bus ban, no plate, wrong way.
fn violations(rules: &SceneRules, v: &SceneVehicle) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(plate) = &v.plate
        && rules.hotlist.iter().any(|e| matches_entry(plate, e))
    {
        out.push(RULE_WANTED.to_string());
    }
    if v.kind == VehicleType::Bus && v.lane.id() == rules.bus_ban_lane {
        out.push(RULE_BUS_BAN.to_string());
    }
    if v.plate.is_none() {
        out.push(RULE_NO_PLATE.to_string());
    }
    if v.direction == Direction::Away {
        out.push(RULE_WRONG_WAY.to_string());
    }
    out
}
