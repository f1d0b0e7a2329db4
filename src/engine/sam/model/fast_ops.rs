//! CPU kernels where candle's general code was the encoder's and decoder's bottleneck
//! (measured with `perf` and stage timers on `aicut bench --engine sam`):
//!
//! - GELU: candle's exact GELU calls libm's `erff` per element on one thread. This runs the
//!   same exact GELU with the erf approximation PyTorch's vectorised CPU kernel uses
//!   (Abramowitz and Stegun 7.1.26, error below 1.5e-7) and a branch-free `exp`, written so
//!   the compiler vectorises it (AVX2 when the CPU has it), over all cores.
//! - Softmax: candle's calls scalar `expf` per score; ViT-B's global attention alone has
//!   800 million scores per image. Rows here run with the vectorised `exp`, fused with the
//!   bias or relative-position terms added before them, in place on the fresh scores.
//! - Bias and activation: a convolution's or linear layer's bias add and the GELU after it
//!   in one pass over the fresh output, in place, instead of two passes and a copy.

use candle_core::{CpuStorage, CustomOp1, InplaceOp2, InplaceOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// What follows a bias add in a fused pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Identity,
    Gelu,
}

/// `e^x` for `x <= 0` (here `-z^2`), relative error about 2e-7: Cephes' `expf` polynomial
/// after rounding `x / ln 2` with the 1.5 * 2^23 trick, all without branches or libm.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    exp_nonpositive_with::<false>(x)
}

/// `a * b + c`, in one rounding where the calling code is compiled for FMA (`FMA`);
/// without it `mul_add` would be a library call.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// [`exp_nonpositive`], its polynomial in fused multiply-adds when `FMA`.
#[inline(always)]
fn exp_nonpositive_with<const FMA: bool>(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.max(-87.0);
    let rounded = x * LOG2_E + ROUND;
    let n = rounded - ROUND;
    // The integer is in the low bits of `rounded` (its exponent is fixed): read from there.
    // `n as i32` is a saturating conversion in Rust, which compiles to scalar compares and
    // moves per lane and kept these loops from vectorising (`perf annotate`).
    let n_bits = rounded.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = madd::<FMA>(p, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5);
    let er = madd::<FMA>(p * r, r, r + 1.0);
    er * f32::from_bits(((n_bits + 127) << 23) as u32)
}

/// Exact (erf) GELU of one value, as PyTorch's vectorised CPU code computes it.
/// The polynomials run in fused multiply-adds when `FMA` (as PyTorch's AVX2 code does).
#[inline(always)]
fn gelu_one<const FMA: bool>(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / madd::<FMA>(0.327_591_1, z.abs(), 1.0);
    let mut poly = madd::<FMA>(1.061_405_4, t, -1.453_152_1);
    poly = madd::<FMA>(poly, t, 1.421_413_8);
    poly = madd::<FMA>(poly, t, -0.284_496_74);
    poly = madd::<FMA>(poly, t, 0.254_829_6) * t;
    let erf = madd::<FMA>(-poly, exp_nonpositive_with::<FMA>(-z * z), 1.0).copysign(z);
    0.5 * x * (1.0 + erf)
}

#[inline(always)]
fn gelu_portable<const FMA: bool>(xs: &mut [f32]) {
    for x in xs {
        *x = gelu_one::<FMA>(*x);
    }
}

/// The same loop compiled for AVX2 and FMA: eight lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(xs: &mut [f32]) {
    gelu_portable::<true>(xs)
}

/// GELU over a slice, in place, on the calling thread.
pub(super) fn gelu_slice(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { gelu_avx2(xs) };
    }
    gelu_portable::<false>(xs)
}

/// Applies `act` to a slice in place, on the calling thread.
pub(super) fn activate(xs: &mut [f32], act: Act) {
    match act {
        Act::Identity => {}
        Act::Gelu => gelu_slice(xs),
    }
}

