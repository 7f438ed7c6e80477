//! Zone outlines: whether a list of corners in the plane makes a simple polygon.
//!
//! Contract: [`simple_ring`] is the one check of a zone's outline, shared by the configuration
//! (which refuses a bad zone when the file is loaded) and the tracker (which builds its zones
//! from the same points). It takes the corners in order, drops repeated consecutive corners and
//! a last corner equal to the first, and either returns what remains or names the one problem
//! found first, as a [`RingProblem`] that each caller words for its own reader. Coordinates are
//! plain numbers here: each caller checks first that its points lie within its frame. Points
//! within a millionth of a millionth (in twice the signed area of a triangle) of one line count
//! as on it, so edges that only just touch are refused as crossing.

use std::fmt;

/// A point `[x, y]`; on the image `y` grows downwards.
pub type Point = [f64; 2];

/// Twice the signed area of a triangle below which its corners count as on one line.
const EPS: f64 = 1e-12;

/// Twice the signed area below which an outline counts as enclosing nothing (an area of 1e-9,
/// a thousandth of a pixel in a 1000 by 1000 frame).
const MIN_AREA2: f64 = 2e-9;

/// Why a list of corners is not a simple polygon. Edges are counted from 0 along the outline
/// with repeats removed: edge `i` runs from corner `i` to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingProblem {
    /// Fewer than 3 distinct corners (`distinct` of them).
    TooFewPoints { distinct: usize },
    /// The corners lie on one line, or the outline encloses no area.
    NoArea,
    /// Edge `first` meets edge `second` (`first < second`): they cross or touch, or, when they
    /// are neighbours, fold back onto each other along one line.
    EdgesCross { first: usize, second: usize },
}

impl fmt::Display for RingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingProblem::TooFewPoints { distinct } => write!(
                f,
                "has {distinct} distinct point(s); an outline needs at least 3: add the missing corners"
            ),
            RingProblem::NoArea => f.write_str(
                "encloses no area (its points lie on one line); move a corner off the line",
            ),
            RingProblem::EdgesCross { first, second } => write!(
                f,
                "edge {} meets edge {}; list the corners in order around the outline",
                first + 1,
                second + 1
            ),
        }
    }
}

impl std::error::Error for RingProblem {}

/// Twice the signed area of the triangle a, b, c: positive when c lies to the right of a→b as
/// seen on the image (y grows downwards), negative to its left, 0 on the line.
#[must_use]
pub fn orient(a: Point, b: Point, c: Point) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

fn sign(v: f64) -> i8 {
    if v > EPS {
        1
    } else if v < -EPS {
        -1
    } else {
        0
    }
}

fn within_box(a: Point, b: Point, p: Point) -> bool {
    p[0] >= a[0].min(b[0]) - EPS
        && p[0] <= a[0].max(b[0]) + EPS
        && p[1] >= a[1].min(b[1]) - EPS
        && p[1] <= a[1].max(b[1]) + EPS
}

/// Whether segments p1–p2 and q1–q2 share at least one point (touching counts).
fn segments_touch(p1: Point, p2: Point, q1: Point, q2: Point) -> bool {
    let d1 = sign(orient(q1, q2, p1));
    let d2 = sign(orient(q1, q2, p2));
    let d3 = sign(orient(p1, p2, q1));
    let d4 = sign(orient(p1, p2, q2));
    if d1 * d2 < 0 && d3 * d4 < 0 {
        return true;
    }
    (d1 == 0 && within_box(q1, q2, p1))
        || (d2 == 0 && within_box(q1, q2, p2))
        || (d3 == 0 && within_box(p1, p2, q1))
        || (d4 == 0 && within_box(p1, p2, q2))
}

/// Whether two neighbouring edges, meeting at `shared` and running on to `a_far` and `b_far`,
/// fold back onto each other along one line.
fn folds_back(shared: Point, a_far: Point, b_far: Point) -> bool {
    sign(orient(shared, a_far, b_far)) == 0
        && (a_far[0] - shared[0]) * (b_far[0] - shared[0])
            + (a_far[1] - shared[1]) * (b_far[1] - shared[1])
            > 0.0
}

