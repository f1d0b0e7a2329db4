//! Full-resolution output from the working-resolution labelling.
//!
//! The labelling is upsampled bilinearly; only pixels in the thin band where the
//! upsampled value is fractional are refined, by projecting their full-res colour
//! onto the line between the local foreground and background mean colours (a
//! two-colour matting model). This snaps the boundary to image edges inside the
//! band and yields anti-aliased alpha, at a cost proportional to the boundary.

use image::{GrayImage, RgbImage};
use rayon::prelude::*;

/// Half-width of the window (working pixels) whose colours make a boundary pixel's
/// local foreground and background means.
const WINDOW: i32 = 2;
/// Distance of the two local means (RGB 0..1) at which the colour model is half trusted:
/// closer means say little about which side a colour belongs to.
const TRUST_DISTANCE: f32 = 0.08;

/// Local colour statistics at a working-res boundary pixel.
#[derive(Clone, Copy, Default)]
struct LocalColours {
    fg: [f32; 3],
    bg: [f32; 3],
    /// How far to trust the two-colour model, in [0, 1); 0 where one side is missing.
    confidence: f32,
}

/// The working-resolution labelling: `label` holds 0/1 per pixel, row-major `w` x `h`.
struct Working<'a> {
    w: usize,
    h: usize,
    label: &'a [u8],
}

/// `label`: working-res 0/1 labels (`work_w` x `work_h`); `rgb`: working-res colours
/// 0..1, interleaved.
pub fn upsample_refine(
    full: &RgbImage,
    work_w: usize,
    work_h: usize,
    label: &[u8],
    rgb: &[f32],
) -> GrayImage {
    let (fw, fh) = (full.width() as usize, full.height() as usize);
    let work = Working {
        w: work_w,
        h: work_h,
        label,
    };
    let local = local_colours(&work, rgb);
    let columns = Columns::new(work_w, fw);
    let raw = full.as_raw();
    let mut out = vec![0u8; fw * fh];
    out.par_chunks_mut(fw).enumerate().for_each(|(y, row)| {
        let line = &raw[y * fw * 3..(y + 1) * fw * 3];
        alpha_row(&work, &local, &columns, (y, fh), line, row);
    });
    GrayImage::from_raw(fw as u32, fh as u32, out).expect("size matches")
}

impl Working<'_> {
    fn inside(&self, x: i32, y: i32) -> bool {
        x >= 0 && y >= 0 && x < self.w as i32 && y < self.h as i32
    }

    /// True where a pixel of the 3x3 neighbourhood has the other label.
    fn near_label_change(&self) -> Vec<bool> {
        (0..self.w * self.h)
            .map(|p| {
                let (x, y) = ((p % self.w) as i32, (p / self.w) as i32);
                let l = self.label[p];
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (nx, ny) = (x + dx, y + dy);
                        if self.inside(nx, ny)
                            && self.label[ny as usize * self.w + nx as usize] != l
                        {
                            return true;
                        }
                    }
                }
                false
            })
            .collect()
    }
}

/// Local foreground and background means for working pixels near a label change
/// (default, i.e. untrusted, elsewhere).
fn local_colours(work: &Working, rgb: &[f32]) -> Vec<LocalColours> {
    let near = work.near_label_change();
    let mut local = vec![LocalColours::default(); work.w * work.h];
    for p in 0..work.w * work.h {
        if !near[p] {
            continue;
        }
        let (x, y) = ((p % work.w) as i32, (p / work.w) as i32);
        // Weighted colour sums and weights of each side.
        let mut fg_sum = [0f32; 4];
        let mut bg_sum = [0f32; 4];
        for dy in -WINDOW..=WINDOW {
            for dx in -WINDOW..=WINDOW {
                let (nx, ny) = (x + dx, y + dy);
                if !work.inside(nx, ny) {
                    continue;
                }
                let q = ny as usize * work.w + nx as usize;
                let sum = if work.label[q] == 1 {
                    &mut fg_sum
                } else {
                    &mut bg_sum
                };
                // The ambiguous pixels right at the boundary count less.
                let weight = if near[q] { 0.25 } else { 1.0 };
                for k in 0..3 {
                    sum[k] += weight * rgb[q * 3 + k];
                }
                sum[3] += weight;
            }
        }
        if fg_sum[3] > 0.0 && bg_sum[3] > 0.0 {
            let fg = [
                fg_sum[0] / fg_sum[3],
                fg_sum[1] / fg_sum[3],
                fg_sum[2] / fg_sum[3],
            ];
            let bg = [
                bg_sum[0] / bg_sum[3],
                bg_sum[1] / bg_sum[3],
                bg_sum[2] / bg_sum[3],
            ];
            let dist2: f32 = (0..3).map(|k| (fg[k] - bg[k]).powi(2)).sum();
            let trust2 = TRUST_DISTANCE * TRUST_DISTANCE;
            local[p] = LocalColours {
                fg,
                bg,
                confidence: dist2 / (dist2 + trust2),
            };
        }
    }
    local
}

