//! Soft edges: alpha matting in a band around a selection's edge, and the foreground
//! colours there, so hair and fur keep their strands and lose the old background.
//!
//! [`trimap`] sizes the band from the selection and the image, [`solve`] finds the closed-form
//! matte inside it ([`laplacian`], [`pcg`]), [`foreground`] estimates the colours, and
//! [`pass`] ties them together as the one soft-edge pass every front door calls.

pub mod foreground;
pub mod laplacian;
pub mod pass;
pub mod pcg;
pub mod solve;
pub mod trimap;

pub use pass::{EdgeOptions, Edges, SoftAlpha, SoftCut, soft_alpha, soft_cut, soft_matte};
pub use solve::solve_alpha;

/// Linear RGB samples in 0..=1 (the sRGB codes scaled; matting works on them as stored).
pub type RgbF = [f32; 3];

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
