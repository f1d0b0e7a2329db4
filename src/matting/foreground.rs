//! Foreground colour estimation: Germer, Uelwer, Conrad and Harmeling, "Fast Multi-Level
//! Foreground Estimation" (ICPR 2020), as pymatting's `estimate_foreground_ml`. Solves
//! I = αF + (1−α)B for smooth F and B from coarse to fine, so a strand's colour comes from
//! the strand and not from the background it was photographed over.
//!
//! Levels small enough are updated everywhere; on larger ones only pixels near partial
//! alpha change (elsewhere F or B is the pixel itself, or does not show), which keeps a
//! 12 MP image's cost in its band.

use rayon::prelude::*;

use super::RgbF;

const REGULARIZATION: f32 = 1e-5;
const GRADIENT_WEIGHT: f32 = 1.0;
const SMALL_ITERATIONS: usize = 10;
const BIG_ITERATIONS: usize = 2;
const SMALL_SIZE: usize = 32;
/// Levels with more pixels than this are updated only near partial alpha.
const DENSE_LEVEL_PIXELS: usize = 1 << 18;
/// How far from partial alpha a sparse level still updates, in that level's pixels.
const SPARSE_REACH: usize = 4;

/// One level's buffers.
struct Level {
    w: usize,
    h: usize,
    image: Vec<RgbF>,
    alpha: Vec<f32>,
    fg: Vec<RgbF>,
    bg: Vec<RgbF>,
}

/// Nearest-neighbour resize, as the method specifies (no blur across the edge).
fn resize_nearest<T: Copy + Send + Sync>(
    src: &[T],
    sw: usize,
    sh: usize,
    w: usize,
    h: usize,
) -> Vec<T> {
    let xs: Vec<usize> = (0..w).map(|x| ((x * sw) / w).min(sw - 1)).collect();
    (0..h)
        .into_par_iter()
        .flat_map_iter(|y| {
            let sy = ((y * sh) / h).min(sh - 1);
            xs.iter().map(move |&sx| src[sy * sw + sx])
        })
        .collect()
}

/// The new F and B of pixel i from its own colour and its four neighbours' F and B.
fn update(lv: &Level, i: usize) -> (RgbF, RgbF) {
    let pulls =
        neighbours(i % lv.w, i / lv.w, lv.w, lv.h).map(|j| (lv.alpha[j], lv.fg[j], lv.bg[j]));
    solve_pixel(lv.alpha[i], lv.image[i], &pulls)
}

/// The indices of (x, y)'s four neighbours in a w×h grid, clamped at the border.
fn neighbours(x: usize, y: usize, w: usize, h: usize) -> [usize; 4] {
    [
        y * w + x.saturating_sub(1),
        y * w + (x + 1).min(w - 1),
        y.saturating_sub(1) * w + x,
        (y + 1).min(h - 1) * w + x,
    ]
}

/// A pixel's F and B: the least-squares solution of its compositing equation
/// I = αF + (1−α)B together with a pull towards each neighbour's (α, F, B), weighted by
/// how alike the two alphas are (an edge in alpha lets the colours differ).
fn solve_pixel(a0: f32, px: RgbF, neighbours: &[(f32, RgbF, RgbF)]) -> (RgbF, RgbF) {
    let a1 = 1.0 - a0;
    let (mut a00, a01, mut a11) = (a0 * a0, a0 * a1, a1 * a1);
    let mut b0 = [a0 * px[0], a0 * px[1], a0 * px[2]];
    let mut b1 = [a1 * px[0], a1 * px[1], a1 * px[2]];
    for (aj, fj, bj) in neighbours {
        let da = REGULARIZATION + GRADIENT_WEIGHT * (a0 - aj).abs();
        a00 += da;
        a11 += da;
        for c in 0..3 {
            b0[c] += da * fj[c];
            b1[c] += da * bj[c];
        }
    }
    let inv_det = 1.0 / (a00 * a11 - a01 * a01);
    let (m00, m01, m11) = (inv_det * a11, -inv_det * a01, inv_det * a00);
    let mut f = [0.0; 3];
    let mut b = [0.0; 3];
    for c in 0..3 {
        f[c] = (m00 * b0[c] + m01 * b1[c]).clamp(0.0, 1.0);
        b[c] = (m01 * b0[c] + m11 * b1[c]).clamp(0.0, 1.0);
    }
    (f, b)
}

/// One red-black sweep over `pixels` (sorted by parity of x+y): each half reads only the
/// other half's values, so it runs in parallel yet converges like the sequential method.
fn sweep(lv: &mut Level, halves: &[Vec<u32>; 2]) {
    for half in halves {
        let new: Vec<(RgbF, RgbF)> = half.par_iter().map(|&i| update(lv, i as usize)).collect();
        for (&i, (f, b)) in half.iter().zip(new) {
            lv.fg[i as usize] = f;
            lv.bg[i as usize] = b;
        }
    }
}

/// Pixel indices of a level split by the parity of x+y: all of them, or (large levels)
/// only those within SPARSE_REACH of partial alpha.
fn active_pixels(lv: &Level) -> [Vec<u32>; 2] {
    let (w, h) = (lv.w, lv.h);
    let dense = w * h <= DENSE_LEVEL_PIXELS;
    let near = if dense {
        Vec::new()
    } else {
        let partial: Vec<bool> = lv.alpha.iter().map(|&a| a > 0.0 && a < 1.0).collect();
        super::trimap::dilate(&partial, w, h, SPARSE_REACH)
    };
    let mut halves = [Vec::new(), Vec::new()];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if dense || near[i] {
                halves[(x + y) % 2].push(i as u32);
            }
        }
    }
    halves
}

