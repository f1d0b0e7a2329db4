//! The mask decoder's output upscaling and mask product in one tiled pass: for each row of
//! the 64x64 grid, the first 2x2 transposed convolution, its bias, layer norm and GELU,
//! the second transposed convolution, its bias and GELU, and the hypernetwork product,
//! all on one thread in buffers that stay in cache. Done as whole-tensor steps, the second
//! convolution alone writes 8 MB that GELU and the product read back, and each step is a
//! fork and join of both cores' threads.

use candle_core::{Device, Result, Storage, Tensor};
use rayon::prelude::*;

use super::decoder_ops::{bias_norm_gelu_slice, matmul_into};
use super::fast_ops::{contiguous, gelu_slice};

/// Grid rows per task: each task's products repack the weights, which costs about a
/// quarter of the products' own time for one row of 64 pixels; two keep the buffers
/// (384 KB) in a core's L2 cache.
const GRID_ROWS: usize = 2;

/// The two transposed convolutions as token-major products (see `Upscale` in
/// `mask_decoder.rs`: columns in `(ky, kx, c)` order, biases repeated four times).
#[derive(Debug)]
pub struct UpscaleWeights {
    /// `(cin, 4 * c1)` and `(4 * c1)`.
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    /// The layer norm after the first: its weight, then its bias (`2 * c1`).
    pub ln: Vec<f32>,
    /// `(c1, 4 * c2)` and `(4 * c2)`.
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
}

impl UpscaleWeights {
    fn dims(&self) -> (usize, usize, usize) {
        let c1 = self.ln.len() / 2;
        let c2 = self.b2.len() / 4;
        (self.w1.len() / (4 * c1), c1, c2)
    }
}

/// Reads a contiguous f32 CPU tensor's values, or `None` (then the caller takes the
/// plain path).
pub fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => contiguous(s, layout).ok().map(f),
        _ => None,
    }
}

/// Masks `(m, 4h, 4w)` from the image tokens `src` `(h * w, cin)` and the hypernetwork
/// outputs `hyper` `(m, c2)`; the layer norm's epsilon is `eps`.
pub fn upscaled_masks(
    src: &[f32],
    (h, w): (usize, usize),
    wts: &UpscaleWeights,
    hyper: &[f32],
    eps: f32,
) -> Vec<f32> {
    let (cin, c1, c2) = wts.dims();
    let m = hyper.len() / c2;
    assert_eq!(src.len(), h * w * cin);
    // One grid row's masks: (m, 4, 4w), per grid row; rearranged below.
    let band = m * 16 * w;
    let mut bands = vec![0f32; h * band];
    bands
        .par_chunks_mut(GRID_ROWS * band)
        .enumerate()
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(first, second), (t, out)| {
                let rows = out.len() / band;
                let src = &src[t * GRID_ROWS * w * cin..][..rows * w * cin];
                first.resize(rows * w * 4 * c1, 0.0);
                second.resize(rows * 4 * w * 4 * c2, 0.0);
                matmul_into(first, src, &wts.w1, (rows * w, cin, 4 * c1), false);
                bias_norm_gelu_slice(first, &wts.b1, &wts.ln, eps);
                matmul_into(second, first, &wts.w2, (rows * 4 * w, c1, 4 * c2), false);
                bias_gelu(second, &wts.b2);
                let per_row = second.len() / rows;
                for (up, out) in second.chunks_exact(per_row).zip(out.chunks_exact_mut(band)) {
                    hyper_product(up, hyper, c2, w, out);
                }
            },
        );
    let plane_band = 16 * w;
    let mut out = vec![0f32; bands.len()];
    for (y, band) in bands.chunks_exact(band).enumerate() {
        for (k, rows) in band.chunks_exact(plane_band).enumerate() {
            out[(k * h + y) * plane_band..][..plane_band].copy_from_slice(rows);
        }
    }
    out
}

/// `gelu(x + bias)` over rows of `bias.len()`, in place.
fn bias_gelu(xs: &mut [f32], bias: &[f32]) {
    for row in xs.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
    }
    gelu_slice(xs);
}

/// One grid row's masks `out` `(m, 4, 4w)` from its upscaled embedding `up`: row
/// `(x, ky, kx)` holds the pixels `(ky2, kx2)` of `c2` channels each.
fn hyper_product(up: &[f32], hyper: &[f32], c2: usize, w: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { hyper_product_avx2(up, hyper, c2, w, out) };
    }
    hyper_product_portable(up, hyper, c2, w, out)
}

#[inline(always)]
fn hyper_product_portable(up: &[f32], hyper: &[f32], c2: usize, w: usize, out: &mut [f32]) {
    let ow = 4 * w;
    for (r, pixels) in up.chunks_exact(4 * c2).enumerate() {
        let (x, ky, kx) = (r / 4, (r / 2) % 2, r % 2);
        for (s, px) in pixels.chunks_exact(c2).enumerate() {
            let (ky2, kx2) = (s / 2, s % 2);
            let at = (2 * ky + ky2) * ow + 4 * x + 2 * kx + kx2;
            for (k, hk) in hyper.chunks_exact(c2).enumerate() {
                out[k * 4 * ow + at] = dot(px, hk);
            }
        }
    }
}

/// A dot product with eight running sums, so that it vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = (ca.remainder().iter().zip(cb.remainder()))
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for (s, (x, y)) in sums.iter_mut().zip(x.iter().zip(y)) {
            *s += x * y;
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn hyper_product_avx2(up: &[f32], hyper: &[f32], c2: usize, w: usize, out: &mut [f32]) {
    hyper_product_portable(up, hyper, c2, w, out)
}

/// [`upscaled_masks`] as a tensor on `device`.
pub fn upscaled_masks_tensor(
    src: &[f32],
    (h, w): (usize, usize),
    wts: &UpscaleWeights,
    hyper: &[f32],
    eps: f32,
    device: &Device,
) -> Result<Tensor> {
    let m = hyper.len() / (wts.b2.len() / 4);
    let out = upscaled_masks(src, (h, w), wts, hyper, eps);
    Tensor::from_vec(out, (m, 4 * h, 4 * w), device)
}
