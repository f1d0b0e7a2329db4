//! The alpha solve: the closed-form system ([`laplacian`]) by preconditioned conjugate
//! gradients ([`pcg`]), started from the same solve on the image at half size, and so on
//! down. The coarse answer already has the matte's large-scale shape, which is what CG
//! with a local preconditioner is slowest to find; the fine level only adds the detail.

use rayon::prelude::*;

use super::{RgbF, laplacian, pcg, work_level};

/// Relative residual at which a solve stops. Stopping at 1e-3 cost 0.7 SAD on the matting
/// benchmark's given trimaps; 1e-4 matches a full solve (pymatting's 1e-7 scores the same).
pub const TOLERANCE: f64 = 1e-4;
/// A bound on the iterations, for pathological inputs.
pub const MAX_ITERATIONS: usize = 1000;
/// Above this many unknowns (no image of the matting benchmark's given trimaps comes
/// near) a level is not solved: its matte is the half-size level's, upsampled.
const LARGE_UNKNOWNS: usize = 250_000;
/// A level with fewer unknowns is solved from a flat guess: the coarse solve would cost
/// more than it saves.
const COARSE_MIN_UNKNOWNS: usize = 4096;

/// The alpha matte (0..=1 a pixel) of a w×h image under a trimap (0 background, 255
/// foreground, anything else unknown; see [`laplacian::known_alpha`]): known pixels keep
/// their value, unknown ones get the closed-form solution.
pub fn solve_alpha(img: &[RgbF], trimap: &[u8], w: usize, h: usize) -> Vec<f32> {
    // On a pool thread: the solve alternates parallel passes with sequential sweeps, and
    // from outside the pool every pass wakes the workers and sleeps this thread, while
    // during the sweeps the idle workers spin against it for the cores.
    rayon::scope(|_| solve_level(img, trimap, (w, h), LARGE_UNKNOWNS).0)
}

/// [`solve_alpha`] with levels of more than `large` unknowns upsampled from half size, and
/// the diagonal shift its preconditioner needed (the next finer level starts from it rather
/// than retrying the smaller shifts that broke down here).
fn solve_level(
    img: &[RgbF],
    trimap: &[u8],
    (w, h): (usize, usize),
    large: usize,
) -> (Vec<f32>, f64) {
    let started = std::time::Instant::now();
    let mut alpha: Vec<f32> = trimap
        .iter()
        .map(|&t| laplacian::known_alpha(t).unwrap_or(0.5))
        .collect();
    let unknown = alpha.iter().filter(|&&a| a == 0.5).count();
    let mut shift = pcg::FIRST_SHIFT;
    if let Some((guess, coarse_shift)) = coarse_guess(img, trimap, (w, h), unknown, large) {
        // A band this big is a multi-megapixel photo's: the half-size solve, upsampled, is
        // its matte. Solving here too costs seconds and scored no better on the benchmark
        // images upscaled to 12 MP.
        if unknown > large {
            tracing::debug!("alpha on {w}x{h}: {unknown} unknowns, upsampled from half size");
            return (guess, coarse_shift);
        }
        alpha = guess;
        shift = coarse_shift;
    }
    let guessed = started.elapsed();
    let system = laplacian::build(img, trimap, w, h);
    let built = started.elapsed();
    let mut x: Vec<f64> = system
        .pixels
        .iter()
        .map(|&p| alpha[p as usize] as f64)
        .collect();
    let (iterations, shift) = pcg::solve(&system, &mut x, TOLERANCE, MAX_ITERATIONS, shift);
    tracing::debug!(
        "alpha on {w}x{h}: {unknown} unknowns, {} after the coarse guess (in {guessed:?}), \
         built in {:?}, {iterations} iterations in {:?}",
        system.len(),
        built - guessed,
        started.elapsed() - built
    );
    for (&p, &v) in system.pixels.iter().zip(&x) {
        alpha[p as usize] = v.clamp(0.0, 1.0) as f32;
    }
    (alpha, shift)
}

