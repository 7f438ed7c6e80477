//! One-to-one association of tracks with detections (Hungarian method).

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Scores are turned into integers with this many steps per unit for the solver.
const SCALE: f32 = 1_000_000.0;

/// Pairs `(row, column)` of a one-to-one assignment that maximises the summed score over
/// pairs whose score is positive; pairs scored 0 or less are never returned.
///
/// `scores[row][column]`, every row of the same length.
pub(super) fn best_pairs(scores: &[Vec<f32>]) -> Vec<(usize, usize)> {
    let rows = scores.len();
    let columns = scores.first().map_or(0, Vec::len);
    if rows == 0 || columns == 0 {
        return Vec::new();
    }
    let weight = |r: usize, c: usize| -> i64 {
        let s = scores[r][c];
        if s.is_finite() && s > 0.0 {
            (s * SCALE).round() as i64
        } else {
            0
        }
    };
    // The solver wants no more rows than columns: solve the transpose when needed.
    let transposed = rows > columns;
    let (n, m) = if transposed {
        (columns, rows)
    } else {
        (rows, columns)
    };
    let matrix = Matrix::from_fn(n, m, |(i, j)| {
        if transposed {
            weight(j, i)
        } else {
            weight(i, j)
        }
    });
    let (_, assignment) = kuhn_munkres(&matrix);
    assignment
        .into_iter()
        .enumerate()
        .map(|(i, j)| if transposed { (j, i) } else { (i, j) })
        .filter(|&(r, c)| weight(r, c) > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assignment_maximises_the_total_where_greedy_would_not() {
        // Greedy takes (0, 0) = 0.9 first and leaves row 1 with nothing; the best total
        // pairs (0, 1) and (1, 0).
        let scores = vec![vec![0.9, 0.8], vec![0.7, 0.0]];
        let mut pairs = best_pairs(&scores);
        pairs.sort_unstable();
        assert_eq!(pairs, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn more_rows_than_columns_are_solved_and_zero_scores_never_pair() {
        let scores = vec![vec![0.0], vec![0.5], vec![0.2]];
        assert_eq!(best_pairs(&scores), vec![(1, 0)]);
        assert!(best_pairs(&[vec![0.0, 0.0]]).is_empty());
        assert!(best_pairs(&[]).is_empty());
        assert!(best_pairs(&[vec![]]).is_empty());
    }
}