/// Where each full-resolution column samples the working labels, computed once per render
/// rather than per pixel: its left working column and bilinear weight, and per working
/// column the run of full columns whose left neighbour it is.
struct Columns {
    x0: Vec<usize>,
    fx: Vec<f32>,
    /// `starts[i]..starts[i + 1]`: the full columns whose left working column is `i`.
    starts: Vec<usize>,
}

impl Columns {
    fn new(ww: usize, fw: usize) -> Columns {
        let sx = ww as f32 / fw as f32;
        let (mut x0, mut fx) = (Vec::with_capacity(fw), Vec::with_capacity(fw));
        for x in 0..fw {
            let u = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (ww - 1) as f32);
            x0.push(u.floor() as usize);
            fx.push(u - u.floor());
        }
        // x0 never decreases along the row, so each working column owns one run.
        let mut starts = vec![fw; ww + 1];
        for (x, &c) in x0.iter().enumerate().rev() {
            starts[c] = x;
        }
        for i in (0..ww).rev() {
            starts[i] = starts[i].min(starts[i + 1]);
        }
        Columns { x0, fx, starts }
    }
}

/// Alpha of full-resolution row `y` (`line`: its RGB bytes) into `row`. A run of columns
/// whose four working neighbours agree is filled at once: only the thin band along the
/// boundary costs a colour model per pixel.
fn alpha_row(
    work: &Working,
    local: &[LocalColours],
    columns: &Columns,
    (y, fh): (usize, usize),
    line: &[u8],
    row: &mut [u8],
) {
    let (ww, wh) = (work.w, work.h);
    let sy = wh as f32 / fh as f32;
    let v = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (wh - 1) as f32);
    let y0 = v.floor() as usize;
    let y1 = (y0 + 1).min(wh - 1);
    let fy = v - y0 as f32;
    let (top, bottom) = (&work.label[y0 * ww..][..ww], &work.label[y1 * ww..][..ww]);
    for c in 0..ww {
        let span = columns.starts[c]..columns.starts[c + 1];
        if span.is_empty() {
            continue;
        }
        let c1 = (c + 1).min(ww - 1);
        let (l00, l01, l10, l11) = (top[c], top[c1], bottom[c], bottom[c1]);
        if l00 == l01 && l00 == l10 && l00 == l11 {
            row[span].fill(if l00 == 1 { 255 } else { 0 });
            continue;
        }
        for x in span {
            let fx = columns.fx[x];
            let upsampled = (l00 as f32 * (1.0 - fx) + l01 as f32 * fx) * (1.0 - fy)
                + (l10 as f32 * (1.0 - fx) + l11 as f32 * fx) * fy;
            let u = columns.x0[x] as f32 + fx;
            let nearest = (v.round() as usize).min(wh - 1) * ww + (u.round() as usize).min(ww - 1);
            let colour = [
                line[x * 3] as f32 / 255.0,
                line[x * 3 + 1] as f32 / 255.0,
                line[x * 3 + 2] as f32 / 255.0,
            ];
            let alpha = matte(&local[nearest], colour, upsampled);
            row[x] = (alpha * 255.0 + 0.5) as u8;
        }
    }
}

