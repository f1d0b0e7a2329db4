//! Image input and output: decoding with orientation, colour and limits; encoding the
//! cut-out in the format, depth and profile asked for; atomic saves.
//!
//! Every pixel in aicut lives in one canonical grid: the image as decoded with its EXIF
//! orientation applied, i.e. what the user sees. Decoding refuses decompression bombs by
//! reading the declared size before allocating anything.

mod colour;
mod decode;
mod export;
mod jpeg;
mod save;
mod sniff;
mod tiff_check;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{DynamicImage, ImageFormat, RgbImage, Rgba, RgbaImage};

pub use decode::decode_bytes;
pub use export::{
    ExportFormat, ExportOptions, compose_cutout, compose_cutout_region, compose_edges,
    compose_soft, encode_png, export_cut, export_cutout, trim_bounds,
};
pub use save::{SaveError, default_output_path, save_atomic, save_atomic_with};

/// The formats aicut opens.
pub const SUPPORTED_FORMATS: &str = "JPEG, PNG, WebP, TIFF, BMP, GIF";

/// File extensions of the supported formats, for file dialogs.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "bmp", "tif", "tiff", "gif", "JPG", "JPEG", "PNG",
    "TIF", "TIFF",
];

/// 16-bit RGBA pixels: the full depth of 16-bit sources, kept for export.
pub type Rgba16Image = image::ImageBuffer<Rgba<u16>, Vec<u16>>;

/// Bounds that protect against decompression bombs and absurd inputs.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_side: u32,
    pub max_pixels: u64,
    pub max_file_bytes: u64,
}

impl Default for DecodeLimits {
    /// 150 MP covers the 100 MP medium-format cameras (11648 x 8736 = 101.8 MP) with room.
    fn default() -> Self {
        DecodeLimits {
            max_side: 30_000,
            max_pixels: 150_000_000,
            max_file_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Why an image could not be opened, worded for the person who picked the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageLoadError {
    #[error("could not read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{name} is empty (0 bytes)")]
    Empty { name: String },
    #[error("{name} is not an image aicut can open (supported: {SUPPORTED_FORMATS})")]
    NotAnImage { name: String },
    /// A known format aicut does not decode, with what to do instead.
    #[error("{name} is a {format} file, which aicut cannot open; {advice}")]
    Unsupported {
        name: String,
        format: &'static str,
        advice: &'static str,
    },
    #[error(
        "{name} is {width}x{height} pixels; aicut opens images up to {max_mp} megapixels and {max_side} pixels a side"
    )]
    TooLarge {
        name: String,
        width: u32,
        height: u32,
        max_mp: u64,
        max_side: u32,
    },
    /// The decoder would need more memory than the limits allow (a decompression bomb).
    #[error("{name} would need more than {max_mb} MB to decode; aicut refuses it as unsafe")]
    TooMuchMemory { name: String, max_mb: u64 },
    #[error("{name} is {size_mb} MB; the largest file aicut opens is {max_mb} MB")]
    FileTooLarge {
        name: String,
        size_mb: u64,
        max_mb: u64,
    },
    #[error("{name} is damaged or incomplete: {reason}")]
    Corrupt { name: String, reason: String },
}

/// A decoded image in the canonical grid, with what is needed to upload and export it.
pub struct LoadedImage {
    /// A name for messages and for proposing output names (usually the file name).
    pub name: String,
    /// Where it came from, when it came from a file.
    pub path: Option<PathBuf>,
    pub format: ImageFormat,
    /// Whether an EXIF orientation other than the identity was applied.
    pub reoriented: bool,
    /// 8-bit pixels: what the engines, the overlays and 8-bit exports use.
    pixels: RgbaImage,
    /// The 16-bit pixels of a deeper source, so its export keeps every bit.
    deep: Option<Rgba16Image>,
    /// The RGB ICC profile the pixels are in (embedded in exports), if not plain sRGB.
    icc: Option<Arc<[u8]>>,
    file_bytes: Arc<[u8]>,
}

impl std::fmt::Debug for LoadedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedImage")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("size", &self.pixels.dimensions())
            .field("bit_depth", &self.bit_depth())
            .field("icc_bytes", &self.icc.as_ref().map(|p| p.len()))
            .field("reoriented", &self.reoriented)
            .finish()
    }
}

impl LoadedImage {
    /// Wraps pixels that are already in the canonical grid (tests, generated images).
    pub fn from_pixels(name: impl Into<String>, pixels: RgbaImage) -> Self {
        LoadedImage {
            name: name.into(),
            path: None,
            format: ImageFormat::Png,
            reoriented: true, // no file bytes to upload as they are
            pixels,
            deep: None,
            icc: None,
            file_bytes: Arc::from(Vec::new()),
        }
    }

    /// Decoded pixels (any depth) in the canonical grid, keeping 16 bits where there are.
    fn from_decoded(img: DynamicImage, format: ImageFormat, bytes: Vec<u8>) -> Self {
        let deep = matches!(
            img.color(),
            image::ColorType::L16
                | image::ColorType::La16
                | image::ColorType::Rgb16
                | image::ColorType::Rgba16
                | image::ColorType::Rgb32F
                | image::ColorType::Rgba32F
        )
        .then(|| img.to_rgba16());
        LoadedImage {
            name: String::new(),
            path: None,
            format,
            reoriented: false,
            pixels: rgba8(img),
            deep,
            icc: None,
            file_bytes: Arc::from(bytes),
        }
    }

    pub fn width(&self) -> u32 {
        self.pixels.width()
    }

    pub fn height(&self) -> u32 {
        self.pixels.height()
    }

    pub fn pixels(&self) -> &RgbaImage {
        &self.pixels
    }

