//! Click-based cut-out segmentation with classic computer vision only.
//!
//! Pipeline: `prepare` downsizes the photo to a working resolution in Lab,
//! builds an 8-connected contrast-weighted grid graph, a colour quantisation
//! and the geodesic distance from the image border. `segment` then
//! 1. computes geodesic distances from green dots and from red dots + border,
//! 2. seeds foreground/background GMM colour models from the geodesic split,
//! 3. runs a few GrabCut-style iterations of graph cut (BK max-flow) with
//!    colour + geodesic unaries, contrast-sensitive pairwise terms, clicks as
//!    hard constraints; after each cut only foreground components connected
//!    to a green dot are kept (a connectivity prior: weaker than geodesic
//!    star convexity, which cut off curved arms of elongated objects),
//!    first on a half-resolution level (cheap, decides the topology), then
//!    once at working resolution in a narrow band around that result (BK's
//!    cost grows badly with grid size, so a banded fine solve keeps segment
//!    fast and predictable),
//! 4. upsamples the labels and refines the boundary band at full resolution.

#![allow(clippy::needless_range_loop)]

pub mod features;
pub mod geodesic;
pub mod gmm;
pub mod maxflow;
pub mod refine;

use features::{Grid, Quant};

use image::{GrayImage, RgbImage};

/// Long side of the working resolution.
const MAX_SIDE: u32 = 360;
/// Pairwise weight: GrabCut's 50 for 8-connectivity, which was set for photos
/// of about `LAMBDA_SIDE` px. Unaries sum over the area (~ resolution^2) and
/// the pairwise term over the boundary (~ resolution), so a level whose long
/// side is `s` px uses `LAMBDA * s / LAMBDA_SIDE` to keep the same balance
/// (28 at the 360 px working level, 14 at the 180 px coarse level).
const LAMBDA: f32 = 50.0;
const LAMBDA_SIDE: f32 = 640.0;
/// Weight of the geodesic prior in the unary term.
const GEO_W: f32 = 1.0;
/// Number of GMM components per class.
const GMM_K: usize = 5;
/// Graph-cut / colour-model iterations.
const ITERS: usize = 3;
/// Radius of the hard constraint around a click, in working pixels.
const CLICK_R: f32 = 1.5;
/// Spatial term of the geodesic metric (relative to the mean colour step).
const GEO_EPS: f32 = 0.3;
/// Click-local geodesic prior: amplitude and decay (geodesic units). Near a
/// click the geodesic evidence is reliable, far away colour should decide.
const LOC_A: f32 = 10.0;
const LOC_S: f32 = 5.0;
/// Extra GMM training mass for the geodesic neighbourhood of each click, so
/// a click on a colour the current mask misses gets its own component.
const CLICK_W: f32 = 5.0;
const INF: f32 = 1e7;

/// Half-width of the free band of the fine solve (fine pixels).
const BAND: usize = 8;

/// One resolution level of the pyramid with everything `segment` needs.
struct Level {
    w: usize,
    h: usize,
    grid: Grid,
    /// Contrast-sensitive pairwise weight per arc (without lambda).
    pair: Vec<f32>,
    /// Geodesic step cost per arc.
    geo_cost: Vec<f32>,
    quant: Quant,
    /// Geodesic distance from the image border (background evidence).
    border_dist: Vec<f32>,
}

