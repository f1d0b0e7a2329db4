//! Binary mask morphology shared by the engines and the matting pass.

use rayon::prelude::*;

/// Box (square, Chebyshev) dilation of a row-major `w` x `h` binary mask by `r` pixels,
/// separable and O(n) per row whatever `r` is.
pub fn dilate(mask: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    if r == 0 {
        return mask.to_vec();
    }
    let mut rows = vec![false; w * h];
    rows.par_chunks_mut(w)
        .zip(mask.par_chunks(w))
        .for_each(|(out, row)| {
            // Distance to the last set pixel on the left, then on the right.
            let mut last = usize::MAX / 2;
            for x in 0..w {
                if row[x] {
                    last = x;
                }
                out[x] = x.wrapping_sub(last) <= r;
            }
            let mut next = usize::MAX / 2;
            for x in (0..w).rev() {
                if row[x] {
                    next = x;
                }
                out[x] |= next.wrapping_sub(x) <= r;
            }
        });
    let mut out = vec![false; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, dst)| {
        let lo = y.saturating_sub(r);
        let hi = (y + r).min(h - 1);
        for yy in lo..=hi {
            for (d, &s) in dst.iter_mut().zip(&rows[yy * w..(yy + 1) * w]) {
                *d |= s;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: a pixel is set when any pixel within `r` in both axes is.
    fn by_definition(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
        let near = |x: usize, y: usize| {
            (y.saturating_sub(r)..(y + r + 1).min(h))
                .any(|yy| (x.saturating_sub(r)..(x + r + 1).min(w)).any(|xx| m[yy * w + xx]))
        };
        (0..w * h).map(|i| near(i % w, i / w)).collect()
    }

    #[test]
    fn dilation_matches_its_definition_at_the_borders_and_any_radius() {
        let (w, h) = (23, 17);
        let mut seed = 7u32;
        let m: Vec<bool> = (0..w * h)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                seed >> 16 & 31 == 0
            })
            .collect();
        for r in [0, 1, 2, 5, 30] {
            assert_eq!(dilate(&m, w, h, r), by_definition(&m, w, h, r), "r = {r}");
        }
    }
}
