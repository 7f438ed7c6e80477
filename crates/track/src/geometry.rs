//! Plane geometry of a camera's view, in relative frame coordinates.
//!
//! Contract: every point is relative to the frame, `x` from 0 (left edge) to 1 (right edge),
//! `y` from 0 (top edge) to 1 (bottom edge), as the picture is seen on a screen. A
//! [`Polygon`] and a [`CountingLine`] can only be built from valid points, so code that holds
//! one need not check it again; [`validate_polygon`] says why a list of points is refused, in
//! words a person editing a configuration file can act on. A point on the very edge of a
//! polygon may count as inside or outside: zones are drawn by hand, and a reference point
//! exactly on a hand-drawn edge has no right answer.

use std::fmt;

use anpr_types::geometry::{RingProblem, simple_ring};

/// A point in relative frame coordinates (0–1, origin top-left, `y` down).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    #[must_use]
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }

    fn in_frame(self) -> bool {
        (0.0..=1.0).contains(&self.x) && (0.0..=1.0).contains(&self.y)
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

/// Why a list of points is not a usable polygon.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolygonError {
    #[error(
        "a zone needs at least 3 distinct points, this one has {distinct}: add the missing corners"
    )]
    TooFewPoints { distinct: usize },
    #[error("point {index} {point} lies outside the frame: coordinates are relative, from 0 to 1")]
    OutsideFrame { index: usize, point: Point },
    #[error("edge {first} crosses edge {second}: list the corners in order around the zone")]
    SelfIntersecting { first: usize, second: usize },
    #[error("all points lie on one line, so the zone has no area: move a corner off the line")]
    NoArea,
}

/// Why two points are not a usable counting line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    #[error(
        "line point {index} {point} lies outside the frame: coordinates are relative, from 0 to 1"
    )]
    OutsideFrame { index: usize, point: Point },
    #[error("both points of the line are the same: give two different points")]
    SamePoints,
}

/// Says why `points` are not a usable polygon, or nothing when they are.
///
/// A polygon needs at least 3 distinct points, all inside the frame (0–1), edges that do not
/// cross one another, and some area. A last point equal to the first (a closed ring) and
/// repeated consecutive points are accepted and ignored.
pub fn validate_polygon(points: &[Point]) -> Result<(), PolygonError> {
    ring(points).map(|_| ())
}

/// The points of a valid polygon without repeats, in order. The outline is checked by
/// [`simple_ring`], the same check the configuration makes when it is loaded.
fn ring(points: &[Point]) -> Result<Vec<Point>, PolygonError> {
    if let Some((index, point)) = points.iter().enumerate().find(|(_, p)| !p.in_frame()) {
        return Err(PolygonError::OutsideFrame {
            index,
            point: *point,
        });
    }
    simple_ring(points).map_err(|problem| match problem {
        RingProblem::TooFewPoints { distinct } => PolygonError::TooFewPoints { distinct },
        RingProblem::NoArea => PolygonError::NoArea,
        RingProblem::EdgesCross { first, second } => {
            PolygonError::SelfIntersecting { first, second }
        }
    })
}

impl From<Point> for anpr_types::geometry::Point {
    fn from(p: Point) -> Self {
        [f64::from(p.x), f64::from(p.y)]
    }
}

/// Cross product of `a → b` and `a → c`, in f64 so that the sign is reliable for points
/// given as f32: negative when `c` is on the left of `a → b` as seen on the screen.
fn cross(a: Point, b: Point, c: Point) -> f64 {
    let (ax, ay) = (f64::from(a.x), f64::from(a.y));
    (f64::from(b.x) - ax) * (f64::from(c.y) - ay) - (f64::from(b.y) - ay) * (f64::from(c.x) - ax)
}

fn on_segment(a: Point, b: Point, p: Point) -> bool {
    p.x >= a.x.min(b.x) && p.x <= a.x.max(b.x) && p.y >= a.y.min(b.y) && p.y <= a.y.max(b.y)
}

