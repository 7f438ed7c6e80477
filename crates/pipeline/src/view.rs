//! What the tracker needs to know of one camera: its counting line and zones (from the
//! camera's configuration, already validated at load), and how long a vehicle may stay or be
//! hidden.

use anpr_config::{Camera, Config};
use anpr_track::{CountingLine, Point, Polygon, Scene, VehicleTrackerConfig, Zone};
use anyhow::{Context, Result};
use chrono::TimeDelta;

fn point([x, y]: [f64; 2]) -> Point {
    Point::new(x as f32, y as f32)
}

/// The camera's counting line and zones as the tracker takes them.
pub fn scene(camera: &Camera) -> Result<Scene> {
    let line = camera
        .line
        .map(|[a, b]| {
            CountingLine::new(point(a), point(b))
                .map(|l| l.with_names(&camera.directions[0], &camera.directions[1]))
                .with_context(|| format!("camera {}: counting line", camera.id))
        })
        .transpose()?;
    let zones = camera
        .zones
        .iter()
        .map(|z| {
            let points: Vec<Point> = z.polygon.iter().copied().map(point).collect();
            Ok(Zone {
                name: z.name.clone(),
                polygon: Polygon::new(&points)
                    .with_context(|| format!("camera {}: zone {}", camera.id, z.name))?,
                lane: z.lane,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Scene { line, zones })
}

/// Tracker settings for one camera.
///
/// A track ends after `max_gap` frame indices without a match. Vehicles without a readable
/// plate are matched only on frames where the vehicle detector runs: one recognised frame in
/// `vehicle_every`, and a frame in `track_every` is recognised while vehicles are in view. The
/// gap allows two of those runs to miss the vehicle.
pub fn tracker_config(cfg: &Config, camera: &Camera) -> VehicleTrackerConfig {
    let defaults = VehicleTrackerConfig::default();
    let step = u64::from(camera.track_every.max(camera.idle_every).max(1));
    let detector_every = u64::from(cfg.models.vehicle_every.max(1)) * step;
    VehicleTrackerConfig {
        max_gap: defaults.max_gap.max(2 * detector_every + step),
        max_dwell: (camera.max_dwell_s > 0.0)
            .then(|| TimeDelta::milliseconds((camera.max_dwell_s * 1000.0) as i64)),
        ..defaults
    }
}
