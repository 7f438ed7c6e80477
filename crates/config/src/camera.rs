//! `[[camera]]`: one video source, its counting line, its zones and how often it is read.

use serde::Deserialize;

use crate::error::{Checker, ConfigError};
use crate::geometry::{self, Point};

/// One camera: any GStreamer source, with the scene drawn on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    /// Unique id of the camera within the device; carried in every event.
    pub id: String,
    /// `file:///path.mp4`, `rtsp://host/stream` (also `rtsps://`, and `rtspt://` for RTSP
    /// over TCP), `v4l2:///dev/video0`, or a plain file path (relative to the config file).
    /// Any other scheme is refused. A password in it (`rtsp://user:password@host/stream`) is
    /// shown as `***` in every message, log line and fault.
    pub uri: String,
    /// Process at most this many frames per second (0 = every frame, at most 240).
    #[serde(default)]
    pub max_fps: f32,
    /// Treat the source as live (RTSP, V4L2): capture time is the wall clock at capture.
    /// Files use their start time plus the frame timestamp.
    #[serde(default)]
    pub live: Option<bool>,
    /// While no plate is in view, recognise one frame in this many (a vehicle entering is
    /// still seen within a few frames); while one is, every frame. 1 = every frame always.
    /// 1 to 25.
    #[serde(default = "default_idle_every")]
    pub idle_every: u32,
    /// While a plate is in view, recognise one frame in this many (1 = every frame, at most 6).
    #[serde(default = "default_track_every")]
    pub track_every: u32,
    /// Counting line `[[x1, y1], [x2, y2]]` from A to B in relative frame coordinates (0-1,
    /// `[0, 0]` top left). A vehicle is counted, and its passage taken, when it crosses the
    /// line. Without a line, passages carry no direction.
    #[serde(default)]
    pub line: Option<[Point; 2]>,
    /// Names of the two directions of crossing the line: the first for a vehicle that crosses
    /// from the left of A→B to its right as seen on the image, the second for the way back.
    /// With A on the left edge and B on the right edge, the right of A→B is the lower part of
    /// the image, usually nearer the camera: hence `["towards", "away"]`.
    #[serde(default = "default_directions")]
    pub directions: [String; 2],
    /// Seconds a vehicle may stay in view before its passage is recorded as dwelling
    /// (stopped, parked, queueing), 1 to 3600.
    #[serde(default = "default_max_dwell")]
    pub max_dwell_s: f64,
    /// Zones drawn on the image, as `[[camera.zone]]` sections.
    #[serde(default, rename = "zone")]
    pub zones: Vec<Zone>,
    /// Live sources: first wait before opening the source again after it failed, seconds
    /// (0.1 to 60). Each further failure doubles the wait up to `reconnect_max_s`; each wait is
    /// jittered (between half and all of it) so cameras that failed together do not return
    /// together.
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_s: f64,
    /// Live sources: longest wait between attempts to open the source again, seconds (1 to
    /// 600, at least `reconnect_min_s`). Attempts go on for as long as the device runs.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_s: f64,
    /// Live sources: no frame for this many seconds is an outage: the source is closed and
    /// opened again (1 to 120).
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout_s: f64,
    /// Live sources: frames identical (compared by a hash of a sample of their pixels) for
    /// this many seconds make the camera `frozen`, a fault until they change (2 to 3600).
    #[serde(default = "default_frozen_after")]
    pub frozen_after_s: f64,
    /// RTSP sources: the jitter buffer, milliseconds (`rtspsrc latency`, 0 to 10000): how long
    /// a late or lost packet is waited for. It does not delay capture times, which are taken
    /// back to the moment a frame entered the pipeline (see docs/cameras.md).
    #[serde(default = "default_latency_ms")]
    pub latency_ms: u32,
}

/// A named area of one camera's image: a lane, a restricted area, the approach to a post.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Name rules refer to, unique within the camera; letters, digits, '-' and '_'.
    pub name: String,
    /// Outline `[[x, y], ...]` in relative frame coordinates (0-1), at least 3 points in order
    /// around the zone, edges not crossing; the last point joins the first.
    pub polygon: Vec<Point>,
    /// Whether the zone is a traffic lane: a passage names the lane the vehicle was in.
    #[serde(default)]
    pub lane: bool,
}

