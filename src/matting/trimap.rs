//! The band (a trimap's unknown region) around a selection's edge, sized by the image:
//! narrow where the edge is one crisp step, wider where the neighbourhood is full of fine
//! structure (hair, fur) or the two sides hardly differ.
//!
//! The measure: in a window about the edge, the summed image gradient divided by what one
//! clean step of the window's inside/outside contrast would give. A crisp edge scores about
//! 1; strands add two edges each and score many times that.

use rayon::prelude::*;

pub use crate::morphology::dilate;

/// Trimap values, as `aicut matte` reads and writes them.
pub const BACKGROUND: u8 = 0;
pub const UNKNOWN: u8 = 128;
pub const FOREGROUND: u8 = 255;

/// The trimap value of a block of pixels with trimap values `values` (at least one):
/// known where all are known alike, unknown otherwise, so a coarser band covers the finer.
pub fn block_value(values: impl IntoIterator<Item = u8>) -> u8 {
    use super::laplacian::known_alpha;
    let mut values = values.into_iter().map(known_alpha);
    let first = values.next().flatten();
    match first {
        Some(a) if values.all(|v| v == first) => {
            if a >= 0.5 {
                FOREGROUND
            } else {
                BACKGROUND
            }
        }
        _ => UNKNOWN,
    }
}

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

