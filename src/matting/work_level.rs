//! Large photos are matted at a working level of about a megapixel: the image is averaged
//! over s×s blocks, the matte solved there, and brought back to full size by guided
//! upsampling ([`super::guided`]), which keeps strands finer than a block. The colours
//! follow the same way ([`super::foreground::refine_at_full_size`]). This is what makes a
//! 12 MP photo's soft edges cost a fraction of a second rather than seconds; photos up to
//! the working size are matted as they are.

use rayon::prelude::*;

use super::{RgbF, guided, trimap};

/// Photos with more pixels than this are matted at a working level below it. The solve's
/// cost grows faster than its band: at 2 MP a full-size solve took 1.2–1.9 s where the
/// level at 1/2 took 0.35 s, and on the matting benchmark (0.5 MP) solving at 1/2 raised
/// the error by only 3–6%.
pub const WORK_PIXELS: usize = 1 << 20;

/// The block size s for a w×h photo: 1 up to [`WORK_PIXELS`], else the smallest s whose
/// level fits under it.
pub fn factor(w: usize, h: usize) -> usize {
    let mut s = 1;
    while w.div_ceil(s) * h.div_ceil(s) > WORK_PIXELS {
        s += 1;
    }
    s
}

/// A w×h image's colours (`colour(i)` of pixel i) averaged over s×s blocks, and the
/// trimap of those blocks ([`trimap::block_value`]: known where all its pixels are known
/// alike, unknown otherwise, so the coarser band covers the finer). The last row and column
/// of blocks may be smaller.
pub fn blocks(
    colour: impl Fn(usize) -> RgbF + Sync,
    tri: &[u8],
    (w, h): (usize, usize),
    s: usize,
) -> (Vec<RgbF>, Vec<u8>) {
    let (bw, bh) = (w.div_ceil(s), h.div_ceil(s));
    (0..bw * bh)
        .into_par_iter()
        .map(|c| {
            let (cx, cy) = (c % bw, c / bw);
            let (ys, xs) = (cy * s..((cy + 1) * s).min(h), cx * s..((cx + 1) * s).min(w));
            let block = ys.flat_map(|y| xs.clone().map(move |x| y * w + x));
            let mut sum = [0.0f32; 3];
            let mut n = 0.0;
            for i in block.clone() {
                for (acc, v) in sum.iter_mut().zip(colour(i)) {
                    *acc += v;
                }
                n += 1.0;
            }
            let t = trimap::block_value(block.map(|i| tri[i]));
            (sum.map(|v| v / n), t)
        })
        .unzip()
}

/// The working level of a photo: its colours and trimap in s×s [`blocks`].
pub struct Level {
    pub w: usize,
    pub h: usize,
    pub s: usize,
    pub img: Vec<RgbF>,
    pub trimap: Vec<u8>,
}

impl Level {
    /// The level of an RGBA photo (w×h) and its trimap, in blocks of s×s.
    pub fn new(rgba: &[u8], tri: &[u8], (w, h): (usize, usize), s: usize) -> Level {
        let (img, trimap) = blocks(|i| super::rgb_at(rgba, i), tri, (w, h), s);
        Level {
            w: w.div_ceil(s),
            h: h.div_ceil(s),
            s,
            img,
            trimap,
        }
    }

    /// Where the centre of photo pixel (x, y) falls in this level's pixel-index coordinates.
    pub fn at(&self, x: usize, y: usize) -> (f32, f32) {
        guided::coarse_at(x, y, self.s)
    }

    /// The alphas of the photo's `unknown` pixels (indices y·w + x) by guided upsampling
    /// of this level's matte `alpha`.
    pub fn upsample(
        &self,
        alpha: &[f32],
        rgba: &[u8],
        unknown: &[u32],
        w: usize,
    ) -> Vec<(u32, f32)> {
        let fit = guided::Upsampling::new(&self.img, alpha, &self.trimap, (self.w, self.h), self.s);
        unknown
            .par_iter()
            .map(|&i| {
                let (x, y) = (i as usize % w, i as usize / w);
                (i, fit.alpha_at(x, y, super::rgb_at(rgba, i as usize)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factor_keeps_the_level_under_the_working_size() {
        assert_eq!(factor(800, 600), 1);
        assert_eq!(factor(1024, 1024), 1);
        assert_eq!(factor(4000, 3000), 4);
        for (w, h) in [(1449, 1449), (3100, 3875), (6000, 4000), (40000, 100)] {
            let s = factor(w, h);
            assert!(
                s > 1 && w.div_ceil(s) * h.div_ceil(s) <= WORK_PIXELS,
                "{w}x{h}"
            );
            assert!(
                w.div_ceil(s - 1) * h.div_ceil(s - 1) > WORK_PIXELS,
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn a_level_averages_blocks_and_keeps_only_uniform_known_blocks() {
        // 3×2 photo in blocks of 2: block 0 holds pixels 0,1,3,4; block 1 holds 2,5.
        let rgba: Vec<u8> = [0u8, 20, 40, 60, 80, 100]
            .iter()
            .flat_map(|&v| [v, v, v, 255])
            .collect();
        let tri = [255, 255, 0, 255, 128, 0];
        let level = Level::new(&rgba, &tri, (3, 2), 2);
        assert_eq!((level.w, level.h), (2, 1));
        assert_eq!(level.trimap, vec![trimap::UNKNOWN, trimap::BACKGROUND]);
        assert!((level.img[0][0] - 40.0 / 255.0).abs() < 1e-6);
        assert!((level.img[1][1] - 70.0 / 255.0).abs() < 1e-6);
    }
}
