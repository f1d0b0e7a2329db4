//! The closed-form matting system (Levin, Lischinski and Weiss 2008) restricted to the
//! unknown pixels of a trimap: only their rows of the matting Laplacian are built, so the
//! cost follows the band, not the image.
//!
//! Each unknown pixel's row has at most 25 entries (3×3 windows reach two pixels away), so
//! the matrix is stored as a 5×5 stencil a row ("ELL" layout): no sorting, parallel build.

use rayon::prelude::*;

use super::RgbF;

/// Regularisation of each window's colour covariance, as in the paper and pymatting.
pub const EPSILON: f64 = 1e-7;
/// Entries a row: the 5×5 neighbourhood of a pixel.
pub const SLOTS: usize = 25;
/// The slot of the diagonal (offset 0,0).
pub const DIAG: usize = 12;
/// Marks a slot with no unknown pixel behind it.
pub const NONE: u32 = u32::MAX;

/// L_UU x = b over the unknown pixels, with the known pixels folded into b.
pub struct System {
    /// Pixel index (y·w + x) of each unknown, in row-major order.
    pub pixels: Vec<u32>,
    /// SLOTS values a row; slot (dx+2) + 5·(dy+2). Double precision: with the entries
    /// rounded to single (even with each row's balance kept exact) one benchmark image's
    /// SAD rose by a tenth.
    pub values: Vec<f64>,
    /// The unknown index behind each slot, or NONE.
    pub cols: Vec<u32>,
    pub rhs: Vec<f64>,
    /// The image's size: the pixel grid the stencil slots refer to.
    pub width: usize,
    pub height: usize,
}

impl System {
    pub fn len(&self) -> usize {
        self.pixels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// y = A x, the plain way over rows and columns: the reference the tests hold
    /// [`super::stencil::apply`] to.
    #[cfg(test)]
    pub fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.par_iter_mut().enumerate().for_each(|(i, yi)| {
            let row = i * SLOTS;
            let mut sum = 0.0;
            for slot in 0..SLOTS {
                let c = self.cols[row + slot];
                if c != NONE {
                    sum += self.values[row + slot] * x[c as usize];
                }
            }
            *yi = sum;
        });
    }
}

/// Mean and inverse regularised covariance of the 3×3 window centred on (cx, cy).
fn window_stats(img: &[RgbF], w: usize, cx: usize, cy: usize) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut mean = [0.0f64; 3];
    let mut prod = [[0.0f64; 3]; 3];
    for y in cy - 1..=cy + 1 {
        for x in cx - 1..=cx + 1 {
            let p = img[y * w + x];
            let p = [p[0] as f64, p[1] as f64, p[2] as f64];
            for a in 0..3 {
                mean[a] += p[a];
                for b in a..3 {
                    prod[a][b] += p[a] * p[b];
                }
            }
        }
    }
    let n = 9.0;
    for m in &mut mean {
        *m /= n;
    }
    let mut cov = [[0.0f64; 3]; 3];
    for a in 0..3 {
        for b in a..3 {
            let v = prod[a][b] / n - mean[a] * mean[b] + if a == b { EPSILON / n } else { 0.0 };
            cov[a][b] = v;
            cov[b][a] = v;
        }
    }
    (mean, invert3(&cov))
}

/// The inverse of a symmetric positive definite 3×3 matrix (adjugate over determinant).
fn invert3(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1];
    let c01 = m[1][2] * m[2][0] - m[1][0] * m[2][2];
    let c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0];
    let det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02;
    let inv_det = if det.abs() > 1e-300 { 1.0 / det } else { 0.0 };
    let c11 = m[0][0] * m[2][2] - m[0][2] * m[2][0];
    let c12 = m[0][1] * m[2][0] - m[0][0] * m[2][1];
    let c22 = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    [
        [c00 * inv_det, c01 * inv_det, c02 * inv_det],
        [c01 * inv_det, c11 * inv_det, c12 * inv_det],
        [c02 * inv_det, c12 * inv_det, c22 * inv_det],
    ]
}

