//! Fused CPU passes for the mask decoder's per-click work. `perf` on the decoder loop of
//! `aicut bench --engine sam` showed a quarter of its time in candle's element-wise ops on
//! `(4096, C)` tensors: above 64K elements they run on candle's own spinning thread pool,
//! whose waits cost more than the adds when two shared cores also run rayon's pool (for
//! gemm). These passes run on rayon, in place on fresh tensors, one pass where candle makes
//! two or three (bias, layer norm, GELU).

use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Result, Tensor};
use rayon::prelude::*;

use super::fast_ops::{self, Act, CHUNK, contiguous_mut, gelu_slice, softmax_rows};

fn fast_path(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous()
}

/// Softmax over the last axis, in place.
struct Softmax;

impl InplaceOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let n = *l.dims().last().unwrap_or(&0);
        let data = contiguous_mut(s, l)?;
        if n == 0 {
            return Ok(());
        }
        let rows = (CHUNK / n).max(1);
        data.par_chunks_mut(rows * n)
            .for_each(|c| softmax_rows(c, n));
        Ok(())
    }
}

/// Softmax over the last axis of a fresh, unshared tensor (updated in place and returned).
pub fn softmax_last_dim(fresh: Tensor) -> Result<Tensor> {
    if fast_path(&fresh) {
        fresh.inplace_op1(&Softmax)?;
        return Ok(fresh);
    }
    candle_nn::ops::softmax_last_dim(&fresh)
}

/// `shared + term` where `term` is fresh and either `shared`'s shape (then updated in
/// place) or one row broadcast over `shared`'s rows.
pub fn plus(shared: &Tensor, term: Tensor) -> Result<Tensor> {
    if term.dims() == shared.dims() {
        return fast_ops::add_act(term, shared, Act::Identity);
    }
    if term.dim(0)? == 1 && term.rank() == 2 && shared.rank() == 2 {
        return fast_ops::bias_act(shared.copy()?, &term.flatten_all()?, 1, Act::Identity);
    }
    shared.broadcast_add(&term)
}

/// `a + b` for two tensors of one shape that are both kept: one copy, one in-place pass.
pub fn sum(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    fast_ops::add_act(a.copy()?, b, Act::Identity)
}

/// `dst (m, n) = lhs (m, k) · rhs`, all row-major, on the calling thread (the fused passes
/// run one tile per rayon task). `rhs` is `(k, n)`, or `(n, k)` read transposed when
/// `rhs_transposed`.
pub(super) fn matmul_into(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    (m, k, n): (usize, usize, usize),
    rhs_transposed: bool,
) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n);
    let rhs = if rhs_transposed {
        Strided::new(rhs, (k, n), (1, k))
    } else {
        Strided::new(rhs, (k, n), (n, 1))
    };
    matmul_strided(dst, n, Strided::new(lhs, (m, k), (k, 1)), rhs);
}

/// A matrix read from a slice with any row and column strides (a head's columns of a
/// wider matrix, or a transpose), checked to lie inside the slice.
#[derive(Clone, Copy)]
pub(super) struct Strided<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Strided<'a> {
    /// # Panics
    /// Where the last element lies outside `data`.
    pub(super) fn new(
        data: &'a [f32],
        (rows, cols): (usize, usize),
        (row_stride, col_stride): (usize, usize),
    ) -> Self {
        let last = (rows.max(1) - 1) * row_stride + (cols.max(1) - 1) * col_stride;
        assert!(
            rows == 0 || cols == 0 || last < data.len(),
            "matrix outside its slice"
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }
}

/// `dst = lhs · rhs` on the calling thread, `dst` row-major with rows `dst_stride` apart
/// (its other columns untouched).
pub(super) fn matmul_strided(dst: &mut [f32], dst_stride: usize, lhs: Strided, rhs: Strided) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    assert!(n <= dst_stride && (m - 1) * dst_stride + n <= dst.len());
    // SAFETY: the two operands lie inside their slices (checked by `Strided::new`) and
    // the (m, n) destination with rows `dst_stride` apart inside `dst` (checked just
    // above); `dst` is not read (`read_dst` false).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            false,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[inline(always)]
