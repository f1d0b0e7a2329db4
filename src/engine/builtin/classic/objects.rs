//! First-click candidates: which reading of a single click is the object.
//!
//! A click on a small object often floods into the large region of similar colour
//! around it. Cuts inside boxes of several sizes around the click propose smaller
//! readings. The boxes are solved on the coarse level (a box solve at working resolution
//! cost up to 1.8 s on a flooded first click), refined at working resolution in a band
//! around their boundary, and ranked against the whole-image cut by objectness.
//!
//! The opposite fault, a click on one part of an object (a shirt, a pot on a head)
//! selecting only that part, is met by cuts initialised as GrabCut from boxes grown
//! around the whole-image cut: one that keeps the part and adds a moderate, equally
//! object-like rest replaces it.

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
/// How far (per side, relative to its size) the whole-image cut's bounding box is grown
/// for the cuts that complete a part to its object; a thin frame inside the picture's
/// edge is the last such box.
const GROW: [f32; 3] = [0.15, 0.5, 1.0];
/// Graph-cut rounds of a grown box's cut (it starts from the whole box selected, so its
/// colour models need more rounds than a click-seeded cut).
const GROWN_ITERS: usize = 4;
/// A grown cut completes the whole-image cut when it keeps at least this share of it...
const GROWN_KEEPS: f32 = 0.95;
/// ...and adds between these fractions of its area (less is the same answer, more is
/// the surroundings).
const GROWN_ADDS: std::ops::RangeInclusive<f32> = 0.05..=0.5;
/// How much less object-like than the whole-image cut (head start included) a
/// completing cut may score.
const GROWN_MARGIN: f32 = 0.4;

