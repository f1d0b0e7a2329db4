//! From the decoder's 256x256 logits to a full-resolution alpha mask, as the reference's
//! `postprocess_masks` does it: bilinear (half-pixel centres) up to the 1024 square, crop the
//! padding, bilinear again to the photo's size. The reference then thresholds at zero; we
//! keep the edge anti-aliased instead, with alpha = 0.5 + logit / |gradient| clamped to
//! [0, 1] (the pixel's signed distance to the zero crossing), so alpha >= 0.5 exactly
//! where the reference's mask is set and there is no staircase from a binary upscale.

use rayon::prelude::*;

use super::model::{IMAGE_SIZE, LOW_RES_SIZE};
use crate::engine::AlphaMask;

/// Source taps of one output index for PyTorch's `interpolate(mode="bilinear",
/// align_corners=False)`: `(i0, i1, w0, w1)`, in f32 as PyTorch's CPU kernel.
fn taps(in_size: usize, out_size: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|d| {
            let src = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(in_size - 1);
            let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// Bilinear resize of a row-major map from `(iw, ih)` to `(ow, oh)`, keeping only the
/// first `keep_w` x `keep_h` output samples (the crop of the padded square).
fn resize(
    map: &[f32],
    (iw, ih): (usize, usize),
    (ow, oh): (usize, usize),
    (keep_w, keep_h): (usize, usize),
) -> Vec<f32> {
    let xs = taps(iw, ow);
    let ys = taps(ih, oh);
    let mut out = vec![0f32; keep_w * keep_h];
    out.par_chunks_exact_mut(keep_w)
        .zip(&ys[..keep_h])
        .for_each(|(row, &(y0, y1, wy0, wy1))| {
            let (r0, r1) = (&map[y0 * iw..][..iw], &map[y1 * iw..][..iw]);
            for (o, &(x0, x1, wx0, wx1)) in row.iter_mut().zip(&xs[..keep_w]) {
                let top = r0[x0] * wx0 + r0[x1] * wx1;
                let bottom = r1[x0] * wx0 + r1[x1] * wx1;
                *o = top * wy0 + bottom * wy1;
            }
        });
    out
}

/// Full-resolution logits of one low-res map: `encoder` is the image's size in the 1024
/// frame, `full` the photo's size.
pub fn full_res_logits(low_res: &[f32], encoder: (u32, u32), full: (u32, u32)) -> Vec<f32> {
    let square = (IMAGE_SIZE, IMAGE_SIZE);
    let crop = (encoder.0 as usize, encoder.1 as usize);
    let padded = resize(low_res, (LOW_RES_SIZE, LOW_RES_SIZE), square, crop);
    let full = (full.0 as usize, full.1 as usize);
    resize(&padded, crop, full, full)
}

/// The anti-aliased alpha mask of a full-resolution logit map.
pub fn alpha_from_logits(logits: &[f32], width: u32, height: u32) -> AlphaMask {
    let (w, h) = (width as usize, height as usize);
    let at = |x: usize, y: usize| logits[y * w + x];
    let mut alpha = vec![0u8; w * h];
    alpha
        .par_chunks_exact_mut(w.max(1))
        .enumerate()
        .for_each(|(y, row)| {
            for (x, a) in row.iter_mut().enumerate() {
                let l = at(x, y);
                let gx = (at((x + 1).min(w - 1), y) - at(x.saturating_sub(1), y)) * 0.5;
                let gy = (at(x, (y + 1).min(h - 1)) - at(x, y.saturating_sub(1))) * 0.5;
                let gradient = (gx * gx + gy * gy).sqrt();
                let coverage = if gradient > 1e-6 {
                    (0.5 + l / gradient).clamp(0.0, 1.0)
                } else if l > 0.0 {
                    1.0
                } else {
                    0.0
                };
                *a = if l > 0.0 {
                    // Never below half: a pixel the reference selects stays selected.
                    (coverage * 255.0).round().max(128.0) as u8
                } else {
                    (coverage * 255.0).round().min(127.0) as u8
                };
            }
        });
    AlphaMask::from_raw(width, height, alpha).expect("buffer sized from the dimensions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_follow_half_pixel_centres() {
        // Upscaling 2 -> 4: outputs at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped).
        let t = taps(2, 4);
        assert_eq!(t[0], (0, 1, 1.0, 0.0));
        assert_eq!(t[1], (0, 1, 0.75, 0.25));
        assert_eq!(t[2], (0, 1, 0.25, 0.75));
        assert_eq!(t[3], (1, 1, 0.75, 0.25));
    }

    #[test]
    fn alpha_is_half_set_exactly_where_logits_are_positive_and_soft_across_the_edge() {
        // A ramp crossing zero a quarter pixel right of column 4's centre.
        let (w, h) = (10u32, 3u32);
        let logits: Vec<f32> = (0..w * h).map(|i| (i % w) as f32 - 4.25).collect();
        let alpha = alpha_from_logits(&logits, w, h);
        for (i, a) in alpha.as_raw().iter().enumerate() {
            assert_eq!(*a >= 128, logits[i] > 0.0, "pixel {i}");
        }
        let row: Vec<u8> = (0..w).map(|x| alpha.get_pixel(x, 1).0[0]).collect();
        assert_eq!(row[0], 0);
        assert_eq!(row[9], 255);
        assert_eq!(row[4], 64, "a quarter of column 4 is inside: {row:?}");
        assert_eq!(row[5], 255);
    }
}
