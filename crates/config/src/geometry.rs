//! Plane geometry in relative frame coordinates (`[0, 0]` top left, `[1, 1]` bottom right,
//! y down): the load-time checks of zone outlines and counting lines. The device itself places
//! vehicles in zones and across lines with `anpr_track::geometry`.

/// A point `[x, y]` in relative frame coordinates.
pub type Point = [f64; 2];

const EPS: f64 = 1e-12;

/// Twice the signed area of the triangle a, b, c: positive when c lies to the right of a→b as
/// seen on the image (y grows downwards), negative to its left, 0 on the line.
pub(crate) fn orient(a: Point, b: Point, c: Point) -> f64 {
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

/// Whether segments p1–p2 and q1–q2 share at least one point.
pub(crate) fn segments_touch(p1: Point, p2: Point, q1: Point, q2: Point) -> bool {
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

/// Whether a point lies within the frame.
pub(crate) fn in_frame(p: Point) -> bool {
    (0.0..=1.0).contains(&p[0]) && (0.0..=1.0).contains(&p[1])
}

/// The outline with repeated consecutive points (also last = first) removed.
fn outline(points: &[Point]) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::with_capacity(points.len());
    for &p in points {
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    while out.len() > 1 && out.first() == out.last() {
        out.pop();
    }
    out
}

const NO_AREA: &str =
    "encloses no area (its points lie on one line); spread the points around the zone";

/// Checks a zone outline; the error says what is wrong and how to fix it.
pub(crate) fn check_polygon(points: &[Point]) -> Result<(), String> {
    const FIX_FRAME: &str = "coordinates are relative to the frame, from 0 to 1 ([0, 0] is the top left corner, [1, 1] the bottom right)";
    if let Some((i, [x, y])) = points.iter().enumerate().find(|(_, p)| !in_frame(**p)) {
        return Err(format!(
            "point {} [{x}, {y}] leaves the frame; {FIX_FRAME}",
            i + 1
        ));
    }
    let mut distinct: Vec<Point> = Vec::new();
    for &p in points {
        if !distinct.contains(&p) {
            distinct.push(p);
        }
    }
    if distinct.len() < 3 {
        return Err(format!(
            "has {} distinct point(s); a zone needs at least 3, listed in order around its outline",
            distinct.len()
        ));
    }
    if distinct[2..]
        .iter()
        .all(|&p| sign(orient(distinct[0], distinct[1], p)) == 0)
    {
        return Err(NO_AREA.to_string());
    }
    let ring = outline(points);
    let n = ring.len();
    let edge = |i: usize| (ring[i], ring[(i + 1) % n]);
    for i in 0..n {
        for j in i + 1..n {
            let (a1, a2) = edge(i);
            let (b1, b2) = edge(j);
            let adjacent = j == i + 1 || (i == 0 && j == n - 1);
            let crosses = if adjacent {
                // Adjacent edges share one end; they only overlap when they fold back on
                // each other along one line.
                let (shared, a_far, b_far) = if j == i + 1 {
                    (a2, a1, b2)
                } else {
                    (a1, a2, b1)
                };
                sign(orient(shared, a_far, b_far)) == 0
                    && (a_far[0] - shared[0]) * (b_far[0] - shared[0])
                        + (a_far[1] - shared[1]) * (b_far[1] - shared[1])
                        > 0.0
            } else {
                segments_touch(a1, a2, b1, b2)
            };
            if crosses {
                return Err(format!(
                    "outline crosses itself (edge {} meets edge {}); list the points in order around the zone so that its edges do not cross",
                    i + 1,
                    j + 1
                ));
            }
        }
    }
    let area: f64 = (0..n)
        .map(|i| orient([0.0, 0.0], ring[i], ring[(i + 1) % n]))
        .sum();
    if area.abs() < EPS {
        return Err(NO_AREA.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARE: [Point; 4] = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]];

    #[test]
    fn a_square_is_a_valid_zone() {
        assert_eq!(check_polygon(&SQUARE), Ok(()));
    }

    #[test]
    fn a_closed_outline_repeating_its_first_point_is_accepted() {
        let mut closed = SQUARE.to_vec();
        closed.push(SQUARE[0]);
        assert_eq!(check_polygon(&closed), Ok(()));
    }

    #[test]
    fn a_bow_tie_crosses_itself() {
        let bow = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]];
        let err = check_polygon(&bow).unwrap_err();
        assert!(err.contains("crosses itself"), "{err}");
    }

    #[test]
    fn an_outline_folding_back_on_itself_crosses_itself() {
        let spike = [[0.1, 0.1], [0.5, 0.1], [0.3, 0.1], [0.3, 0.5]];
        assert!(
            check_polygon(&spike)
                .unwrap_err()
                .contains("crosses itself")
        );
    }

    #[test]
    fn collinear_points_enclose_no_area() {
        let line = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]];
        assert!(check_polygon(&line).unwrap_err().contains("no area"));
    }

    #[test]
    fn two_distinct_points_are_too_few() {
        let err = check_polygon(&[[0.1, 0.1], [0.2, 0.2], [0.1, 0.1]]).unwrap_err();
        assert!(err.contains("2 distinct"), "{err}");
    }

    #[test]
    fn a_point_beyond_the_frame_is_named() {
        let err = check_polygon(&[[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]).unwrap_err();
        assert!(err.contains("point 2 [1.2, 0.1] leaves the frame"), "{err}");
    }

    #[test]
    fn the_right_of_a_line_pointing_right_is_below_it_on_the_image() {
        assert!(orient([0.0, 0.5], [1.0, 0.5], [0.5, 0.9]) > 0.0);
        assert!(orient([0.0, 0.5], [1.0, 0.5], [0.5, 0.1]) < 0.0);
    }
}
