//! Constant-velocity motion of one track's box, with frame indices as time.

use anpr_types::BBox;

/// Share of a measurement's surprise taken into the position (the rest is the prediction).
const ALPHA: f32 = 0.7;
/// Share of a measurement's surprise taken into the velocity.
const BETA: f32 = 0.3;
/// Predictions go no further than this many frames past the last measurement, so that a
/// track lost for a long time is not thrown across the frame by its last velocity.
const MAX_HORIZON: u64 = 60;
/// Most a box's width or height may change per frame, as a share of it.
const MAX_GROWTH: f32 = 0.03;
/// Smallest side of a predicted box, in pixels.
const MIN_SIDE: f32 = 1.0;

/// Edges of a box, in this order: left, top, right, bottom.
pub(super) type Edges = [bool; 4];

/// No edge cut by the frame's border.
pub(super) const WHOLE: Edges = [false; 4];

/// An alpha-beta filter (the steady-state form of the Kalman filter SORT uses) on each edge
/// of the box. Time is the frame index, so frames that were not recognised simply make a
/// longer step.
///
/// Edges are filtered one by one so that an edge lying on the frame's border, where the
/// detector cuts a vehicle that is entering or leaving, is not taken for the vehicle's
/// edge: it is left to its prediction, and the velocity comes from the edges that are seen.
/// Filtering the centre instead would halve the speed of every entering vehicle.
#[derive(Debug, Clone)]
pub(super) struct Motion {
    /// Left, top, right, bottom: position at the last real observation of each.
    pos: [f32; 4],
    /// Change of each per frame.
    velocity: [f32; 4],
    /// Frame of the last real observation of each edge.
    at: [u64; 4],
    /// Real observations of each edge (capped).
    seen: [u8; 4],
    /// Frame of the last measurement, whatever its edges.
    frame: u64,
}

fn edges(b: BBox) -> [f32; 4] {
    [b.x, b.y, b.x + b.w, b.y + b.h]
}

impl Motion {
    /// A filter starting at `b`, measured at `frame` with the `cut` edges on the border.
    pub(super) fn new(b: BBox, frame: u64, cut: Edges) -> Self {
        Self {
            pos: edges(b),
            velocity: [0.0; 4],
            at: [frame; 4],
            seen: cut.map(|c| u8::from(!c)),
            frame,
        }
    }

    /// Frame of the last measurement.
    pub(super) fn last_frame(&self) -> u64 {
        self.frame
    }

    /// Whether a velocity has been measured (an edge seen twice or more).
    pub(super) fn has_velocity(&self) -> bool {
        self.seen.iter().any(|&s| s >= 2)
    }

