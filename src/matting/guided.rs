//! Guided upsampling of a matte (He and Sun, "Fast Guided Filter", 2015): in each small
//! window of the coarse image, alpha is fitted as a linear function of colour,
//! α ≈ a·I + b (the same local model the closed-form matte rests on). The fitted a and b
//! vary slowly, so they can be upsampled; applied to the full-resolution colours they give
//! back the fine detail (strands, fur) that the coarse matte could not hold.

use rayon::prelude::*;

use super::RgbF;

/// Window radius at the coarse level: 3×3 windows, as the matting Laplacian's.
pub const RADIUS: usize = 1;
/// Regularisation of each window's colour covariance: how flat a window's colour must be
/// before its fit falls back to the mean alpha (colours in 0..=1).
pub const EPSILON: f32 = 1e-5;

/// The per-pixel linear model of alpha on colour: (a_r, a_g, a_b, b).
pub type Coefficients = [f32; 4];

/// The fit of one window: a = (Σ + εU)⁻¹ cov(I, α), b = ᾱ − a·μ, from the window's means
/// of I (3), I Iᵀ (6: rr rg rb gg gb bb), α and I α (3).
fn fit(m: &[f32; 13]) -> Coefficients {
    let mu = [m[0] as f64, m[1] as f64, m[2] as f64];
    let cov = |k: usize, i: usize, j: usize| m[k] as f64 - mu[i] * mu[j];
    let eps = EPSILON as f64;
    let (rr, rg, rb) = (cov(3, 0, 0) + eps, cov(4, 0, 1), cov(5, 0, 2));
    let (gg, gb, bb) = (cov(6, 1, 1) + eps, cov(7, 1, 2), cov(8, 2, 2) + eps);
    let alpha = m[9] as f64;
    let ci = [0, 1, 2].map(|c| m[10 + c] as f64 - mu[c] * alpha);
    // The inverse of the symmetric 3×3 matrix by cofactors.
    let inv = [
        gg * bb - gb * gb,
        gb * rb - rg * bb,
        rg * gb - gg * rb,
        rr * bb - rb * rb,
        rg * rb - rr * gb,
        rr * gg - rg * rg,
    ];
    let det = rr * inv[0] + rg * inv[1] + rb * inv[2];
    let a = [
        (inv[0] * ci[0] + inv[1] * ci[1] + inv[2] * ci[2]) / det,
        (inv[1] * ci[0] + inv[3] * ci[1] + inv[4] * ci[2]) / det,
        (inv[2] * ci[0] + inv[4] * ci[1] + inv[5] * ci[2]) / det,
    ];
    let b = alpha - a[0] * mu[0] - a[1] * mu[1] - a[2] * mu[2];
    [a[0] as f32, a[1] as f32, a[2] as f32, b as f32]
}

/// The guided filter's averaged coefficients of a w×h image and its matte at the pixels
/// `wanted` marks (zero elsewhere): each is the mean of the fits of the windows holding
/// it. Only those windows are fitted, so the cost follows the band.
pub fn coefficients(
    img: &[RgbF],
    alpha: &[f32],
    (w, h): (usize, usize),
    wanted: &[bool],
) -> Vec<Coefficients> {
    let fitted = crate::morphology::dilate(wanted, w, h, RADIUS);
    let fits = at_marked(&fitted, w, h, |x, y| {
        let mut m = [0.0f32; 13];
        let n = window_sum(w, h, x, y, |i| {
            let ([r, g, b], a) = (img[i], alpha[i]);
            let v = [
                r,
                g,
                b,
                r * r,
                r * g,
                r * b,
                g * g,
                g * b,
                b * b,
                a,
                r * a,
                g * a,
                b * a,
            ];
            for (s, v) in m.iter_mut().zip(v) {
                *s += v;
            }
        });
        fit(&m.map(|v| v / n))
    });
    at_marked(wanted, w, h, |x, y| {
        let mut c = [0.0f32; 4];
        let n = window_sum(w, h, x, y, |i| {
            for (s, v) in c.iter_mut().zip(fits[i]) {
                *s += v;
            }
        });
        c.map(|v| v / n)
    })
}

/// Calls `visit` with each pixel of the (2·RADIUS+1)² window about (x, y), clipped to the
/// image; returns how many it held.
fn window_sum(w: usize, h: usize, x: usize, y: usize, mut visit: impl FnMut(usize)) -> f32 {
    let (x0, x1) = (x.saturating_sub(RADIUS), (x + RADIUS).min(w - 1));
    let (y0, y1) = (y.saturating_sub(RADIUS), (y + RADIUS).min(h - 1));
    for yy in y0..=y1 {
        for xx in x0..=x1 {
            visit(yy * w + xx);
        }
    }
    ((x1 + 1 - x0) * (y1 + 1 - y0)) as f32
}

