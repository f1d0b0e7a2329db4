//! First-click candidates: which reading of a single click is the object.
//!
//! A click on a small object often floods into the large region of similar colour
//! around it. Cuts inside boxes of several sizes around the click propose smaller
//! readings. The boxes are solved on the coarse level (a box solve at working resolution
//! cost up to 1.8 s on a flooded first click), refined at working resolution in a band
//! around their boundary, and ranked against the whole-image cut by objectness.

use rayon::prelude::*;

use super::features;
use super::level::{Band, Constraints, Level, Window};
use super::objectness::WHOLE_BONUS;
use super::{MAX_SIDE, PreparedImage, iou};

/// Half-sides (working pixels at the full `MAX_SIDE` level) of the boxes around a first
/// click in which a compact object is looked for, smallest first.
const BOXES: [usize; 5] = [10, 20, 40, 80, 130];
/// Graph-cut rounds of a box solve.
const BOX_ITERS: usize = 2;
/// A box answer is closed (the object fits the box) when at most this fraction of the
/// pixels just inside the box's ring is selected (on the coarse level, where a thin
/// part crossing the ring is relatively wider than at working resolution).
const CLOSED_EDGE: f32 = 0.06;
/// A box answer smaller than this (working pixels, about 0.1% of the picture; scaled to
/// the level it is cut on) is only the click, not an object.
const MIN_OBJECT: usize = 100;
/// Candidates this similar (IoU) to a better one are not offered again.
const SAME_CANDIDATE: f32 = 0.9;
/// How many candidates a first click offers at most.
const MAX_CANDIDATES: usize = 3;

/// A first-click cut inside a box around the click, on the coarse level.
struct BoxCut {
    labels: Vec<u8>,
    win: Window,
    /// Whether the cut stays clear of the box's edge: an object, not a region.
    closed: bool,
}

impl PreparedImage {
    /// The answers to a first click, best first: the whole-image cut and the cuts inside
    /// boxes around the click, ranked by how object-like they are
    /// ([`Cues::score`](super::objectness::Cues::score)); the whole-image cut gets a head
    /// start. `all` returns the runner-ups as well; the first answer is the same either
    /// way.
    pub fn first_click(&self, green: &[[f32; 2]], red: &[[f32; 2]], all: bool) -> Vec<Vec<u8>> {
        if green.len() != 1 {
            return vec![self.labels(green, red, None)];
        }
        let full = (self.full.width() as f32, self.full.height() as f32);
        let Some(&click) = self.fine.pixels_near(green, full.0, full.1, 0.5).first() else {
            return vec![self.labels(green, red, None)];
        };
        // The whole-image cut does not depend on the boxes: both are cut meanwhile.
        let (whole, (lab, cuts)) = rayon::join(
            || self.labels(green, red, None),
            || rayon::join(|| self.lab(), || self.box_cuts(green, red)),
        );
        let boxes = cuts
            .par_iter()
            .map(|cut| (self.refine_box(cut, green, red), cut.closed, 0.0));
        let mut scored: Vec<(Vec<u8>, f32)> = rayon::iter::once((whole, true, WHOLE_BONUS))
            .chain(boxes)
            .map(|(labels, closed, bonus)| {
                let score = self.cues(&labels, click, closed, &lab).score() + bonus;
                (labels, score)
            })
            .collect();
        // Stable: on a tie the whole-image cut, then the larger box, wins.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let wanted = if all { MAX_CANDIDATES } else { 1 };
        let mut out: Vec<Vec<u8>> = Vec::new();
        for (c, _) in scored {
            if out.len() >= wanted {
                break;
            }
            if out.iter().all(|o| iou(o, &c) < SAME_CANDIDATE) {
                out.push(c);
            }
        }
        out
    }

    /// The coarse-level box cuts around the single green dot that hold more than the
    /// click, largest box first.
    fn box_cuts(&self, green: &[[f32; 2]], red: &[[f32; 2]]) -> Vec<BoxCut> {
        let full = (self.full.width() as f32, self.full.height() as f32);
        let c = &self.coarse;
        let Some(&click) = c.pixels_near(green, full.0, full.1, 0.5).first() else {
            return Vec::new();
        };
        let scale = c.w.max(c.h) as f32 / MAX_SIDE as f32;
        let mut windows: Vec<Window> = BOXES
            .iter()
            .rev()
            .map(|&half| {
                let r = ((half as f32 * scale).round() as usize).max(2);
                Window::around(click % c.w, click / c.w, r, c.w, c.h)
            })
            .collect();
        windows.dedup();
        let min_area = MIN_OBJECT * c.w * c.h / (self.fine.w * self.fine.h).max(1);
        let solve_in = |win: Window| {
            let constraints = Constraints {
                window: Some(win),
                ..Default::default()
            };
            let labels = c.solve(green, red, full, constraints, BOX_ITERS);
            let area = labels.iter().filter(|&&v| v == 1).count();
            (area >= min_area).then(|| BoxCut {
                closed: is_closed(&labels, win, c.w, c.h),
                labels,
                win,
            })
        };
        windows.into_par_iter().filter_map(solve_in).collect()
    }

