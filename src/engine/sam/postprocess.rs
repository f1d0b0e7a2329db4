//! From the decoder's 256x256 logits to a full-resolution alpha mask, as the reference's
//! `postprocess_masks` does it: bilinear (half-pixel centres) up to the 1024 square, crop the
//! padding, bilinear again to the photo's size. The reference then thresholds at zero; we
//! keep the edge anti-aliased instead, with alpha = 0.5 + logit / |gradient| clamped to
//! [0, 1] (the pixel's signed distance to the zero crossing), so alpha >= 0.5 exactly
//! where the reference's mask is set and there is no staircase from a binary upscale.
//!
//! [`alpha_mask`] does both at once and evaluates the full-resolution logits only near the
//! mask's edge: a tile whose source samples show every pixel to be at least half a pixel
//! inside or outside (by the largest slope they allow) is filled without them. On a 12 MP
//! photo that skips most of the 12 million bilinear samples.

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
/// frame, `full` the photo's size. (The plain path, which [`alpha_mask`] is tested against.)
pub fn full_res_logits(low_res: &[f32], encoder: (u32, u32), full: (u32, u32)) -> Vec<f32> {
    let (padded, crop) = padded_crop(low_res, encoder);
    let full = (full.0 as usize, full.1 as usize);
    resize(&padded, crop, full, full)
}

/// The first step: the low-res map up to the 1024 square, cropped to the image.
fn padded_crop(low_res: &[f32], encoder: (u32, u32)) -> (Vec<f32>, (usize, usize)) {
    let square = (IMAGE_SIZE, IMAGE_SIZE);
    let crop = (encoder.0 as usize, encoder.1 as usize);
    let padded = resize(low_res, (LOW_RES_SIZE, LOW_RES_SIZE), square, crop);
    (padded, crop)
}

/// A pixel's alpha from its logit and central-difference gradient (branch-free, so the
/// row loops vectorise).
#[inline(always)]
fn alpha_at(l: f32, gx: f32, gy: f32) -> u8 {
    let gradient = (gx * gx + gy * gy).sqrt();
    let inside = if l > 0.0 { 1.0 } else { 0.0 };
    let coverage = if gradient > 1e-6 {
        (0.5 + l / gradient).clamp(0.0, 1.0)
    } else {
        inside
    };
    // Rounded half up (coverage is never negative).
    let a = coverage * 255.0 + 0.5;
    // Never below half where the logit is positive, never half where it is not: a pixel
    // is selected exactly where the reference selects it.
    let a = if l > 0.0 { a.max(128.0) } else { a.min(127.0) };
    // Within 0..=255 here; through i32, which vectorises where a direct cast does not.
    a as i32 as u8
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
                let gx = (at((x + 1).min(w - 1), y) - at(x.saturating_sub(1), y)) * 0.5;
                let gy = (at(x, (y + 1).min(h - 1)) - at(x, y.saturating_sub(1))) * 0.5;
                *a = alpha_at(at(x, y), gx, gy);
            }
        });
    AlphaMask::from_raw(width, height, alpha).expect("buffer sized from the dimensions")
}

/// Output pixels per side of the tiles [`alpha_mask`] decides on.
const TILE: usize = 16;

/// The bilinear map from the cropped 1024-frame logits to the photo.
struct Upsampler<'a> {
    map: &'a [f32],
    map_w: usize,
    xs: Vec<(usize, usize, f32, f32)>,
    ys: Vec<(usize, usize, f32, f32)>,
    /// Source samples per output pixel, across and down.
    scale: (f32, f32),
}