/// The foreground colours of `image` under `alpha` (both w×h, values in 0..=1).
pub fn estimate(image: &[RgbF], alpha: &[f32], w: usize, h: usize) -> Vec<RgbF> {
    estimate_both(image, alpha, w, h).0
}

/// The foreground and background colours of `image` under `alpha`.
pub fn estimate_both(image: &[RgbF], alpha: &[f32], w: usize, h: usize) -> (Vec<RgbF>, Vec<RgbF>) {
    if w == 0 || h == 0 {
        return (Vec::new(), Vec::new());
    }
    let n = image.len() as f64;
    let mut mean = [0.0f64; 3];
    for p in image {
        for c in 0..3 {
            mean[c] += p[c] as f64 / n;
        }
    }
    let mean = [mean[0] as f32, mean[1] as f32, mean[2] as f32];
    let levels = (w.max(h) as f64).log2().ceil().max(1.0) as i32;
    let (mut fg, mut bg, mut pw, mut ph) = (vec![mean], vec![mean], 1usize, 1usize);
    for level in 0..=levels {
        let t = level as f64 / levels as f64;
        let lw = ((w as f64).powf(t).round() as usize).clamp(1, w);
        let lh = ((h as f64).powf(t).round() as usize).clamp(1, h);
        let full = lw == w && lh == h;
        let mut lv = Level {
            w: lw,
            h: lh,
            image: if full {
                image.to_vec()
            } else {
                resize_nearest(image, w, h, lw, lh)
            },
            alpha: if full {
                alpha.to_vec()
            } else {
                resize_nearest(alpha, w, h, lw, lh)
            },
            fg: resize_nearest(&fg, pw, ph, lw, lh),
            bg: resize_nearest(&bg, pw, ph, lw, lh),
        };
        let iterations = if lw <= SMALL_SIZE && lh <= SMALL_SIZE {
            SMALL_ITERATIONS
        } else {
            BIG_ITERATIONS
        };
        let halves = active_pixels(&lv);
        for _ in 0..iterations {
            sweep(&mut lv, &halves);
        }
        (fg, bg, pw, ph) = (lv.fg, lv.bg, lw, lh);
    }
    (fg, bg)
}

/// The colours of a photo matted at a working level (see [`super::work_level`]): each
/// pixel of partial alpha gets one update of the method at full size, its neighbours'
/// colours taken from the level's estimates (`fg`, `bg`) bilinearly upsampled at the
/// pixel, their alphas from the photo's 8-bit matte. `band` lists the matte's unknown
/// pixels (index y·w + x) with their alpha; those of partial alpha get a colour. That is the method's own step from a coarse
/// level to a finer one, made once and only where a colour is wanted.
pub fn refine_at_full_size(
    level: &super::work_level::Level,
    (fg, bg): (&[RgbF], &[RgbF]),
    rgba: &[u8],
    alpha: &image::GrayImage,
    band: &[(u32, f32)],
) -> Vec<(u32, RgbF)> {
    let (w, h) = (alpha.width() as usize, alpha.height() as usize);
    let grey = alpha.as_raw();
    band.par_iter()
        .filter(|(_, a)| *a > 0.0 && *a < 1.0)
        .map(|&(i, a0)| {
            let (x, y) = (i as usize % w, i as usize / w);
            let (cx, cy) = level.at(x, y);
            let f0 = super::bilinear(fg, level.w, level.h, cx, cy);
            let b0 = super::bilinear(bg, level.w, level.h, cx, cy);
            let pulls = neighbours(x, y, w, h).map(|j| (grey[j] as f32 / 255.0, f0, b0));
            let px = super::rgb_at(rgba, i as usize);
            (i, solve_pixel(a0, px, &pulls).0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matting::{trimap, work_level::Level};

    #[test]
    fn the_full_size_step_takes_each_pixels_own_colour_not_the_levels() {
        // A 2×1 level whose estimate says red foreground over blue background, for a 4×2
        // photo of a faint strand (alpha 0.4 about pixel (1, 0), which is half green over
        // that blue).
        let level = Level {
            w: 2,
            h: 1,
            s: 2,
            img: vec![[0.5; 3]; 2],
            trimap: vec![trimap::UNKNOWN; 2],
        };
        let (fg, bg) = (vec![[0.9, 0.1, 0.1]; 2], vec![[0.1, 0.1, 0.9]; 2]);
        let (green, blue) = ([0.1f32, 0.9, 0.1], [0.1f32, 0.1, 0.9]);
        let mut rgba = vec![255u8; 4 * 2 * 4];
        let mix = [0, 1, 2].map(|c| ((0.5 * green[c] + 0.5 * blue[c]) * 255.0) as u8);
        rgba[4..7].copy_from_slice(&mix);
        let alpha = image::GrayImage::from_raw(4, 2, vec![102, 128, 102, 0, 0, 102, 0, 0]).unwrap();
        let colours = refine_at_full_size(&level, (&fg, &bg), &rgba, &alpha, &[(0, 0.0), (1, 0.5)]);
        assert_eq!(colours.len(), 1, "only the partial pixel gets a colour");
        let (i, f) = colours[0];
        assert_eq!(i, 1);
        // The pixel's own green pulls the colour well away from the level's red (the
        // neighbours' like alphas hold it partway: the method's smoothness).
        assert!(f[1] > 0.3 && f[0] < 0.7, "{f:?}");
    }
}