/// The corners of a simple polygon in order, without repeated consecutive corners and without
/// a last corner equal to the first; or the first problem found, in this order: fewer than 3
/// distinct corners, all corners on one line, two edges meeting (the first pair in order),
/// no area.
///
/// Generic over the caller's point type, so that the corners come back as they were given.
pub fn simple_ring<P>(points: &[P]) -> Result<Vec<P>, RingProblem>
where
    P: Copy + PartialEq + Into<Point>,
{
    let mut ring: Vec<P> = Vec::with_capacity(points.len());
    for &p in points {
        if ring.last() != Some(&p) {
            ring.push(p);
        }
    }
    while ring.len() > 1 && ring.first() == ring.last() {
        ring.pop();
    }
    let mut distinct: Vec<Point> = Vec::new();
    for &p in &ring {
        let p: Point = p.into();
        if !distinct.contains(&p) {
            distinct.push(p);
        }
    }
    if distinct.len() < 3 {
        return Err(RingProblem::TooFewPoints {
            distinct: distinct.len(),
        });
    }
    if distinct[2..]
        .iter()
        .all(|&p| sign(orient(distinct[0], distinct[1], p)) == 0)
    {
        return Err(RingProblem::NoArea);
    }
    let corners: Vec<Point> = ring.iter().map(|&p| p.into()).collect();
    let n = corners.len();
    let edge = |i: usize| (corners[i], corners[(i + 1) % n]);
    for first in 0..n {
        for second in first + 1..n {
            let (a1, a2) = edge(first);
            let (b1, b2) = edge(second);
            let meets = if second == first + 1 {
                folds_back(a2, a1, b2)
            } else if first == 0 && second == n - 1 {
                folds_back(a1, a2, b1)
            } else {
                segments_touch(a1, a2, b1, b2)
            };
            if meets {
                return Err(RingProblem::EdgesCross { first, second });
            }
        }
    }
    let area2: f64 = (0..n)
        .map(|i| orient([0.0, 0.0], corners[i], corners[(i + 1) % n]))
        .sum();
    if area2.abs() < MIN_AREA2 {
        return Err(RingProblem::NoArea);
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARE: [Point; 4] = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]];

    #[test]
    fn a_square_is_a_simple_ring_and_its_closing_corner_is_dropped() {
        assert_eq!(simple_ring(&SQUARE), Ok(SQUARE.to_vec()));
        let mut closed = SQUARE.to_vec();
        closed.insert(2, SQUARE[1]);
        closed.push(SQUARE[0]);
        assert_eq!(simple_ring(&closed), Ok(SQUARE.to_vec()));
    }

    #[test]
    fn a_bow_tie_has_its_first_and_third_edges_crossing() {
        let bow = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]];
        assert_eq!(
            simple_ring(&bow),
            Err(RingProblem::EdgesCross {
                first: 0,
                second: 2
            })
        );
    }

    #[test]
    fn an_edge_folding_back_onto_its_neighbour_meets_it() {
        let spike = [[0.1, 0.1], [0.5, 0.1], [0.3, 0.1], [0.3, 0.5]];
        assert_eq!(
            simple_ring(&spike),
            Err(RingProblem::EdgesCross {
                first: 0,
                second: 1
            })
        );
        // The same fold between the last edge and the first.
        let closing = [[0.1, 0.1], [0.3, 0.1], [0.3, 0.5], [0.7, 0.1]];
        assert_eq!(
            simple_ring(&closing),
            Err(RingProblem::EdgesCross {
                first: 0,
                second: 3
            })
        );
    }

    #[test]
    fn collinear_points_enclose_no_area() {
        let line = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.9, 0.9]];
        assert_eq!(simple_ring(&line), Err(RingProblem::NoArea));
    }

    #[test]
    fn a_duplicate_point_leaves_too_few_distinct_ones() {
        let twice = [[0.1, 0.1], [0.5, 0.5], [0.1, 0.1], [0.5, 0.5]];
        assert_eq!(
            simple_ring(&twice),
            Err(RingProblem::TooFewPoints { distinct: 2 })
        );
    }

    #[test]
    fn a_corner_touching_a_far_edge_meets_it() {
        // The fourth corner lies on the first edge.
        let touch = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.5, 0.1], [0.1, 0.9]];
        assert!(matches!(
            simple_ring(&touch),
            Err(RingProblem::EdgesCross { first: 0, .. })
        ));
    }

    #[test]
    fn a_sliver_too_thin_to_see_encloses_no_area() {
        let sliver = [[0.1, 0.1], [0.9, 0.1], [0.5, 0.100_000_001]];
        assert_eq!(simple_ring(&sliver), Err(RingProblem::NoArea));
    }

    #[test]
    fn the_right_of_a_line_pointing_right_is_below_it_on_the_image() {
        assert!(orient([0.0, 0.5], [1.0, 0.5], [0.5, 0.9]) > 0.0);
        assert!(orient([0.0, 0.5], [1.0, 0.5], [0.5, 0.1]) < 0.0);
    }

    #[test]
    fn problems_say_how_to_fix_them_with_edges_counted_from_one() {
        let text = RingProblem::EdgesCross {
            first: 0,
            second: 2,
        }
        .to_string();
        assert!(text.contains("edge 1 meets edge 3"), "{text}");
        assert!(RingProblem::NoArea.to_string().contains("off the line"));
    }
}