impl Upsampler<'_> {
    /// The alpha every pixel of columns `cols` and rows `rows` (and so their neighbours)
    /// is sure to get, if one: the source samples they blend bound their logits (a convex
    /// combination stays within them) and their gradient (a bilinear map's slope is at most
    /// the largest step between neighbouring samples).
    fn uniform(&self, cols: (usize, usize), rows: (usize, usize)) -> Option<u8> {
        let (w, h) = (self.xs.len(), self.ys.len());
        let (c0, c1) = (
            self.xs[cols.0.saturating_sub(1)].0,
            self.xs[cols.1.min(w - 1)].1,
        );
        let (r0, r1) = (
            self.ys[rows.0.saturating_sub(1)].0,
            self.ys[rows.1.min(h - 1)].1,
        );
        let (mut lo, mut hi, mut dx, mut dy) = (f32::INFINITY, f32::NEG_INFINITY, 0f32, 0f32);
        for r in r0..=r1 {
            let row = &self.map[r * self.map_w..][c0..=c1];
            let below = (r < r1).then(|| &self.map[(r + 1) * self.map_w..][c0..=c1]);
            for (i, &v) in row.iter().enumerate() {
                lo = lo.min(v);
                hi = hi.max(v);
                if i + 1 < row.len() {
                    dx = dx.max((row[i + 1] - v).abs());
                }
                if let Some(below) = below {
                    dy = dy.max((below[i] - v).abs());
                }
            }
        }
        // A central difference spans two output pixels: 2 * scale source samples, halved.
        let (gx, gy) = (dx * self.scale.0, dy * self.scale.1);
        let half_gradient = 0.5 * (gx * gx + gy * gy).sqrt() + 1e-6;
        if lo > 0.0 && lo >= half_gradient {
            Some(255)
        } else if hi < 0.0 && -hi >= half_gradient {
            Some(0)
        } else {
            None
        }
    }
}

/// The chosen low-res logits straight to the photo's anti-aliased alpha mask: equal to
/// `alpha_from_logits(&full_res_logits(..))`, computing full-resolution logits only in the
/// tiles the mask's edge crosses.
pub fn alpha_mask(low_res: &[f32], encoder: (u32, u32), full: (u32, u32)) -> AlphaMask {
    let (padded, crop) = padded_crop(low_res, encoder);
    let (w, h) = (full.0 as usize, full.1 as usize);
    let up = Upsampler {
        map: &padded,
        map_w: crop.0,
        xs: taps(crop.0, w),
        ys: taps(crop.1, h),
        scale: (crop.0 as f32 / w as f32, crop.1 as f32 / h as f32),
    };
    let mut alpha = vec![0u8; w * h];
    alpha
        .par_chunks_mut((w * TILE).max(1))
        .enumerate()
        .for_each(|(band, out)| {
            let rows = (band * TILE, (band * TILE + TILE).min(h));
            let tiles: Vec<Option<u8>> = (0..w)
                .step_by(TILE)
                .map(|x0| up.uniform((x0, (x0 + TILE).min(w)), rows))
                .collect();
            for (t, a) in tiles.iter().enumerate() {
                if let Some(a) = *a {
                    let cols = t * TILE..((t + 1) * TILE).min(w);
                    (0..rows.1 - rows.0).for_each(|y| out[y * w..][cols.clone()].fill(a));
                }
            }
            if tiles.iter().any(|t| t.is_none()) {
                edge_band(&up, &tiles, rows, out);
            }
        });
    AlphaMask::from_raw(full.0, full.1, alpha).expect("buffer sized from the dimensions")
}

/// The exact alpha of a band of rows' edge tiles (`tiles[i]` is `None`), `out` the band.
fn edge_band(up: &Upsampler, tiles: &[Option<u8>], rows: (usize, usize), out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { edge_band_avx2(up, tiles, rows, out) };
    }
    edge_band_generic(up, tiles, rows, out)
}

/// The same code compiled for AVX2: twice the lanes in the vectorised row loops. (No FMA:
/// the products stay rounded as `resize` rounds them.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn edge_band_avx2(
    up: &Upsampler,
    tiles: &[Option<u8>],
    rows: (usize, usize),
    out: &mut [u8],
) {
    edge_band_generic(up, tiles, rows, out)
}