/// Softmax of one row in place: eight running maxima and sums so the loops vectorise.
#[inline(always)]
fn softmax_row_portable(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = m.max(x);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sums = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for (s, x) in sums.iter_mut().zip(c) {
            *x = exp_nonpositive(*x - max);
            *s += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_nonpositive(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

/// Rows shorter than eight (the decoder's image-to-token attention: one row per head of
/// a few prompt tokens): the exponentials over the whole block at once, so that they
/// vectorise across rows; one row at a time they would all be scalar.
#[inline(always)]
fn softmax_short_rows_portable(rows: &mut [f32], n: usize) {
    for row in rows.chunks_exact_mut(n) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.iter_mut().for_each(|x| *x -= max);
    }
    rows.iter_mut().for_each(|x| *x = exp_nonpositive(*x));
    for row in rows.chunks_exact_mut(n) {
        let inv = 1.0 / row.iter().sum::<f32>();
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

#[inline(always)]
fn softmax_rows_portable(rows: &mut [f32], n: usize) {
    if n < 8 {
        return softmax_short_rows_portable(rows, n);
    }
    rows.chunks_exact_mut(n).for_each(softmax_row_portable);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn softmax_rows_avx2(rows: &mut [f32], n: usize) {
    softmax_rows_portable(rows, n)
}

/// Softmax of each `n`-long row of `rows`, in place, on the calling thread.
pub(super) fn softmax_rows(rows: &mut [f32], n: usize) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { softmax_rows_avx2(rows, n) };
    }
    softmax_rows_portable(rows, n)
}

/// The f32 values a fused op reads: the tensor must be contiguous.
pub(super) fn contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("a fused op needs contiguous tensors"),
    }
}

/// The f32 values an in-place op overwrites: contiguous and f32.
pub(super) fn contiguous_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("a fused op needs contiguous tensors");
    };
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("a fused op needs f32"),
    }
}

/// Elements per rayon task for element-wise passes: large enough to amortise the task,
/// small enough to stay in cache and to balance two to sixteen threads.
pub(super) const CHUNK: usize = 1 << 14;

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
        out.par_chunks_mut(CHUNK)
            .zip(input.par_chunks(CHUNK))
            .for_each(|(o, i)| {
                o.copy_from_slice(i);
                gelu_slice(o);
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

/// Adds a per-channel bias, then `act`, in place. The channel of element `i` is
/// `(i / inner) % channels`: `inner` is `h * w` for NCHW, 1 for channels-last.
struct BiasAct {
    inner: usize,
    act: Act,
}

impl InplaceOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (data, bias) = (contiguous_mut(s1, l1)?, contiguous(s2, l2)?);
        let (channels, act) = (bias.len(), self.act);
        if channels == 0 || data.len() % (channels * self.inner) != 0 {
            candle_core::bail!("bias of {channels} for {:?}", l1.shape());
        }
        if self.inner == 1 {
            let rows = (CHUNK / channels).max(1);
            data.par_chunks_mut(rows * channels).for_each(|chunk| {
                for row in chunk.chunks_exact_mut(channels) {
                    row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
                }
                activate(chunk, act);
            });
        } else {
            data.par_chunks_mut(self.inner)
                .enumerate()
                .for_each(|(plane, xs)| {
                    let b = bias[plane % channels];
                    xs.iter_mut().for_each(|x| *x += b);
                    activate(xs, act);
                });
        }
        Ok(())
    }
}

/// `act(xs + bias)` with the bias broadcast along channels (`inner` as in [`BiasAct`]).
/// On the CPU `xs` must be a fresh, unshared tensor: it is updated in place and returned.
pub fn bias_act(xs: Tensor, bias: &Tensor, inner: usize, act: Act) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 && xs.is_contiguous() {
        xs.inplace_op2(&bias.contiguous()?, &BiasAct { inner, act })?;
        return Ok(xs);
    }
    let shape: Vec<usize> = match inner {
        1 => vec![bias.elem_count()],
        _ => {
            let mut s = vec![1; xs.rank()];
            s[1] = bias.elem_count();
            s
        }
    };
    let ys = xs.broadcast_add(&bias.reshape(shape)?)?;
    match act {
        Act::Identity => Ok(ys),
        Act::Gelu => ys.gelu_erf(),
    }
}

/// `fresh += other`, then `act`, in place (same shape, both contiguous).
struct AddAct(Act);

impl InplaceOp2 for AddAct {
    fn name(&self) -> &'static str {
        "add-act"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (data, other) = (contiguous_mut(s1, l1)?, contiguous(s2, l2)?);
        if data.len() != other.len() {
            candle_core::bail!("add-act of {:?} and {:?}", l1.shape(), l2.shape());
        }
        let act = self.0;
        data.par_chunks_mut(CHUNK)
            .zip(other.par_chunks(CHUNK))
            .for_each(|(xs, ys)| {
                xs.iter_mut().zip(ys).for_each(|(x, y)| *x += y);
                activate(xs, act);
            });
        Ok(())
    }
}

/// `act(fresh + other)` for tensors of one shape. On the CPU `fresh` must be a fresh,
/// unshared tensor: it is updated in place and returned.
pub fn add_act(fresh: Tensor, other: &Tensor, act: Act) -> Result<Tensor> {
    if fresh.device().is_cpu() && fresh.dtype() == candle_core::DType::F32 && fresh.is_contiguous()
    {
        fresh.inplace_op2(&other.contiguous()?, &AddAct(act))?;
        return Ok(fresh);
    }
    let sum = (fresh + other)?;
    match act {
        Act::Identity => Ok(sum),
        Act::Gelu => sum.gelu_erf(),
    }
}

