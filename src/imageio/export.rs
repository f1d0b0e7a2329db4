//! The cut-out as a file: full size or trimmed to the subject, the selection alone as a
//! grey mask, PNG at the source's depth with its ICC profile, or lossless WebP.

use std::path::Path;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, GrayImage, ImageEncoder, RgbaImage, imageops};
use serde::{Deserialize, Serialize};

use super::LoadedImage;

/// The largest width or height a WebP file can hold.
const WEBP_MAX_SIDE: u32 = 16383;

/// The container written; chosen by the output's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExportFormat {
    /// PNG, 16 bits a channel for 16-bit sources, with the source's ICC profile.
    #[default]
    Png,
    /// Lossless WebP with alpha (8 bits a channel), with the source's ICC profile.
    WebP,
}

impl ExportFormat {
    /// The format for an output path, or a message naming what aicut writes.
    pub fn from_path(path: &Path) -> Result<Self, String> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("png") => Ok(ExportFormat::Png),
            Some("webp") => Ok(ExportFormat::WebP),
            _ => Err(format!(
                "cannot write {}: aicut saves cut-outs as .png or .webp",
                path.display()
            )),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Png => "png",
            ExportFormat::WebP => "webp",
        }
    }
}

/// What to write besides the format. The default keeps the selection's edge as it is
/// (hard edges: `aicut cut` asks for soft ones itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportOptions {
    /// Crop to the selected pixels plus this margin (clamped to the image).
    pub trim: Option<u32>,
    /// Write the selection itself as a grey image (white = keep) instead of the cut-out.
    pub mask_only: bool,
    /// Hard or soft edges (matting in a band; the mask written is then the soft alpha).
    pub edges: crate::matting::EdgeOptions,
}

/// Encodes the export of `image` under `mask` (same size) as `format` asks, running the
/// soft-edge pass when the options ask for soft edges.
pub fn export_cutout(
    image: &LoadedImage,
    mask: &GrayImage,
    format: ExportFormat,
    options: ExportOptions,
) -> Result<Vec<u8>, String> {
    let soft = if options.mask_only {
        // The mask alone needs the soft alpha, not the foreground colours.
        crate::matting::soft_alpha(image.pixels(), mask, options.edges).map(|alpha| {
            crate::matting::SoftCut {
                alpha,
                colours: Vec::new(),
            }
        })
    } else {
        crate::matting::soft_cut(image.pixels(), mask, options.edges)
    };
    export_cut(image, mask, soft.as_ref(), format, options)
}

/// [`export_cutout`] with the soft-edge pass already done (`soft`, when edges are soft):
/// the editor shares one pass between its view, the clipboard and the save.
pub fn export_cut(
    image: &LoadedImage,
    mask: &GrayImage,
    soft: Option<&crate::matting::SoftCut>,
    format: ExportFormat,
    options: ExportOptions,
) -> Result<Vec<u8>, String> {
    if mask.dimensions() != (image.width(), image.height()) {
        return Err("the selection does not match the image size".into());
    }
    let region_of = |mask: &GrayImage| match options.trim {
        Some(margin) => {
            trim_bounds(mask, margin).ok_or("nothing is selected, so there is nothing to trim to")
        }
        None => Ok((0, 0, image.width(), image.height())),
    };
    let mask = soft.map_or(mask, |s| &s.alpha);
    if options.mask_only {
        let (x, y, w, h) = region_of(mask)?;
        let mask = imageops::crop_imm(mask, x, y, w, h).to_image();
        return encode(format, mask.as_raw(), w, h, ExtendedColorType::L8, None);
    }
    let region = region_of(mask)?;
    let (w, h) = (region.2, region.3);
    let icc = image.icc_profile().map(<[u8]>::to_vec);
    match (format, image.deep_pixels()) {
        (ExportFormat::Png, Some(deep)) => {
            let mut deep = std::borrow::Cow::Borrowed(deep);
            if let Some(soft) = soft {
                soft.paint16(deep.to_mut());
            }
            let cut = cut_region(deep.as_raw(), deep.width(), mask, region, |v| v as u16);
            let bytes: &[u8] = bytemuck::cast_slice(&cut);
            encode(format, bytes, w, h, ExtendedColorType::Rgba16, icc)
        }
        _ => {
            let mut px = std::borrow::Cow::Borrowed(image.pixels());
            if let Some(soft) = soft {
                soft.paint(px.to_mut());
            }
            let cut = cut_region(px.as_raw(), px.width(), mask, region, |v| v as u8);
            encode(format, &cut, w, h, ExtendedColorType::Rgba8, icc)
        }
    }
}

/// The RGBA samples of `region` (x, y, width, height) of an image `width` pixels wide, with
/// the mask as alpha (times any alpha they had), in one pass and one allocation: a 50 MP
/// export makes no full-size copies.
fn cut_region<T: Copy + Into<u32>>(
    samples: &[T],
    width: u32,
    mask: &GrayImage,
    (x, y, w, h): (u32, u32, u32, u32),
    narrow: fn(u32) -> T,
) -> Vec<T> {
    let (width, x, w) = (width as usize, x as usize, w as usize);
    let mut out = Vec::with_capacity(w * h as usize * 4);
    // Rows outside the image or the mask (a caller's mistake) come out transparent.
    let no_mask = vec![0u8; w];
    for row in y as usize..(y + h) as usize {
        let start = row * width + x;
        let px = samples.get(start * 4..(start + w) * 4).unwrap_or(&[]);
        let m = mask.as_raw().get(start..start + w).unwrap_or(&no_mask);
        for (p, &m) in px.chunks_exact(4).zip(m) {
            out.extend_from_slice(&p[..3]);
            out.push(narrow((p[3].into() * m as u32 + 127) / 255));
        }
    }
    out
}

