//! A depthwise 2-D convolution (one filter per channel) for the CPU.
//!
//! candle runs a grouped convolution as one small convolution per group, which for
//! TinyViT's depthwise layers (up to 256 channels at 256x256) dominates the encoder's time.
//! This op does them in one pass, a channel per rayon task, with the column loop innermost
//! so the compiler vectorises it.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Square kernel, same stride and zero padding on both axes.
struct Depthwise {
    stride: usize,
    padding: usize,
}

/// `input (b, c, h, w)` convolved with `weight (c, 1, k, k)`, plus `bias (c)`.
pub fn depthwise_conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let out = input
        .contiguous()?
        .apply_op2_no_bwd(&weight.contiguous()?, &Depthwise { stride, padding })?;
    out.broadcast_add(&bias.reshape((1, (), 1, 1))?)
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
        if wc != c || one != 1 || k != k2 {
            candle_core::bail!(
                "depthwise weight {:?} for input {:?}",
                l2.shape(),
                l1.shape()
            );
        }
        let (Some((i0, i1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("depthwise convolution needs contiguous tensors");
        };
        let input = &s1.as_slice::<f32>()?[i0..i1];
        let weight = &s2.as_slice::<f32>()?[w0..w1];
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
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c, ho, wo))))
    }
}

/// One channel: accumulates each kernel tap over a whole output row at a time.
fn convolve_plane(
    src: &[f32],
    (h, w): (usize, usize),
    kernel: &[f32],
    k: usize,
    (s, p): (usize, usize),
    dst: &mut [f32],
    (ho, wo): (usize, usize),
) {
    for oy in 0..ho {
        let row = &mut dst[oy * wo..][..wo];
        for ky in 0..k {
            let iy = (oy * s + ky) as isize - p as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let line = &src[iy as usize * w..][..w];
            for kx in 0..k {
                let tap = kernel[ky * k + kx];
                // Output columns whose input column lies inside the row.
                let first = (p.saturating_sub(kx)).div_ceil(s);
                let last = ((w + p).saturating_sub(kx).div_ceil(s)).min(wo);
                for (ox, o) in row.iter_mut().enumerate().take(last).skip(first) {
                    *o += tap * line[ox * s + kx - p];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_candles_grouped_convolution() {
        let dev = Device::Cpu;
        for (stride, padding, size) in [(1, 1, 9), (2, 1, 9), (2, 1, 8), (1, 0, 5)] {
            let c = 3;
            let input = Tensor::randn(0f32, 1.0, (2, c, size, size + 1), &dev).unwrap();
            let weight = Tensor::randn(0f32, 1.0, (c, 1, 3, 3), &dev).unwrap();
            let bias = Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
            let ours = depthwise_conv2d(&input, &weight, &bias, stride, padding).unwrap();
            let theirs = input
                .conv2d(&weight, padding, stride, 1, c)
                .unwrap()
                .broadcast_add(&bias.reshape((1, c, 1, 1)).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let diff: f32 = (ours - theirs)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(diff < 1e-5, "stride {stride} padding {padding}: {diff}");
        }
    }
}
