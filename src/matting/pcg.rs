//! Preconditioned conjugate gradients for the matting system, with an incomplete Cholesky
//! factor (IC(0): the Laplacian's own stencil pattern, no fill) as the preconditioner.
//! IC(0) cuts the iterations several-fold against Jacobi on the badly conditioned
//! closed-form Laplacian; its triangular solves are sequential but as cheap as a product.

use rayon::prelude::*;

use super::laplacian::{DIAG, NONE, SLOTS, System};

/// The first diagonal shift tried; each breakdown multiplies it by ten.
const FIRST_SHIFT: f64 = 1e-3;

/// The lower triangle of A ≈ L Lᵀ in A's stencil layout (slots 0..DIAG are the
/// neighbours before a pixel in row-major order; DIAG holds L_ii).
struct Ichol {
    values: Vec<f64>,
}

/// The slot of `offset_a + offset_b` in a 5×5 stencil, if it lies inside it.
fn combine(a: usize, b: usize) -> Option<usize> {
    let dx = (a % 5) as isize + (b % 5) as isize - 4;
    let dy = (a / 5) as isize + (b / 5) as isize - 4;
    (dx.abs() <= 2 && dy.abs() <= 2).then(|| (dx + 2) as usize + 5 * (dy + 2) as usize)
}

impl Ichol {
    /// Factors A + shift·diag(A); None when a pivot is not positive (retry with a larger
    /// shift: IC(0) of the ill-conditioned closed-form Laplacian often breaks down).
    fn factor(a: &System, shift: f64) -> Option<Self> {
        let n = a.len();
        let mut l = vec![0.0f64; n * SLOTS];
        for i in 0..n {
            let row = i * SLOTS;
            let mut diag = a.values[row + DIAG] * (1.0 + shift);
            for s in 0..DIAG {
                let k = a.cols[row + s];
                if k == NONE {
                    continue;
                }
                let krow = k as usize * SLOTS;
                // L_ik = (A_ik − Σ_j L_ij L_kj) / L_kk over j before k in both rows.
                let mut sum = a.values[row + s];
                for t in 0..DIAG {
                    let j = a.cols[krow + t];
                    if j == NONE {
                        continue;
                    }
                    // Pixel j seen from i: offset(k from i) + offset(j from k).
                    if let Some(u) = combine(s, t)
                        && u < DIAG
                        && a.cols[row + u] == j
                    {
                        sum -= l[row + u] * l[krow + t];
                    }
                }
                let lik = sum / l[krow + DIAG];
                l[row + s] = lik;
                diag -= lik * lik;
            }
            if !(diag > 0.0 && diag.is_finite()) {
                return None;
            }
            l[row + DIAG] = diag.sqrt();
        }
        Some(Ichol { values: l })
    }

    /// z = (L Lᵀ)⁻¹ r.
    fn solve(&self, a: &System, r: &[f64], z: &mut [f64]) {
        let n = r.len();
        for i in 0..n {
            let row = i * SLOTS;
            let mut s = r[i];
            for t in 0..DIAG {
                let k = a.cols[row + t];
                if k != NONE {
                    s -= self.values[row + t] * z[k as usize];
                }
            }
            z[i] = s / self.values[row + DIAG];
        }
        for i in (0..n).rev() {
            let row = i * SLOTS;
            let zi = z[i] / self.values[row + DIAG];
            z[i] = zi;
            for t in 0..DIAG {
                let k = a.cols[row + t];
                if k != NONE {
                    z[k as usize] -= self.values[row + t] * zi;
                }
            }
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.par_iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves A x = b from the guess in `x`, until the residual falls below `rel_tol`·|b| or
/// `max_iter` iterations; returns the iterations taken.
pub fn solve(a: &System, x: &mut [f64], rel_tol: f64, max_iter: usize) -> usize {
    let n = a.len();
    if n == 0 {
        return 0;
    }
    let mut shift = FIRST_SHIFT;
    let pre = loop {
        match Ichol::factor(a, shift) {
            Some(p) => break p,
            None => shift *= 10.0,
        }
    };
    tracing::debug!("incomplete Cholesky with a diagonal shift of {shift}");
    let mut r = vec![0.0; n];
    a.apply(x, &mut r);
    r.par_iter_mut().zip(&a.rhs).for_each(|(r, b)| *r = b - *r);
    let b_norm = dot(&a.rhs, &a.rhs).sqrt().max(1e-30);
    let mut z = vec![0.0; n];
    pre.solve(a, &r, &mut z);
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    let mut ap = vec![0.0; n];
    for iter in 0..max_iter {
        if dot(&r, &r).sqrt() <= rel_tol * b_norm {
            return iter;
        }
        a.apply(&p, &mut ap);
        let step = rz / dot(&p, &ap);
        if !step.is_finite() {
            return iter;
        }
        x.par_iter_mut().zip(&p).for_each(|(x, p)| *x += step * p);
        r.par_iter_mut()
            .zip(&ap)
            .for_each(|(r, ap)| *r -= step * ap);
        pre.solve(a, &r, &mut z);
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        rz = rz_new;
        p.par_iter_mut()
            .zip(&z)
            .for_each(|(p, z)| *p = z + beta * *p);
    }
    max_iter
}
