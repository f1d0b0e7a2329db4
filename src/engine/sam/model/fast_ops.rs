//! CPU kernels where candle's general code was the encoder's and decoder's bottleneck
//! (measured with `perf` on `aicut bench --engine sam`):
//!
//! - GELU: candle's exact GELU calls libm's `erff` per element on one thread. This runs the
//!   same exact GELU with the erf approximation PyTorch's vectorised CPU kernel uses
//!   (Abramowitz and Stegun 7.1.26, error below 1.5e-7), over all cores.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// The error function, as PyTorch's vectorised CPU code computes it.
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let r = 1.0 - poly * (-x * x).exp();
    r.copysign(x)
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-erf-parallel"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("gelu needs a contiguous tensor");
        };
        let input = &storage.as_slice::<f32>()?[start..end];
        let mut out = vec![0f32; input.len()];
        out.par_chunks_mut(1 << 14)
            .zip(input.par_chunks(1 << 14))
            .for_each(|(o, i)| {
                for (o, &x) in o.iter_mut().zip(i) {
                    *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Exact (erf) GELU, `nn.GELU()`'s default.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 {
        xs.contiguous()?.apply_op1_no_bwd(&Gelu)
    } else {
        xs.gelu_erf()
    }
}

/// `.gelu_exact()` in method chains.
pub trait GeluExact {
    fn gelu_exact(&self) -> Result<Tensor>;
}

impl GeluExact for Tensor {
    fn gelu_exact(&self) -> Result<Tensor> {
        gelu(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::max_diff;
    use super::*;
    use candle_core::Device;

    #[test]
    fn gelu_matches_candles_exact_gelu() {
        let xs = Tensor::randn(0f32, 3.0, (3, 1000), &Device::Cpu).unwrap();
        let diff = max_diff(&gelu(&xs).unwrap(), &xs.gelu_erf().unwrap());
        assert!(diff < 1e-6, "{diff}");
    }
}