/// Whether segment `p1 → p2` and segment `q1 → q2` share at least one point (touching counts).
#[must_use]
pub fn segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool {
    let d1 = cross(q1, q2, p1);
    let d2 = cross(q1, q2, p2);
    let d3 = cross(p1, p2, q1);
    let d4 = cross(p1, p2, q2);
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on_segment(q1, q2, p1))
        || (d2 == 0.0 && on_segment(q1, q2, p2))
        || (d3 == 0.0 && on_segment(p1, p2, q1))
        || (d4 == 0.0 && on_segment(p1, p2, q2))
}

/// Whether `p` lies inside the closed ring `points` (even-odd rule).
#[must_use]
pub fn point_in_polygon(point: Point, ring: &[Point]) -> bool {
    if ring.len() < 3 {
        return false;
    }
    let (px, py) = (f64::from(point.x), f64::from(point.y));
    let mut inside = false;
    let mut prev = ring[ring.len() - 1];
    for &cur in ring {
        let (x1, y1) = (f64::from(cur.x), f64::from(cur.y));
        let (x2, y2) = (f64::from(prev.x), f64::from(prev.y));
        if (y1 > py) != (y2 > py) {
            let crossing_x = (x2 - x1) * (py - y1) / (y2 - y1) + x1;
            if px < crossing_x {
                inside = !inside;
            }
        }
        prev = cur;
    }
    inside
}

/// A simple polygon in relative coordinates, checked on construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    points: Vec<Point>,
}

impl Polygon {
    /// Builds a polygon, or says why the points are not one (see [`validate_polygon`]).
    pub fn new(points: &[Point]) -> Result<Self, PolygonError> {
        Ok(Self {
            points: ring(points)?,
        })
    }

    /// The corners, in order, without repeats.
    #[must_use]
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    #[must_use]
    pub fn contains(&self, p: Point) -> bool {
        point_in_polygon(p, &self.points)
    }
}

/// A named region of the view: a lane, a bus lane, a stop line box.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub polygon: Polygon,
    /// Whether the zone is a lane: a passage reports the first lane (in configuration order)
    /// that contains its vehicle's reference point.
    pub lane: bool,
}

/// Which side of a counting line a point is on, as seen on the screen walking from its first
/// point to its second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
    On,
}

/// The line a vehicle crosses to be counted, from `a` to `b`, with the names of the two
/// directions.
///
/// Crossing from the left of `a → b` to its right is the first direction (default
/// `towards`), the other way the second (default `away`). Left and right are as seen on the
/// screen: for a line drawn from the left edge to the right edge, left is above it, so a
/// vehicle moving down the picture (usually towards the camera) crosses from left to right.
#[derive(Debug, Clone, PartialEq)]
pub struct CountingLine {
    a: Point,
    b: Point,
    left_to_right: String,
    right_to_left: String,
}

impl CountingLine {
    /// A line from `a` to `b` with the default direction names `towards` and `away`.
    pub fn new(a: Point, b: Point) -> Result<Self, LineError> {
        for (index, point) in [a, b].into_iter().enumerate() {
            if !point.in_frame() {
                return Err(LineError::OutsideFrame { index, point });
            }
        }
        if a == b {
            return Err(LineError::SamePoints);
        }
        Ok(Self {
            a,
            b,
            left_to_right: "towards".into(),
            right_to_left: "away".into(),
        })
    }

    /// Names the two directions: crossing from left to right, then from right to left.
    #[must_use]
    pub fn with_names(
        mut self,
        left_to_right: impl Into<String>,
        right_to_left: impl Into<String>,
    ) -> Self {
        self.left_to_right = left_to_right.into();
        self.right_to_left = right_to_left.into();
        self
    }

    #[must_use]
    pub fn points(&self) -> (Point, Point) {
        (self.a, self.b)
    }

