//! Click-based cut-out segmentation with classic computer vision only.
//!
//! Pipeline: `prepare` downsizes the photo to a working resolution in Lab,
//! builds an 8-connected contrast-weighted grid graph, a colour quantisation
//! and the geodesic distance from the image border. `segment` then
//! 1. computes geodesic distances from green dots and from red dots + border,
//! 2. seeds foreground/background GMM colour models from the geodesic split,
//! 3. runs a few GrabCut-style iterations of graph cut (BK max-flow) with
//!    colour + geodesic unaries, contrast-sensitive pairwise terms, clicks as
//!    hard constraints and geodesic star convexity around the green dots,
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
const MAX_SIDE: u32 = 480;
/// Pairwise weight (GrabCut's 50 for 8-connectivity).
const LAMBDA: f32 = 50.0;
/// Weight of the geodesic prior in the unary term.
const GEO_W: f32 = 3.0;
/// Number of GMM components per class.
const GMM_K: usize = 5;
/// Graph-cut / colour-model iterations.
const ITERS: usize = 2;
/// Radius of the hard constraint around a click, in working pixels.
const CLICK_R: f32 = 1.5;
/// Spatial term of the geodesic metric (relative to the mean colour step).
const GEO_EPS: f32 = 0.3;
const INF: f32 = 1e7;

/// Per-image precomputation, done once at "initialize".
pub struct PreparedImage {
    full: RgbImage,
    ww: usize,
    wh: usize,
    rgb: Vec<f32>,
    lab: Vec<[f32; 3]>,
    grid: Grid,
    /// Contrast-sensitive pairwise weight per arc (without lambda).
    pair: Vec<f32>,
    /// Geodesic step cost per arc.
    geo_cost: Vec<f32>,
    quant: Quant,
    border_dist: Vec<f32>,
}

