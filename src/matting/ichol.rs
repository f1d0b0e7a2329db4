//! The conjugate gradients' preconditioner: an incomplete Cholesky factor (IC(0): the
//! Laplacian's own stencil pattern, no fill) of A + shift·diag(A). IC(0) cuts the
//! iterations several-fold against Jacobi on the badly conditioned closed-form Laplacian.
//!
//! Its triangular solves are sequential chains. Cutting the rows into one block per core
//! (block Jacobi) was tried: on the matting benchmark's largest bands it cost a fifth more
//! iterations, about what the second core gained.

use super::laplacian::{DIAG, NONE, SLOTS, System};
use super::stencil::{Grid, lanes};

/// For each slot s before the diagonal: the pairs (t, u) of slots before the diagonal
/// with offset(s) + offset(t) = offset(u), i.e. the pixel at slot t of the neighbour at
/// slot s is the pixel at slot u of the row itself. The factorisation sums over exactly
/// these pairs for every entry of every row, so they are listed once here.
const PAIRS: [([u8; DIAG], [u8; DIAG], usize); DIAG] = {
    let mut table = [([0u8; DIAG], [0u8; DIAG], 0usize); DIAG];
    let mut s = 0;
    while s < DIAG {
        let mut t = 0;
        while t < DIAG {
            let dx = (s % 5) as isize + (t % 5) as isize - 4;
            let dy = (s / 5) as isize + (t / 5) as isize - 4;
            let u = (dx + 2) + 5 * (dy + 2);
            if dx.abs() <= 2 && dy.abs() <= 2 && u < DIAG as isize {
                let n = table[s].2;
                table[s].0[n] = t as u8;
                table[s].1[n] = u as u8;
                table[s].2 = n + 1;
            }
            t += 1;
        }
        s += 1;
    }
    table
};

/// L in the sweeps' layout. Single precision: it only steers the iterations, and the
/// sweeps read half the bytes.
pub struct Preconditioner {
    /// Each row's DIAG entries before the diagonal (L_ik, k < i; zero where no unknown).
    lower: Vec<f32>,
    /// Each row's DIAG entries after the diagonal, read from the later rows (L_ki, k > i):
    /// the backward sweep gathers them as the forward one does, instead of scattering.
    upper: Vec<f32>,
    /// 1 / L_ii.
    inv_diag: Vec<f64>,
}

impl Preconditioner {
    /// Factors A + shift·diag(A); None when a pivot is not positive (retry with a larger
    /// shift: IC(0) of the ill-conditioned closed-form Laplacian often breaks down).
    pub fn factor(a: &System, shift: f64) -> Option<Self> {
        let n = a.len();
        let mut lower = vec![0.0f32; n * DIAG];
        let mut inv_diag = vec![0.0f64; n];
        for i in 0..n {
            let (row, arow) = (i * DIAG, i * SLOTS);
            let mut diag = a.values[arow + DIAG] * (1.0 + shift);
            for s in 0..DIAG {
                let k = a.cols[arow + s];
                if k == NONE {
                    continue;
                }
                let krow = k as usize * DIAG;
                // L_ik = (A_ik − Σ_j L_ij L_kj) / L_kk over j before k in both rows. An
                // entry whose pixel is not unknown is zero in both, so no check is needed.
                let (ts, us, len) = &PAIRS[s];
                let mut sum = a.values[arow + s];
                for (&t, &u) in ts[..*len].iter().zip(&us[..*len]) {
                    sum -= lower[row + u as usize] as f64 * lower[krow + t as usize] as f64;
                }
                let lik = sum * inv_diag[k as usize];
                lower[row + s] = lik as f32;
                diag -= lik * lik;
            }
            if !(diag > 0.0 && diag.is_finite()) {
                return None;
            }
            inv_diag[i] = 1.0 / diag.sqrt();
        }
        // The upper rows: row k's entries before the diagonal, seen from the neighbours.
        let mut upper = vec![0.0f32; n * DIAG];
        for k in 0..n {
            for t in 0..DIAG {
                let i = a.cols[k * SLOTS + t];
                if i != NONE {
                    // k lies at the mirrored offset from i: slot SLOTS − 1 − t.
                    upper[i as usize * DIAG + (DIAG - 1 - t)] = lower[k * DIAG + t];
                }
            }
        }
        Some(Preconditioner {
            lower,
            upper,
            inv_diag,
        })
    }