    /// Which side of the line `p` is on.
    #[must_use]
    pub fn side(&self, p: Point) -> Side {
        let c = cross(self.a, self.b, p);
        if c < 0.0 {
            Side::Left
        } else if c > 0.0 {
            Side::Right
        } else {
            Side::On
        }
    }

    /// The direction name when moving from `from` to `to` crosses the line: `from` strictly on
    /// one side, `to` strictly on the other, and the step passing between the line's ends.
    #[must_use]
    pub fn crossing(&self, from: Point, to: Point) -> Option<&str> {
        if !segments_intersect(from, to, self.a, self.b) {
            return None;
        }
        match (self.side(from), self.side(to)) {
            (Side::Left, Side::Right) => Some(&self.left_to_right),
            (Side::Right, Side::Left) => Some(&self.right_to_left),
            _ => None,
        }
    }
}

/// What a camera's view is divided into: its counting line and its zones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scene {
    /// The line whose crossing gives a passage its direction; none: no directions.
    pub line: Option<CountingLine>,
    /// Named zones, lanes among them, in configuration order.
    pub zones: Vec<Zone>,
}

impl Scene {
    /// The first lane containing `p`, and the names of all zones containing it.
    #[must_use]
    pub fn zones_at(&self, p: Point) -> (Option<String>, Vec<String>) {
        let inside: Vec<&Zone> = self
            .zones
            .iter()
            .filter(|z| z.polygon.contains(p))
            .collect();
        let lane = inside.iter().find(|z| z.lane).map(|z| z.name.clone());
        (lane, inside.iter().map(|z| z.name.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(f32, f32)]) -> Vec<Point> {
        v.iter().map(|&(x, y)| Point::new(x, y)).collect()
    }

    #[test]
    fn a_square_is_a_valid_zone_and_contains_its_centre_only() {
        let sq =
            Polygon::new(&pts(&[(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)])).expect("square");
        assert!(sq.contains(Point::new(0.4, 0.4)));
        assert!(!sq.contains(Point::new(0.7, 0.4)));
        assert!(!sq.contains(Point::new(0.4, 0.1)));
    }

    #[test]
    fn a_concave_zone_excludes_its_notch() {
        // A "U": the notch between the arms is outside.
        let u = Polygon::new(&pts(&[
            (0.1, 0.1),
            (0.3, 0.1),
            (0.3, 0.6),
            (0.6, 0.6),
            (0.6, 0.1),
            (0.8, 0.1),
            (0.8, 0.9),
            (0.1, 0.9),
        ]))
        .expect("u shape");
        assert!(u.contains(Point::new(0.2, 0.3)));
        assert!(u.contains(Point::new(0.7, 0.3)));
        assert!(!u.contains(Point::new(0.45, 0.3)), "inside the notch");
        assert!(u.contains(Point::new(0.45, 0.8)));
    }

    #[test]
    fn a_closed_ring_and_repeated_points_are_accepted() {
        let p = Polygon::new(&pts(&[
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 0.0),
            (1.0, 1.0),
            (0.0, 0.0),
        ]))
        .expect("triangle");
        assert_eq!(p.points().len(), 3);
    }