impl Level {
    fn new(w: usize, h: usize, rgb: &[f32]) -> Level {
        let lab: Vec<[f32; 3]> = rgb
            .chunks_exact(3)
            .map(|c| features::rgb_to_lab(c[0], c[1], c[2]))
            .collect();
        let grid = Grid::new(w, h, &lab, false);
        let na = grid.diff.len();
        let mean_d2 = grid.diff.iter().map(|d| (d * d) as f64).sum::<f64>() / na.max(1) as f64;
        let mean_d = grid.diff.iter().map(|&d| d as f64).sum::<f64>() / na.max(1) as f64;
        let beta = (1.0 / (2.0 * mean_d2.max(1e-6))) as f32;
        let mut pair = Vec::with_capacity(na);
        let mut geo_cost = Vec::with_capacity(na);
        let inv_md = 1.0 / (mean_d.max(1e-3) as f32);
        for p in 0..w * h {
            for d in 0..8 {
                let a = grid.arc_of[p * 8 + d];
                if a == features::NO_ARC {
                    continue;
                }
                let len = if d % 2 == 1 {
                    std::f32::consts::SQRT_2
                } else {
                    1.0
                };
                let df = grid.diff[a as usize];
                pair.push((-beta * df * df).exp() / len);
                geo_cost.push(df * inv_md + GEO_EPS * len);
            }
        }
        let quant = Quant::new(&lab);
        let border: Vec<usize> = (0..w * h)
            .filter(|&p| {
                let (x, y) = (p % w, p / w);
                x == 0 || y == 0 || x + 1 == w || y + 1 == h
            })
            .collect();
        let (border_dist, _) = geodesic::distances(&grid, &geo_cost, &border, 2);
        Level {
            w,
            h,
            grid,
            pair,
            geo_cost,
            quant,
            border_dist,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.grid.heap_bytes()
            + self.pair.capacity() * 4
            + self.geo_cost.capacity() * 4
            + self.quant.heap_bytes()
            + self.border_dist.capacity() * 4
    }

    /// Pixels within the hard-constraint disc of each dot (full-res coords).
    fn seeds(&self, dots: &[[f32; 2]], fw: f32, fh: f32, radius: f32) -> Vec<usize> {
        let sx = self.w as f32 / fw.max(1.0);
        let sy = self.h as f32 / fh.max(1.0);
        let mut out = Vec::new();
        for d in dots {
            let x = if d[0].is_finite() {
                d[0].clamp(0.0, fw - 0.5)
            } else {
                0.0
            };
            let y = if d[1].is_finite() {
                d[1].clamp(0.0, fh - 0.5)
            } else {
                0.0
            };
            let (cx, cy) = (x * sx, y * sy);
            let r = radius.ceil() as i32;
            let (ix, iy) = (cx.floor() as i32, cy.floor() as i32);
            for dy in -r..=r {
                for dx in -r..=r {
                    let (nx, ny) = (ix + dx, iy + dy);
                    if nx < 0 || ny < 0 || nx >= self.w as i32 || ny >= self.h as i32 {
                        continue;
                    }
                    let (px, py) = (nx as f32 + 0.5 - cx, ny as f32 + 0.5 - cy);
                    if dx == 0 && dy == 0 || px * px + py * py <= radius * radius {
                        out.push(ny as usize * self.w + nx as usize);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Graph-cut labelling (0/1) at this level. With `init = Some((labels, band))`
    /// only pixels in `band` are free; the others keep `labels`.
    fn solve(
        &self,
        green: &[[f32; 2]],
        red: &[[f32; 2]],
        full: (f32, f32),
        init: Option<(&[u8], &[bool])>,
        iters: usize,
    ) -> Vec<u8> {
        let n = self.w * self.h;
        let radius = (CLICK_R * self.w.max(self.h) as f32 / MAX_SIDE as f32).max(0.5);
        let gs = self.seeds(green, full.0, full.1, radius);
        let rs = self.seeds(red, full.0, full.1, radius);
        let mut is_g = vec![false; n];
        let mut is_r = vec![false; n];
        for &p in &gs {
            is_g[p] = true;
        }
        let rs: Vec<usize> = rs.into_iter().filter(|&p| !is_g[p]).collect();
        for &p in &rs {
            is_r[p] = true;
        }
        let (df, _) = geodesic::distances(&self.grid, &self.geo_cost, &gs, 2);
        let mut db = self.border_dist.clone();
        let loc_f: Vec<f32> = df.iter().map(|&d| (-d / LOC_S).exp()).collect();
        let mut loc_r = vec![0f32; n];
        if !rs.is_empty() {
            let (dr, _) = geodesic::distances(&self.grid, &self.geo_cost, &rs, 2);
            for ((a, b), l) in db.iter_mut().zip(dr).zip(loc_r.iter_mut()) {
                *a = a.min(b);
                *l = (-b / LOC_S).exp();
            }
        }
        // Geodesic prior u in [0,1]: 0 near green, 1 near red/border.
        let u: Vec<f32> = df
            .iter()
            .zip(&db)
            .map(|(&f, &b)| if f + b <= 0.0 { 0.5 } else { f / (f + b) })
            .collect();
        let mut label: Vec<u8> = match init {
            Some((l, _)) => l.to_vec(),
            None => u.iter().map(|&v| (v < 0.5) as u8).collect(),
        };
        for p in 0..n {
            if is_g[p] {
                label[p] = 1;
            }
            if is_r[p] {
                label[p] = 0;
            }
        }
        let nb = self.quant.mean.len();
        let lambda = LAMBDA * self.w.max(self.h) as f32 / LAMBDA_SIDE;
        let cap: Vec<f32> = self.pair.iter().map(|&p| p * lambda).collect();
        let mut mf = maxflow::MaxFlow::new(&self.grid.topo, cap);
        // Terminal capacities of the previous iteration (source, sink).
        let mut prev: Vec<(f32, f32)> = vec![(0.0, 0.0); n];
        for it in 0..iters {
            let mut wf = vec![0f32; nb];
            let mut wb = vec![0f32; nb];
            for p in 0..n {
                let b = self.quant.bin_of[p] as usize;
                if label[p] == 1 {
                    wf[b] += 1.0;
                } else {
                    wb[b] += 1.0;
                }
                wf[b] += CLICK_W * loc_f[p];
                wb[b] += CLICK_W * loc_r[p];
            }
            let gf = gmm::Gmm::fit(&self.quant.mean, &wf, GMM_K, 4.0);
            let gb = gmm::Gmm::fit(&self.quant.mean, &wb, GMM_K, 4.0);
            // Per-bin negative log-likelihoods.
            let mut ef = vec![0f32; nb];
            let mut eb = vec![0f32; nb];
            for b in 0..nb {
                if self.quant.count[b] == 0 {
                    continue;
                }
                let c = &self.quant.mean[b];
                ef[b] = -gf.as_ref().map_or(-12.0, |g| g.log_pdf(c)).max(-30.0);
                eb[b] = -gb.as_ref().map_or(-12.0, |g| g.log_pdf(c)).max(-30.0);
            }
            if it > 0 {
                mf.restart();
            }
            for p in 0..n {
                let b = self.quant.bin_of[p] as usize;
                let (mut cf, mut cb) = (ef[b], eb[b]);
                let m = cf.min(cb);
                cf -= m;
                cb -= m;
                cf += GEO_W * u[p] + LOC_A * loc_r[p];
                cb += GEO_W * (1.0 - u[p]) + LOC_A * loc_f[p];
                if let Some((l, band)) = init
                    && !band[p]
                {
                    if l[p] == 1 {
                        cb = INF;
                    } else {
                        cf = INF;
                    }
                }
                if is_g[p] {
                    cb = INF;
                    cf = 0.0;
                }
                if is_r[p] {
                    cf = INF;
                    cb = 0.0;
                }
                // to_source is paid when p ends as background.
                let (ps, pk) = prev[p];
                mf.add_tweights(p, cb - ps, cf - pk);
                prev[p] = (cb, cf);
            }
            mf.run();
            for (p, l) in label.iter_mut().enumerate() {
                *l = mf.is_source(p) as u8;
            }
            keep_connected(&mut label, self.w, self.h, &gs);
        }
        label
    }
}

/// 2x2 box downscale of interleaved rgb.
fn half(rgb: &[f32], w: usize, h: usize) -> (usize, usize, Vec<f32>) {
    let (hw, hh) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = vec![0f32; hw * hh * 3];
    for y in 0..hh {
        for x in 0..hw {
            let mut s = [0f32; 4];
            for sy in 2 * y..(2 * y + 2).min(h) {
                for sx in 2 * x..(2 * x + 2).min(w) {
                    for k in 0..3 {
                        s[k] += rgb[(sy * w + sx) * 3 + k];
                    }
                    s[3] += 1.0;
                }
            }
            for k in 0..3 {
                out[(y * hw + x) * 3 + k] = s[k] / s[3];
            }
        }
    }
    (hw, hh, out)
}

/// Per-image precomputation, done once at "initialize".
pub struct PreparedImage {
    full: RgbImage,
    rgb: Vec<f32>,
    fine: Level,
    coarse: Level,
}

impl PreparedImage {
    /// Expensive step, once per image.
    pub fn prepare(image: &RgbImage) -> PreparedImage {
        let full = image.clone();
        let (ww, wh, rgb) = features::downscale(image, MAX_SIDE);
        let (cw, ch, crgb) = half(&rgb, ww, wh);
        let (fine, coarse) = rayon::join(|| Level::new(ww, wh, &rgb), || Level::new(cw, ch, &crgb));
        PreparedImage {
            full,
            rgb,
            fine,
            coarse,
        }
    }

    /// Cheap step, called after every click with all dots so far.
    pub fn segment(&self, green: &[[f32; 2]], red: &[[f32; 2]]) -> GrayImage {
        let (fw, fh) = (self.full.width(), self.full.height());
        if green.is_empty() || fw == 0 || fh == 0 {
            return GrayImage::new(fw, fh);
        }
        let label = self.segment_working(green, red);
        refine::upsample_refine(&self.full, self.fine.w, self.fine.h, &label, &self.rgb)
    }

    /// Labels (0/1) at working resolution: coarse solve, then a banded fine solve.
    pub fn segment_working(&self, green: &[[f32; 2]], red: &[[f32; 2]]) -> Vec<u8> {
        let full = (self.full.width() as f32, self.full.height() as f32);
        let (c, f) = (&self.coarse, &self.fine);
        let cl = c.solve(green, red, full, None, ITERS);
        // Nearest-neighbour upsample of the coarse labels.
        let mut l0 = vec![0u8; f.w * f.h];
        for y in 0..f.h {
            let cy = (y * c.h / f.h).min(c.h - 1);
            for x in 0..f.w {
                let cx = (x * c.w / f.w).min(c.w - 1);
                l0[y * f.w + x] = cl[cy * c.w + cx];
            }
        }
        // Band: within BAND px (Chebyshev) of a label change or of a click.
        let mut edge = vec![false; f.w * f.h];
        for y in 0..f.h {
            for x in 0..f.w {
                let p = y * f.w + x;
                let l = l0[p];
                edge[p] = (x + 1 < f.w && l0[p + 1] != l) || (y + 1 < f.h && l0[p + f.w] != l);
            }
        }
        for p in f.seeds(green, full.0, full.1, BAND as f32 * 2.0) {
            edge[p] = true;
        }
        for p in f.seeds(red, full.0, full.1, BAND as f32 * 2.0) {
            edge[p] = true;
        }
        let band = dilate(&edge, f.w, f.h, BAND);
        f.solve(green, red, full, Some((&l0, &band)), 1)
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.full.as_raw().capacity()
            + self.rgb.capacity() * 4
            + self.fine.heap_bytes()
            + self.coarse.heap_bytes()
    }

    pub fn working_size(&self) -> (usize, usize) {
        (self.fine.w, self.fine.h)
    }
}

/// Clears foreground pixels not 8-connected to any of `seeds`.
fn keep_connected(label: &mut [u8], w: usize, h: usize, seeds: &[usize]) {
    let mut seen = vec![false; w * h];
    let mut stack: Vec<usize> = Vec::new();
    for &s in seeds {
        if label[s] == 1 && !seen[s] {
            seen[s] = true;
            stack.push(s);
        }
    }
    while let Some(p) = stack.pop() {
        let (x, y) = ((p % w) as i32, (p / w) as i32);
        for &(dx, dy) in features::DIRS.iter() {
            let (nx, ny) = (x + dx, y + dy);
            if nx < 0 || ny < 0 || nx >= w as i32 || ny >= h as i32 {
                continue;
            }
            let q = ny as usize * w + nx as usize;
            if label[q] == 1 && !seen[q] {
                seen[q] = true;
                stack.push(q);
            }
        }
    }
    for (l, s) in label.iter_mut().zip(seen) {
        if !s {
            *l = 0;
        }
    }
}

/// Square (Chebyshev) dilation by `r`, separable.
fn dilate(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let mut tmp = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            if m[y * w + x] {
                for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                    tmp[y * w + xx] = true;
                }
            }
        }
    }
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            if tmp[y * w + x] {
                for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                    out[yy * w + x] = true;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(x: u32, y: u32, s: u32) -> u8 {
        let mut v = x.wrapping_mul(73856093) ^ y.wrapping_mul(19349663) ^ s.wrapping_mul(83492791);
        v ^= v >> 13;
        v = v.wrapping_mul(0x5bd1e995);
        v ^= v >> 15;
        (v & 0xff) as u8
    }

    /// Disc of red over a grey textured background.
    fn disc_image(w: u32, h: u32) -> (RgbImage, Vec<bool>) {
        let (cx, cy, r) = (w as f32 * 0.45, h as f32 * 0.5, h as f32 * 0.3);
        let mut gt = vec![false; (w * h) as usize];
        let img = RgbImage::from_fn(w, h, |x, y| {
            let inside = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt() < r;
            gt[(y * w + x) as usize] = inside;
            let n = noise(x, y, 1) as i32 / 4 - 32;
            if inside {
                image::Rgb([(200 + n / 2) as u8, (40 + n / 2) as u8, (40 + n / 2) as u8])
            } else {
                let t = if (x / 8 + y / 8) % 2 == 0 { 90 } else { 150 };
                let v = (t + n).clamp(0, 255) as u8;
                image::Rgb([v, v, (v as i32 + 10).min(255) as u8])
            }
        });
        (img, gt)
    }

    fn iou(mask: &GrayImage, gt: &[bool]) -> f64 {
        let (mut i, mut u) = (0, 0);
        for (p, g) in mask.as_raw().iter().zip(gt) {
            let m = *p as f32 > 0.49 * 255.0;
            i += (m && *g) as usize;
            u += (m || *g) as usize;
        }
        i as f64 / u.max(1) as f64
    }

    #[test]
    fn one_click_disc() {
        let (img, gt) = disc_image(320, 240);
        let prep = PreparedImage::prepare(&img);
        let m = prep.segment(&[[144.0, 120.0]], &[]);
        assert_eq!(m.dimensions(), (320, 240));
        let v = iou(&m, &gt);
        assert!(v > 0.9, "iou {v}");
    }

    /// Thick banana-shaped arc on a textured brown background: yellow in the
    /// middle, shading to dark brownish-green towards both tips (which come
    /// close to the background colour), with darker speckles. One click near
    /// the middle of the arc must select the whole arc.
    #[test]
    fn one_click_curved_arc() {
        let (w, h) = (400u32, 300u32);
        let (cx, cy) = (200.0f32, 330.0f32);
        let (r0, r1) = (170.0f32, 210.0f32);
        let max_ang = 75f32.to_radians();
        let mut gt = vec![false; (w * h) as usize];
        let img = RgbImage::from_fn(w, h, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let r = (dx * dx + dy * dy).sqrt();
            let ang = dx.atan2(-dy).abs();
            let inside = r > r0 && r < r1 && ang < max_ang;
            gt[(y * w + x) as usize] = inside;
            let n = noise(x, y, 3) as i32 / 5 - 25;
            if inside {
                // 0 in the middle of the arc, 1 at the tips.
                let t = (ang / max_ang).powi(2);
                let mix = |a: f32, b: f32| (a + (b - a) * t) as i32;
                let (mut r, mut g, mut b) = (mix(225.0, 150.0), mix(195.0, 125.0), mix(70.0, 45.0));
                if noise(x / 5, y / 5, 4) < 40 {
                    (r, g, b) = (r * 2 / 3, g * 2 / 3, b * 2 / 3);
                }
                image::Rgb([
                    (r + n / 2).clamp(0, 255) as u8,
                    (g + n / 2).clamp(0, 255) as u8,
                    (b + n / 2).clamp(0, 255) as u8,
                ])
            } else {
                let t = if (x / 10 + y / 10) % 2 == 0 { 65 } else { 85 };
                image::Rgb([
                    (t + n).clamp(0, 255) as u8,
                    (t * 3 / 4 + n).clamp(0, 255) as u8,
                    (t / 2 + n).clamp(0, 255) as u8,
                ])
            }
        });
        let prep = PreparedImage::prepare(&img);
        let m = prep.segment(&[[200.0, 140.0]], &[]);
        let v = iou(&m, &gt);
        assert!(v > 0.85, "iou {v}");
    }

    #[test]
    fn red_removes_touching_region() {
        // Red disc touching a blue square; a green click in the disc and a red
        // click in the square must yield the disc alone.
        let (w, h) = (300u32, 200u32);
        let mut gt = vec![false; (w * h) as usize];
        let img = RgbImage::from_fn(w, h, |x, y| {
            let n = noise(x, y, 2) as i32 / 8 - 16;
            let d = ((x as f32 - 100.0).powi(2) + (y as f32 - 100.0).powi(2)).sqrt();
            if d < 50.0 {
                gt[(y * w + x) as usize] = true;
                image::Rgb([(210 + n) as u8, (50 + n) as u8, (50 + n) as u8])
            } else if (150..230).contains(&x) && (60..140).contains(&y) {
                image::Rgb([(60 + n) as u8, (60 + n) as u8, (200 + n) as u8])
            } else {
                image::Rgb([(235 + n) as u8, (235 + n) as u8, (225 + n) as u8])
            }
        });
        let prep = PreparedImage::prepare(&img);
        let m = prep.segment(&[[100.0, 100.0]], &[[190.0, 100.0]]);
        let v = iou(&m, &gt);
        assert!(v > 0.85, "iou {v}");
    }

    #[test]
    fn empty_and_out_of_range() {
        let (img, _) = disc_image(64, 48);
        let prep = PreparedImage::prepare(&img);
        assert!(
            prep.segment(&[], &[[3.0, 3.0]])
                .as_raw()
                .iter()
                .all(|&v| v == 0)
        );
        let m = prep.segment(&[[-50.0, 1e9], [f32::NAN, 3.0]], &[[1e9, -1.0]]);
        assert_eq!(m.dimensions(), (64, 48));
        let m2 = prep.segment(&[[-50.0, 1e9], [f32::NAN, 3.0]], &[[1e9, -1.0]]);
        assert_eq!(m.as_raw(), m2.as_raw());
        assert!(prep.heap_bytes() > 64 * 48 * 3);
    }

    #[test]
    fn tiny_images() {
        for (w, h) in [(1, 1), (1, 5), (7, 1), (2, 2)] {
            let img = RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
            let prep = PreparedImage::prepare(&img);
            let m = prep.segment(&[[0.0, 0.0]], &[[0.5, 0.5]]);
            assert_eq!(m.dimensions(), (w, h));
        }
    }
}