    /// The 16-bit pixels when the source had more than 8 bits a channel.
    pub fn deep_pixels(&self) -> Option<&Rgba16Image> {
        self.deep.as_ref()
    }

    /// Frees the 16-bit copy where only 8-bit results are made (the server's sessions).
    pub fn drop_deep_pixels(&mut self) {
        self.deep = None;
    }

    /// Frees the original file's bytes, for holders that only read the pixels (the
    /// server's sessions); `upload_bytes` then re-encodes from the pixels.
    pub fn drop_file_bytes(&mut self) {
        self.file_bytes = Arc::from(Vec::new());
    }

    /// Bits per channel of the source as kept: 16 or 8.
    pub fn bit_depth(&self) -> u8 {
        if self.deep.is_some() { 16 } else { 8 }
    }

    /// The source's RGB ICC profile, which exports carry so colours do not shift.
    pub fn icc_profile(&self) -> Option<&[u8]> {
        self.icc.as_deref()
    }

    pub fn to_rgb(&self) -> RgbImage {
        DynamicImage::ImageRgba8(self.pixels.clone()).to_rgb8()
    }

    pub fn heap_bytes(&self) -> usize {
        let deep = self.deep.as_ref().map_or(0, |d| d.as_raw().len() * 2);
        self.pixels.as_raw().len() + deep + self.file_bytes.len()
    }

    /// The bytes to send to a remote service so that it sees the canonical grid: the file
    /// as it is when no reorientation was needed and the format is widely accepted,
    /// otherwise the oriented pixels as a lossless PNG. Returns (bytes, file name, MIME type).
    pub fn upload_bytes(&self) -> Result<(Vec<u8>, String, &'static str), ImageLoadError> {
        let stem = Path::new(&self.name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("image")
            .to_string();
        let passthrough = match self.format {
            // A converted CMYK JPEG is not what the service would see in the file.
            ImageFormat::Jpeg if !self.converted_from_cmyk() => Some(("jpg", "image/jpeg")),
            ImageFormat::Png => Some(("png", "image/png")),
            ImageFormat::WebP => Some(("webp", "image/webp")),
            _ => None,
        };
        match passthrough {
            Some((ext, mime)) if !self.reoriented && !self.file_bytes.is_empty() => {
                Ok((self.file_bytes.to_vec(), format!("{stem}.{ext}"), mime))
            }
            _ => {
                let png = encode_png(&self.pixels).map_err(|reason| ImageLoadError::Corrupt {
                    name: self.name.clone(),
                    reason,
                })?;
                Ok((png, format!("{stem}.png"), "image/png"))
            }
        }
    }

    fn converted_from_cmyk(&self) -> bool {
        self.format == ImageFormat::Jpeg && jpeg::is_cmyk(&self.file_bytes)
    }
}

/// The pixels as 8-bit RGBA. Eight-bit grey and RGB are widened by hand: the `image`
/// crate's conversion goes through floats and rounding a sample at a time, which took
/// longer than decoding the PNG. Other layouts take that conversion.
fn rgba8(img: DynamicImage) -> RgbaImage {
    let (w, h) = (img.width(), img.height());
    let widen = |src: &[u8], n: usize, px: fn(&[u8]) -> [u8; 4]| {
        let mut out = vec![0u8; src.len() / n * 4];
        for (dst, src) in out.chunks_exact_mut(4).zip(src.chunks_exact(n)) {
            dst.copy_from_slice(&px(src));
        }
        RgbaImage::from_raw(w, h, out).expect("four bytes a pixel")
    };
    match img {
        DynamicImage::ImageRgba8(rgba) => rgba,
        DynamicImage::ImageRgb8(rgb) => widen(rgb.as_raw(), 3, |p| [p[0], p[1], p[2], 255]),
        DynamicImage::ImageLuma8(l) => widen(l.as_raw(), 1, |p| [p[0], p[0], p[0], 255]),
        DynamicImage::ImageLumaA8(la) => widen(la.as_raw(), 2, |p| [p[0], p[0], p[0], p[1]]),
        other => other.into_rgba8(),
    }
}

/// Reads and decodes a file. Runs on a worker thread, never the UI thread.
pub fn load_file(path: &Path, limits: &DecodeLimits) -> Result<LoadedImage, ImageLoadError> {
    let name = display_name(path);
    let read_err = |e: std::io::Error| ImageLoadError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > limits.max_file_bytes {
        return Err(ImageLoadError::FileTooLarge {
            name,
            size_mb: size / (1024 * 1024),
            max_mb: limits.max_file_bytes / (1024 * 1024),
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let mut img = decode_bytes(bytes, &name, limits)?;
    img.path = Some(path.to_path_buf());
    Ok(img)
}

/// The file name of a path, for messages.
pub fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_widening_matches_the_image_crates_conversion() {
        let (w, h) = (7, 5);
        let v = |x: u32, y: u32, c: u32| ((x * 37 + y * 91 + c * 53) % 256) as u8;
        let images = [
            DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([v(x, y, 0), v(x, y, 1), v(x, y, 2)])
            })),
            DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
                image::Luma([v(x, y, 0)])
            })),
            DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_fn(w, h, |x, y| {
                image::LumaA([v(x, y, 0), v(x, y, 3)])
            })),
            DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, y| {
                Rgba([v(x, y, 0), v(x, y, 1), v(x, y, 2), v(x, y, 3)])
            })),
            DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(w, h, |x, y| {
                image::Rgb([v(x, y, 0) as u16 * 257 + 3, 9000, 65535])
            })),
        ];
        for img in images {
            let kind = img.color();
            assert_eq!(rgba8(img.clone()), img.into_rgba8(), "{kind:?}");
        }
    }
}
