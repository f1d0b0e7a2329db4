//! The soft-edge pass every front door calls (`aicut cut`, `aicut serve`, the editor's
//! export, copy and view): band, alpha, colours, from a selection mask and its image.
//! Plain pixels in and out: the image I/O that composes and encodes them builds on this
//! module, never the other way round.

use image::{GrayImage, ImageBuffer, Rgba, RgbaImage};
use serde::{Deserialize, Serialize};

use super::{RgbF, foreground, solve_alpha, to_float, trimap};

/// The band's half width on an ordinary edge, in pixels, when none is given.
pub const DEFAULT_BAND: u32 = 4;
/// The widest band accepted (the solve grows with the band's area).
pub const MAX_BAND: u32 = 200;

/// How the selection's edge becomes alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edges {
    /// The selection as it is: one anti-aliased step. The default while the soft pass is
    /// far slower than a click (seconds on 12 MP photos; see the README's Edges section).
    #[default]
    Hard,
    /// Alpha matting in a band around the edge, with the foreground's own colours there.
    Soft,
}

/// The edge settings: which edges, and the band's half width on an ordinary edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EdgeOptions {
    pub edges: Edges,
    pub band: u32,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        EdgeOptions {
            edges: Edges::default(),
            band: DEFAULT_BAND,
        }
    }
}

impl EdgeOptions {
    pub const HARD: EdgeOptions = EdgeOptions {
        edges: Edges::Hard,
        band: DEFAULT_BAND,
    };
}

/// The result of the soft pass: the new alpha, and the straight (un-premultiplied)
/// foreground colour of every pixel whose alpha is partial.
#[derive(Debug, Clone)]
pub struct SoftCut {
    pub alpha: GrayImage,
    /// (pixel index y·w + x, colour in 0..=1).
    pub colours: Vec<(u32, RgbF)>,
}

impl SoftCut {
    /// Writes the estimated foreground colours into 8-bit pixels (alpha untouched).
    pub fn paint(&self, px: &mut RgbaImage) {
        let raw: &mut [u8] = px;
        for &(i, c) in &self.colours {
            if let Some(p) = raw.get_mut(i as usize * 4..i as usize * 4 + 3) {
                for (d, v) in p.iter_mut().zip(c) {
                    *d = (v * 255.0).round() as u8;
                }
            }
        }
    }

    /// A copy of `px` with the estimated foreground colours written in.
    pub fn painted(&self, px: &RgbaImage) -> RgbaImage {
        let mut out = px.clone();
        self.paint(&mut out);
        out
    }

    /// Writes the estimated foreground colours into 16-bit pixels (alpha untouched).
    pub fn paint16(&self, px: &mut ImageBuffer<Rgba<u16>, Vec<u16>>) {
        let raw: &mut [u16] = px;
        for &(i, c) in &self.colours {
            if let Some(p) = raw.get_mut(i as usize * 4..i as usize * 4 + 3) {
                for (d, v) in p.iter_mut().zip(c) {
                    *d = (v * 65535.0).round() as u16;
                }
            }
        }
    }
}

/// The soft pass's alpha alone (band and solve, no colours): what views of the selection
/// need, such as the editor's tint and a mask export. None as for [`soft_cut`].
pub fn soft_alpha(image: &RgbaImage, mask: &GrayImage, opts: EdgeOptions) -> Option<GrayImage> {
    soft_matte(image, mask, opts).map(|m| m.image())
}

/// The soft-edge pass over `image` under `mask` (same size): None for hard edges or a size
/// mismatch, when the mask is used as it is.
pub fn soft_cut(image: &RgbaImage, mask: &GrayImage, opts: EdgeOptions) -> Option<SoftCut> {
    Some(soft_matte(image, mask, opts)?.cut(image))
}

/// The first half of the soft pass (band and alpha), kept at full precision so the
/// second half (colours) can follow later: the editor's tint needs only this half, a save
/// needs both, and at 12 MP each half takes seconds.
pub struct SoftAlpha {
    alpha: Vec<f32>,
    w: usize,
    h: usize,
}

impl SoftAlpha {
    /// The alpha as 8-bit grey.
    pub fn image(&self) -> GrayImage {
        let bytes = self
            .alpha
            .iter()
            .map(|&a| (a * 255.0).round() as u8)
            .collect();
        GrayImage::from_raw(self.w as u32, self.h as u32, bytes).unwrap_or_default()
    }

    /// The second half: the foreground colours of `image` (the one matted) where the
    /// alpha is partial.
    pub fn cut(&self, image: &RgbaImage) -> SoftCut {
        let started = std::time::Instant::now();
        let img = to_float(image.as_raw());
        let fg = foreground::estimate(&img, &self.alpha, self.w, self.h);
        tracing::info!("soft edges: colours in {:?}", started.elapsed());
        let colours = (self.alpha.iter().enumerate())
            .filter(|(_, a)| **a > 0.0 && **a < 1.0)
            .filter_map(|(i, _)| Some((i as u32, *fg.get(i)?)))
            .collect();
        SoftCut {
            alpha: self.image(),
            colours,
        }
    }
}

/// Band and alpha of the soft pass over `image` under `mask`: None for hard edges or a
/// size mismatch.
pub fn soft_matte(image: &RgbaImage, mask: &GrayImage, opts: EdgeOptions) -> Option<SoftAlpha> {
    if opts.edges == Edges::Hard || image.dimensions() != mask.dimensions() {
        return None;
    }
    let (w, h) = (image.width() as usize, image.height() as usize);
    let started = std::time::Instant::now();
    let img = to_float(image.as_raw());
    let tri = trimap::band_from_mask(&img, mask.as_raw(), w, h, opts.band.min(MAX_BAND));
    let t_band = started.elapsed();
    let alpha = solve_alpha(&img, &tri, w, h);
    tracing::info!(
        "soft edges on {w}x{h}: band {t_band:?}, alpha {:?}",
        started.elapsed() - t_band
    );
    Some(SoftAlpha { alpha, w, h })
}
