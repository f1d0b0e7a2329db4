//! A dense 2-D convolution (all input channels into each output channel) for the CPU, as
//! one matrix product per band of output rows against the input patches of that band.
//!
//! candle's own (tiled im2col) first transposes the whole input to channels-last and then
//! gathers every patch element by element, on one thread; for TinyViT's stride-2 patch
//! embedding and the 3x3 necks that was about 7% of MobileSAM's encoder (`perf`). Here the
//! patch rows are copied a run of output columns at a time, bands in parallel.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use candle_nn::Conv2dConfig;
use rayon::prelude::*;

use super::decoder_ops::matmul_into;
use super::depthwise::inside_columns;
use super::fast_ops::contiguous;

/// Output rows per task: the band's patches stay a few megabytes at most (the necks'
/// 2304-long patches over 8 rows of 64).
const BAND_ROWS: usize = 8;

/// Square kernel, same stride and zero padding on both axes, no bias.
struct Conv {
    stride: usize,
    padding: usize,
}

/// `input (b, c, h, w)` convolved with `weight (cout, c / groups, k, k)` as `cfg` says:
/// the banded product here on the CPU with one group and no dilation, candle's own
/// convolution otherwise.
pub fn conv2d(input: &Tensor, weight: &Tensor, cfg: &Conv2dConfig) -> Result<Tensor> {
    if !input.device().is_cpu() || cfg.groups != 1 || cfg.dilation != 1 {
        return input.conv2d(weight, cfg.padding, cfg.stride, cfg.dilation, cfg.groups);
    }
    let op = Conv {
        stride: cfg.stride,
        padding: cfg.padding,
    };
    input
        .contiguous()?
        .apply_op2_no_bwd(&weight.contiguous()?, &op)
}

/// A candle convolution layer, computed with [`conv2d`].
pub fn apply(xs: &Tensor, layer: &candle_nn::Conv2d) -> Result<Tensor> {
    let ys = conv2d(xs, layer.weight(), layer.config())?;
    match layer.bias() {
        Some(bias) => ys.broadcast_add(&bias.reshape((1, (), 1, 1))?),
        None => Ok(ys),
    }
}

/// One image's planes `(c, h, w)` and the convolution's geometry.
struct Planes<'a> {
    data: &'a [f32],
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    padding: usize,
    wo: usize,
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-banded"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let (cout, wc, k, k2) = l2.shape().dims4()?;
        if wc != c || k != k2 || h + 2 * self.padding < k || w + 2 * self.padding < k {
            candle_core::bail!("conv2d weight {:?} for input {:?}", l2.shape(), l1.shape());
        }
        let input = contiguous(s1, l1)?;
        // (cout, c, k, k) is the (cout, c * k * k) matrix the patches multiply.
        let weight = contiguous(s2, l2)?;
        let (s, p) = (self.stride, self.padding);
        let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let mut out = vec![0f32; b * cout * ho * wo];
        for (image, out) in input
            .chunks_exact(c * h * w)
            .zip(out.chunks_exact_mut(cout * ho * wo))
        {
            let planes = Planes {
                data: image,
                c,
                h,
                w,
                k,
                stride: s,
                padding: p,
                wo,
            };
            // A few bands per thread at a time, so that the products waiting to be copied
            // out stay a small multiple of one band.
            let bands = ho.div_ceil(BAND_ROWS);
            let group = 2 * rayon::current_num_threads();
            for first in (0..bands).step_by(group) {
                let products: Vec<(usize, Vec<f32>)> = (first..bands.min(first + group))
                    .into_par_iter()
                    .map(|band| planes.band_product(weight, cout, band * BAND_ROWS, ho))
                    .collect();
                for (oy0, product) in products {
                    let run = product.len() / cout;
                    let planes_out = out.chunks_exact_mut(ho * wo);
                    for (plane, values) in planes_out.zip(product.chunks_exact(run)) {
                        plane[oy0 * wo..][..run].copy_from_slice(values);
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, cout, ho, wo))))
    }
}