    /// A coarse box cut at working resolution: a banded solve around its boundary,
    /// inside the box.
    fn refine_box(&self, cut: &BoxCut, green: &[[f32; 2]], red: &[[f32; 2]]) -> Vec<u8> {
        let full = (self.full.width() as f32, self.full.height() as f32);
        let (c, f) = (&self.coarse, &self.fine);
        let labels = self.upsample_coarse(&cut.labels);
        let free = self.fine_band(&labels, green, red, full);
        let win = Window {
            x0: cut.win.x0 * f.w / c.w,
            y0: cut.win.y0 * f.h / c.h,
            x1: (cut.win.x1 * f.w).div_ceil(c.w).min(f.w),
            y1: (cut.win.y1 * f.h).div_ceil(c.h).min(f.h),
        };
        let constraints = Constraints {
            band: Some(Band {
                labels: &labels,
                free: &free,
            }),
            hold: None,
            window: Some(win),
        };
        f.solve(green, red, full, constraints, 1)
    }
}

impl Level {
    /// Mean pairwise weight across the contour of `labels`: near 0 where the cut follows
    /// strong edges, near 1 where it crosses flat colour (a region's arbitrary end).
    pub(super) fn contour_weakness(&self, labels: &[u8]) -> f32 {
        let (mut arcs, mut weak) = (0usize, 0f64);
        for p in 0..self.w * self.h {
            if labels[p] != 1 {
                continue;
            }
            let (x, y) = (p % self.w, p / self.w);
            for (d, &(dx, dy)) in features::DIRS.iter().enumerate() {
                let a = self.grid.arc_of[p * 8 + d];
                if a == features::NO_ARC {
                    continue;
                }
                let q = (y as i32 + dy) as usize * self.w + (x as i32 + dx) as usize;
                if labels[q] != 1 {
                    arcs += 1;
                    weak += self.pair[a as usize] as f64;
                }
            }
        }
        (weak / arcs.max(1) as f64) as f32
    }
}

/// Whether a box answer stays clear of its box: few selected pixels just inside the
/// ring (where the box meets the image border, the object may touch it).
fn is_closed(labels: &[u8], win: Window, w: usize, h: usize) -> bool {
    let inner = Window {
        x0: win.x0 + 1,
        y0: win.y0 + 1,
        x1: win.x1.saturating_sub(1),
        y1: win.y1.saturating_sub(1),
    };
    let (mut edge, mut selected) = (0usize, 0usize);
    for y in inner.y0..inner.y1 {
        for x in inner.x0..inner.x1 {
            let at_image_border = x == 1 || y == 1 || x + 2 == w || y + 2 == h;
            if inner.on_ring(x, y) && !at_image_border {
                edge += 1;
                selected += labels[y * w + x] as usize;
            }
        }
    }
    edge > 0 && (selected as f32) <= CLOSED_EDGE * edge as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A black left half and a white right half, with a little noise.
    fn two_halves() -> RgbImage {
        RgbImage::from_fn(120, 80, |x, y| {
            let n = ((x * 7 + y * 13) % 5) as u8;
            if x < 60 {
                Rgb([10 + n, 10, 10])
            } else {
                Rgb([240 - n, 240, 240])
            }
        })
    }

    #[test]
    fn a_cut_along_an_edge_is_strong_and_one_through_flat_colour_is_weak() {
        let prep = PreparedImage::prepare(&two_halves());
        let f = &prep.fine;
        let labels = |inside: &dyn Fn(usize, usize) -> bool| -> Vec<u8> {
            (0..f.w * f.h)
                .map(|p| inside(p % f.w, p / f.w) as u8)
                .collect()
        };
        let along_edge = f.contour_weakness(&labels(&|x, _| x >= f.w / 2));
        let in_flat = f.contour_weakness(&labels(&|x, y| {
            (f.w * 2 / 3..f.w * 5 / 6).contains(&x) && (f.h / 3..f.h * 2 / 3).contains(&y)
        }));
        assert!(along_edge < 0.2, "along the edge: {along_edge}");
        assert!(in_flat > 0.6, "through flat colour: {in_flat}");
    }
}