/// A window's mean and inverse regularised covariance.
type Stats = ([f64; 3], [[f64; 3]; 3]);

/// The 25 Laplacian entries of pixel (x, y)'s row: every window that holds it and lies
/// inside the image adds δ_ij − (1 + (I_i−μ)ᵀ Σ⁻¹ (I_j−μ)) / 9 for each j in the window.
/// `stats(c)` gives window c's statistics (c: its centre's pixel index).
fn stencil_row(
    img: &[RgbF],
    w: usize,
    h: usize,
    (x, y): (usize, usize),
    stats: impl Fn(usize) -> Stats,
) -> [f64; SLOTS] {
    let mut row = [0.0f64; SLOTS];
    let pi = img[y * w + x];
    for cy in y.saturating_sub(1).max(1)..=(y + 1).min(h.saturating_sub(2)) {
        for cx in x.saturating_sub(1).max(1)..=(x + 1).min(w.saturating_sub(2)) {
            let (mu, inv) = stats(cy * w + cx);
            let di = [
                pi[0] as f64 - mu[0],
                pi[1] as f64 - mu[1],
                pi[2] as f64 - mu[2],
            ];
            // (I_i − μ)ᵀ Σ⁻¹, shared by the window's nine j.
            let v = [
                di[0] * inv[0][0] + di[1] * inv[1][0] + di[2] * inv[2][0],
                di[0] * inv[0][1] + di[1] * inv[1][1] + di[2] * inv[2][1],
                di[0] * inv[0][2] + di[1] * inv[1][2] + di[2] * inv[2][2],
            ];
            for jy in cy - 1..=cy + 1 {
                for jx in cx - 1..=cx + 1 {
                    let pj = img[jy * w + jx];
                    let dot = v[0] * (pj[0] as f64 - mu[0])
                        + v[1] * (pj[1] as f64 - mu[1])
                        + v[2] * (pj[2] as f64 - mu[2]);
                    let slot = (jx + 2 - x) + 5 * (jy + 2 - y);
                    let delta = if jx == x && jy == y { 1.0 } else { 0.0 };
                    row[slot] += delta - (1.0 + dot) / 9.0;
                }
            }
        }
    }
    row
}

/// The known alpha of a trimap value: 0 background, 1 foreground, None unknown.
pub fn known_alpha(t: u8) -> Option<f32> {
    match t {
        0..=25 => Some(0.0),
        230..=255 => Some(1.0),
        _ => None,
    }
}

/// Statistics of every window an unknown pixel lies in, computed once each (a window is
/// shared by up to nine rows); `slot` maps a centre's pixel index to its entry.
fn window_table(img: &[RgbF], pixels: &[u32], w: usize, h: usize, slot: &mut [u32]) -> Vec<Stats> {
    let mut centres = Vec::with_capacity(pixels.len() * 2);
    for &p in pixels {
        let (x, y) = (p as usize % w, p as usize / w);
        for cy in y.saturating_sub(1).max(1)..=(y + 1).min(h.saturating_sub(2)) {
            for cx in x.saturating_sub(1).max(1)..=(x + 1).min(w.saturating_sub(2)) {
                let c = cy * w + cx;
                if slot[c] == NONE {
                    slot[c] = centres.len() as u32;
                    centres.push(c as u32);
                }
            }
        }
    }
    centres
        .par_iter()
        .map(|&c| window_stats(img, w, c as usize % w, c as usize / w))
        .collect()
}

