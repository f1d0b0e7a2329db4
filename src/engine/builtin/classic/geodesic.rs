//! Geodesic distances on the colour-weighted 8-connected grid.
//!
//! Raster scans (forward/backward sweep pairs) are an order of magnitude cheaper than
//! Dijkstra and, with a few sweep pairs, close enough for the geodesic prior and for
//! seeding the colour models. The sweeps run over a copy of the grid padded with one
//! unreachable pixel on each side, so every neighbour is a fixed offset away and the
//! inner loop has no bounds or arc lookups: a segment call runs several of them.

use super::features::{DIRS, Grid, NO_ARC};

/// Step costs of a grid, laid out for sweeping.
pub struct Metric {
    w: usize,
    h: usize,
    /// Per pixel (row-major, unpadded): the cost of the step to each of the 8 neighbours
    /// in `features::DIRS` order; infinite where the neighbour is outside the image.
    step: Vec<[f32; 8]>,
}

impl Metric {
    /// `cost` is indexed by the grid's arcs.
    pub fn new(grid: &Grid, cost: &[f32]) -> Metric {
        let step = (0..grid.w * grid.h)
            .map(|p| {
                let mut s = [f32::INFINITY; 8];
                for (d, c) in s.iter_mut().enumerate() {
                    let a = grid.arc_of[p * 8 + d];
                    if a != NO_ARC {
                        *c = cost[a as usize];
                    }
                }
                s
            })
            .collect();
        Metric {
            w: grid.w,
            h: grid.h,
            step,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.step.capacity() * 32
    }

    /// Distances from `seeds` (pixel indices) after `sweeps` sweep pairs; pixels no
    /// sweep reaches stay at infinity.
    pub fn distances(&self, seeds: &[usize], sweeps: usize) -> Vec<f32> {
        self.distances_within(seeds, sweeps, (0, 0, self.w, self.h))
    }

    /// Like [`Metric::distances`], with paths kept inside the rectangle `(x0, y0, x1,
    /// y1)` (ends exclusive); pixels outside it stay at infinity.
    pub fn distances_within(
        &self,
        seeds: &[usize],
        sweeps: usize,
        (x0, y0, x1, y1): (usize, usize, usize, usize),
    ) -> Vec<f32> {
        let (w, h) = (self.w, self.h);
        let (x1, y1) = (x1.min(w), y1.min(h));
        let stride = w + 2;
        let padded = |p: usize| (p / w + 1) * stride + p % w + 1;
        let mut dist = vec![f32::INFINITY; stride * (h + 2)];
        let mut any = false;
        for &s in seeds {
            if s < w * h && (x0..x1).contains(&(s % w)) && (y0..y1).contains(&(s / w)) {
                dist[padded(s)] = 0.0;
                any = true;
            }
        }
        if any {
            let offset = DIRS.map(|(dx, dy)| dy as isize * stride as isize + dx as isize);
            for _ in 0..sweeps {
                // Forward: the already-visited neighbours W, NW, N, NE (dirs 4..8).
                for y in y0..y1 {
                    for x in x0..x1 {
                        self.relax(&mut dist, y, x, stride, &offset, 4);
                    }
                }
                // Backward: E, SE, S, SW (dirs 0..4).
                for y in (y0..y1).rev() {
                    for x in (x0..x1).rev() {
                        self.relax(&mut dist, y, x, stride, &offset, 0);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            out.extend_from_slice(&dist[(y + 1) * stride + 1..(y + 1) * stride + 1 + w]);
        }
        out
    }

    /// Lowers the distance of pixel (x, y) to the cheapest path through one of the four
    /// neighbours `first..first + 4`.
    #[inline(always)]
    fn relax(
        &self,
        dist: &mut [f32],
        y: usize,
        x: usize,
        stride: usize,
        offset: &[isize; 8],
        first: usize,
    ) {
        let pp = (y + 1) * stride + x + 1;
        let step = &self.step[y * self.w + x];
        let mut best = dist[pp];
        for d in first..first + 4 {
            let q = (pp as isize + offset[d]) as usize;
            best = best.min(dist[q] + step[d]);
        }
        dist[pp] = best;
    }
}
