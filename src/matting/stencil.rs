//! The matting system in the CG iterations' layout. A vector is scattered onto a padded
//! copy of the pixel grid, so each row reads its 5×5 neighbours at fixed offsets: no
//! column index per entry, and the neighbours' values are reused from cache by the rows
//! around them. The iterations are bound by memory traffic; this layout moves about half
//! the bytes of a row-and-column (ELL) product.

use rayon::prelude::*;

use super::laplacian::{SLOTS, System};

/// Pixels of padding on each side: the stencil reaches two pixels away.
const PAD: usize = 2;

/// A vector of the unknowns spread over the padded grid; zero at every other pixel.
pub struct Grid {
    /// Each unknown's index in the padded grid.
    pub at: Vec<u32>,
    /// A slot's offset in the padded grid (slot (dx+2) + 5·(dy+2) → dy·width + dx).
    pub offsets: [isize; SLOTS],
    pub values: Vec<f64>,
}

impl Grid {
    /// The grid of the system's unknowns: the image rows they span, padded.
    pub fn new(a: &System) -> Self {
        let width = a.width + 2 * PAD;
        let y_of = |p: &u32| *p as usize / a.width;
        let (top, bottom) = match (a.pixels.first(), a.pixels.last()) {
            (Some(first), Some(last)) => (y_of(first), y_of(last)),
            _ => (0, 0),
        };
        let at = a
            .pixels
            .iter()
            .map(|&p| {
                let (x, y) = (p as usize % a.width, p as usize / a.width);
                ((y - top + PAD) * width + x + PAD) as u32
            })
            .collect();
        let offsets = std::array::from_fn(|s| {
            (s / 5) as isize * width as isize + (s % 5) as isize - (2 * width + 2) as isize
        });
        Grid {
            at,
            offsets,
            values: vec![0.0; width * (bottom - top + 1 + 2 * PAD)],
        }
    }

    /// Puts the unknowns' values `x` on the grid.
    pub fn scatter(&mut self, x: &[f64]) {
        for (&g, &v) in self.at.iter().zip(x) {
            self.values[g as usize] = v;
        }
    }

    /// Adds v[k]·grid[at + offsets[slot + k]] to lane k, for the five slots of the stencil
    /// line that starts at `slot` (contiguous on the grid): one short vectorised product.
    #[inline(always)]
    pub fn add_line<T: Copy + Into<f64>>(
        &self,
        acc: &mut [f64; 5],
        at: usize,
        slot: usize,
        v: &[T],
    ) {
        let g = (at as isize + self.offsets[slot]) as usize;
        let line: &[f64; 5] = self.values[g..g + 5].try_into().unwrap();
        let v: &[T; 5] = v.try_into().unwrap();
        for k in 0..5 {
            acc[k] += v[k].into() * line[k];
        }
    }

    /// The value at a slot's neighbour of the unknown at `at`.
    #[inline(always)]
    pub fn at_slot(&self, at: usize, slot: usize) -> f64 {
        self.values[(at as isize + self.offsets[slot]) as usize]
    }
}

/// The lanes' sum.
#[inline(always)]
pub fn lanes(acc: [f64; 5]) -> f64 {
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + acc[4]
}

/// y = A x, with x already on `grid`; returns xᵀy.
pub fn apply(a: &System, grid: &Grid, y: &mut [f64]) -> f64 {
    y.par_chunks_mut(1024)
        .enumerate()
        .map(|(chunk, out)| apply_rows(a, grid, chunk * 1024, out))
        .sum()
}

/// Rows `start..start + y.len()` of [`apply`], on the calling thread.
fn apply_rows(a: &System, grid: &Grid, start: usize, y: &mut [f64]) -> f64 {
    let mut xy = 0.0;
    for (k, yi) in y.iter_mut().enumerate() {
        let i = start + k;
        let row = &a.values[i * SLOTS..(i + 1) * SLOTS];
        let at = grid.at[i] as usize;
        let mut acc = [0.0; 5];
        for line in 0..5 {
            grid.add_line(&mut acc, at, 5 * line, &row[5 * line..5 * line + 5]);
        }
        *yi = lanes(acc);
        xy += *yi * grid.values[at];
    }
    xy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matting::laplacian::tests::edge_system;

    #[test]
    fn the_grid_product_equals_the_rows_and_columns_product() {
        let a = edge_system();
        let x: Vec<f64> = (0..a.len())
            .map(|i| ((i * 7919) % 101) as f64 / 101.0)
            .collect();
        let mut want = vec![0.0; a.len()];
        a.apply(&x, &mut want);
        let mut grid = Grid::new(&a);
        grid.scatter(&x);
        let mut got = vec![0.0; a.len()];
        let xy = apply(&a, &grid, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                "row {i}: {g} vs {w}"
            );
        }
        let want_xy: f64 = x.iter().zip(&want).map(|(x, y)| x * y).sum();
        assert!((xy - want_xy).abs() <= 1e-9 * want_xy.abs());
    }
}