/// The unknowns' starting values: the solve of the half-size image and trimap, brought to
/// this size by guided upsampling ([`super::guided`]: the half-size matte's local fit of
/// alpha on colour, applied to this level's colours). None when there are too few unknowns
/// to bother. Against a bilinear upsampling of the half-size matte, this start cut the
/// matting benchmark's solve time by about a tenth and its SAD from 5.18 to 5.11.
fn coarse_guess(
    img: &[RgbF],
    trimap: &[u8],
    (w, h): (usize, usize),
    unknown: usize,
    large: usize,
) -> Option<(Vec<f32>, f64)> {
    if unknown < COARSE_MIN_UNKNOWNS || w < 8 || h < 8 {
        return None;
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (cimg, ctri) = halve(img, trimap, w, h);
    let (coarse, shift) = solve_level(&cimg, &ctri, (cw, ch), large);
    let fit = super::guided::Upsampling::new(&cimg, &coarse, &ctri, (cw, ch), 2);
    let guess = trimap
        .par_iter()
        .enumerate()
        .map(|(p, &t)| {
            laplacian::known_alpha(t).unwrap_or_else(|| fit.alpha_at(p % w, p / w, img[p]))
        })
        .collect();
    Some((guess, shift))
}

/// The image averaged over 2×2 blocks, and the trimap of those blocks (see
/// [`work_level::blocks`]).
fn halve(img: &[RgbF], trimap: &[u8], w: usize, h: usize) -> (Vec<RgbF>, Vec<u8>) {
    work_level::blocks(|i| img[i], trimap, (w, h), 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disc whose edge falls off over `soft` pixels, in two colours.
    fn disc(n: usize, soft: f32) -> (Vec<RgbF>, Vec<f32>) {
        let c = n as f32 / 2.0;
        let alpha: Vec<f32> = (0..n * n)
            .map(|i| {
                let (x, y) = ((i % n) as f32 + 0.5, (i / n) as f32 + 0.5);
                let r = ((x - c).powi(2) + (y - c).powi(2)).sqrt();
                ((c * 0.6 - r) / soft + 0.5).clamp(0.0, 1.0)
            })
            .collect();
        let img = alpha
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let shade = 0.1 * ((i % 7) as f32 / 7.0);
                let (f, b) = ([0.9, 0.7, 0.2], [0.1 + shade, 0.2, 0.6]);
                [0, 1, 2].map(|k| a * f[k] + (1.0 - a) * b[k])
            })
            .collect();
        (img, alpha)
    }

    /// Unknown where the true alpha is partial, widened by `r`.
    fn trimap_of(alpha: &[f32], n: usize, r: usize) -> Vec<u8> {
        let partial: Vec<bool> = alpha.iter().map(|&a| a > 0.0 && a < 1.0).collect();
        let wide = super::super::trimap::dilate(&partial, n, n, r);
        alpha
            .iter()
            .zip(wide)
            .map(|(&a, u)| match (u, a >= 0.5) {
                (true, _) => 128,
                (false, true) => 255,
                (false, false) => 0,
            })
            .collect()
    }

    fn mean_error(a: &[f32], b: &[f32], tri: &[u8]) -> f32 {
        let unknown: Vec<usize> = (0..tri.len()).filter(|&i| tri[i] == 128).collect();
        unknown.iter().map(|&i| (a[i] - b[i]).abs()).sum::<f32>() / unknown.len() as f32
    }

    #[test]
    fn the_coarse_guess_already_has_the_mattes_shape() {
        let n = 192;
        let (img, alpha) = disc(n, 10.0);
        let tri = trimap_of(&alpha, n, 4);
        let unknown = tri.iter().filter(|&&t| t == 128).count();
        assert!(unknown >= COARSE_MIN_UNKNOWNS, "{unknown} unknowns");
        let (guess, _) =
            coarse_guess(&img, &tri, (n, n), unknown, LARGE_UNKNOWNS).expect("a coarse level");
        // A flat guess is off by about a quarter; a misplaced or mis-scaled upsampling
        // by far more than this.
        let err = mean_error(&guess, &alpha, &tri);
        assert!(err < 0.05, "coarse guess off by {err}");
        let solved = solve_alpha(&img, &tri, n, n);
        let err = mean_error(&solved, &alpha, &tri);
        assert!(err < 0.02, "solve off by {err}");
    }

    #[test]
    fn a_band_over_the_large_limit_takes_the_upsampled_half_size_matte() {
        let n = 192;
        let (img, alpha) = disc(n, 10.0);
        let tri = trimap_of(&alpha, n, 4);
        let unknown = tri.iter().filter(|&&t| t == 128).count();
        let (full, _) = solve_level(&img, &tri, (n, n), LARGE_UNKNOWNS);
        // Only the top level is over this limit: it is not solved but upsampled.
        let (upsampled, _) = solve_level(&img, &tri, (n, n), unknown - 1);
        let (guess, _) = coarse_guess(&img, &tri, (n, n), unknown, unknown - 1).unwrap();
        // (Parallel sums may round differently from run to run: compare with a margin.)
        let gap = mean_error(&upsampled, &guess, &tri);
        assert!(gap < 1e-5, "the level over the limit was solved ({gap})");
        assert!(
            mean_error(&full, &guess, &tri) > 1e-3,
            "the full solve was skipped"
        );
        // Known pixels stay exact; the unknowns are still close to the truth.
        for i in 0..n * n {
            if let Some(a) = laplacian::known_alpha(tri[i]) {
                assert_eq!(upsampled[i], a, "known pixel {i}");
            }
        }
        let err = mean_error(&upsampled, &alpha, &tri);
        assert!(err < 0.05, "upsampled matte off by {err}");
    }

    #[test]
    fn a_halved_trimap_keeps_known_blocks_and_covers_the_unknown_ones() {
        let img = vec![[0.5; 3]; 9];
        #[rustfmt::skip]
        let tri = [
            0, 0, 255,
            0, 0, 255,
            128, 255, 255,
        ];
        let (cimg, ctri) = halve(&img, &tri, 3, 3);
        assert_eq!(cimg.len(), 4);
        assert_eq!(ctri, vec![0, 255, 128, 255]);
        let mixed = [0, 255, 0, 0];
        assert_eq!(halve(&img[..4], &mixed, 2, 2).1, vec![128]);
    }
}