/// Builds L_UU α_U = −L_UK α_K for the unknown pixels of `trimap` (see [`known_alpha`]),
/// in parallel over the unknown pixels.
pub fn build(img: &[RgbF], trimap: &[u8], w: usize, h: usize) -> System {
    let pixels: Vec<u32> = (0..w * h)
        .filter(|&i| known_alpha(trimap[i]).is_none())
        .map(|i| i as u32)
        .collect();
    let mut window_of = vec![NONE; w * h];
    let table = window_table(img, &pixels, w, h, &mut window_of);
    let stats_of = |c: usize| table[window_of[c] as usize];
    let mut index = vec![NONE; w * h];
    for (k, &p) in pixels.iter().enumerate() {
        index[p as usize] = k as u32;
    }
    let n = pixels.len();
    let mut values = vec![0.0f64; n * SLOTS];
    let mut cols = vec![NONE; n * SLOTS];
    let mut rhs = vec![0.0f64; n];
    values
        .par_chunks_mut(SLOTS)
        .zip(cols.par_chunks_mut(SLOTS))
        .zip(rhs.par_iter_mut())
        .zip(pixels.par_iter())
        .for_each(|(((vals, cs), b), &p)| {
            let (x, y) = (p as usize % w, p as usize / w);
            let row = stencil_row(img, w, h, (x, y), stats_of);
            for (slot, &v) in row.iter().enumerate() {
                if v == 0.0 {
                    continue;
                }
                let jx = x as isize + (slot % 5) as isize - 2;
                let jy = y as isize + (slot / 5) as isize - 2;
                let j = jy as usize * w + jx as usize;
                match known_alpha(trimap[j]) {
                    None => {
                        vals[slot] = v;
                        cs[slot] = index[j];
                    }
                    Some(a) => *b -= v * a as f64,
                }
            }
            // A pixel in no window (a one-pixel-wide image) is tied to 1/2, not singular.
            if vals[DIAG] <= 0.0 {
                vals[DIAG] = 1.0;
                cs[DIAG] = index[p as usize];
                *b = 0.5;
            }
        });
    System {
        pixels,
        values,
        cols,
        rhs,
        width: w,
        height: h,
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A noisy two-colour image with a soft vertical edge, its middle columns unknown.
    pub fn edge_system() -> System {
        let (w, h) = (40, 30);
        let img: Vec<_> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let a = ((x as f32 - 17.0) / 6.0).clamp(0.0, 1.0);
                let noise = ((x * 7 + y * 13) % 11) as f32 / 200.0;
                [0.8 * a + 0.1 + noise, 0.3 + noise, 0.9 - 0.7 * a]
            })
            .collect();
        let tri: Vec<u8> = (0..w * h)
            .map(|i| match i % w {
                0..12 => 0,
                28.. => 255,
                _ => 128,
            })
            .collect();
        build(&img, &tri, w, h)
    }

    #[test]
    fn with_every_pixel_unknown_the_rows_sum_to_zero_and_mirror_each_other() {
        // The matting Laplacian maps constants to zero (each window's weights, means and
        // delta term) and is symmetric: A_ij, built in row i, equals A_ji, built in row j,
        // only if every entry lands in the slot of its offset.
        let (w, h) = (12, 10);
        let img: Vec<RgbF> = (0..w * h)
            .map(|i| {
                let v = ((i * 37) % 17) as f32 / 17.0;
                [v, 1.0 - v, (i % 5) as f32 / 5.0]
            })
            .collect();
        let a = build(&img, &vec![128; w * h], w, h);
        assert_eq!(a.len(), w * h);
        let mut y = vec![0.0; a.len()];
        a.apply(&vec![1.0; a.len()], &mut y);
        let largest = a.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(largest > 1.0);
        for (i, v) in y.iter().enumerate() {
            assert!(v.abs() <= 1e-9 * largest, "row {i} sums to {v}");
        }
        for i in 0..a.len() {
            for s in 0..SLOTS {
                let j = a.cols[i * SLOTS + s];
                if j == NONE {
                    continue;
                }
                let (aij, aji) = (
                    a.values[i * SLOTS + s],
                    a.values[j as usize * SLOTS + SLOTS - 1 - s],
                );
                assert!(
                    (aij - aji).abs() <= 1e-9 * largest,
                    "A[{i}][{j}] {aij} vs {aji}"
                );
            }
        }
    }
}
