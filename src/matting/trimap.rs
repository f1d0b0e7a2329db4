//! The band (a trimap's unknown region) around a selection's edge, sized by the image:
//! narrow where the edge is one crisp step, wider where the neighbourhood is full of fine
//! structure (hair, fur) or the two sides hardly differ.
//!
//! The measure: in a window about the edge, the summed image gradient divided by what one
//! clean step of the window's inside/outside contrast would give. A crisp edge scores about
//! 1; strands add two edges each and score many times that.

use rayon::prelude::*;

use super::RgbF;
pub use crate::morphology::dilate;

/// Trimap values, as `aicut matte` reads and writes them.
pub const BACKGROUND: u8 = 0;
pub const UNKNOWN: u8 = 128;
pub const FOREGROUND: u8 = 255;

/// The narrowest band, as a share of the base width (crisp edges).
const MIN_SCALE: f32 = 0.5;
/// The widest band, as a multiple of the base width (fine or soft edges).
const MAX_SCALE: f32 = 3.0;

/// Per-block sums for the softness measure: gradient, selected count, selected and
/// unselected colour sums.
#[derive(Clone, Copy, Default)]
struct BlockSums {
    grad: f32,
    /// The steepest pixel: a blurred edge's contrast over it is the blur's width.
    grad_max: f32,
    inside: f32,
    count: f32,
    sum_in: [f32; 3],
    sum_out: [f32; 3],
}

/// Sums over blocks of `bs`×`bs` pixels, one pass over the image.
fn block_sums(img: &[RgbF], sel: &[bool], w: usize, h: usize, bs: usize) -> Vec<BlockSums> {
    let (bw, bh) = (w.div_ceil(bs), h.div_ceil(bs));
    (0..bh)
        .into_par_iter()
        .flat_map_iter(|by| {
            let mut row = vec![BlockSums::default(); bw];
            for y in by * bs..((by + 1) * bs).min(h) {
                for x in 0..w {
                    let i = y * w + x;
                    let p = img[i];
                    let b = &mut row[x / bs];
                    let mut g = 0.0;
                    if x + 1 < w {
                        let q = img[i + 1];
                        g += (p[0] - q[0]).abs() + (p[1] - q[1]).abs() + (p[2] - q[2]).abs();
                    }
                    if y + 1 < h {
                        let q = img[i + w];
                        g += (p[0] - q[0]).abs() + (p[1] - q[1]).abs() + (p[2] - q[2]).abs();
                    }
                    b.grad += g;
                    b.grad_max = b.grad_max.max(g);
                    b.count += 1.0;
                    let sums = if sel[i] {
                        b.inside += 1.0;
                        &mut b.sum_in
                    } else {
                        &mut b.sum_out
                    };
                    for c in 0..3 {
                        sums[c] += p[c];
                    }
                }
            }
            row
        })
        .collect()
}

/// How the edge near block (bx, by) looks: (texture, blur). Texture is 1 for one clean
/// step, more for strands or weak contrast; blur is the width in pixels a step's contrast
/// is spread over (about 1 when sharp).
fn softness(
    blocks: &[BlockSums],
    bw: usize,
    bh: usize,
    bx: usize,
    by: usize,
    bs: usize,
) -> (f32, f32) {
    let mut acc = BlockSums::default();
    for y in by.saturating_sub(2)..(by + 3).min(bh) {
        for x in bx.saturating_sub(2)..(bx + 3).min(bw) {
            let b = &blocks[y * bw + x];
            acc.grad += b.grad;
            acc.grad_max = acc.grad_max.max(b.grad_max);
            acc.inside += b.inside;
            acc.count += b.count;
            for c in 0..3 {
                acc.sum_in[c] += b.sum_in[c];
                acc.sum_out[c] += b.sum_out[c];
            }
        }
    }
    let outside = acc.count - acc.inside;
    if acc.inside < 1.0 || outside < 1.0 {
        return (1.0, 1.0);
    }
    let contrast: f32 = (0..3)
        .map(|c| (acc.sum_in[c] / acc.inside - acc.sum_out[c] / outside).abs())
        .sum();
    // One straight step across the window: its length times the contrast (plus a floor so
    // flat, low-contrast windows do not divide by zero).
    let side = (acc.count.sqrt()).max(bs as f32);
    let texture = acc.grad / (side * contrast.max(0.05));
    let blur = contrast / acc.grad_max.max(1e-3);
    (texture, blur)
}

