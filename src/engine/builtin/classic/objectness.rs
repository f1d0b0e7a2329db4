//! How object-like a first-click candidate is: one score that ranks the whole-image cut
//! and the box cuts around the click against each other.
//!
//! The score is a weighted sum of five cues, each scale-free. The weights were fitted on
//! the COCO part of the development set (tools/devset) by maximising the mean IoU of the
//! chosen candidate; its Open Images part and GrabCut were the checks.

use super::PreparedImage;
use super::features;
use crate::morphology::dilate;

/// Penalty per unit of the image border the candidate covers: an object rarely fills
/// the border, a colour region (a table, a wall, the sky) often does.
const W_BORDER: f32 = -0.95;
/// Bonus for a candidate that stays clear of its box's edge (the whole-image cut counts
/// as clear): it fits its box rather than being cut off by it.
const W_CLOSED: f32 = 0.8;
/// Bonus per unit of colour-histogram distance between the candidate and a ring around
/// it: an object differs from its surroundings.
const W_CONTRAST: f32 = 0.6;
/// Bonus per unit of the click's centrality (its distance to the candidate's boundary
/// over the candidate's largest such distance): a user clicks well inside an object.
const W_CENTRE: f32 = 0.7;
/// Penalty per unit of contour weakness (see `Level::contour_weakness`): a boundary
/// through flat colour is a region's arbitrary end, not an object's outline.
const W_WEAK: f32 = -0.65;
/// Penalty per unit of the share of the candidate's image-border pixels that lie in thin
/// parts (see [`thin_border`]): a cable or wire running out of the picture is rarely part
/// of the object clicked.
const W_THIN: f32 = -2.5;
/// Half-width (working pixels) of the opening that tells thin parts: parts narrower than
/// `2 * THIN_R + 1` pixels are thin.
const THIN_R: usize = 2;
/// The whole-image cut's head start: its colour models saw the most context, so a box
/// cut replaces it only when clearly more object-like. Not fitted (COCO alone preferred
/// no head start); a margin so that a near tie keeps the whole-image cut.
pub(super) const WHOLE_BONUS: f32 = 0.2;
/// Lab histogram bins per channel of the contrast cue.
const BINS: usize = 8;
/// Width of the ring around a candidate, relative to the square root of its area, and
/// its bounds (working pixels).
const RING_REL: f32 = 0.15;
const RING_MIN: f32 = 2.0;
const RING_MAX: f32 = 20.0;

/// The cues of one candidate (working-resolution labels).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cues {
    pub border: f32,
    pub closed: bool,
    pub contrast: f32,
    pub centre: f32,
    pub weak: f32,
    pub thin_border: f32,
}

impl Cues {
    /// The objectness score: higher is more object-like.
    pub fn score(&self) -> f32 {
        W_BORDER * self.border
            + W_CLOSED * (self.closed as u8 as f32)
            + W_CONTRAST * self.contrast
            + W_CENTRE * self.centre
            + W_WEAK * self.weak
            + W_THIN * self.thin_border
    }
}

impl PreparedImage {
    /// The cues of working-resolution `labels` for a click at working pixel `click`, given
    /// the working image in Lab (`lab`).
    pub(super) fn cues(&self, labels: &[u8], click: usize, closed: bool, lab: &[[f32; 3]]) -> Cues {
        let f = &self.fine;
        let inside = |p: usize| labels[p] == 1;
        let thick = opened(labels, f.w, f.h, THIN_R);
        let (mut on_border, mut border, mut thin) = (0usize, 0usize, 0usize);
        for p in 0..f.w * f.h {
            let (x, y) = (p % f.w, p / f.w);
            if x == 0 || y == 0 || x + 1 == f.w || y + 1 == f.h {
                border += 1;
                on_border += inside(p) as usize;
                thin += (inside(p) && !thick[p]) as usize;
            }
        }
        let dist = inner_distance(labels, f.w, f.h);
        let deepest = dist.iter().copied().fold(0.0, f32::max);
        Cues {
            border: on_border as f32 / border.max(1) as f32,
            closed,
            contrast: ring_contrast(labels, lab, f.w, f.h),
            centre: dist.get(click).map_or(0.0, |d| d / deepest.max(1e-3)),
            weak: f.contour_weakness(labels),
            thin_border: thin as f32 / on_border.max(1) as f32,
        }
    }

