//! Per-image features computed once in `prepare`: a working-resolution copy in
//! CIE Lab (perceptually uniform, so Euclidean colour distances are meaningful),
//! the 8-connected pixel graph with contrast-sensitive weights, and a colour
//! quantisation so colour models can be evaluated per bin instead of per pixel.

use image::RgbImage;

/// 8-neighbourhood directions (dx, dy); `opposite(d) = (d + 4) % 8`.
pub const DIRS: [(i32, i32); 8] = [
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
    (0, -1),
    (1, -1),
];
pub const NO_ARC: u32 = u32::MAX;

/// Box-filter (area) downscale so that the long side is at most `max_side`.
/// Returns (width, height, rgb floats 0..1 interleaved).
pub fn downscale(img: &RgbImage, max_side: u32) -> (usize, usize, Vec<f32>) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let long = w.max(h).max(1);
    let s = (max_side as f64 / long as f64).min(1.0);
    let ww = ((w as f64 * s).round() as usize).clamp(1, w.max(1));
    let wh = ((h as f64 * s).round() as usize).clamp(1, h.max(1));
    let raw = img.as_raw();
    let xb: Vec<usize> = (0..=ww).map(|x| x * w / ww).collect();
    let yb: Vec<usize> = (0..=wh).map(|y| y * h / wh).collect();
    let mut out = vec![0f32; ww * wh * 3];
    use rayon::prelude::*;
    out.par_chunks_mut(ww * 3).enumerate().for_each(|(y, row)| {
        let (y0, y1) = (yb[y], yb[y + 1].max(yb[y] + 1).min(h));
        let mut acc = vec![0u32; ww * 3];
        let mut cnt = vec![0u32; ww];
        for sy in y0..y1 {
            let line = &raw[sy * w * 3..(sy + 1) * w * 3];
            for x in 0..ww {
                let (x0, x1) = (xb[x], xb[x + 1].max(xb[x] + 1).min(w));
                let (mut r, mut g, mut b) = (0u32, 0u32, 0u32);
                for px in line[x0 * 3..x1 * 3].chunks_exact(3) {
                    r += px[0] as u32;
                    g += px[1] as u32;
                    b += px[2] as u32;
                }
                acc[x * 3] += r;
                acc[x * 3 + 1] += g;
                acc[x * 3 + 2] += b;
                cnt[x] += (x1 - x0) as u32;
            }
        }
        for x in 0..ww {
            let c = (cnt[x].max(1) as f32) * 255.0;
            for k in 0..3 {
                row[x * 3 + k] = acc[x * 3 + k] as f32 / c;
            }
        }
    });
    (ww, wh, out)
}

/// 2x2 box downscale of interleaved rgb (odd sizes round up).
/// Returns (width, height, rgb).
pub fn halve(rgb: &[f32], w: usize, h: usize) -> (usize, usize, Vec<f32>) {
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

#[inline]
fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

#[inline]
fn f_lab(t: f32) -> f32 {
    if t > 0.008856 {
        t.cbrt()
    } else {
        7.787 * t + 16.0 / 116.0
    }
}

/// sRGB (0..1) to CIE Lab (D65).
pub fn rgb_to_lab(r: f32, g: f32, b: f32) -> [f32; 3] {
    let (r, g, b) = (srgb_to_linear(r), srgb_to_linear(g), srgb_to_linear(b));
    let x = (0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b) / 0.950_47;
    let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b;
    let z = (0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b) / 1.088_83;
    let (fx, fy, fz) = (f_lab(x), f_lab(y), f_lab(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// Working-resolution grid graph and per-arc colour differences.
pub struct Grid {
    pub w: usize,
    pub h: usize,
    pub topo: super::maxflow::Topology,
    /// `arc_of[p * 8 + d]` = arc from p in direction d, or NO_ARC at the border.
    pub arc_of: Vec<u32>,
    /// Lab distance along each arc.
    pub diff: Vec<f32>,
}

impl Grid {
    pub fn new(w: usize, h: usize, lab: &[[f32; 3]]) -> Grid {
        let n = w * h;
        let mut start = Vec::with_capacity(n + 1);
        let mut head = Vec::with_capacity(n * 8);
        let mut arc_of = vec![NO_ARC; n * 8];
        let mut diff = Vec::with_capacity(n * 8);
        start.push(0u32);
        for y in 0..h {
            for x in 0..w {
                let p = y * w + x;
                for (d, &(dx, dy)) in DIRS.iter().enumerate() {
                    let (nx, ny) = (x as i32 + dx, y as i32 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i32 || ny >= h as i32 {
                        continue;
                    }
                    let q = ny as usize * w + nx as usize;
                    arc_of[p * 8 + d] = head.len() as u32;
                    head.push(q as u32);
                    let (a, b) = (lab[p], lab[q]);
                    let dist2 =
                        (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2);
                    diff.push(dist2.sqrt());
                }
                start.push(head.len() as u32);
            }
        }
        let mut sister = vec![0u32; head.len()];
        for y in 0..h {
            for x in 0..w {
                let p = y * w + x;
                for d in 0..8 {
                    let a = arc_of[p * 8 + d];
                    if a == NO_ARC {
                        continue;
                    }
                    let q = head[a as usize] as usize;
                    sister[a as usize] = arc_of[q * 8 + (d + 4) % 8];
                }
            }
        }
        Grid {
            w,
            h,
            topo: super::maxflow::Topology {
                start,
                head,
                sister,
            },
            arc_of,
            diff,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.topo.heap_bytes() + self.arc_of.capacity() * 4 + self.diff.capacity() * 4
    }
}

/// Uniform colour quantisation of Lab into `B^3` bins over the image's range.
pub struct Quant {
    pub bin_of: Vec<u16>,
    /// Mean Lab colour of each bin (only meaningful where `count > 0`).
    pub mean: Vec<[f32; 3]>,
    pub count: Vec<u32>,
}

pub const QBINS: usize = 16;

impl Quant {
    pub fn new(lab: &[[f32; 3]]) -> Quant {
        let mut lo = [f32::MAX; 3];
        let mut hi = [f32::MIN; 3];
        for c in lab {
            for k in 0..3 {
                lo[k] = lo[k].min(c[k]);
                hi[k] = hi[k].max(c[k]);
            }
        }
        let nb = QBINS * QBINS * QBINS;
        let mut sum = vec![[0f64; 3]; nb];
        let mut count = vec![0u32; nb];
        let scale: Vec<f32> = (0..3)
            .map(|k| QBINS as f32 / (hi[k] - lo[k]).max(1e-3))
            .collect();
        let bin_of: Vec<u16> = lab
            .iter()
            .map(|c| {
                let mut idx = 0usize;
                for k in 0..3 {
                    let b = (((c[k] - lo[k]) * scale[k]) as usize).min(QBINS - 1);
                    idx = idx * QBINS + b;
                }
                idx as u16
            })
            .collect();
        for (c, &b) in lab.iter().zip(&bin_of) {
            let b = b as usize;
            count[b] += 1;
            for k in 0..3 {
                sum[b][k] += c[k] as f64;
            }
        }
        let mean = sum
            .iter()
            .zip(&count)
            .map(|(s, &n)| {
                let n = n.max(1) as f64;
                [(s[0] / n) as f32, (s[1] / n) as f32, (s[2] / n) as f32]
            })
            .collect();
        Quant {
            bin_of,
            mean,
            count,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.bin_of.capacity() * 2 + self.mean.capacity() * 12 + self.count.capacity() * 4
    }
}