/// `f` at every marked pixel of a w×h grid, zero elsewhere.
fn at_marked<T: Default + Copy + Send>(
    marked: &[bool],
    w: usize,
    h: usize,
    f: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    let mut out = vec![T::default(); w * h];
    out.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(y, row)| {
            for (x, o) in row.iter_mut().enumerate() {
                if marked[y * w + x] {
                    *o = f(x, y);
                }
            }
        });
    out
}

/// Alpha of one pixel of colour `px` under the model `c`, clamped to 0..=1.
pub fn apply(c: &Coefficients, px: RgbF) -> f32 {
    (c[0] * px[0] + c[1] * px[1] + c[2] * px[2] + c[3]).clamp(0.0, 1.0)
}

/// Where the centre of pixel (x, y) of a grid s times finer falls in a coarse grid's
/// pixel-index coordinates.
pub fn coarse_at(x: usize, y: usize, s: usize) -> (f32, f32) {
    let s = s as f32;
    ((x as f32 + 0.5) / s - 0.5, (y as f32 + 0.5) / s - 0.5)
}

/// A coarse matte fitted for guided upsampling to a grid `s` times finer: the coarse
/// pyramid level's start for the next one, and a large photo's working level.
pub struct Upsampling {
    coef: Vec<Coefficients>,
    w: usize,
    h: usize,
    s: usize,
}

impl Upsampling {
    /// Fits the coarse image `img` (w×h) and its matte about the pixels its trimap leaves
    /// unknown: those are the ones the finer grid's unknown pixels sample.
    pub fn new(
        img: &[RgbF],
        alpha: &[f32],
        trimap: &[u8],
        (w, h): (usize, usize),
        s: usize,
    ) -> Self {
        let unknown: Vec<bool> = (trimap.iter())
            .map(|&t| super::laplacian::known_alpha(t).is_none())
            .collect();
        let wanted = crate::morphology::dilate(&unknown, w, h, 1);
        let coef = coefficients(img, alpha, (w, h), &wanted);
        Upsampling { coef, w, h, s }
    }

    /// The alpha of pixel (x, y) of the finer grid, whose colour is `px`.
    pub fn alpha_at(&self, x: usize, y: usize, px: RgbF) -> f32 {
        let (cx, cy) = coarse_at(x, y, self.s);
        apply(&super::bilinear(&self.coef, self.w, self.h, cx, cy), px)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matte_that_is_linear_in_colour_is_fitted_exactly() {
        // α = 0.5 r − 0.3 g + 0.37 (within 0..1) over an image of independent channels.
        let (w, h) = (24, 18);
        let img: Vec<RgbF> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                [
                    0.5 + 0.4 * (x * 0.7).sin(),
                    0.5 + 0.4 * (y * 0.9 + x * 0.2).cos(),
                    0.5 + 0.3 * ((x + 2.0 * y) * 0.5).sin(),
                ]
            })
            .collect();
        let alpha: Vec<f32> = img.iter().map(|p| 0.5 * p[0] - 0.3 * p[1] + 0.37).collect();
        let coef = coefficients(&img, &alpha, (w, h), &vec![true; w * h]);
        for (i, p) in img.iter().enumerate() {
            let got = apply(&coef[i], *p);
            assert!(
                (got - alpha[i]).abs() < 0.01,
                "pixel {i}: {got} vs {}",
                alpha[i]
            );
        }
    }

    #[test]
    fn coefficients_exist_only_where_wanted_and_windows_clip_at_the_border() {
        // A flat image: every fit is the window's mean alpha with a = 0.
        let (w, h) = (4, 3);
        let img = vec![[0.5; 3]; w * h];
        let alpha: Vec<f32> = (0..w * h).map(|i| i as f32 / 12.0).collect();
        let mut wanted = vec![false; w * h];
        wanted[0] = true;
        wanted[5] = true;
        let coef = coefficients(&img, &alpha, (w, h), &wanted);
        // Pixel 0 averages the fits of windows 0, 1, 4, 5, whose means are 2.5, 3, 4.5
        // and 5 twelfths; pixel 5 the nine windows about it, 46.5 / 9 twelfths.
        assert!((coef[0][3] - 3.75 / 12.0).abs() < 1e-5, "{:?}", coef[0]);
        assert!(
            (coef[5][3] - 46.5 / 9.0 / 12.0).abs() < 1e-5,
            "{:?}",
            coef[5]
        );
        assert!(coef[0][..3].iter().all(|a| a.abs() < 1e-5));
        assert_eq!(coef[11], [0.0; 4]);
    }
}