    /// The working image in Lab, for [`Self::cues`].
    pub(super) fn lab(&self) -> Vec<[f32; 3]> {
        self.rgb
            .chunks_exact(3)
            .map(|c| features::rgb_to_lab(c[0], c[1], c[2]))
            .collect()
    }
}

/// The selection's morphological opening by a square of half-side `r`: what remains of
/// it without its parts narrower than `2 * r + 1` pixels. Pixels outside the picture
/// count as selected, so a thick part running out of it stays.
fn opened(labels: &[u8], w: usize, h: usize, r: usize) -> Vec<bool> {
    let outside: Vec<bool> = labels.iter().map(|&l| l != 1).collect();
    let eroded: Vec<bool> = dilate(&outside, w, h, r).iter().map(|&o| !o).collect();
    dilate(&eroded, w, h, r)
}

/// Chamfer distance of each selected pixel to the nearest unselected pixel or the image
/// edge (0 outside the selection).
fn inner_distance(labels: &[u8], w: usize, h: usize) -> Vec<f32> {
    const DIAG: f32 = std::f32::consts::SQRT_2;
    let mut d: Vec<f32> = (0..w * h)
        .map(|p| {
            let (x, y) = (p % w, p / w);
            let edge = x == 0 || y == 0 || x + 1 == w || y + 1 == h;
            match (labels[p] == 1, edge) {
                (false, _) => 0.0,
                (true, true) => 1.0,
                (true, false) => f32::MAX,
            }
        })
        .collect();
    // Forward then backward pass; edge pixels never need relaxing further than 1.
    for y in 1..h.saturating_sub(1) {
        for x in 1..w - 1 {
            let p = y * w + x;
            let v = (d[p - 1] + 1.0)
                .min(d[p - w] + 1.0)
                .min(d[p - w - 1] + DIAG)
                .min(d[p - w + 1] + DIAG);
            d[p] = d[p].min(v);
        }
    }
    for y in (1..h.saturating_sub(1)).rev() {
        for x in (1..w - 1).rev() {
            let p = y * w + x;
            let v = (d[p + 1] + 1.0)
                .min(d[p + w] + 1.0)
                .min(d[p + w + 1] + DIAG)
                .min(d[p + w - 1] + DIAG);
            d[p] = d[p].min(v);
        }
    }
    d
}

