//! Soft edges: alpha matting in a band around a selection's edge, and the foreground
//! colours there, so hair and fur keep their strands and lose the old background.
//!
//! [`trimap`] sizes the band from the selection and the image, [`laplacian`] and [`pcg`]
//! solve the closed-form matte inside it, [`foreground`] estimates the colours, and
//! [`pass`] ties them together as the one soft-edge pass every front door calls.

pub mod foreground;
pub mod laplacian;
pub mod pass;
pub mod pcg;
pub mod trimap;

pub use pass::{EdgeOptions, Edges, SoftCut, compose, soft_cut};

/// Linear RGB samples in 0..=1 (the sRGB codes scaled; matting works on them as stored).
pub type RgbF = [f32; 3];

/// Relative residual at which the alpha solve stops. 1e-3 scored as well as 1e-4 on the
/// matting benchmark (early stopping smooths a little) at a third of the iterations.
const TOLERANCE: f64 = 1e-3;
/// A bound on the iterations, for pathological inputs.
const MAX_ITERATIONS: usize = 1000;

/// RGB(A) bytes as 0..=1 floats, dropping alpha.
pub fn to_float(rgba: &[u8]) -> Vec<RgbF> {
    use rayon::prelude::*;
    rgba.par_chunks_exact(4)
        .map(|p| {
            [
                p[0] as f32 / 255.0,
                p[1] as f32 / 255.0,
                p[2] as f32 / 255.0,
            ]
        })
        .collect()
}

/// The alpha matte (0..=1 a pixel) of a w×h image under a trimap (0 background, 255
/// foreground, anything else unknown; see [`trimap`]): known pixels keep their value,
/// unknown ones get the closed-form solution.
pub fn solve_alpha(img: &[RgbF], trimap: &[u8], w: usize, h: usize) -> Vec<f32> {
    let started = std::time::Instant::now();
    let system = laplacian::build(img, trimap, w, h);
    let built = started.elapsed();
    let mut x: Vec<f64> = vec![0.5; system.len()];
    let iterations = pcg::solve(&system, &mut x, TOLERANCE, MAX_ITERATIONS);
    tracing::debug!(
        "alpha: {} unknowns, built in {built:?}, {iterations} iterations in {:?}",
        system.len(),
        started.elapsed() - built
    );
    let mut alpha: Vec<f32> = trimap
        .iter()
        .map(|&t| laplacian::known_alpha(t).unwrap_or(0.0))
        .collect();
    for (&p, &v) in system.pixels.iter().zip(&x) {
        alpha[p as usize] = v.clamp(0.0, 1.0) as f32;
    }
    alpha
}
