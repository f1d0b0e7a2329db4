//! Click-based cut-out segmentation with classic computer vision only.
//!
//! Pipeline: `prepare` downsizes the photo to a working resolution (and a half-size
//! coarse level) in Lab, and builds per level an 8-connected contrast-weighted grid
//! graph, a colour quantisation and the geodesic distance from the image border.
//! `segment` then
//! 1. computes geodesic distances from green dots and from red dots + border,
//! 2. seeds foreground/background GMM colour models from the geodesic split,
//! 3. runs a few GrabCut-style iterations of graph cut (BK max-flow) with
//!    colour + geodesic unaries, contrast-sensitive pairwise terms, clicks as
//!    hard constraints; after each cut only foreground components connected
//!    to a green dot are kept (a connectivity prior: weaker than geodesic
//!    star convexity, which cut off curved arms of elongated objects),
//!    first on the coarse level (cheap, decides the topology), then
//!    once at working resolution in a narrow band around that result (BK's
//!    cost grows badly with grid size, so a banded fine solve keeps segment
//!    fast and predictable),
//! 4. upsamples the labels and refines the boundary band at full resolution.

#![allow(clippy::needless_range_loop)]

mod band_graph;
pub mod features;
pub mod geodesic;
pub mod gmm;
mod level;
pub mod maxflow;
mod objectness;
mod objects;
pub mod refine;

use crate::morphology::dilate;
use image::{GrayImage, RgbImage};
use level::{Band, Constraints, Level};

/// Long side of the working resolution.
const MAX_SIDE: u32 = 360;
/// Graph-cut / colour-model iterations of the coarse solve.
const ITERS: usize = 3;
/// The same for a correction: it starts from the previous answer, whose colour models
/// are already close, so one round fewer does.
const CORRECTION_ITERS: usize = 2;
/// Half-width of the free band of the fine solve (fine pixels).
const BAND: usize = 8;
/// Radius (working pixels) around a correction within which its changes must start:
/// changed areas that do not reach it are put back as they were.
const LOCAL_R: usize = 3;
/// How far (relative to the square root of the selection's area, and at least
/// `GROW_MIN` working pixels) a green correction may add to the selection.
const GROW_REL: f32 = 0.6;
/// Small enough that a green dot on a tiny object cannot flood a patch larger than
/// the object around it.
const GROW_MIN: f32 = 4.0;

/// A click on top of an earlier answer: the working-resolution labels it corrects.
#[derive(Clone, Copy)]
pub struct Correction<'a> {
    /// The previous answer, as returned by [`PreparedImage::labels`].
    pub previous: &'a [u8],
    /// The new dot, full-resolution coordinates.
    pub at: [f32; 2],
    /// Whether the new dot is green (include) rather than red (exclude).
    pub include: bool,
}

/// Per-image precomputation, done once at "initialize".
pub struct PreparedImage {
    full: RgbImage,
    /// The working-resolution colours (0..1, interleaved) that refinement reads.
    rgb: Vec<f32>,
    fine: Level,
    coarse: Level,
}

impl PreparedImage {
    /// Expensive step, once per image.
    pub fn prepare(image: &RgbImage) -> PreparedImage {
        let full = image.clone();
        let (work_w, work_h, rgb) = features::downscale(image, MAX_SIDE);
        let (coarse_w, coarse_h, coarse_rgb) = features::halve(&rgb, work_w, work_h);
        let (fine, coarse) = rayon::join(
            || Level::new(work_w, work_h, &rgb),
            || Level::new(coarse_w, coarse_h, &coarse_rgb),
        );
        PreparedImage {
            full,
            rgb,
            fine,
            coarse,
        }
    }

    /// Cheap step: the mask for all dots so far, with no earlier answer to build on.
    pub fn segment(&self, green: &[[f32; 2]], red: &[[f32; 2]]) -> GrayImage {
        self.render(&self.labels(green, red, None))
    }

    /// The full-resolution alpha mask of working-resolution `labels`.
    pub fn render(&self, labels: &[u8]) -> GrayImage {
        let (fw, fh) = (self.full.width(), self.full.height());
        if fw == 0 || fh == 0 || labels.len() != self.fine.w * self.fine.h {
            return GrayImage::new(fw, fh);
        }
        refine::upsample_refine(&self.full, self.fine.w, self.fine.h, labels, &self.rgb)
    }

    /// Labels (0/1) at working resolution: coarse solve, then a banded fine solve. With a
    /// `correction`, the previous answer is the prior and only changes that reach the new
    /// dot are kept.
    pub fn labels(
        &self,
        green: &[[f32; 2]],
        red: &[[f32; 2]],
        correction: Option<Correction>,
    ) -> Vec<u8> {
        let n = self.fine.w * self.fine.h;
        if green.is_empty() || n == 0 {
            return vec![0; n];
        }
        let correction = correction.filter(|c| c.previous.len() == n);
        let full = (self.full.width() as f32, self.full.height() as f32);
        // The fine level's hold does not depend on the coarse answer: build it meanwhile.
        let (coarse_labels, fine_hold) = rayon::join(
            || {
                let hold = correction.map(|c| {
                    self.coarse
                        .hold(self.downsample_fine(c.previous), c.at, c.include, full)
                });
                let constraints = Constraints {
                    hold: hold.as_ref(),
                    ..Default::default()
                };
                let iters = if correction.is_some() {
                    CORRECTION_ITERS
                } else {
                    ITERS
                };
                self.coarse.solve(green, red, full, constraints, iters)
            },
            || correction.map(|c| self.fine.hold(c.previous.to_vec(), c.at, c.include, full)),
        );
        let labels = self.upsample_coarse(&coarse_labels);
        let free = self.fine_band(&labels, green, red, full);
        let band = Band {
            labels: &labels,
            free: &free,
        };
        let constraints = Constraints {
            band: Some(band),
            hold: fine_hold.as_ref(),
            window: None,
            box_init: false,
        };
        let mut out = self.fine.solve(green, red, full, constraints, 1);
        if let Some(c) = correction {
            self.keep_local_changes(&mut out, c, green, full);
        }
        out
    }