/// Candidate labels, each with its objectness score.
type Scored = Vec<(Vec<u8>, f32)>;

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
    /// start. Where the whole-image cut wins but is only a part of a larger object (see
    /// [`Self::completed`]), the completed object goes first. `all` returns the runner-ups
    /// as well; the first answer is the same either way.
    pub fn first_click(&self, green: &[[f32; 2]], red: &[[f32; 2]], all: bool) -> Vec<Vec<u8>> {
        if green.len() != 1 {
            return vec![self.labels(green, red, None)];
        }
        let full = (self.full.width() as f32, self.full.height() as f32);
        let Some(&click) = self.fine.pixels_near(green, full.0, full.1, 0.5).first() else {
            return vec![self.labels(green, red, None)];
        };
        // The whole-image cut does not depend on the boxes: both are cut meanwhile, and
        // the cuts grown from the whole-image cut's box while the boxes are refined.
        let ((whole, grown), (lab, cuts)) = rayon::join(
            || {
                let whole = self.labels(green, red, None);
                let grown = self.grown_cuts(green, red, &whole);
                (whole, grown)
            },
            || rayon::join(|| self.lab(), || self.box_cuts(green, red)),
        );
        let score = |labels: &[u8], closed: bool| self.cues(labels, click, closed, &lab).score();
        let ((mut scored, whole_score), grown): ((Scored, f32), Scored) = rayon::join(
            || {
                let whole_score = score(&whole, true) + WHOLE_BONUS;
                let boxes = cuts.par_iter().map(|cut| {
                    let labels = self.refine_box(cut, green, red);
                    let s = score(&labels, cut.closed);
                    (labels, s)
                });
                let scored = rayon::iter::once((whole.clone(), whole_score))
                    .chain(boxes)
                    .collect();
                (scored, whole_score)
            },
            || {
                grown
                    .par_iter()
                    .map(|cut| (self.refine_box(cut, green, red), cut.closed))
                    .filter(|(labels, _)| completes(&whole, labels))
                    .map(|(labels, closed)| {
                        let s = score(&labels, closed);
                        (labels, s)
                    })
                    .collect()
            },
        );
        // Stable: on a tie the whole-image cut, then the larger box, wins.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        if scored[0].0 == whole
            && let Some(completed) = Self::completed(grown, whole_score)
        {
            scored.insert(0, (completed, f32::INFINITY));
        }
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

    /// The largest of the `grown` cuts (each with its score) that is about as
    /// object-like as the whole-image cut (`whole_score`, head start included): a click
    /// on a person's shirt most often means the person, and a cut initialised from a box
    /// around the shirt finds the rest where its colours differ from the surroundings.
    fn completed(grown: Scored, whole_score: f32) -> Option<Vec<u8>> {
        grown
            .into_iter()
            .filter(|(_, s)| *s >= whole_score - GROWN_MARGIN)
            .map(|(labels, _)| labels)
            .max_by_key(|labels| labels.iter().filter(|&&l| l == 1).count())
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
        windows
            .into_par_iter()
            .filter_map(|win| self.cut_in(win, false, green, red))
            .collect()
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
            box_init: false,
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

/// Whether `grown` completes `part`: keeps nearly all of it and adds a moderate amount
/// (`GROWN_KEEPS`, `GROWN_ADDS`).
fn completes(part: &[u8], grown: &[u8]) -> bool {
    let area = |l: &[u8]| l.iter().filter(|&&v| v == 1).count() as f32;
    let kept = part
        .iter()
        .zip(grown)
        .filter(|&(&a, &b)| a == 1 && b == 1)
        .count() as f32;
    let (part_area, grown_area) = (area(part), area(grown));
    part_area > 0.0
        && kept >= GROWN_KEEPS * part_area
        && GROWN_ADDS.contains(&(grown_area / part_area - 1.0))
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

impl PreparedImage {
    /// Cuts initialised as GrabCut from a box: the whole-image cut's bounding box grown
    /// by each of `GROW`, and the picture less a thin frame.
    fn grown_cuts(&self, green: &[[f32; 2]], red: &[[f32; 2]], whole: &[u8]) -> Vec<BoxCut> {
        let (c, f) = (&self.coarse, &self.fine);
        let Some(bbox) = bounding_box(whole, f.w, f.h) else {
            return Vec::new();
        };
        // From working to coarse pixels, clamped to the coarse grid.
        let to_coarse = |v: f32, fine: usize, coarse: usize| {
            ((v * coarse as f32 / fine as f32).round().max(0.0) as usize).min(coarse)
        };
        let mut windows: Vec<Window> = GROW
            .iter()
            .map(|&g| {
                let mx = g * (bbox.x1 - bbox.x0) as f32;
                let my = g * (bbox.y1 - bbox.y0) as f32;
                Window {
                    x0: to_coarse(bbox.x0 as f32 - mx, f.w, c.w),
                    y0: to_coarse(bbox.y0 as f32 - my, f.h, c.h),
                    x1: to_coarse(bbox.x1 as f32 + mx, f.w, c.w),
                    y1: to_coarse(bbox.y1 as f32 + my, f.h, c.h),
                }
            })
            .collect();
        let frame = (c.w.max(c.h) / 30).max(1);
        if c.w > 4 * frame && c.h > 4 * frame {
            windows.push(Window {
                x0: frame,
                y0: frame,
                x1: c.w - frame,
                y1: c.h - frame,
            });
        }
        windows.dedup();
        windows
            .into_par_iter()
            .filter_map(|win| self.cut_in(win, true, green, red))
            .collect()
    }

    /// The coarse-level cut inside `win` (`box_init`: GrabCut's initialisation, see
    /// [`Constraints::box_init`]), unless it holds no more than the click.
    fn cut_in(
        &self,
        win: Window,
        box_init: bool,
        green: &[[f32; 2]],
        red: &[[f32; 2]],
    ) -> Option<BoxCut> {
        let full = (self.full.width() as f32, self.full.height() as f32);
        let c = &self.coarse;
        let constraints = Constraints {
            window: Some(win),
            box_init,
            ..Default::default()
        };
        let iters = if box_init { GROWN_ITERS } else { BOX_ITERS };
        let labels = c.solve(green, red, full, constraints, iters);
        let area = labels.iter().filter(|&&v| v == 1).count();
        let min_area = MIN_OBJECT * c.w * c.h / (self.fine.w * self.fine.h).max(1);
        (area >= min_area).then(|| BoxCut {
            closed: is_closed(&labels, win, c.w, c.h),
            labels,
            win,
        })
    }
}

/// The smallest window holding every selected pixel, if any is.
fn bounding_box(labels: &[u8], w: usize, h: usize) -> Option<Window> {
    let mut b: Option<Window> = None;
    for p in (0..w * h).filter(|&p| labels[p] == 1) {
        let (x, y) = (p % w, p / w);
        let b = b.get_or_insert(Window {
            x0: x,
            y0: y,
            x1: x + 1,
            y1: y + 1,
        });
        (b.x0, b.y0, b.x1, b.y1) = (b.x0.min(x), b.y0.min(y), b.x1.max(x + 1), b.y1.max(y + 1));
    }
    b
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

    /// A figure on a textured grey ground: a red shirt with a skin-coloured head on top.
    /// Returns the picture, the figure's mask and the shirt's.
    fn figure() -> (RgbImage, Vec<bool>, Vec<bool>) {
        let (w, h) = (240u32, 180u32);
        let mut figure = vec![false; (w * h) as usize];
        let mut shirt_only = figure.clone();
        let img = RgbImage::from_fn(w, h, |x, y| {
            let n = ((x * 7 + y * 13) % 9) as u8;
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let head = (fx - 120.0).hypot(fy - 62.0) < 16.0;
            let shirt = (90.0..150.0).contains(&fx) && (76.0..130.0).contains(&fy);
            figure[(y * w + x) as usize] = head || shirt;
            shirt_only[(y * w + x) as usize] = shirt;
            if head {
                Rgb([225 - n, 180, 150])
            } else if shirt {
                Rgb([190 - n, 40, 45])
            } else {
                let t = if (x / 6 + y / 6) % 2 == 0 { 120 } else { 135 };
                Rgb([t - n, t + 5, t])
            }
        });
        (img, figure, shirt_only)
    }

    #[test]
    fn a_click_on_the_shirt_selects_the_figure_and_offers_the_shirt_alone() {
        let (img, figure, shirt) = figure();
        let prep = PreparedImage::prepare(&img);
        let answers = prep.first_click(&[[120.0, 105.0]], &[], true);
        let iou_with = |labels: &[u8], truth: &[bool]| {
            let mask = prep.render(labels);
            let (mut inter, mut union) = (0, 0);
            for (m, &t) in mask.as_raw().iter().zip(truth) {
                inter += (*m > 127 && t) as usize;
                union += (*m > 127 || t) as usize;
            }
            inter as f32 / union as f32
        };
        let first = iou_with(&answers[0], &figure);
        assert!(first > 0.9, "the figure: IoU {first}");
        let shirt_alone = answers[1..]
            .iter()
            .map(|a| iou_with(a, &shirt))
            .fold(0.0, f32::max);
        assert!(shirt_alone > 0.9, "the shirt alone: IoU {shirt_alone}");
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