/// Half the chi-squared distance (0..1) between the Lab histograms of the selection and
/// of a ring around it.
fn ring_contrast(labels: &[u8], lab: &[[f32; 3]], w: usize, h: usize) -> f32 {
    let selected: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
    let area = selected.iter().filter(|&&s| s).count() as f32;
    let ring = (RING_REL * area.sqrt()).clamp(RING_MIN, RING_MAX) as usize;
    let around = dilate(&selected, w, h, ring);
    let bin = |c: &[f32; 3]| {
        let q = |v: f32, lo: f32, span: f32| {
            (((v - lo) / span * BINS as f32) as i32).clamp(0, BINS as i32 - 1) as usize
        };
        (q(c[0], 0.0, 100.0) * BINS + q(c[1], -100.0, 200.0)) * BINS + q(c[2], -100.0, 200.0)
    };
    let mut hist_in = vec![0f32; BINS * BINS * BINS];
    let mut hist_ring = vec![0f32; BINS * BINS * BINS];
    for p in 0..w * h {
        if selected[p] {
            hist_in[bin(&lab[p])] += 1.0;
        } else if around[p] {
            hist_ring[bin(&lab[p])] += 1.0;
        }
    }
    let n_in = hist_in.iter().sum::<f32>().max(1.0);
    let n_ring = hist_ring.iter().sum::<f32>().max(1.0);
    let chi: f32 = hist_in
        .iter()
        .zip(&hist_ring)
        .map(|(&a, &b)| {
            let (a, b) = (a / n_in, b / n_ring);
            if a + b > 0.0 {
                (a - b).powi(2) / (a + b)
            } else {
                0.0
            }
        })
        .sum();
    0.5 * chi
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A dark square in the middle of a light picture, with a little noise.
    fn square_scene() -> PreparedImage {
        PreparedImage::prepare(&RgbImage::from_fn(160, 120, |x, y| {
            let n = ((x * 7 + y * 13) % 5) as u8;
            if (50..110).contains(&x) && (30..90).contains(&y) {
                Rgb([40 + n, 60, 50])
            } else {
                Rgb([220 - n, 215, 200])
            }
        }))
    }

    fn labels(prep: &PreparedImage, inside: impl Fn(f32, f32) -> bool) -> Vec<u8> {
        let f = &prep.fine;
        (0..f.w * f.h)
            .map(|p| {
                let (x, y) = ((p % f.w) as f32 + 0.5, (p / f.w) as f32 + 0.5);
                inside(x * 160.0 / f.w as f32, y * 120.0 / f.h as f32) as u8
            })
            .collect()
    }

    #[test]
    fn a_selection_reaching_the_border_only_by_a_thin_line_is_thin_there() {
        let prep = square_scene();
        let f = &prep.fine;
        let lab = prep.lab();
        let click = (60 * f.h / 120) * f.w + 80 * f.w / 160;
        let square = |x: f32, y: f32| (50.0..110.0).contains(&x) && (30.0..90.0).contains(&y);
        // The square and a line two working pixels high out to the left and right border.
        let row = 60 * f.h / 120;
        let wired: Vec<u8> = labels(&prep, square)
            .iter()
            .enumerate()
            .map(|(p, &l)| l | (p / f.w == row || p / f.w == row + 1) as u8)
            .collect();
        // The square grown into a thick bar to the left border.
        let bar = labels(&prep, |x, y| x < 110.0 && (30.0..90.0).contains(&y));
        let (w, b) = (
            prep.cues(&wired, click, true, &lab),
            prep.cues(&bar, click, true, &lab),
        );
        assert!(w.thin_border > 0.99 && b.thin_border == 0.0, "{w:?} {b:?}");
        assert!(w.score() < prep.cues(&labels(&prep, square), click, true, &lab).score() - 1.0);
    }

    #[test]
    fn the_object_itself_outscores_a_piece_of_it_and_a_region_running_off() {
        let prep = square_scene();
        let f = &prep.fine;
        let lab = prep.lab();
        let click = (60 * f.h / 120) * f.w + 80 * f.w / 160;
        let object = labels(&prep, |x, y| {
            (50.0..110.0).contains(&x) && (30.0..90.0).contains(&y)
        });
        // The left part of the square: cut through flat colour, the click near its edge.
        let piece = labels(&prep, |x, y| {
            (50.0..85.0).contains(&x) && (30.0..90.0).contains(&y)
        });
        // The square and the light picture right of it, out to the border.
        let region = labels(&prep, |x, y| {
            x >= 50.0 && (30.0..90.0).contains(&y) || x >= 110.0
        });
        let (o, p, r) = (
            prep.cues(&object, click, true, &lab),
            prep.cues(&piece, click, true, &lab),
            prep.cues(&region, click, true, &lab),
        );
        assert!(o.centre > 0.9 && p.centre < 0.5, "{o:?} {p:?}");
        assert!(o.weak < 0.2 && p.weak > o.weak + 0.2, "{o:?} {p:?}");
        assert!(
            o.contrast > 0.9 && r.contrast < o.contrast - 0.3,
            "{o:?} {r:?}"
        );
        assert!(o.border == 0.0 && r.border > 0.2, "{o:?} {r:?}");
        assert!(o.score() > p.score() + WHOLE_BONUS, "{o:?} {p:?}");
        assert!(o.score() > r.score() + WHOLE_BONUS, "{o:?} {r:?}");
    }
}