    /// Puts back every changed area that does not reach the corrected dot, then drops
    /// foreground no green dot reaches.
    fn keep_local_changes(
        &self,
        labels: &mut [u8],
        correction: Correction,
        green: &[[f32; 2]],
        full: (f32, f32),
    ) {
        let f = &self.fine;
        let changed: Vec<bool> = labels
            .iter()
            .zip(correction.previous)
            .map(|(a, b)| a != b)
            .collect();
        let near = f.pixels_near(&[correction.at], full.0, full.1, LOCAL_R as f32);
        let reached = level::flood(&changed, f.w, f.h, &near);
        // A green click grows the selection by about its own size at most: further
        // growth is colour running off into the background.
        let area = correction.previous.iter().filter(|&&l| l == 1).count() as f32;
        let reach = (GROW_REL * area.sqrt()).max(GROW_MIN * f.w.max(f.h) as f32 / MAX_SIDE as f32);
        let (cx, cy) = (
            correction.at[0] * f.w as f32 / full.0.max(1.0),
            correction.at[1] * f.h as f32 / full.1.max(1.0),
        );
        for p in 0..labels.len() {
            let (x, y) = ((p % f.w) as f32 + 0.5, (p / f.w) as f32 + 0.5);
            let too_far =
                labels[p] == 1 && correction.previous[p] == 0 && (x - cx).hypot(y - cy) > reach;
            if changed[p] && (!reached[p] || too_far) {
                labels[p] = correction.previous[p];
            }
        }
        let seeds = f.pixels_near(green, full.0, full.1, 0.5);
        level::keep_connected(labels, f.w, f.h, &seeds);
    }

    /// Nearest-neighbour downsample of working-resolution labels to the coarse level.
    fn downsample_fine(&self, fine_labels: &[u8]) -> Vec<u8> {
        let (c, f) = (&self.coarse, &self.fine);
        let mut labels = vec![0u8; c.w * c.h];
        for cy in 0..c.h {
            let y = ((2 * cy + 1) * f.h / (2 * c.h)).min(f.h - 1);
            for cx in 0..c.w {
                let x = ((2 * cx + 1) * f.w / (2 * c.w)).min(f.w - 1);
                labels[cy * c.w + cx] = fine_labels[y * f.w + x];
            }
        }
        labels
    }

    /// Nearest-neighbour upsample of coarse labels to the working resolution.
    pub(super) fn upsample_coarse(&self, coarse_labels: &[u8]) -> Vec<u8> {
        let (c, f) = (&self.coarse, &self.fine);
        let mut labels = vec![0u8; f.w * f.h];
        for y in 0..f.h {
            let cy = (y * c.h / f.h).min(c.h - 1);
            for x in 0..f.w {
                let cx = (x * c.w / f.w).min(c.w - 1);
                labels[y * f.w + x] = coarse_labels[cy * c.w + cx];
            }
        }
        labels
    }

    /// Working pixels the fine solve may change: within `BAND` px (Chebyshev) of a label
    /// change or of a click.
    pub(super) fn fine_band(
        &self,
        labels: &[u8],
        green: &[[f32; 2]],
        red: &[[f32; 2]],
        full: (f32, f32),
    ) -> Vec<bool> {
        let f = &self.fine;
        let mut edge = vec![false; f.w * f.h];
        for y in 0..f.h {
            for x in 0..f.w {
                let p = y * f.w + x;
                let l = labels[p];
                edge[p] =
                    (x + 1 < f.w && labels[p + 1] != l) || (y + 1 < f.h && labels[p + f.w] != l);
            }
        }
        for p in f.pixels_near(green, full.0, full.1, BAND as f32 * 2.0) {
            edge[p] = true;
        }
        for p in f.pixels_near(red, full.0, full.1, BAND as f32 * 2.0) {
            edge[p] = true;
        }
        dilate(&edge, f.w, f.h, BAND)
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.full.as_raw().capacity()
            + self.rgb.capacity() * 4
            + self.fine.heap_bytes()
            + self.coarse.heap_bytes()
    }
}

/// Intersection over union of two 0/1 labellings.
pub(super) fn iou(a: &[u8], b: &[u8]) -> f32 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        inter += (x & y) as usize;
        union += (x | y) as usize;
    }
    if union == 0 {
        1.0
    } else {
        inter as f32 / union as f32
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
    fn one_click_selects_a_disc_on_a_textured_checkerboard() {
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
    fn one_click_in_the_middle_selects_a_whole_curved_arc() {
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
    fn a_red_click_removes_a_touching_region_of_another_colour() {
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
    fn no_green_dot_gives_an_empty_mask_and_wild_coordinates_segment_deterministically() {
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
    fn images_one_or_two_pixels_wide_segment_at_their_size() {
        for (w, h) in [(1, 1), (1, 5), (7, 1), (2, 2)] {
            let img = RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
            let prep = PreparedImage::prepare(&img);
            let m = prep.segment(&[[0.0, 0.0]], &[[0.5, 0.5]]);
            assert_eq!(m.dimensions(), (w, h));
        }
    }
}