impl PreparedImage {
    /// Expensive step, once per image.
    pub fn prepare(image: &RgbImage) -> PreparedImage {
        let full = image.clone();
        let (ww, wh, rgb) = features::downscale(image, MAX_SIDE);
        let lab: Vec<[f32; 3]> = rgb
            .chunks_exact(3)
            .map(|c| features::rgb_to_lab(c[0], c[1], c[2]))
            .collect();
        let grid = Grid::new(ww, wh, &lab);
        let na = grid.diff.len();
        let mean_d2 = grid.diff.iter().map(|d| (d * d) as f64).sum::<f64>() / na.max(1) as f64;
        let mean_d = grid.diff.iter().map(|&d| d as f64).sum::<f64>() / na.max(1) as f64;
        let beta = (1.0 / (2.0 * mean_d2.max(1e-6))) as f32;
        let mut pair = Vec::with_capacity(na);
        let mut geo_cost = Vec::with_capacity(na);
        let inv_md = 1.0 / (mean_d.max(1e-3) as f32);
        for p in 0..ww * wh {
            for d in 0..8 {
                let a = grid.arc_of[p * 8 + d];
                if a == features::NO_ARC {
                    continue;
                }
                debug_assert_eq!(a as usize, pair.len());
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
        let border: Vec<usize> = (0..ww * wh)
            .filter(|&p| {
                let (x, y) = (p % ww, p / ww);
                x == 0 || y == 0 || x + 1 == ww || y + 1 == wh
            })
            .collect();
        let (border_dist, _) = geodesic::distances(&grid, &geo_cost, &border, 2);
        PreparedImage {
            full,
            ww,
            wh,
            rgb,
            lab,
            grid,
            pair,
            geo_cost,
            quant,
            border_dist,
        }
    }

    /// Working-res pixels within the hard-constraint disc of each dot.
    fn seeds(&self, dots: &[[f32; 2]]) -> Vec<usize> {
        let (fw, fh) = (self.full.width() as f32, self.full.height() as f32);
        let sx = self.ww as f32 / fw.max(1.0);
        let sy = self.wh as f32 / fh.max(1.0);
        let mut out = Vec::new();
        for d in dots {
            let (x, y) = (d[0], d[1]);
            let x = if x.is_finite() {
                x.clamp(0.0, fw - 0.5)
            } else {
                0.0
            };
            let y = if y.is_finite() {
                y.clamp(0.0, fh - 0.5)
            } else {
                0.0
            };
            let (cx, cy) = (x * sx, y * sy);
            let r = CLICK_R.ceil() as i32;
            let (ix, iy) = (cx.floor() as i32, cy.floor() as i32);
            for dy in -r..=r {
                for dx in -r..=r {
                    let (nx, ny) = (ix + dx, iy + dy);
                    if nx < 0 || ny < 0 || nx >= self.ww as i32 || ny >= self.wh as i32 {
                        continue;
                    }
                    let (px, py) = (nx as f32 + 0.5 - cx, ny as f32 + 0.5 - cy);
                    if dx == 0 && dy == 0 || px * px + py * py <= CLICK_R * CLICK_R {
                        out.push(ny as usize * self.ww + nx as usize);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Cheap step, called after every click with all dots so far.
    pub fn segment(&self, green: &[[f32; 2]], red: &[[f32; 2]]) -> GrayImage {
        let (fw, fh) = (self.full.width(), self.full.height());
        if green.is_empty() || fw == 0 || fh == 0 {
            return GrayImage::new(fw, fh);
        }
        let label = self.segment_working(green, red);
        refine::upsample_refine(&self.full, self.ww, self.wh, &label, &self.rgb)
    }

    /// Labels (0/1) at working resolution.
    pub fn segment_working(&self, green: &[[f32; 2]], red: &[[f32; 2]]) -> Vec<u8> {
        let n = self.ww * self.wh;
        let gs = self.seeds(green);
        let rs = self.seeds(red);
        let mut is_g = vec![false; n];
        let mut is_r = vec![false; n];
        for &p in &gs {
            is_g[p] = true;
        }
        for &p in &rs {
            if !is_g[p] {
                is_r[p] = true;
            }
        }
        let gs: Vec<usize> = gs.into_iter().collect();
        let rs: Vec<usize> = rs.into_iter().filter(|&p| is_r[p]).collect();
        let (df, fpar) = geodesic::distances(&self.grid, &self.geo_cost, &gs, 2);
        let mut db = self.border_dist.clone();
        if !rs.is_empty() {
            let (dr, _) = geodesic::distances(&self.grid, &self.geo_cost, &rs, 2);
            for (a, b) in db.iter_mut().zip(dr) {
                *a = a.min(b);
            }
        }
        // Geodesic prior u in [0,1]: 0 near green, 1 near red/border.
        let u: Vec<f32> = df
            .iter()
            .zip(&db)
            .map(|(&f, &b)| if f + b <= 0.0 { 0.5 } else { f / (f + b) })
            .collect();
        let mut label: Vec<u8> = u.iter().map(|&v| (v < 0.5) as u8).collect();
        for p in 0..n {
            if is_g[p] {
                label[p] = 1;
            }
            if is_r[p] {
                label[p] = 0;
            }
        }
        let nb = self.quant.mean.len();
        for _ in 0..ITERS {
            let mut wf = vec![0f32; nb];
            let mut wb = vec![0f32; nb];
            for p in 0..n {
                let b = self.quant.bin_of[p] as usize;
                if label[p] == 1 {
                    wf[b] += 1.0;
                } else {
                    wb[b] += 1.0;
                }
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
                let lf = gf.as_ref().map_or(-12.0, |g| g.log_pdf(c)).max(-30.0);
                let lb = gb.as_ref().map_or(-12.0, |g| g.log_pdf(c)).max(-30.0);
                ef[b] = -lf;
                eb[b] = -lb;
            }
            let mut cap: Vec<f32> = self.pair.iter().map(|&p| p * LAMBDA).collect();
            // Geodesic star convexity: p foreground => its parent foreground.
            for p in 0..n {
                let d = fpar[p];
                if d != geodesic::NO_PARENT && !is_g[p] {
                    let a = self.grid.arc_of[p * 8 + d as usize];
                    cap[a as usize] = INF;
                }
            }
            let mut mf = maxflow::MaxFlow::new(&self.grid.topo, cap);
            for p in 0..n {
                let b = self.quant.bin_of[p] as usize;
                let (mut cf, mut cb) = (ef[b], eb[b]);
                let m = cf.min(cb);
                cf -= m;
                cb -= m;
                cf += GEO_W * u[p];
                cb += GEO_W * (1.0 - u[p]);
                if is_g[p] {
                    cb = INF;
                }
                if is_r[p] {
                    cf = INF;
                }
                // to_source is paid when p ends as background.
                mf.add_tweights(p, cb, cf);
            }
            mf.run();
            for (p, l) in label.iter_mut().enumerate() {
                *l = mf.is_source(p) as u8;
            }
        }
        label
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.full.as_raw().capacity()
            + self.rgb.capacity() * 4
            + self.lab.capacity() * 12
            + self.grid.heap_bytes()
            + self.pair.capacity() * 4
            + self.geo_cost.capacity() * 4
            + self.quant.heap_bytes()
            + self.border_dist.capacity() * 4
    }

    pub fn working_size(&self) -> (usize, usize) {
        (self.ww, self.wh)
    }
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
