//! The image-to-token attention of the decoder's two-way blocks, with the residual add
//! and layer norm that follow it, as one tiled pass over the 4096 image tokens: per tile
//! of rows, the scores against the few prompt tokens, their softmax per head, the mixed
//! values, the residual and the norm, on one thread in buffers that stay in cache. As
//! whole-tensor steps these are six passes over `(4096, C)` tensors, each a fork and join
//! of both cores' threads.

use rayon::prelude::*;

use super::decoder_ops::matmul_into;
use super::fast_ops::softmax_rows;

/// Image rows per task: each task's products repack `g` and `u`, which costs about a
/// quarter of the products' own time at 64 rows.
const TILE: usize = 256;

/// The prompt side of the attention, already folded into the image side's terms.
pub struct Folded<'a> {
    /// `(heads * n, d)`: the scores of image row `x` are `x g^T + r`.
    pub g: &'a [f32],
    /// `(heads * n)`.
    pub r: &'a [f32],
    /// Prompt tokens per head: the softmax runs over groups of `n` scores.
    pub n: usize,
    /// `(heads * n, c)`: the probabilities times `u` plus `out_bias` are the output.
    pub u: &'a [f32],
    pub out_bias: &'a [f32],
    /// The layer norm after the residual add: its weight, then its bias (`2c`).
    pub norm: &'a [f32],
    pub eps: f32,
}

/// `norm(keys + softmax(x g^T + r) u + out_bias)` for image rows `x` `(rows, d)` and
/// `keys` `(rows, c)`, the softmax over each group of `n` scores.
pub fn image_to_tokens(x: &[f32], d: usize, keys: &[f32], f: &Folded) -> Vec<f32> {
    let (hn, c) = (f.r.len(), f.out_bias.len());
    assert!(hn > 0 && f.n > 0 && hn % f.n == 0 && f.g.len() == hn * d);
    assert!(f.u.len() == hn * c && f.norm.len() == 2 * c && x.len() / d == keys.len() / c);
    let mut out = vec![0f32; keys.len()];
    out.par_chunks_mut(TILE * c)
        .zip(x.par_chunks(TILE * d))
        .zip(keys.par_chunks(TILE * c))
        .for_each_init(
            || vec![0f32; TILE * hn],
            |scores, ((out, x), keys)| {
                let rows = x.len() / d;
                let scores = &mut scores[..rows * hn];
                matmul_into(scores, x, f.g, (rows, d, hn), true);
                for row in scores.chunks_exact_mut(hn) {
                    row.iter_mut().zip(f.r).for_each(|(s, r)| *s += r);
                }
                softmax_rows(scores, f.n);
                matmul_into(out, scores, f.u, (rows, hn, c), false);
                add_norm(out, keys, f.out_bias, f.norm, f.eps);
            },
        );
    out
}

/// `norm(out + keys + bias)` per row of `bias.len()`, in place on `out`.
fn add_norm(out: &mut [f32], keys: &[f32], bias: &[f32], norm: &[f32], eps: f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { add_norm_avx2(out, keys, bias, norm, eps) };
    }
    add_norm_portable(out, keys, bias, norm, eps)
}

#[inline(always)]
fn add_norm_portable(out: &mut [f32], keys: &[f32], bias: &[f32], norm: &[f32], eps: f32) {
    let c = bias.len();
    let (w, beta) = norm.split_at(c);
    for (row, k) in out.chunks_exact_mut(c).zip(keys.chunks_exact(c)) {
        for ((x, k), b) in row.iter_mut().zip(k).zip(bias) {
            *x += k + b;
        }
        let mean = lane_sum(row, |x| x) / c as f32;
        let var = lane_sum(row, |x| (x - mean) * (x - mean)) / c as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((x, w), b) in row.iter_mut().zip(w).zip(beta) {
            *x = (*x - mean) * inv * w + b;
        }
    }
}

/// The sum of `f` over `xs` in eight running sums, so that it vectorises.
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut sums = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            *s += f(x);
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_norm_avx2(out: &mut [f32], keys: &[f32], bias: &[f32], norm: &[f32], eps: f32) {
    add_norm_portable(out, keys, bias, norm, eps)
}