/// `softmax(scores * scale + bias)` over the last axis, in place: `scores (.., heads, n, n)`,
/// `bias (heads, n, n)` repeated over the leading axes. One pass per row, in cache.
struct ScaledBiasSoftmax {
    scale: f32,
}

impl InplaceOp2 for ScaledBiasSoftmax {
    fn name(&self) -> &'static str {
        "scaled-bias-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (data, bias) = (contiguous_mut(s1, l1)?, contiguous(s2, l2)?);
        let n = *l1.dims().last().unwrap_or(&0);
        if n == 0 || bias.is_empty() || data.len() % bias.len() != 0 || bias.len() % n != 0 {
            candle_core::bail!("softmax of {:?} with bias {:?}", l1.shape(), l2.shape());
        }
        let scale = self.scale;
        data.par_chunks_mut(bias.len()).for_each(|block| {
            block
                .iter_mut()
                .zip(bias)
                .for_each(|(x, b)| *x = *x * scale + b);
            softmax_rows(block, n);
        });
        Ok(())
    }
}

/// `softmax(scores * scale + bias)` over the last axis; `scores` fresh as for [`add_act`].
pub fn scaled_bias_softmax(scores: Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    if scores.device().is_cpu()
        && scores.dtype() == candle_core::DType::F32
        && scores.is_contiguous()
    {
        let op = ScaledBiasSoftmax {
            scale: scale as f32,
        };
        scores.inplace_op2(&bias.contiguous()?, &op)?;
        return Ok(scores);
    }
    candle_nn::ops::softmax_last_dim(&(scores * scale)?.broadcast_add(bias)?)
}

/// Scores of a block of query rows plus SAM's decomposed relative positions, then softmax,
/// in place: `scores (b, q_h * q_w, k_h * k_w)`, `rel_h (b, q_h, q_w, k_h)`,
/// `rel_w (b, q_h, q_w, k_w)`; score `(kh, kw)` of a query gets `rel_h[kh] + rel_w[kw]`.
struct RelPosSoftmax {
    k_h: usize,
    k_w: usize,
}

