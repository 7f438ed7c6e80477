//! Plane geometry in relative frame coordinates (`[0, 0]` top left, `[1, 1]` bottom right,
//! y down): the load-time checks of zone outlines and counting lines. The device itself places
//! vehicles in zones and across lines with `anpr_track::geometry`; both check a zone's outline
//! with `anpr_types::geometry`.

use anpr_types::geometry::{RingProblem, simple_ring};

/// A point `[x, y]` in relative frame coordinates.
pub type Point = anpr_types::geometry::Point;

/// Whether a point lies within the frame.
pub(crate) fn in_frame(p: Point) -> bool {
    (0.0..=1.0).contains(&p[0]) && (0.0..=1.0).contains(&p[1])
}

/// Checks a zone outline; the error says what is wrong and how to fix it. The outline itself
/// is checked by [`simple_ring`], here worded for a person editing the file.
pub(crate) fn check_polygon(points: &[Point]) -> Result<(), String> {
    const FIX_FRAME: &str = "coordinates are relative to the frame, from 0 to 1 ([0, 0] is the top left corner, [1, 1] the bottom right)";
    if let Some((i, [x, y])) = points.iter().enumerate().find(|(_, p)| !in_frame(**p)) {
        return Err(format!(
            "point {} [{x}, {y}] leaves the frame; {FIX_FRAME}",
            i + 1
        ));
    }
    simple_ring(points).map(|_| ()).map_err(|problem| match problem {
        RingProblem::TooFewPoints { distinct } => format!(
            "has {distinct} distinct point(s); a zone needs at least 3, listed in order around its outline"
        ),
        RingProblem::NoArea => {
            "encloses no area (its points lie on one line); spread the points around the zone"
                .to_string()
        }
        RingProblem::EdgesCross { first, second } => format!(
            "outline crosses itself (edge {} meets edge {}); list the points in order around the zone so that its edges do not cross",
            first + 1,
            second + 1
        ),
    })
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
}
