//! Preconditioned conjugate gradients for the matting system: the incomplete Cholesky
//! preconditioner of [`super::ichol`], the product on the padded grid of
//! [`super::stencil`].

use rayon::prelude::*;

use super::ichol::Preconditioner;
use super::laplacian::System;
use super::stencil::{self, Grid};

/// The smallest diagonal shift tried. A smaller shift that still factors is not a better
/// preconditioner here: on the matting benchmark 3e-3 took more iterations than 1e-2,
/// and starting at 1e-3 cost a tenth more iteration work than starting at 2e-2 (all three
/// kinds of trimap of tools/matting-bench).
pub const FIRST_SHIFT: f64 = 2e-2;
/// Each breakdown multiplies the shift by this. Growing it tenfold overshot the shift that
/// factors by up to ten, and an IC(0) of a larger shift is a weaker preconditioner.
const SHIFT_GROWTH: f64 = 2.0;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.par_iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves A x = b from the guess in `x`, until the residual falls below `rel_tol`·|b| or
/// `max_iter` iterations, with the preconditioner's diagonal shift starting at `shift`;
/// returns the iterations taken and the shift used.
pub fn solve(a: &System, x: &mut [f64], rel_tol: f64, max_iter: usize, shift: f64) -> (usize, f64) {
    let n = a.len();
    if n == 0 {
        return (0, shift);
    }
    let mut shift = shift.max(FIRST_SHIFT);
    let started = std::time::Instant::now();
    let pre = loop {
        match Preconditioner::factor(a, shift) {
            Some(p) => break p,
            None => shift *= SHIFT_GROWTH,
        }
    };
    tracing::debug!(
        "incomplete Cholesky with a diagonal shift of {shift} in {:?}",
        started.elapsed()
    );
    let mut grid = Grid::new(a);
    let mut r = vec![0.0; n];
    grid.scatter(x);
    stencil::apply(a, &grid, &mut r);
    r.par_iter_mut().zip(&a.rhs).for_each(|(r, b)| *r = b - *r);
    let b_norm = dot(&a.rhs, &a.rhs).sqrt().max(1e-30);
    let mut z = vec![0.0; n];
    let mut rz = pre.solve(&mut grid, &r, &mut z);
    let mut p = z.clone();
    let mut ap = vec![0.0; n];
    let mut rr = dot(&r, &r);
    // Each pass also yields the dot product the next step needs, so an iteration takes
    // two parallel passes (the product, the update) and one sequential (the factor's).
    for iter in 0..max_iter {
        if rr.sqrt() <= rel_tol * b_norm {
            return (iter, shift);
        }
        grid.scatter(&p);
        let step = rz / stencil::apply(a, &grid, &mut ap);
        if !step.is_finite() {
            return (iter, shift);
        }
        rr = x
            .par_iter_mut()
            .zip(r.par_iter_mut())
            .zip(p.par_iter().zip(&ap))
            .map(|((x, r), (p, ap))| {
                *x += step * p;
                *r -= step * ap;
                *r * *r
            })
            .sum();
        let rz_new = pre.solve(&mut grid, &r, &mut z);
        let beta = rz_new / rz;
        rz = rz_new;
        for (p, z) in p.iter_mut().zip(&z) {
            *p = z + beta * *p;
        }
    }
    (max_iter, shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matting::laplacian;

    #[test]
    fn the_solve_reaches_its_tolerance_from_any_starting_shift() {
        let a = laplacian::tests::edge_system();
        let residual = |x: &[f64]| {
            let mut ax = vec![0.0; x.len()];
            a.apply(x, &mut ax);
            let r: f64 = ax.iter().zip(&a.rhs).map(|(p, b)| (b - p).powi(2)).sum();
            r.sqrt() / a.rhs.iter().map(|b| b * b).sum::<f64>().sqrt()
        };
        for start in [FIRST_SHIFT, 1.0] {
            let mut x = vec![0.5; a.len()];
            let (iterations, shift) = solve(&a, &mut x, 1e-6, 1000, start);
            assert!(iterations < 1000, "no convergence from shift {start}");
            assert!(shift >= start, "shift {shift} below the start {start}");
            // The recurrence's residual drifts a little from the true one.
            assert!(
                residual(&x) <= 2e-6,
                "residual {} from {start}",
                residual(&x)
            );
        }
    }
}