fn encode(
    format: ExportFormat,
    data: &[u8],
    w: u32,
    h: u32,
    color: ExtendedColorType,
    icc: Option<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() / 3);
    let result = match format {
        ExportFormat::Png => {
            let mut enc =
                PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive);
            if let Some(icc) = icc {
                enc.set_icc_profile(icc).map_err(|e| e.to_string())?;
            }
            enc.write_image(data, w, h, color)
        }
        ExportFormat::WebP => {
            if w > WEBP_MAX_SIDE || h > WEBP_MAX_SIDE {
                return Err(format!(
                    "WebP holds at most {WEBP_MAX_SIDE} pixels a side and this cut-out is {w}x{h}; save it as .png"
                ));
            }
            let mut enc = WebPEncoder::new_lossless(&mut out);
            if let Some(icc) = icc {
                enc.set_icc_profile(icc).map_err(|e| e.to_string())?;
            }
            // The WebP encoder takes grey only as RGB.
            let expanded;
            let (data, color) = if color == ExtendedColorType::L8 {
                expanded = data.iter().flat_map(|&v| [v, v, v]).collect::<Vec<u8>>();
                (&expanded[..], ExtendedColorType::Rgb8)
            } else {
                (data, color)
            };
            enc.write_image(data, w, h, color)
        }
    };
    // Some encoder errors span lines; messages here are one line.
    result.map_err(|e| format!("could not encode the {format:?} file: {e}").replace('\n', " "))?;
    Ok(out)
}

/// The smallest rectangle (x, y, width, height) holding every pixel the mask selects at
/// all, grown by `margin` on each side and clamped to the image; None when nothing is.
pub fn trim_bounds(mask: &GrayImage, margin: u32) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = mask.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (y, row) in mask.as_raw().chunks_exact(w.max(1) as usize).enumerate() {
        let Some(first) = row.iter().position(|&v| v > 0) else {
            continue;
        };
        let last = row.iter().rposition(|&v| v > 0).unwrap_or(first);
        x0 = x0.min(first as u32);
        x1 = x1.max(last as u32);
        y0 = y0.min(y as u32);
        y1 = y as u32;
    }
    if x0 == u32::MAX {
        return None;
    }
    let (x0, y0) = (x0.saturating_sub(margin), y0.saturating_sub(margin));
    let x1 = x1.saturating_add(margin).min(w - 1);
    let y1 = y1.saturating_add(margin).min(h - 1);
    Some((x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

/// Encodes RGBA pixels as PNG. Fast compression: these files are written on every click.
pub fn encode_png(img: &RgbaImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(img.as_raw().len() / 4);
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgba8,
        )
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The cut-out: the image's colours with the mask as alpha (times any alpha it had).
pub fn compose_cutout(image: &RgbaImage, mask: &GrayImage) -> RgbaImage {
    let (w, h) = image.dimensions();
    compose_cutout_region(image, mask, (0, 0, w, h))
}

/// [`compose_cutout`] of a region (x, y, width, height) inside the image, e.g. from
/// [`trim_bounds`]; the mask has the image's size.
pub fn compose_cutout_region(
    image: &RgbaImage,
    mask: &GrayImage,
    region: (u32, u32, u32, u32),
) -> RgbaImage {
    let mut samples = cut_region(image.as_raw(), image.width(), mask, region, |v| v as u8);
    samples.resize(region.2 as usize * region.3 as usize * 4, 0);
    RgbaImage::from_raw(region.2, region.3, samples).unwrap_or_default()
}

/// The 8-bit cut-out of `image` under `mask` with the edges `edges` asks for: soft edges
/// take the matted alpha and the foreground's estimated colours.
pub fn compose_edges(
    image: &RgbaImage,
    mask: &GrayImage,
    edges: crate::matting::EdgeOptions,
) -> RgbaImage {
    match crate::matting::soft_cut(image, mask, edges) {
        Some(soft) => compose_soft(image, &soft),
        None => compose_cutout(image, mask),
    }
}

/// The 8-bit cut-out of `image` after a soft-edge pass: its alpha, and the foreground's
/// estimated colours where the alpha is partial.
pub fn compose_soft(image: &RgbaImage, soft: &crate::matting::SoftCut) -> RgbaImage {
    // The colours go onto the composed copy: one full-size image, not two.
    let mut cut = compose_cutout(image, &soft.alpha);
    soft.paint(&mut cut);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_bounds_hold_the_selection_plus_margin_clamped() {
        let mut m = GrayImage::new(20, 10);
        assert_eq!(trim_bounds(&m, 3), None);
        m.put_pixel(5, 4, image::Luma([1]));
        m.put_pixel(8, 6, image::Luma([255]));
        assert_eq!(trim_bounds(&m, 0), Some((5, 4, 4, 3)));
        assert_eq!(trim_bounds(&m, 2), Some((3, 2, 8, 7)));
        assert_eq!(trim_bounds(&m, 100), Some((0, 0, 20, 10)));
    }
}