    /// The box expected at `frame`.
    pub(super) fn predict(&self, frame: u64) -> BBox {
        let e: Vec<f32> = (0..4)
            .map(|i| {
                let dt = frame.saturating_sub(self.at[i]).min(MAX_HORIZON) as f32;
                self.pos[i] + self.velocity[i] * dt
            })
            .collect();
        let (mut x0, mut y0, mut x1, mut y1) = (e[0], e[1], e[2], e[3]);
        if x1 - x0 < MIN_SIDE {
            let c = f32::midpoint(x0, x1);
            (x0, x1) = (c - MIN_SIDE / 2.0, c + MIN_SIDE / 2.0);
        }
        if y1 - y0 < MIN_SIDE {
            let c = f32::midpoint(y0, y1);
            (y0, y1) = (c - MIN_SIDE / 2.0, c + MIN_SIDE / 2.0);
        }
        BBox {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    /// Takes in the box measured at `frame` whose `cut` edges lie on the frame's border.
    pub(super) fn update(&mut self, b: BBox, frame: u64, cut: Edges) {
        let m = edges(b);
        // Edges seen before go first, so that an edge seen for the first time takes the
        // opposite edge's velocity as measured now.
        let order = (0..4)
            .filter(|&i| self.seen[i] > 0)
            .chain((0..4).filter(|&i| self.seen[i] == 0));
        for i in order.collect::<Vec<_>>() {
            if cut[i] {
                continue;
            }
            let dt = frame.saturating_sub(self.at[i]).clamp(1, MAX_HORIZON) as f32;
            if self.seen[i] == 0 {
                // First sight of this edge: it moves as the opposite edge does, which counts
                // as a measured velocity once that one is.
                let opposite = (i + 2) % 4;
                self.velocity[i] = self.velocity[opposite];
                self.pos[i] = m[i];
                if self.seen[opposite] >= 2 {
                    self.seen[i] = 1;
                }
            } else if self.seen[i] == 1 {
                self.velocity[i] = (m[i] - self.pos[i]) / dt;
                self.pos[i] = m[i];
            } else {
                let predicted = self.pos[i] + self.velocity[i] * dt;
                let surprise = m[i] - predicted;
                self.pos[i] = predicted + ALPHA * surprise;
                self.velocity[i] += BETA * surprise / dt;
            }
            self.at[i] = frame;
            self.seen[i] = self.seen[i].saturating_add(1).min(2);
        }
        // A vehicle's size changes slowly: noise between opposite edges must not make the
        // box balloon or vanish over a long prediction.
        for (lo, hi) in [(0, 2), (1, 3)] {
            if self.seen[lo] == 0 || self.seen[hi] == 0 {
                continue;
            }
            let size = (self.pos[hi] - self.pos[lo]).abs().max(MIN_SIDE);
            let growth = self.velocity[hi] - self.velocity[lo];
            let most = MAX_GROWTH * size;
            let excess = growth - growth.clamp(-most, most);
            self.velocity[hi] -= excess / 2.0;
            self.velocity[lo] += excess / 2.0;
        }
        self.frame = frame;
    }

    /// Replaces the box outright, keeping how fast its centre moves: for a track whose box
    /// was so far only guessed from its plate and is now detected.
    pub(super) fn adopt(&mut self, b: BBox, frame: u64, cut: Edges) {
        let vx = f32::midpoint(self.velocity[0], self.velocity[2]);
        let vy = f32::midpoint(self.velocity[1], self.velocity[3]);
        let moving = self.has_velocity();
        *self = Self::new(b, frame, cut);
        self.velocity = [vx, vy, vx, vy];
        if moving {
            // The velocity is known: the next sighting of each edge refines it.
            for s in &mut self.seen {
                if *s == 1 {
                    *s = 2;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(x: f32, y: f32) -> BBox {
        BBox {
            x,
            y,
            w: 100.0,
            h: 80.0,
        }
    }

    #[test]
    fn a_box_moving_steadily_is_predicted_where_it_goes_next() {
        let mut m = Motion::new(bx(0.0, 0.0), 0, WHOLE);
        assert!(!m.has_velocity());
        for f in 1..10u64 {
            m.update(bx(10.0 * f as f32, 5.0 * f as f32), f, WHOLE);
        }
        let p = m.predict(12);
        assert!((p.x - 120.0).abs() < 1.0, "{p:?}");
        assert!((p.y - 60.0).abs() < 1.0, "{p:?}");
        assert!((p.w - 100.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn a_gap_between_measurements_is_one_longer_step() {
        let mut m = Motion::new(bx(0.0, 0.0), 0, WHOLE);
        m.update(bx(30.0, 0.0), 3, WHOLE);
        let p = m.predict(5);
        assert!((p.x - 50.0).abs() < 1e-3, "{p:?}");
    }

    #[test]
    fn a_vehicle_entering_through_the_top_edge_moves_at_its_own_speed() {
        // The vehicle is 100 px high and moves down 30 px a frame; its box is cut at y = 0
        // until it is wholly in view.
        let seen = |f: u64| {
            let bottom = 30.0 * f as f32;
            let top = bottom - 100.0;
            BBox {
                x: 0.0,
                y: top.max(0.0),
                w: 100.0,
                h: bottom - top.max(0.0),
            }
        };
        let cut = |f: u64| [false, 30.0 * f as f32 - 100.0 <= 0.0, false, false];
        let mut m = Motion::new(seen(1), 1, cut(1));
        for f in 2..4u64 {
            m.update(seen(f), f, cut(f));
        }
        let p = m.predict(6);
        assert!((p.y + p.h - 180.0).abs() < 1.0, "bottom edge: {p:?}");
    }

    #[test]
    fn predictions_stop_at_the_horizon() {
        let mut m = Motion::new(bx(0.0, 0.0), 0, WHOLE);
        m.update(bx(1.0, 0.0), 1, WHOLE);
        assert_eq!(m.predict(1 + MAX_HORIZON), m.predict(10_000));
    }
}