fn bias_norm_gelu_rows(rows: &mut [f32], bias: &[f32], params: &[f32], eps: f32) {
    let c = params.len() / 2;
    let (w, beta) = params.split_at(c);
    for row in rows.chunks_exact_mut(bias.len()) {
        for (px, b) in row.chunks_exact_mut(c).zip(bias.chunks_exact(c)) {
            px.iter_mut().zip(b).for_each(|(x, b)| *x += b);
            let mean = px.iter().sum::<f32>() / c as f32;
            let var = px.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / c as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((x, w), b) in px.iter_mut().zip(w).zip(beta) {
                *x = (*x - mean) * inv * w + b;
            }
        }
    }
    gelu_slice(rows);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bias_norm_gelu_rows_avx2(rows: &mut [f32], bias: &[f32], params: &[f32], eps: f32) {
    bias_norm_gelu_rows(rows, bias, params, eps)
}

/// [`bias_norm_gelu_rows`] on the calling thread, vectorised where the CPU allows.
pub(super) fn bias_norm_gelu_slice(rows: &mut [f32], bias: &[f32], params: &[f32], eps: f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { bias_norm_gelu_rows_avx2(rows, bias, params, eps) };
    }
    bias_norm_gelu_rows(rows, bias, params, eps)
}

#[cfg(test)]
mod tests {
    use super::super::max_diff;
    use super::*;
    use candle_core::Device;

    /// Reproducible values spread like a unit normal's (a sum of four uniforms, scaled),
    /// so a tolerance that passes once passes every run.
    fn randn(shape: (usize, usize)) -> Tensor {
        let mut state = (shape.0 * 1_000_003 + shape.1) as u64 | 1;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let values = (0..shape.0 * shape.1)
            .map(|_| ((0..4).map(|_| uniform()).sum::<f32>() - 2.0) * 3f32.sqrt())
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn softmax_matches_candles() {
        // Rows of 7 (the image-to-token attention) and of 4096 (token to image).
        for (rows, n) in [(5000, 7), (9, 4096), (3, 1)] {
            let x = (randn((rows, n)) * 4.0).unwrap();
            let theirs = candle_nn::ops::softmax_last_dim(&x).unwrap();
            let ours = softmax_last_dim(x.copy().unwrap()).unwrap();
            // The two round exp differently: about 1e-6 apart on values up to 1.
            let diff = max_diff(&ours, &theirs);
            assert!(diff < 1e-5, "{rows}x{n}: {diff}");
        }
    }

    #[test]
    fn plus_and_sum_match_broadcast_add() {
        let shared = randn((300, 64));
        let full = randn((300, 64));
        let row = randn((1, 64));
        let theirs = (&shared + &full).unwrap();
        assert_eq!(
            max_diff(&plus(&shared, full.copy().unwrap()).unwrap(), &theirs),
            0.0
        );
        assert_eq!(max_diff(&sum(&shared, &full).unwrap(), &theirs), 0.0);
        let theirs = shared.broadcast_add(&row).unwrap();
        assert_eq!(max_diff(&plus(&shared, row).unwrap(), &theirs), 0.0);
    }

    #[test]
    fn bias_norm_gelu_matches_add_layer_norm_then_exact_gelu() {
        let (rows, k, c) = (1000, 4, 64);
        let x = (randn((rows, k * c)) * 3.0).unwrap();
        let bias = randn((1, k * c));
        let (w, b) = (randn((1, c)).flatten_all().unwrap(), randn((1, c)));
        let b = b.flatten_all().unwrap();
        let params: Vec<f32> = Tensor::cat(&[&w, &b], 0).unwrap().to_vec1().unwrap();
        let eps = 1e-6;
        let mut ours: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let bias_values: Vec<f32> = bias.flatten_all().unwrap().to_vec1().unwrap();
        bias_norm_gelu_slice(&mut ours, &bias_values, &params, eps);
        let ours = Tensor::from_vec(ours, (rows, k * c), &Device::Cpu).unwrap();
        let summed = x
            .broadcast_add(&bias)
            .unwrap()
            .reshape((rows * k, c))
            .unwrap();
        let theirs = candle_nn::ops::layer_norm(&summed, &w, &b, eps)
            .unwrap()
            .gelu_erf()
            .unwrap()
            .reshape((rows, k * c))
            .unwrap();
        let diff = max_diff(&ours, &theirs);
        assert!(diff < 1e-4, "{diff}");
    }
}