impl Planes<'_> {
    /// The output rows from `oy0` (a band of at most [`BAND_ROWS`] of `ho`) for every
    /// output channel: `(oy0, (cout, rows * wo))`.
    fn band_product(
        &self,
        weight: &[f32],
        cout: usize,
        oy0: usize,
        ho: usize,
    ) -> (usize, Vec<f32>) {
        let rows = BAND_ROWS.min(ho - oy0);
        let patches = self.patches(oy0, rows);
        let mut product = vec![0f32; cout * rows * self.wo];
        let dims = (cout, self.c * self.k * self.k, rows * self.wo);
        matmul_into(&mut product, weight, &patches, dims, false);
        (oy0, product)
    }

    /// The patches of output rows `oy0..oy0 + rows`: `(c * k * k, rows * wo)`, row
    /// `(ci, ky, kx)` holding that tap's input for each output pixel (zero in the padding).
    fn patches(&self, oy0: usize, rows: usize) -> Vec<f32> {
        let (k, s, p, w, wo) = (self.k, self.stride, self.padding, self.w, self.wo);
        let cols = rows * wo;
        let mut patches = vec![0f32; self.c * k * k * cols];
        for (tap, dst) in patches.chunks_exact_mut(cols).enumerate() {
            let (ci, ky, kx) = (tap / (k * k), tap / k % k, tap % k);
            let plane = &self.data[ci * self.h * w..][..self.h * w];
            let columns = inside_columns(w, wo, kx, (s, p));
            if columns.is_empty() {
                continue;
            }
            let (first, last) = (columns.start, columns.end);
            for (r, dst) in dst.chunks_exact_mut(wo).enumerate() {
                let iy = ((oy0 + r) * s + ky) as isize - p as isize;
                if iy < 0 || iy >= self.h as isize {
                    continue;
                }
                let line = &plane[iy as usize * w..][..w];
                let x0 = first * s + kx - p;
                copy_strided(&mut dst[first..last], &line[x0..], s);
            }
        }
        patches
    }
}

/// `out[i] = xs[i * stride]`; strides 1 and 2 written so that they vectorise.
#[inline(always)]
fn copy_strided(out: &mut [f32], xs: &[f32], stride: usize) {
    match stride {
        1 => out.copy_from_slice(&xs[..out.len()]),
        2 => {
            for (o, pair) in out.iter_mut().zip(xs.chunks(2)) {
                *o = pair[0];
            }
        }
        _ => {
            for (o, x) in out.iter_mut().zip(xs.iter().step_by(stride)) {
                *o = *x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_candles_convolution() {
        let dev = Device::Cpu;
        // (stride, padding, kernel, height, width): the patch embedding's stride 2, the
        // necks' padded 3x3, odd sizes, more than one band, a kernel wider than the stride.
        let cases = [
            (2, 1, 3, 19, 21),
            (1, 1, 3, 20, 9),
            (1, 0, 3, 9, 9),
            (3, 1, 4, 11, 14),
            // Ten bands: more than one group of bands at a time.
            (1, 1, 3, 80, 7),
        ];
        for (stride, padding, k, h, w) in cases {
            let input = Tensor::randn(0f32, 1.0, (2, 3, h, w), &dev).unwrap();
            let weight = Tensor::randn(0f32, 1.0, (5, 3, k, k), &dev).unwrap();
            let cfg = Conv2dConfig {
                stride,
                padding,
                ..Default::default()
            };
            let ours = conv2d(&input, &weight, &cfg).unwrap();
            let theirs = input.conv2d(&weight, padding, stride, 1, 1).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let diff = super::super::max_diff(&ours, &theirs);
            assert!(
                diff < 1e-4,
                "stride {stride} padding {padding} k {k}: {diff}"
            );
        }
    }
}