/// Sums over block (bx, by) of `bs`×`bs` pixels of an RGBA image.
fn block_sums(
    rgba: &[u8],
    sel: &[bool],
    w: usize,
    h: usize,
    bs: usize,
    (bx, by): (usize, usize),
) -> BlockSums {
    let px = |i: usize| super::rgb_at(rgba, i);
    let mut b = BlockSums::default();
    for y in by * bs..((by + 1) * bs).min(h) {
        for x in bx * bs..((bx + 1) * bs).min(w) {
            let i = y * w + x;
            let p = px(i);
            let mut g = 0.0;
            if x + 1 < w {
                let q = px(i + 1);
                g += (p[0] - q[0]).abs() + (p[1] - q[1]).abs() + (p[2] - q[2]).abs();
            }
            if y + 1 < h {
                let q = px(i + w);
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
    b
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
/// half width in pixels on an ordinary edge; `rgba` the image (w×h, 4 bytes a pixel).
///
/// The work follows the edge, not the image: softness is measured only in blocks near
/// an edge, and the band is spread tile by tile, only in tiles an edge can reach.
pub fn band_from_mask(rgba: &[u8], mask: &[u8], w: usize, h: usize, base: u32) -> Vec<u8> {
    let sel: Vec<bool> = mask.par_iter().map(|&m| m >= 128).collect();
    let mut out: Vec<u8> = sel
        .par_iter()
        .map(|&s| if s { FOREGROUND } else { BACKGROUND })
        .collect();
    if w == 0 || h == 0 || base == 0 {
        return out;
    }
    let edge = SelectionEdge {
        mask,
        sel: &sel,
        w,
        h,
    };
    let bs = (base as usize).max(2);
    let edge_blocks = edge.cells(bs);
    let radius = block_radii(rgba, &edge, bs, base, &edge_blocks);
    spread_band(&mut out, &edge, bs, &radius, base);
    out
}

/// Where a selection changes: a pixel whose 4-neighbour is on the other side, or whose
/// mask value is partial.
struct SelectionEdge<'a> {
    mask: &'a [u8],
    sel: &'a [bool],
    w: usize,
    h: usize,
}

impl SelectionEdge<'_> {
    /// Which cells of a grid of `cell`×`cell` pixels hold an edge pixel. A cell whose mask
    /// is uniformly 0 or 255 over itself and a one-pixel ring holds none: that test is a
    /// plain comparison of bytes, and it settles nearly every cell of a photo.
    fn cells(&self, cell: usize) -> Vec<bool> {
        let (w, h) = (self.w, self.h);
        let cw = w.div_ceil(cell);
        (0..h.div_ceil(cell) * cw)
            .into_par_iter()
            .map(|c| {
                let (x0, y0) = ((c % cw) * cell, (c / cw) * cell);
                let (x1, y1) = ((x0 + cell).min(w), (y0 + cell).min(h));
                let ring_x = x0.saturating_sub(1)..(x1 + 1).min(w);
                let ring_y = y0.saturating_sub(1)..(y1 + 1).min(h);
                let v = self.mask[y0 * w + x0];
                let uniform = (v == 0 || v == 255)
                    && ring_y.into_iter().all(|y| {
                        self.mask[y * w + ring_x.start..y * w + ring_x.end]
                            .iter()
                            .all(|&m| m == v)
                    });
                !uniform && (y0..y1).any(|y| (x0..x1).any(|x| self.at(x, y)))
            })
            .collect()
    }

    fn at(&self, x: usize, y: usize) -> bool {
        let (w, sel) = (self.w, self.sel);
        let i = y * w + x;
        let s = sel[i];
        (self.mask[i] > 0 && self.mask[i] < 255)
            || (x + 1 < w && sel[i + 1] != s)
            || (x > 0 && sel[i - 1] != s)
            || (y + 1 < self.h && sel[i + w] != s)
            || (y > 0 && sel[i - w] != s)
    }
}

/// The band's radius in pixels at each edge block of `bs`×`bs` pixels (0 elsewhere): the
/// base width scaled by how fine-structured or blurred the edge looks there.
fn block_radii(
    rgba: &[u8],
    edge: &SelectionEdge,
    bs: usize,
    base: u32,
    edge_blocks: &[bool],
) -> Vec<f32> {
    let (w, h) = (edge.w, edge.h);
    let (bw, bh) = (w.div_ceil(bs), h.div_ceil(bs));
    // Softness reads the 5×5 blocks about an edge block.
    let needed = dilate(edge_blocks, bw, bh, 2);
    let blocks: Vec<BlockSums> = (0..bw * bh)
        .into_par_iter()
        .map(|b| {
            if needed[b] {
                block_sums(rgba, edge.sel, w, h, bs, (b % bw, b / bw))
            } else {
                BlockSums::default()
            }
        })
        .collect();
    (0..bw * bh)
        .into_par_iter()
        .map(|b| {
            if !edge_blocks[b] {
                return 0.0;
            }
            let (texture, blur) = softness(&blocks, bw, bh, b % bw, b / bw, bs);
            // 1.5 or less reads as crisp; 6 or more as fully fine-structured.
            let fine = ((texture - 1.5) / 4.5).clamp(0.0, 1.0);
            let scale = MIN_SCALE + (MAX_SCALE - MIN_SCALE) * fine;
            // A blurred edge needs the band to cover its ramp, whatever its texture.
            let ramp = (0.6 * blur + 1.0) / base as f32;
            base as f32 * scale.max(ramp).min(MAX_SCALE)
        })
        .collect()
}

/// Marks UNKNOWN in `out` every pixel within its edge block's radius of an edge pixel
/// (chamfer distance). Band pixels lie within the widest radius of an edge, so only tiles
/// that close to one are spread, each over itself plus that margin: the result is the
/// whole-image spread's, at the cost of the band.
fn spread_band(out: &mut [u8], edge: &SelectionEdge, bs: usize, radius: &[f32], base: u32) {
    let (w, h) = (edge.w, edge.h);
    let (bw, bh) = (w.div_ceil(bs), h.div_ceil(bs));
    let reach = (base as f32 * MAX_SCALE).ceil() as usize;
    let per_tile = (2 * reach).max(64).div_ceil(bs);
    let tile = per_tile * bs;
    let tw = w.div_ceil(tile);
    let edge_blocks: Vec<bool> = radius.iter().map(|&r| r > 0.0).collect();
    let near_blocks = dilate(&edge_blocks, bw, bh, reach.div_ceil(bs));
    let active = coarsen(&near_blocks, bw, bh, per_tile);
    out.par_chunks_mut(tile * w)
        .enumerate()
        .for_each(|(ty, rows)| {
            for tx in (0..tw).filter(|&tx| active[ty * tw + tx]) {
                let (x0, y0) = (tx * tile, ty * tile);
                // The window: the tile and `reach` around it, clamped to the image.
                let (wx0, wy0) = (x0.saturating_sub(reach), y0.saturating_sub(reach));
                let (wx1, wy1) = ((x0 + tile + reach).min(w), (y0 + tile + reach).min(h));
                let ww = wx1 - wx0;
                let mut v = vec![f32::NEG_INFINITY; ww * (wy1 - wy0)];
                for y in wy0..wy1 {
                    for x in (wx0..wx1).filter(|&x| edge.at(x, y)) {
                        v[(y - wy0) * ww + x - wx0] = radius[(y / bs) * bw + x / bs];
                    }
                }
                cone_spread(&mut v, ww, wy1 - wy0);
                for y in y0..(y0 + tile).min(h) {
                    for x in x0..(x0 + tile).min(w) {
                        if v[(y - wy0) * ww + x - wx0] >= 0.0 {
                            rows[(y - y0) * w + x] = UNKNOWN;
                        }
                    }
                }
            }
        });
}

/// Coarsens a grid of flags (gw×gh) by k: a coarse cell is set when any of its cells is.
fn coarsen(flags: &[bool], gw: usize, gh: usize, k: usize) -> Vec<bool> {
    let cw = gw.div_ceil(k);
    let mut out = vec![false; cw * gh.div_ceil(k)];
    for y in 0..gh {
        for x in 0..gw {
            if flags[y * gw + x] {
                out[(y / k) * cw + x / k] = true;
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The band as one spread over the whole image gives it: what the tiled spread must
    /// reproduce exactly.
    fn whole_image_band(rgba: &[u8], mask: &[u8], w: usize, h: usize, base: u32) -> Vec<u8> {
        let sel: Vec<bool> = mask.iter().map(|&m| m >= 128).collect();
        let edge = SelectionEdge {
            mask,
            sel: &sel,
            w,
            h,
        };
        let bs = (base as usize).max(2);
        let edge_blocks: Vec<bool> = (0..w.div_ceil(bs) * h.div_ceil(bs))
            .map(|b| {
                let (bx, by) = (b % w.div_ceil(bs), b / w.div_ceil(bs));
                (by * bs..((by + 1) * bs).min(h))
                    .any(|y| (bx * bs..((bx + 1) * bs).min(w)).any(|x| edge.at(x, y)))
            })
            .collect();
        assert_eq!(edge_blocks, edge.cells(bs), "edge blocks");
        let radius = block_radii(rgba, &edge, bs, base, &edge_blocks);
        let mut v = vec![f32::NEG_INFINITY; w * h];
        for y in 0..h {
            for x in 0..w {
                if edge.at(x, y) {
                    v[y * w + x] = radius[(y / bs) * w.div_ceil(bs) + x / bs];
                }
            }
        }
        cone_spread(&mut v, w, h);
        (v.iter().zip(&sel))
            .map(|(&r, &s)| match (r >= 0.0, s) {
                (true, _) => UNKNOWN,
                (false, true) => FOREGROUND,
                (false, false) => BACKGROUND,
            })
            .collect()
    }

    /// A disc with a hairy (striped) right half, a thin diagonal line and a blurred blob,
    /// on a size that no tile divides.
    fn scene() -> (Vec<u8>, Vec<u8>, usize, usize) {
        let (w, h) = (301, 233);
        let mut rgba = Vec::with_capacity(w * h * 4);
        let mut mask = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32, y as f32);
                let disc = (fx - 110.0).hypot(fy - 120.0) < 70.0;
                let line = (fx - fy - 20.0).abs() < 1.5 && x > 200;
                let blob = ((fx - 250.0).hypot(fy - 60.0) - 25.0).clamp(-4.0, 4.0);
                let selected = disc || line || blob < 0.0;
                let stripes = x > 110 && (x / 2) % 2 == 0;
                let shade = if selected && !stripes { 220 } else { 40 };
                let soft = (128.0 - 30.0 * blob) as u8;
                rgba.extend_from_slice(&[shade, soft, (x * 7 % 256) as u8, 255]);
                mask.push(if selected { 255 } else { 0 });
            }
        }
        mask[5] = 100; // A partial mask value counts as edge too.
        (rgba, mask, w, h)
    }

    #[test]
    fn the_tiled_band_is_the_whole_image_band() {
        let (rgba, mask, w, h) = scene();
        for base in [1, 2, 4, 9, 25] {
            let tiled = band_from_mask(&rgba, &mask, w, h, base);
            let whole = whole_image_band(&rgba, &mask, w, h, base);
            let unknown = tiled.iter().filter(|&&t| t == UNKNOWN).count();
            assert!(unknown > 500, "base {base}: only {unknown} unknown");
            let differ = tiled.iter().zip(&whole).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "base {base}: {differ} pixels differ");
        }
    }

    #[test]
    fn a_selection_without_edges_has_no_band() {
        let (w, h) = (70, 50);
        let rgba = vec![90; w * h * 4];
        for fill in [0, 255] {
            let tri = band_from_mask(&rgba, &vec![fill; w * h], w, h, 4);
            assert!(tri.iter().all(|&t| t == fill), "fill {fill}");
        }
    }
}