/// Alpha of `colour` under the two-colour model, blended with the `upsampled` label by
/// the model's confidence and kept within 0.5 of it: the band only moves the edge locally.
fn matte(local: &LocalColours, colour: [f32; 3], upsampled: f32) -> f32 {
    if local.confidence <= 0.0 {
        return upsampled;
    }
    let mut num = 0.0;
    let mut den = 0.0;
    for k in 0..3 {
        let fg_minus_bg = local.fg[k] - local.bg[k];
        num += (colour[k] - local.bg[k]) * fg_minus_bg;
        den += fg_minus_bg * fg_minus_bg;
    }
    let projected = (num / den.max(1e-6)).clamp(0.0, 1.0);
    let alpha = local.confidence * projected + (1.0 - local.confidence) * upsampled;
    alpha
        .clamp(upsampled - 0.5, upsampled + 0.5)
        .clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, pixel by pixel: bilinear labels, and the colour model wherever the
    /// four working neighbours disagree.
    fn reference(full: &RgbImage, work: &Working, local: &[LocalColours]) -> Vec<u8> {
        let (fw, fh) = (full.width() as usize, full.height() as usize);
        let (ww, wh) = (work.w, work.h);
        let (sx, sy) = (ww as f32 / fw as f32, wh as f32 / fh as f32);
        let mut out = vec![0u8; fw * fh];
        for y in 0..fh {
            let v = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (wh - 1) as f32);
            let (y0, fy) = (v.floor() as usize, v - v.floor());
            let y1 = (y0 + 1).min(wh - 1);
            for x in 0..fw {
                let u = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (ww - 1) as f32);
                let (x0, fx) = (u.floor() as usize, u - u.floor());
                let x1 = (x0 + 1).min(ww - 1);
                let l = |yy: usize, xx: usize| work.label[yy * ww + xx] as f32;
                let up = (l(y0, x0) * (1.0 - fx) + l(y0, x1) * fx) * (1.0 - fy)
                    + (l(y1, x0) * (1.0 - fx) + l(y1, x1) * fx) * fy;
                let nearest =
                    (v.round() as usize).min(wh - 1) * ww + (u.round() as usize).min(ww - 1);
                let px = full.get_pixel(x as u32, y as u32).0;
                let colour = px.map(|c| c as f32 / 255.0);
                let corners = [l(y0, x0), l(y0, x1), l(y1, x0), l(y1, x1)];
                let alpha = if corners.iter().all(|&c| c == corners[0]) {
                    corners[0]
                } else {
                    matte(&local[nearest], colour, up)
                };
                out[y * fw + x] = (alpha * 255.0 + 0.5) as u8;
            }
        }
        out
    }

    #[test]
    fn filling_uniform_runs_matches_the_per_pixel_definition() {
        // Working sizes that do and do not divide the full size, and a full size equal
        // to the working one.
        for (fw, fh, ww, wh) in [(97, 61, 30, 19), (120, 80, 40, 20), (33, 17, 33, 17)] {
            let full = RgbImage::from_fn(fw, fh, |x, y| {
                image::Rgb([
                    (x * 7 % 256) as u8,
                    (y * 11 % 256) as u8,
                    ((x + y) * 3 % 256) as u8,
                ])
            });
            let (ww, wh) = (ww as usize, wh as usize);
            // A disc and a thin diagonal line: runs of both labels and many label changes.
            let label: Vec<u8> = (0..ww * wh)
                .map(|p| {
                    let (x, y) = ((p % ww) as f32, (p / ww) as f32);
                    let disc = (x - ww as f32 / 2.0).hypot(y - wh as f32 / 2.0) < wh as f32 / 3.0;
                    (disc || (p % ww) == (p / ww)) as u8
                })
                .collect();
            let rgb: Vec<f32> = (0..ww * wh * 3)
                .map(|i| (i * 37 % 101) as f32 / 100.0)
                .collect();
            let got = upsample_refine(&full, ww, wh, &label, &rgb);
            let work = Working {
                w: ww,
                h: wh,
                label: &label,
            };
            let want = reference(&full, &work, &local_colours(&work, &rgb));
            assert_eq!(got.as_raw(), &want, "{fw}x{fh} from {ww}x{wh}");
            assert!(want.contains(&255) && want.iter().any(|&a| a > 0 && a < 255));
        }
    }
}