#[inline(always)]
fn edge_band_generic(
    up: &Upsampler,
    tiles: &[Option<u8>],
    (y0, y1): (usize, usize),
    out: &mut [u8],
) {
    let (w, h) = (up.xs.len(), up.ys.len());
    // Runs of edge tiles, widened by a one-pixel apron: output columns -1..=w, the
    // photo's border pixels repeated past it (as the central differences clamp).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (t, a) in tiles.iter().enumerate() {
        if a.is_none() {
            let (x0, x1) = (t * TILE, ((t + 1) * TILE).min(w));
            match runs.last_mut() {
                Some(run) if run.1 == x0 + 1 => run.1 = x1 + 1,
                _ => runs.push((x0, x1 + 1)),
            }
        }
    }
    // Logit rows y0 - 1 ..= y1 (clamped), columns shifted by one for the apron.
    let rows: Vec<usize> = (y0 as isize - 1..=y1 as isize)
        .map(|y| y.clamp(0, h as isize - 1) as usize)
        .collect();
    let stride = w + 2;
    let col = |x: usize| (x as isize - 1).clamp(0, w as isize - 1) as usize;
    // Horizontal pass on the source rows used, then vertical: the same products in the
    // same order as `resize`.
    let (first, last) = (up.ys[rows[0]].0, up.ys[rows[rows.len() - 1]].1);
    let mut across = vec![0f32; (last - first + 1) * stride];
    let mut done = vec![false; last - first + 1];
    for &y in &rows {
        let (r0, r1, _, _) = up.ys[y];
        for r in [r0, r1] {
            if std::mem::replace(&mut done[r - first], true) {
                continue;
            }
            let src = &up.map[r * up.map_w..][..up.map_w];
            let dst = &mut across[(r - first) * stride..][..stride];
            for &(a, b) in &runs {
                for (x, d) in dst[a..=b].iter_mut().enumerate().map(|(i, d)| (a + i, d)) {
                    let (i0, i1, w0, w1) = up.xs[col(x)];
                    *d = src[i0] * w0 + src[i1] * w1;
                }
            }
        }
    }
    let mut l = vec![0f32; rows.len() * stride];
    for (dst, &y) in l.chunks_exact_mut(stride).zip(&rows) {
        let (r0, r1, w0, w1) = up.ys[y];
        let top = &across[(r0 - first) * stride..][..stride];
        let bottom = &across[(r1 - first) * stride..][..stride];
        for &(a, b) in &runs {
            let (dst, top, bottom) = (&mut dst[a..=b], &top[a..=b], &bottom[a..=b]);
            for ((d, &t), &b) in dst.iter_mut().zip(top).zip(bottom) {
                *d = t * w0 + b * w1;
            }
        }
    }
    for &(a, b) in &runs {
        // Output columns a..b-1 (the run without its apron), at l's columns a+1..b.
        let n = b - 1 - a;
        for (j, row) in out.chunks_mut(w).take(y1 - y0).enumerate() {
            // Equal-length slices, so the loop has no bounds checks and vectorises.
            let row = &mut row[a..][..n];
            let here = &l[(j + 1) * stride + a..][..n + 2];
            let (left, centre, right) = (&here[..n], &here[1..n + 1], &here[2..]);
            let above = &l[j * stride + a + 1..][..n];
            let below = &l[(j + 2) * stride + a + 1..][..n];
            for i in 0..n {
                let gx = (right[i] - left[i]) * 0.5;
                let gy = (below[i] - above[i]) * 0.5;
                row[i] = alpha_at(centre[i], gx, gy);
            }
        }
    }
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

    /// Smooth blobs with sharp and soft edges, as low-res logits.
    fn blobs(seed: u32) -> Vec<f32> {
        (0..LOW_RES_SIZE * LOW_RES_SIZE)
            .map(|i| {
                let (x, y) = ((i % 256) as f32, (i / 256) as f32);
                let s = seed as f32;
                let d = ((x - 90.0 - s).powi(2) + (y - 120.0).powi(2)).sqrt();
                let wave = ((x * 0.07 + s).sin() * (y * 0.05).cos()) * 6.0;
                (40.0 - d) * (0.2 + s * 0.3) + wave
            })
            .collect()
    }

    #[test]
    fn the_tiled_alpha_mask_equals_the_plain_path() {
        // Upscaled (12 MP, odd sizes), about the same, and downscaled from the 1024 frame.
        let cases = [
            ((1024, 768), (4000, 3000)),
            ((683, 1024), (1367, 2049)),
            ((1024, 768), (1024, 768)),
            ((1024, 641), (500, 313)),
        ];
        for (seed, (encoder, full)) in cases.into_iter().enumerate() {
            let low_res = blobs(seed as u32);
            let plain =
                alpha_from_logits(&full_res_logits(&low_res, encoder, full), full.0, full.1);
            let tiled = alpha_mask(&low_res, encoder, full);
            assert_eq!(tiled.dimensions(), plain.dimensions());
            let differ = (tiled.as_raw().iter().zip(plain.as_raw()))
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(differ, 0, "{encoder:?} to {full:?}");
            let edge = plain.as_raw().iter().filter(|&&a| a > 0 && a < 255).count();
            assert!(edge > 100, "the case has an edge: {edge}");
        }
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
