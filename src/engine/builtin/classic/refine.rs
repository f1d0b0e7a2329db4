//! Full-resolution output from the working-resolution labelling.
//!
//! The labelling is upsampled bilinearly; only pixels in the thin band where the
//! upsampled value is fractional are refined, by projecting their full-res colour
//! onto the line between the local foreground and background mean colours (a
//! two-colour matting model). This snaps the boundary to image edges inside the
//! band and yields anti-aliased alpha, at a cost proportional to the boundary.

use image::{GrayImage, RgbImage};
use rayon::prelude::*;

/// Local colour statistics at a working-res boundary pixel.
#[derive(Clone, Copy, Default)]
struct Local {
    f: [f32; 3],
    b: [f32; 3],
    conf: f32,
}

/// `label`: working-res 0/1 labels (ww*wh); `rgb`: working-res colours 0..1.
pub fn upsample_refine(
    full: &RgbImage,
    ww: usize,
    wh: usize,
    label: &[u8],
    rgb: &[f32],
) -> GrayImage {
    let (fw, fh) = (full.width() as usize, full.height() as usize);
    // Local F/B means for working pixels near a label change.
    let r = 2i32;
    let mut local = vec![Local::default(); ww * wh];
    let near: Vec<bool> = (0..ww * wh)
        .map(|p| {
            let (x, y) = ((p % ww) as i32, (p / ww) as i32);
            let l = label[p];
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx >= 0
                        && ny >= 0
                        && nx < ww as i32
                        && ny < wh as i32
                        && label[ny as usize * ww + nx as usize] != l
                    {
                        return true;
                    }
                }
            }
            false
        })
        .collect();
    for p in 0..ww * wh {
        if !near[p] {
            continue;
        }
        let (x, y) = ((p % ww) as i32, (p / ww) as i32);
        let mut sf = [0f32; 4];
        let mut sb = [0f32; 4];
        for dy in -r..=r {
            for dx in -r..=r {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= ww as i32 || ny >= wh as i32 {
                    continue;
                }
                let q = ny as usize * ww + nx as usize;
                // Skip the ambiguous pixels right at the boundary when possible.
                let s = if label[q] == 1 { &mut sf } else { &mut sb };
                let wgt = if near[q] { 0.25 } else { 1.0 };
                for k in 0..3 {
                    s[k] += wgt * rgb[q * 3 + k];
                }
                s[3] += wgt;
            }
        }
        if sf[3] > 0.0 && sb[3] > 0.0 {
            let f = [sf[0] / sf[3], sf[1] / sf[3], sf[2] / sf[3]];
            let b = [sb[0] / sb[3], sb[1] / sb[3], sb[2] / sb[3]];
            let d2: f32 = (0..3).map(|k| (f[k] - b[k]).powi(2)).sum();
            let tau2 = 0.08f32 * 0.08;
            local[p] = Local {
                f,
                b,
                conf: d2 / (d2 + tau2),
            };
        }
    }
    let sx = ww as f32 / fw as f32;
    let sy = wh as f32 / fh as f32;
    let raw = full.as_raw();
    let mut out = vec![0u8; fw * fh];
    out.par_chunks_mut(fw).enumerate().for_each(|(y, row)| {
        let v = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (wh - 1) as f32);
        let y0 = v.floor() as usize;
        let y1 = (y0 + 1).min(wh - 1);
        let fy = v - y0 as f32;
        let line = &raw[y * fw * 3..(y + 1) * fw * 3];
        for (x, o) in row.iter_mut().enumerate() {
            let u = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (ww - 1) as f32);
            let x0 = u.floor() as usize;
            let x1 = (x0 + 1).min(ww - 1);
            let fx = u - x0 as f32;
            let l00 = label[y0 * ww + x0];
            let l01 = label[y0 * ww + x1];
            let l10 = label[y1 * ww + x0];
            let l11 = label[y1 * ww + x1];
            if l00 == l01 && l00 == l10 && l00 == l11 {
                *o = if l00 == 1 { 255 } else { 0 };
                continue;
            }
            let m = (l00 as f32 * (1.0 - fx) + l01 as f32 * fx) * (1.0 - fy)
                + (l10 as f32 * (1.0 - fx) + l11 as f32 * fx) * fy;
            let np = (v.round() as usize).min(wh - 1) * ww + (u.round() as usize).min(ww - 1);
            let lc = local[np];
            let mut a = m;
            if lc.conf > 0.0 {
                let c = [
                    line[x * 3] as f32 / 255.0,
                    line[x * 3 + 1] as f32 / 255.0,
                    line[x * 3 + 2] as f32 / 255.0,
                ];
                let mut num = 0.0;
                let mut den = 0.0;
                for k in 0..3 {
                    let fb = lc.f[k] - lc.b[k];
                    num += (c[k] - lc.b[k]) * fb;
                    den += fb * fb;
                }
                let ac = (num / den.max(1e-6)).clamp(0.0, 1.0);
                a = lc.conf * ac + (1.0 - lc.conf) * m;
                // Stay near the labelling: the band only moves the edge locally.
                a = a.clamp(m - 0.5, m + 0.5).clamp(0.0, 1.0);
            }
            *o = (a * 255.0 + 0.5) as u8;
        }
    });
    GrayImage::from_raw(fw as u32, fh as u32, out).expect("size matches")
}
