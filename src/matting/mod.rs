//! Soft edges: alpha matting in a band around a selection's edge, and the foreground
//! colours there, so hair and fur keep their strands and lose the old background.
//!
//! [`trimap`] sizes the band from the selection and the image, [`solve`] finds the closed-form
//! matte inside it ([`laplacian`], [`pcg`]), [`foreground`] estimates the colours, and
//! [`pass`] ties them together as the one soft-edge pass every front door calls.

pub mod foreground;
pub mod guided;
pub mod ichol;
pub mod laplacian;
pub mod pass;
pub mod pcg;
pub mod solve;
pub mod stencil;
pub mod trimap;
pub mod work_level;

pub use pass::{
    EdgeOptions, Edges, SoftAlpha, SoftCut, matte, matte_at, soft_alpha, soft_cut, soft_matte,
};
pub use solve::solve_alpha;

/// Linear RGB samples in 0..=1 (the sRGB codes scaled; matting works on them as stored).
pub type RgbF = [f32; 3];

/// RGB(A) bytes as 0..=1 floats, dropping alpha.
pub fn to_float(rgba: &[u8]) -> Vec<RgbF> {
    use rayon::prelude::*;
    (0..rgba.len() / 4)
        .into_par_iter()
        .map(|i| rgb_at(rgba, i))
        .collect()
}

/// Pixel i of RGBA bytes as colour in 0..=1.
pub fn rgb_at(rgba: &[u8], i: usize) -> RgbF {
    [0, 1, 2].map(|c| rgba[i * 4 + c] as f32 / 255.0)
}

/// The four grid pixels around (x, y), in pixel-index coordinates clamped to a w×h grid,
/// with their bilinear weights.
fn bilinear_taps(w: usize, h: usize, x: f32, y: f32) -> [(usize, f32); 4] {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    [
        (y0 * w + x0, (1.0 - fx) * (1.0 - fy)),
        (y0 * w + x1, fx * (1.0 - fy)),
        (y1 * w + x0, (1.0 - fx) * fy),
        (y1 * w + x1, fx * fy),
    ]
}

/// A field of N-channel values sampled bilinearly at (x, y) (see [`bilinear_taps`]).
pub fn bilinear<const N: usize>(v: &[[f32; N]], w: usize, h: usize, x: f32, y: f32) -> [f32; N] {
    let mut out = [0.0; N];
    for (i, wt) in bilinear_taps(w, h, x, y) {
        for (o, c) in out.iter_mut().zip(v[i]) {
            *o += wt * c;
        }
    }
    out
}
