//! The soft-edge pass every front door calls (`aicut cut`, `aicut serve`, the editor's
//! export, copy and view): band, alpha, colours, from a selection mask and its image.
//! Plain pixels in and out: the image I/O that composes and encodes them builds on this
//! module, never the other way round.

use image::{GrayImage, ImageBuffer, Rgba, RgbaImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::work_level::{self, Level};
use super::{RgbF, foreground, laplacian, solve_alpha, to_float, trimap};

/// The band's half width on an ordinary edge, in pixels, when none is given.
pub const DEFAULT_BAND: u32 = 4;
/// The widest band accepted (the solve grows with the band's area).
pub const MAX_BAND: u32 = 200;

/// How the selection's edge becomes alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edges {
    /// The selection as it is: one anti-aliased step. The default where a cut-out follows
    /// every click (the server, the editor's live view): the soft pass would add its time,
    /// a few tenths of a second, to each.
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
/// needs both.
pub struct SoftAlpha {
    /// The matte in 8 bits, as views and PNGs take it.
    grey: GrayImage,
    /// The unknown pixels (index y·w + x) and their alpha at full precision; every other
    /// pixel is 0 or 1.
    band: Vec<(u32, f32)>,
    /// For a photo matted at a working level: that level and its matte, where the
    /// colours are estimated before they are brought to full size.
    level: Option<(Level, Vec<f32>)>,
}

impl SoftAlpha {
    /// The matte of a w×h trimap whose unknown pixels have the alphas `band`.
    fn new(trimap: &[u8], (w, h): (usize, usize), band: Vec<(u32, f32)>) -> SoftAlpha {
        let mut bytes: Vec<u8> = trimap
            .par_iter()
            .map(|&t| match laplacian::known_alpha(t) {
                Some(a) if a >= 0.5 => 255,
                _ => 0,
            })
            .collect();
        for &(i, a) in &band {
            bytes[i as usize] = (a * 255.0 + 0.5) as u8;
        }
        SoftAlpha {
            grey: GrayImage::from_raw(w as u32, h as u32, bytes).unwrap_or_default(),
            band,
            level: None,
        }
    }

    /// The alpha as 8-bit grey.
    pub fn image(&self) -> GrayImage {
        self.grey.clone()
    }

    /// The alpha of every pixel at full precision.
    fn full(&self) -> Vec<f32> {
        let mut alpha: Vec<f32> = self.grey.par_iter().map(|&g| g as f32 / 255.0).collect();
        for &(i, a) in &self.band {
            alpha[i as usize] = a;
        }
        alpha
    }

    /// The second half: the foreground colours of `image` (the one matted) where the
    /// alpha is partial.
    pub fn cut(&self, image: &RgbaImage) -> SoftCut {
        let started = std::time::Instant::now();
        let (w, h) = (self.grey.width() as usize, self.grey.height() as usize);
        let colours = match &self.level {
            Some((level, alpha)) => {
                let (fg, bg) = foreground::estimate_both(&level.img, alpha, level.w, level.h);
                tracing::debug!("colours at the working level in {:?}", started.elapsed());
                let rgba = image.as_raw();
                foreground::refine_at_full_size(level, (&fg, &bg), rgba, &self.grey, &self.band)
            }
            None => {
                let fg = foreground::estimate(&to_float(image.as_raw()), &self.full(), w, h);
                (self.band.iter())
                    .filter(|(_, a)| *a > 0.0 && *a < 1.0)
                    .map(|&(i, _)| (i, fg[i as usize]))
                    .collect()
            }
        };
        tracing::info!("soft edges: colours in {:?}", started.elapsed());
        SoftCut {
            alpha: self.image(),
            colours,
        }
    }
}

/// The matte of `image` under a trimap (its size; 0 background, 255 foreground, anything
/// else unknown): solved as it is up to the working size, at the working level above it
/// ([`work_level`]).
pub fn matte(image: &RgbaImage, trimap: &[u8]) -> SoftAlpha {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let s = work_level::factor(w, h);
    matte_at(image, trimap, s)
}

/// [`matte`] at a working level of s×s blocks (1: the photo as it is).
pub fn matte_at(image: &RgbaImage, trimap: &[u8], s: usize) -> SoftAlpha {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if s <= 1 {
        let alpha = solve_alpha(&to_float(image.as_raw()), trimap, w, h);
        let band = unknown_pixels(trimap)
            .map(|i| (i, alpha[i as usize]))
            .collect();
        return SoftAlpha::new(trimap, (w, h), band);
    }
    let started = std::time::Instant::now();
    let level = Level::new(image.as_raw(), trimap, (w, h), s);
    let t_level = started.elapsed();
    let coarse = solve_alpha(&level.img, &level.trimap, level.w, level.h);
    let t_solve = started.elapsed();
    let unknown: Vec<u32> = unknown_pixels(trimap).collect();
    let band = level.upsample(&coarse, image.as_raw(), &unknown, w);
    tracing::debug!(
        "alpha on {w}x{h} at 1/{s}: level in {t_level:?}, solved in {:?}, upsampled in {:?}",
        t_solve - t_level,
        started.elapsed() - t_solve
    );
    SoftAlpha {
        level: Some((level, coarse)),
        ..SoftAlpha::new(trimap, (w, h), band)
    }
}

/// The indices of a trimap's unknown pixels, in order.
fn unknown_pixels(trimap: &[u8]) -> impl Iterator<Item = u32> + '_ {
    (trimap.iter().enumerate())
        .filter(|(_, t)| laplacian::known_alpha(**t).is_none())
        .map(|(i, _)| i as u32)
}

/// Band and alpha of the soft pass over `image` under `mask`: None for hard edges or a
/// size mismatch.
pub fn soft_matte(image: &RgbaImage, mask: &GrayImage, opts: EdgeOptions) -> Option<SoftAlpha> {
    if opts.edges == Edges::Hard || image.dimensions() != mask.dimensions() {
        return None;
    }
    let (w, h) = (image.width() as usize, image.height() as usize);
    let started = std::time::Instant::now();
    let tri = trimap::band_from_mask(image.as_raw(), mask.as_raw(), w, h, opts.band.min(MAX_BAND));
    let t_band = started.elapsed();
    let matte = matte(image, &tri);
    tracing::info!(
        "soft edges on {w}x{h}: band {t_band:?}, alpha {:?}",
        started.elapsed() - t_band
    );
    Some(matte)
}
