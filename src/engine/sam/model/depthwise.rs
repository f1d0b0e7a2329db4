//! A depthwise 2-D convolution (one filter per channel) for the CPU.
//!
//! candle runs a grouped convolution as one small convolution per group, which for
//! TinyViT's depthwise layers (up to 256 channels at 256x256) dominates the encoder's time.
//! This op does them in one pass, a channel per rayon task, with the column loop innermost
//! so the compiler vectorises it; the bias and the activation after it are applied to each
//! channel's plane while it is still in cache.

use std::ops::Range;

use super::fast_ops::{Act, contiguous};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Square kernel, same stride and zero padding on both axes.
struct Depthwise {
    stride: usize,
    padding: usize,
    bias: Vec<f32>,
    act: Act,
}

/// `act(input (b, c, h, w)` convolved with `weight (c, 1, k, k)` plus `bias (c))`.
pub fn depthwise_conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    (stride, padding): (usize, usize),
    act: Act,
) -> Result<Tensor> {
    let op = Depthwise {
        stride,
        padding,
        bias: bias.to_vec1::<f32>()?,
        act,
    };
    input
        .contiguous()?
        .apply_op2_no_bwd(&weight.contiguous()?, &op)
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let (wc, one, k, k2) = l2.shape().dims4()?;
        if wc != c || one != 1 || k != k2 || self.bias.len() != c {
            candle_core::bail!(
                "depthwise weight {:?} for input {:?}",
                l2.shape(),
                l1.shape()
            );
        }
        let input = contiguous(s1, l1)?;
        let weight = contiguous(s2, l2)?;
        let (s, p) = (self.stride, self.padding);
        let ho = (h + 2 * p - k) / s + 1;
        let wo = (w + 2 * p - k) / s + 1;
        let mut out = vec![0f32; b * c * ho * wo];
        out.par_chunks_exact_mut(ho * wo)
            .enumerate()
            .for_each(|(plane, dst)| {
                let src = &input[plane * h * w..][..h * w];
                let kernel = &weight[(plane % c) * k * k..][..k * k];
                convolve_plane(src, (h, w), kernel, k, (s, p), dst, (ho, wo));
                let bias = self.bias[plane % c];
                dst.iter_mut().for_each(|x| *x += bias);
                super::fast_ops::activate(dst, self.act);
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c, ho, wo))))
    }
}

/// One channel: accumulates each kernel tap over a whole output row at a time.
///
/// With a stride above one, each input row is first split into its `s` phases (columns
/// `j * s + phase`), so every tap reads one phase contiguously and the loop vectorises;
/// read with a stride, it ran one element at a time (12% of MobileSAM's encoder, `perf`).
fn convolve_plane(
    src: &[f32],
    (h, w): (usize, usize),
    kernel: &[f32],
    k: usize,
    (s, p): (usize, usize),
    dst: &mut [f32],
    (ho, wo): (usize, usize),
) {
    let phase_len = w.div_ceil(s);
    let mut phases = vec![0f32; if s > 1 { s * phase_len } else { 0 }];
    for oy in 0..ho {
        let row = &mut dst[oy * wo..][..wo];
        for ky in 0..k {
            let iy = (oy * s + ky) as isize - p as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let line = &src[iy as usize * w..][..w];
            if s > 1 {
                for (x, v) in line.iter().enumerate() {
                    phases[(x % s) * phase_len + x / s] = *v;
                }
            }
            for kx in 0..k {
                let tap = kernel[ky * k + kx];
                let columns = inside_columns(w, wo, kx, (s, p));
                if columns.is_empty() {
                    continue;
                }
                let (first, last) = (columns.start, columns.end);
                // Input column of output column `first`, and where the run lies.
                let x0 = first * s + kx - p;
                let inputs = if s > 1 {
                    &phases[(x0 % s) * phase_len + x0 / s..]
                } else {
                    &line[x0..]
                };
                axpy(&mut row[first..last], tap, inputs);
            }
        }
    }
}

/// The output columns whose input column `ox * s + kx - p` lies inside a row of `w` (the
/// others read the zero padding), below `wo`.
pub(super) fn inside_columns(
    w: usize,
    wo: usize,
    kx: usize,
    (s, p): (usize, usize),
) -> Range<usize> {
    let first = p.saturating_sub(kx).div_ceil(s);
    let last = (w + p).saturating_sub(kx).div_ceil(s).min(wo);
    first..last
}

/// `out += a * xs`, element by element, over `out`'s length.
#[inline(always)]
fn axpy(out: &mut [f32], a: f32, xs: &[f32]) {
    for (o, x) in out.iter_mut().zip(xs) {
        *o += a * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_candles_grouped_convolution() {
        let dev = Device::Cpu;
        let cases = [
            (1, 1, 9, Act::Identity),
            (2, 1, 9, Act::Gelu),
            (2, 1, 8, Act::Identity),
        ];
        let more = [
            (1, 0, 5, Act::Gelu),
            (2, 0, 9, Act::Identity),
            (3, 1, 10, Act::Identity),
        ];
        for (stride, padding, size, act) in cases.into_iter().chain(more) {
            let c = 3;
            let input = Tensor::randn(0f32, 1.0, (2, c, size, size + 1), &dev).unwrap();
            let weight = Tensor::randn(0f32, 1.0, (c, 1, 3, 3), &dev).unwrap();
            let bias = Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
            let ours = depthwise_conv2d(&input, &weight, &bias, (stride, padding), act).unwrap();
            let theirs = input
                .conv2d(&weight, padding, stride, 1, c)
                .unwrap()
                .broadcast_add(&bias.reshape((1, c, 1, 1)).unwrap())
                .unwrap();
            let theirs = match act {
                Act::Identity => theirs,
                Act::Gelu => theirs.gelu_erf().unwrap(),
            };
            assert_eq!(ours.dims(), theirs.dims());
            let diff = super::super::max_diff(&ours, &theirs);
            assert!(diff < 1e-5, "stride {stride} padding {padding}: {diff}");
        }
    }
}