fn default_track_every() -> u32 {
    2
}
fn default_idle_every() -> u32 {
    3
}
fn default_directions() -> [String; 2] {
    ["towards".to_string(), "away".to_string()]
}
fn default_max_dwell() -> f64 {
    120.0
}
fn default_reconnect_min() -> f64 {
    1.0
}
fn default_reconnect_max() -> f64 {
    30.0
}
fn default_stall_timeout() -> f64 {
    5.0
}
fn default_frozen_after() -> f64 {
    10.0
}
fn default_latency_ms() -> u32 {
    200
}

/// Whether `v` is a number within `lo..=hi`.
fn within(v: f64, lo: f64, hi: f64) -> bool {
    !v.is_nan() && (lo..=hi).contains(&v)
}

/// Whether a name is fit to be a key in events and rules.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Camera {
    /// The zone of this camera with the given name.
    #[must_use]
    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name == name)
    }

    pub(crate) fn validate(&self, i: usize, c: &Checker<'_>) -> Result<(), ConfigError> {
        let key = |k: &str| format!("camera[{i}].{k}");
        if self.uri.trim().is_empty() {
            return Err(c.invalid(&key("uri"), "must not be empty"));
        }
        anpr_types::check_camera_uri(&self.uri).map_err(|m| c.invalid(&key("uri"), m))?;
        if !(1..=25).contains(&self.idle_every) {
            return Err(c.invalid(&key("idle_every"), "must be between 1 (every frame) and 25"));
        }
        if !(1..=6).contains(&self.track_every) {
            return Err(c.invalid(&key("track_every"), "must be between 1 (every frame) and 6"));
        }
        if !(0.0..=240.0).contains(&self.max_fps) {
            return Err(c.invalid(&key("max_fps"), "must be between 0 (every frame) and 240"));
        }
        if let Some([a, b]) = self.line {
            if let Some([x, y]) = [a, b].into_iter().find(|p| !geometry::in_frame(*p)) {
                return Err(c.invalid(
                    &key("line"),
                    format!(
                        "point [{x}, {y}] leaves the frame; coordinates are relative to the frame, from 0 to 1 ([0, 0] is the top left corner)"
                    ),
                ));
            }
            if (a[0] - b[0]).abs() < f64::EPSILON && (a[1] - b[1]).abs() < f64::EPSILON {
                return Err(c.invalid(
                    &key("line"),
                    "its two points are the same; give the line as [[x1, y1], [x2, y2]] with two different points",
                ));
            }
        }
        for d in &self.directions {
            if !is_name(d) {
                return Err(c.invalid(
                    &key("directions"),
                    format!("`{d}` is not a direction name; use letters, digits, '-' or '_' (e.g. [\"towards\", \"away\"])"),
                ));
            }
        }
        if self.directions[0] == self.directions[1] {
            return Err(c.invalid(
                &key("directions"),
                "the two directions need different names (e.g. [\"towards\", \"away\"])",
            ));
        }
        if self.max_dwell_s.is_nan() || !(1.0..=3600.0).contains(&self.max_dwell_s) {
            return Err(c.invalid(&key("max_dwell_s"), "must be between 1 and 3600 seconds"));
        }
        if !within(self.reconnect_min_s, 0.1, 60.0) {
            return Err(c.invalid(
                &key("reconnect_min_s"),
                "must be between 0.1 and 60 seconds",
            ));
        }
        if !within(self.reconnect_max_s, 1.0, 600.0) || self.reconnect_max_s < self.reconnect_min_s
        {
            return Err(c.invalid(
                &key("reconnect_max_s"),
                format!(
                    "must be between 1 and 600 seconds and at least reconnect_min_s ({})",
                    self.reconnect_min_s
                ),
            ));
        }
        if !within(self.stall_timeout_s, 1.0, 120.0) {
            return Err(c.invalid(&key("stall_timeout_s"), "must be between 1 and 120 seconds"));
        }
        if !within(self.frozen_after_s, 2.0, 3600.0) {
            return Err(c.invalid(&key("frozen_after_s"), "must be between 2 and 3600 seconds"));
        }
        if self.latency_ms > 10_000 {
            return Err(c.invalid(
                &key("latency_ms"),
                "must be between 0 and 10000 milliseconds",
            ));
        }
        for (z, zone) in self.zones.iter().enumerate() {
            if !is_name(&zone.name) {
                return Err(c.invalid(
                    &format!("camera[{i}].zone[{z}].name"),
                    "every zone needs a name of letters, digits, '-' or '_' (rules refer to it)",
                ));
            }
            if self.zones[..z].iter().any(|o| o.name == zone.name) {
                return Err(c.invalid(
                    &format!("camera[{i}].zone[{z}].name"),
                    format!(
                        "camera `{}` already has a zone named `{}`; give each zone of a camera its own name",
                        self.id, zone.name
                    ),
                ));
            }
            geometry::check_polygon(&zone.polygon).map_err(|m| {
                c.invalid(
                    &format!("camera[{i}].zone[{z}].polygon"),
                    format!("zone `{}`: {m}", zone.name),
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera_with_line() -> Camera {
        Camera {
            id: "c".into(),
            uri: "x.mp4".into(),
            max_fps: 0.0,
            live: None,
            idle_every: 3,
            track_every: 2,
            line: Some([[0.0, 0.5], [1.0, 0.5]]),
            directions: default_directions(),
            max_dwell_s: 120.0,
            reconnect_min_s: default_reconnect_min(),
            reconnect_max_s: default_reconnect_max(),
            stall_timeout_s: default_stall_timeout(),
            frozen_after_s: default_frozen_after(),
            latency_ms: default_latency_ms(),
            zones: vec![Zone {
                name: "left-lane".into(),
                polygon: vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]],
                lane: true,
            }],
        }
    }

    fn check(cam: &Camera) -> Result<(), String> {
        let text = "";
        let checker = Checker::new(std::path::Path::new("device.toml"), text);
        cam.validate(0, &checker).map_err(|e| e.to_string())
    }

    #[test]
    fn reconnection_keys_have_bounds_and_the_cap_is_not_below_the_first_wait() {
        let ok = camera_with_line();
        assert!(check(&ok).is_ok());
        for (cam, key) in [
            (
                Camera {
                    reconnect_min_s: 0.0,
                    ..ok.clone()
                },
                "reconnect_min_s",
            ),
            (
                Camera {
                    reconnect_max_s: 0.5,
                    ..ok.clone()
                },
                "reconnect_max_s",
            ),
            (
                Camera {
                    reconnect_min_s: 20.0,
                    reconnect_max_s: 10.0,
                    ..ok.clone()
                },
                "reconnect_max_s",
            ),
            (
                Camera {
                    stall_timeout_s: f64::NAN,
                    ..ok.clone()
                },
                "stall_timeout_s",
            ),
            (
                Camera {
                    frozen_after_s: 1.0,
                    ..ok.clone()
                },
                "frozen_after_s",
            ),
            (
                Camera {
                    latency_ms: 20_000,
                    ..ok.clone()
                },
                "latency_ms",
            ),
        ] {
            let err = check(&cam).expect_err(key);
            assert!(err.contains(&format!("camera[0].{key}")), "{err}");
        }
    }

    #[test]
    fn a_uri_of_another_scheme_is_refused_naming_the_key_without_its_password() {
        let ok = camera_with_line();
        for uri in [
            "rtsp://u:p@10.0.0.5/s",
            "rtsps://h/s",
            "v4l2:///dev/video0",
            "/a.mp4",
        ] {
            assert!(
                check(&Camera {
                    uri: uri.into(),
                    ..ok.clone()
                })
                .is_ok(),
                "{uri}"
            );
        }
        for uri in ["http://admin:hunter22@10.0.0.5/x", "rtsp://a:b c@h/s"] {
            let err = check(&Camera {
                uri: uri.into(),
                ..ok.clone()
            })
            .expect_err(uri);
            assert!(
                err.contains("device.toml") && err.contains("camera[0].uri"),
                "{err}"
            );
            assert!(!err.contains("hunter22") && !err.contains("b c"), "{err}");
        }
    }

    #[test]
    fn a_zone_is_found_by_its_name() {
        let cam = camera_with_line();
        assert!(cam.zone("left-lane").is_some());
        assert!(cam.zone("right-lane").is_none());
    }
}