    #[test]
    fn a_zone_with_fewer_than_three_distinct_points_is_refused() {
        let err = validate_polygon(&pts(&[(0.1, 0.1), (0.5, 0.5), (0.1, 0.1), (0.5, 0.5)]));
        assert_eq!(err, Err(PolygonError::TooFewPoints { distinct: 2 }));
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("at least 3 distinct points")
        );
    }

    #[test]
    fn a_zone_reaching_outside_the_frame_names_the_point() {
        let err = validate_polygon(&pts(&[(0.1, 0.1), (1.2, 0.1), (0.5, 0.5)]));
        assert!(matches!(
            err,
            Err(PolygonError::OutsideFrame { index: 1, .. })
        ));
        let nan = validate_polygon(&pts(&[(0.1, 0.1), (0.9, 0.1), (f32::NAN, 0.5)]));
        assert!(matches!(
            nan,
            Err(PolygonError::OutsideFrame { index: 2, .. })
        ));
    }

    #[test]
    fn a_bow_tie_zone_is_refused_as_self_intersecting() {
        let err = validate_polygon(&pts(&[(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)]));
        assert!(matches!(err, Err(PolygonError::SelfIntersecting { .. })));
        assert!(err.unwrap_err().to_string().contains("in order around"));
    }

    #[test]
    fn a_zone_folding_back_on_itself_is_refused() {
        let err = validate_polygon(&pts(&[(0.1, 0.1), (0.9, 0.1), (0.5, 0.1), (0.5, 0.5)]));
        assert!(matches!(err, Err(PolygonError::SelfIntersecting { .. })));
    }

    #[test]
    fn a_zone_on_one_line_has_no_area() {
        let err = validate_polygon(&pts(&[(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)]));
        assert!(matches!(
            err,
            Err(PolygonError::SelfIntersecting { .. } | PolygonError::NoArea)
        ));
    }

    #[test]
    fn segments_that_cross_or_touch_intersect_and_parallel_ones_do_not() {
        let p = Point::new;
        assert!(segments_intersect(
            p(0.0, 0.0),
            p(1.0, 1.0),
            p(0.0, 1.0),
            p(1.0, 0.0)
        ));
        assert!(segments_intersect(
            p(0.0, 0.0),
            p(0.5, 0.5),
            p(0.5, 0.5),
            p(1.0, 0.0)
        ));
        assert!(!segments_intersect(
            p(0.0, 0.0),
            p(1.0, 0.0),
            p(0.0, 0.1),
            p(1.0, 0.1)
        ));
        assert!(!segments_intersect(
            p(0.0, 0.0),
            p(0.4, 0.4),
            p(0.5, 0.5),
            p(1.0, 1.0)
        ));
    }

    #[test]
    fn moving_down_across_a_left_to_right_line_is_towards_and_up_is_away() {
        let line = CountingLine::new(Point::new(0.0, 0.5), Point::new(1.0, 0.5)).expect("line");
        assert_eq!(line.side(Point::new(0.5, 0.2)), Side::Left);
        assert_eq!(line.side(Point::new(0.5, 0.8)), Side::Right);
        assert_eq!(
            line.crossing(Point::new(0.5, 0.4), Point::new(0.5, 0.6)),
            Some("towards")
        );
        assert_eq!(
            line.crossing(Point::new(0.5, 0.6), Point::new(0.5, 0.4)),
            Some("away")
        );
        assert_eq!(
            line.crossing(Point::new(0.5, 0.4), Point::new(0.5, 0.45)),
            None
        );
        let named = line.with_names("inbound", "outbound");
        assert_eq!(
            named.crossing(Point::new(0.5, 0.6), Point::new(0.5, 0.4)),
            Some("outbound")
        );
    }

    #[test]
    fn passing_beyond_the_end_of_a_short_line_is_no_crossing() {
        let line = CountingLine::new(Point::new(0.0, 0.5), Point::new(0.4, 0.5)).expect("line");
        assert_eq!(
            line.crossing(Point::new(0.8, 0.4), Point::new(0.8, 0.6)),
            None
        );
        assert_eq!(
            line.crossing(Point::new(0.2, 0.4), Point::new(0.2, 0.6)),
            Some("towards")
        );
    }

    #[test]
    fn a_line_of_one_point_or_outside_the_frame_is_refused() {
        let p = Point::new(0.3, 0.3);
        assert_eq!(CountingLine::new(p, p), Err(LineError::SamePoints));
        assert!(matches!(
            CountingLine::new(p, Point::new(0.3, -0.1)),
            Err(LineError::OutsideFrame { index: 1, .. })
        ));
    }
}