    /// z = (L Lᵀ)⁻¹ r, swept in place on `grid` (the product's: both write every
    /// unknown's value before reading it, and other pixels stay zero); returns r·z.
    ///
    /// Each sweep is a chain: a pixel needs its left (then right) neighbour's result. That
    /// neighbour's term is added last and taken from a register, so the chain's latency
    /// per pixel is a multiply, a subtract and a multiply; the other terms are independent.
    pub fn solve(&self, grid: &mut Grid, r: &[f64], z: &mut [f64]) -> f64 {
        let (mut prev, mut prev_at) = (0.0, usize::MAX);
        for (i, &ri) in r.iter().enumerate() {
            let at = grid.at[i] as usize;
            let l = &self.lower[i * DIAG..(i + 1) * DIAG];
            let mut acc = [0.0; 5];
            grid.add_line(&mut acc, at, 0, &l[0..5]);
            grid.add_line(&mut acc, at, 5, &l[5..10]);
            let s = lanes(acc) + l[10] as f64 * grid.at_slot(at, 10);
            // A left neighbour that is not the previous unknown is known: its entry is 0.
            let left = if prev_at.wrapping_add(1) == at {
                prev
            } else {
                0.0
            };
            prev = (ri - s - l[11] as f64 * left) * self.inv_diag[i];
            prev_at = at;
            grid.values[at] = prev;
        }
        let (mut next, mut next_at) = (0.0, usize::MAX);
        let mut rz = 0.0;
        for (i, zi) in z.iter_mut().enumerate().rev() {
            let at = grid.at[i] as usize;
            let u = &self.upper[i * DIAG..(i + 1) * DIAG];
            let mut acc = [0.0; 5];
            grid.add_line(&mut acc, at, 15, &u[2..7]);
            grid.add_line(&mut acc, at, 20, &u[7..12]);
            let s = lanes(acc) + u[1] as f64 * grid.at_slot(at, DIAG + 2);
            let right = if next_at == at + 1 { next } else { 0.0 };
            next = (grid.values[at] - s - u[0] as f64 * right) * self.inv_diag[i];
            next_at = at;
            grid.values[at] = next;
            *zi = next;
            rz += r[i] * next;
        }
        rz
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pairs_table_lists_every_pair_of_earlier_slots_that_adds_up() {
        let offset = |s: usize| ((s % 5) as isize - 2, (s / 5) as isize - 2);
        for (s, (ts, us, len)) in PAIRS.iter().enumerate() {
            let listed: Vec<(usize, usize)> = (0..*len)
                .map(|k| (ts[k] as usize, us[k] as usize))
                .collect();
            let mut want = vec![];
            for t in 0..DIAG {
                for u in 0..DIAG {
                    let ((sx, sy), (tx, ty)) = (offset(s), offset(t));
                    if (sx + tx, sy + ty) == offset(u) {
                        want.push((t, u));
                    }
                }
            }
            assert_eq!(listed, want, "slot {s}");
            assert!(
                listed.iter().all(|&(_, u)| u < s),
                "slot {s}: a later entry"
            );
        }
    }

    /// y = L Lᵀ z from the factor's rows, the plain way over the system's columns.
    fn times_factor(a: &System, pre: &Preconditioner, z: &[f64]) -> Vec<f64> {
        let n = a.len();
        let diag: Vec<f64> = pre.inv_diag.iter().map(|d| 1.0 / d).collect();
        // w = Lᵀ z: w_k = L_kk z_k + Σ_{i > k} L_ik z_i.
        let mut w: Vec<f64> = (0..n).map(|k| diag[k] * z[k]).collect();
        for (i, &zi) in z.iter().enumerate() {
            for s in 0..DIAG {
                let k = a.cols[i * SLOTS + s];
                if k != NONE {
                    w[k as usize] += pre.lower[i * DIAG + s] as f64 * zi;
                }
            }
        }
        // y = L w.
        (0..n)
            .map(|i| {
                let off: f64 = (0..DIAG)
                    .filter_map(|s| {
                        let k = a.cols[i * SLOTS + s];
                        (k != NONE).then(|| pre.lower[i * DIAG + s] as f64 * w[k as usize])
                    })
                    .sum();
                diag[i] * w[i] + off
            })
            .collect()
    }

    #[test]
    fn the_sweeps_invert_the_factor() {
        let a = crate::matting::laplacian::tests::edge_system();
        let pre = Preconditioner::factor(&a, 0.1).expect("a shift of 0.1 factors");
        let r: Vec<f64> = (0..a.len()).map(|i| ((i * 31) % 13) as f64 - 6.0).collect();
        let mut grid = Grid::new(&a);
        let mut z = vec![0.0; a.len()];
        let rz = pre.solve(&mut grid, &r, &mut z);
        let back = times_factor(&a, &pre, &z);
        for (i, (b, r)) in back.iter().zip(&r).enumerate() {
            assert!(
                (b - r).abs() <= 1e-9 * (1.0 + r.abs()),
                "row {i}: {b} vs {r}"
            );
        }
        let want: f64 = r.iter().zip(&z).map(|(r, z)| r * z).sum();
        assert!((rz - want).abs() <= 1e-9 * want.abs());
        // A second solve on the grid after another vector was scattered on it (as the
        // product does between solves) gives the same answer: no state is left behind.
        grid.scatter(&vec![1e6; a.len()]);
        let mut again = vec![0.0; a.len()];
        pre.solve(&mut grid, &r, &mut again);
        assert_eq!(z, again);
    }

    #[test]
    fn the_factor_matches_its_definition_on_the_pattern() {
        // (L Lᵀ)_ik = (A + shift·diag A)_ik wherever A has an entry (IC(0)'s defining
        // property), checked through products with unit vectors.
        let a = crate::matting::laplacian::tests::edge_system();
        let shift = 0.1;
        let pre = Preconditioner::factor(&a, shift).unwrap();
        for k in [0, 7, a.len() / 2, a.len() - 1] {
            let mut e = vec![0.0; a.len()];
            e[k] = 1.0;
            let col = times_factor(&a, &pre, &e);
            for s in 0..SLOTS {
                let i = a.cols[k * SLOTS + s];
                if i == NONE {
                    continue;
                }
                let want = a.values[k * SLOTS + s] * if s == DIAG { 1.0 + shift } else { 1.0 };
                let got = col[i as usize];
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "({i}, {k}): {got} vs {want}"
                );
            }
        }
    }
}