impl InplaceOp3 for RelPosSoftmax {
    fn name(&self) -> &'static str {
        "rel-pos-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let (rel_h, rel_w) = (contiguous(s2, l2)?, contiguous(s3, l3)?);
        let scores = contiguous_mut(s1, l1)?;
        let (k_h, k_w) = (self.k_h, self.k_w);
        let queries = scores.len() / (k_h * k_w);
        if queries * k_h * k_w != scores.len()
            || rel_h.len() != queries * k_h
            || rel_w.len() != queries * k_w
        {
            candle_core::bail!(
                "rel-pos-softmax shapes {:?} {:?} {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        scores
            .par_chunks_exact_mut(k_h * k_w)
            .enumerate()
            .for_each(|(query, row)| {
                let rh = &rel_h[query * k_h..][..k_h];
                let rw = &rel_w[query * k_w..][..k_w];
                for (line, &h) in row.chunks_exact_mut(k_w).zip(rh) {
                    line.iter_mut().zip(rw).for_each(|(x, &w)| *x += h + w);
                }
                softmax_rows(row, k_h * k_w);
            });
        Ok(())
    }
}

/// `softmax(scores + rel_h[.., kh] + rel_w[.., kw])` over each query's `k_h * k_w` keys
/// (shapes as in [`RelPosSoftmax`]); `scores` fresh as for [`add_act`].
pub fn rel_pos_softmax(
    scores: Tensor,
    rel_h: &Tensor,
    rel_w: &Tensor,
    (k_h, k_w): (usize, usize),
) -> Result<Tensor> {
    if scores.device().is_cpu()
        && scores.dtype() == candle_core::DType::F32
        && scores.is_contiguous()
    {
        let op = RelPosSoftmax { k_h, k_w };
        scores.inplace_op3(&rel_h.contiguous()?, &rel_w.contiguous()?, &op)?;
        return Ok(scores);
    }
    let (b, queries, _) = scores.dims3()?;
    let (q_h, q_w) = (rel_h.dim(1)?, rel_h.dim(2)?);
    let summed = (scores.reshape((b, q_h, q_w, k_h, k_w))?
        + rel_h.unsqueeze(4)?.broadcast_add(&rel_w.unsqueeze(3)?)?)?
    .reshape((b, queries, k_h * k_w))?;
    candle_nn::ops::softmax_last_dim(&summed)
}

/// A linear layer whose bias add and activation run as one fused pass.
pub fn linear_act(layer: &candle_nn::Linear, xs: &Tensor, act: Act) -> Result<Tensor> {
    let w = layer.weight();
    let dims = xs.dims().to_vec();
    let k = *dims.last().unwrap_or(&0);
    let rows = xs.elem_count() / k.max(1);
    let ys = xs.contiguous()?.reshape((rows, k))?.matmul(&w.t()?)?;
    let ys = match layer.bias() {
        Some(b) => bias_act(ys, b, 1, act)?,
        None if act == Act::Gelu => gelu(&ys)?,
        None => ys,
    };
    let mut out = dims;
    *out.last_mut()
        .expect("a linear layer's input has a last axis") = w.dim(0)?;
    ys.reshape(out)
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

    #[test]
    fn exp_matches_libm_where_gelu_uses_it() {
        for i in 0..=20_000 {
            let x = -(i as f32) * 0.005; // 0 down to -100, past the clamp at -87
            let (ours, libm) = (exp_nonpositive(x), x.exp());
            assert!(
                (ours - libm).abs() <= 3e-7 * libm.max(1e-30),
                "{x}: {ours} vs {libm}"
            );
        }
    }

    #[test]
    fn bias_act_matches_broadcast_add_then_gelu() {
        let dev = Device::Cpu;
        let nchw = Tensor::randn(0f32, 2.0, (2, 3, 5, 7), &dev).unwrap();
        let bias = Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
        let want = nchw
            .broadcast_add(&bias.reshape((1, 3, 1, 1)).unwrap())
            .unwrap()
            .gelu_erf()
            .unwrap();
        let got = bias_act(nchw.copy().unwrap(), &bias, 35, Act::Gelu).unwrap();
        assert!(max_diff(&got, &want) < 1e-6);

        let last = Tensor::randn(0f32, 2.0, (4, 9, 3), &dev).unwrap();
        let want = last.broadcast_add(&bias).unwrap();
        let got = bias_act(last.copy().unwrap(), &bias, 1, Act::Identity).unwrap();
        assert!(max_diff(&got, &want) < 1e-7);
    }

    #[test]
    fn add_act_and_softmax_match_candle() {
        let dev = Device::Cpu;
        let a = Tensor::randn(0f32, 2.0, (3, 70_000), &dev).unwrap();
        let b = Tensor::randn(0f32, 2.0, (3, 70_000), &dev).unwrap();
        let want = (&a + &b).unwrap().gelu_erf().unwrap();
        let got = add_act(a.copy().unwrap(), &b, Act::Gelu).unwrap();
        assert!(max_diff(&got, &want) < 1e-5);

        let scores = Tensor::randn(0f32, 4.0, (6, 2, 5, 5), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, (2, 5, 5), &dev).unwrap();
        let want = candle_nn::ops::softmax_last_dim(
            &(&scores * 0.3).unwrap().broadcast_add(&bias).unwrap(),
        )
        .unwrap();
        let got = scaled_bias_softmax(scores.copy().unwrap(), &bias, 0.3).unwrap();
        assert!(max_diff(&got, &want) < 1e-6);
    }

    #[test]
    fn rel_pos_softmax_matches_the_broadcast_sum_then_softmax() {
        let dev = Device::Cpu;
        let (b, q_h, q_w, k_h, k_w) = (2, 3, 4, 5, 6);
        let scores = Tensor::randn(0f32, 3.0, (b, q_h * q_w, k_h * k_w), &dev).unwrap();
        let rel_h = Tensor::randn(0f32, 1.0, (b, q_h, q_w, k_h), &dev).unwrap();
        let rel_w = Tensor::randn(0f32, 1.0, (b, q_h, q_w, k_w), &dev).unwrap();
        let summed = (scores.reshape((b, q_h, q_w, k_h, k_w)).unwrap()
            + rel_h
                .unsqueeze(4)
                .unwrap()
                .broadcast_add(&rel_w.unsqueeze(3).unwrap())
                .unwrap())
        .unwrap()
        .reshape((b, q_h * q_w, k_h * k_w))
        .unwrap();
        let want = candle_nn::ops::softmax_last_dim(&summed).unwrap();
        let got = rel_pos_softmax(scores.copy().unwrap(), &rel_h, &rel_w, (k_h, k_w)).unwrap();
        assert!(max_diff(&got, &want) < 1e-6);
    }

    #[test]
    fn linear_act_matches_candles_linear_then_gelu() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.3, (6, 4), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.3, 6, &dev).unwrap();
        let layer = candle_nn::Linear::new(w, Some(b));
        let xs = Tensor::randn(0f32, 1.0, (2, 5, 4), &dev).unwrap();
        let want = candle_nn::Module::forward(&layer, &xs)
            .unwrap()
            .gelu_erf()
            .unwrap();
        let got = linear_act(&layer, &xs, Act::Gelu).unwrap();
        assert_eq!(got.dims(), &[2, 5, 6]);
        assert!(max_diff(&got, &want) < 1e-5);
    }
}