/// The trimap of a selection: pixels within the local band width of the selection's edge
/// are unknown; the rest are foreground (mask ≥ 128) or background. `base` is the band's
/// half width in pixels on an ordinary edge.
pub fn band_from_mask(img: &[RgbF], mask: &[u8], w: usize, h: usize, base: u32) -> Vec<u8> {
    let sel: Vec<bool> = mask.iter().map(|&m| m >= 128).collect();
    if w == 0 || h == 0 || base == 0 {
        return sel
            .iter()
            .map(|&s| if s { FOREGROUND } else { BACKGROUND })
            .collect();
    }
    let bs = (base as usize).max(2);
    let (bw, bh) = (w.div_ceil(bs), h.div_ceil(bs));
    let blocks = block_sums(img, &sel, w, h, bs);
    let scale: Vec<f32> = (0..bw * bh)
        .into_par_iter()
        .map(|b| {
            let (texture, blur) = softness(&blocks, bw, bh, b % bw, b / bw, bs);
            // 1.5 or less reads as crisp; 6 or more as fully fine-structured.
            let fine = ((texture - 1.5) / 4.5).clamp(0.0, 1.0);
            let scale = MIN_SCALE + (MAX_SCALE - MIN_SCALE) * fine;
            // A blurred edge needs the band to cover its ramp, whatever its texture.
            let ramp = (0.6 * blur + 1.0) / base as f32;
            scale.max(ramp).min(MAX_SCALE)
        })
        .collect();
    // Reach left at each pixel: the band radius at edge pixels (selection changes to a
    // 4-neighbour, or the mask itself is partial), then a cone falling 1 a pixel.
    let mut reach: Vec<f32> = vec![f32::NEG_INFINITY; w * h];
    reach.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, r) in row.iter_mut().enumerate() {
            let i = y * w + x;
            let s = sel[i];
            let edge = (mask[i] > 0 && mask[i] < 255)
                || (x + 1 < w && sel[i + 1] != s)
                || (x > 0 && sel[i - 1] != s)
                || (y + 1 < h && sel[i + w] != s)
                || (y > 0 && sel[i - w] != s);
            if edge {
                *r = base as f32 * scale[(y / bs) * bw + x / bs];
            }
        }
    });
    cone_spread(&mut reach, w, h);
    sel.iter()
        .zip(&reach)
        .map(|(&s, &r)| {
            if r >= 0.0 {
                UNKNOWN
            } else if s {
                FOREGROUND
            } else {
                BACKGROUND
            }
        })
        .collect()
}

/// v(p) = max over q of v(q) − dist(p, q), with the chamfer (1, √2) distance: two raster
/// passes.
fn cone_spread(v: &mut [f32], w: usize, h: usize) {
    const D: f32 = std::f32::consts::SQRT_2;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let mut m = v[i];
            if x > 0 {
                m = m.max(v[i - 1] - 1.0);
            }
            if y > 0 {
                m = m.max(v[i - w] - 1.0);
                if x > 0 {
                    m = m.max(v[i - w - 1] - D);
                }
                if x + 1 < w {
                    m = m.max(v[i - w + 1] - D);
                }
            }
            v[i] = m;
        }
    }
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            let i = y * w + x;
            let mut m = v[i];
            if x + 1 < w {
                m = m.max(v[i + 1] - 1.0);
            }
            if y + 1 < h {
                m = m.max(v[i + w] - 1.0);
                if x + 1 < w {
                    m = m.max(v[i + w + 1] - D);
                }
                if x > 0 {
                    m = m.max(v[i + w - 1] - D);
                }
            }
            v[i] = m;
        }
    }
}

/// Widens the unknown region of a trimap by `r` pixels (the benchmark's coarse trimaps).
pub fn widen_unknown(trimap: &[u8], w: usize, h: usize, r: usize) -> Vec<u8> {
    let unknown: Vec<bool> = trimap
        .iter()
        .map(|&t| t != BACKGROUND && t != FOREGROUND)
        .collect();
    let wide = dilate(&unknown, w, h, r);
    trimap
        .iter()
        .zip(wide)
        .map(|(&t, u)| if u { UNKNOWN } else { t })
        .collect()
}
