//! Image input and output: decoding with orientation and limits, PNG encoding, atomic saves.
//!
//! Every pixel in aicut lives in one canonical grid: the image as decoded with its EXIF
//! orientation applied, i.e. what the user sees. Decoding refuses decompression bombs by
//! reading the declared size before allocating anything.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{
    DynamicImage, GrayImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, RgbImage,
    RgbaImage,
};

/// The formats aicut opens.
pub const SUPPORTED_FORMATS: &str = "JPEG, PNG, WebP, BMP, TIFF, GIF";

/// File extensions of the supported formats, for file dialogs.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif", "JPG", "JPEG", "PNG",
];

/// Bounds that protect against decompression bombs and absurd inputs.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_side: u32,
    pub max_pixels: u64,
    pub max_file_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_side: 30_000,
            max_pixels: 100_000_000,
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
    #[error("{name} is {size_mb} MB; the largest file aicut opens is {max_mb} MB")]
    FileTooLarge {
        name: String,
        size_mb: u64,
        max_mb: u64,
    },
    #[error("{name} is damaged or incomplete: {reason}")]
    Corrupt { name: String, reason: String },
}

/// A decoded image in the canonical grid, with what is needed to upload it again.
pub struct LoadedImage {
    /// A name for messages and for proposing output names (usually the file name).
    pub name: String,
    /// Where it came from, when it came from a file.
    pub path: Option<PathBuf>,
    pub format: ImageFormat,
    /// Whether an EXIF orientation other than the identity was applied.
    pub reoriented: bool,
    pixels: RgbaImage,
    file_bytes: Arc<[u8]>,
}

impl std::fmt::Debug for LoadedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedImage")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("size", &self.pixels.dimensions())
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
            file_bytes: Arc::from(Vec::new()),
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

    pub fn to_rgb(&self) -> RgbImage {
        DynamicImage::ImageRgba8(self.pixels.clone()).to_rgb8()
    }

    pub fn heap_bytes(&self) -> usize {
        self.pixels.as_raw().len() + self.file_bytes.len()
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
            ImageFormat::Jpeg => Some(("jpg", "image/jpeg")),
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

/// Decodes bytes of any supported format into the canonical grid.
pub fn decode_bytes(
    bytes: Vec<u8>,
    name: &str,
    limits: &DecodeLimits,
) -> Result<LoadedImage, ImageLoadError> {
    let name = name.to_string();
    if bytes.is_empty() {
        return Err(ImageLoadError::Empty { name });
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(ImageLoadError::FileTooLarge {
            name,
            size_mb: bytes.len() as u64 / (1024 * 1024),
            max_mb: limits.max_file_bytes / (1024 * 1024),
        });
    }
    let corrupt = |name: &str, e: image::ImageError| ImageLoadError::Corrupt {
        name: name.to_string(),
        reason: e.to_string(),
    };
    let reader = ImageReader::new(Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| ImageLoadError::Corrupt {
            name: name.clone(),
            reason: e.to_string(),
        })?;
    let format = match reader.format() {
        Some(
            f @ (ImageFormat::Jpeg
            | ImageFormat::Png
            | ImageFormat::WebP
            | ImageFormat::Bmp
            | ImageFormat::Tiff
            | ImageFormat::Gif),
        ) => f,
        _ => return Err(ImageLoadError::NotAnImage { name }),
    };
    if format == ImageFormat::Jpeg && !jpeg_is_complete(&bytes) {
        // The JPEG decoder fills a cut-off file with grey instead of failing; a cut-out of
        // half a photo is worse than a clear message.
        return Err(ImageLoadError::Corrupt {
            name,
            reason: "the JPEG data ends early (the file is truncated)".into(),
        });
    }
    let mut reader = reader;
    let mut lib_limits = image::Limits::default();
    lib_limits.max_image_width = Some(limits.max_side);
    lib_limits.max_image_height = Some(limits.max_side);
    lib_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(lib_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| limit_or_corrupt(&name, e, limits))?;
    let (width, height) = decoder.dimensions();
    check_size(&name, width, height, limits)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => limit_or_corrupt(&name, e, limits),
        e => corrupt(&name, e),
    })?;
    let reoriented = orientation != image::metadata::Orientation::NoTransforms;
    img.apply_orientation(orientation);
    Ok(LoadedImage {
        name,
        path: None,
        format,
        reoriented,
        pixels: img.into_rgba8(),
        file_bytes: Arc::from(bytes),
    })
}

fn check_size(
    name: &str,
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), ImageLoadError> {
    if width == 0 || height == 0 {
        return Err(ImageLoadError::Corrupt {
            name: name.to_string(),
            reason: format!("it declares a size of {width}x{height} pixels"),
        });
    }
    if width > limits.max_side
        || height > limits.max_side
        || width as u64 * height as u64 > limits.max_pixels
    {
        return Err(ImageLoadError::TooLarge {
            name: name.to_string(),
            width,
            height,
            max_mp: limits.max_pixels / 1_000_000,
            max_side: limits.max_side,
        });
    }
    Ok(())
}

/// A limits error from the library, reworded with the declared size when we can read it.
fn limit_or_corrupt(name: &str, e: image::ImageError, limits: &DecodeLimits) -> ImageLoadError {
    match e {
        image::ImageError::Limits(_) => ImageLoadError::TooLarge {
            name: name.to_string(),
            width: 0,
            height: 0,
            max_mp: limits.max_pixels / 1_000_000,
            max_side: limits.max_side,
        },
        e => ImageLoadError::Corrupt {
            name: name.to_string(),
            reason: e.to_string(),
        },
    }
}

/// Whether a JPEG stream reaches its own end-of-image marker.
///
/// Walks the marker structure instead of searching for the bytes `FF D9` anywhere: a camera
/// photo's EXIF block (APP1) carries a whole thumbnail JPEG with its own end marker, so a
/// search would pass a photo cut off right after its thumbnail. Segments with a length are
/// skipped by it; after a start-of-scan, entropy-coded data runs to the next marker other
/// than byte stuffing (`FF 00`) and restarts (`FF D0`..`FF D7`). Data after the end marker
/// (some cameras append some) is allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const SOI: u8 = 0xD8;
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != SOI {
        return false;
    }
    let mut at = 2;
    loop {
        // A marker: one or more 0xFF fill bytes, then its code.
        if bytes.get(at) != Some(&0xFF) {
            return false;
        }
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let Some(&code) = bytes.get(at) else {
            return false;
        };
        at += 1;
        match code {
            EOI => return true,
            // Markers without a length: restarts, TEM.
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let Some(len) = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return false;
        };
        if len < 2 || at + len > bytes.len() {
            return false;
        }
        at += len;
        if code == SOS {
            match skip_entropy_coded_data(bytes, at) {
                Some(next_marker) => at = next_marker,
                None => return false,
            }
        }
    }
}

/// The offset of the first marker after a scan's entropy-coded data starting at `from`, or
/// None when the data runs to the end of the file.
fn skip_entropy_coded_data(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + 1 < bytes.len() {
        if bytes[at] == 0xFF {
            match bytes[at + 1] {
                0x00 | 0xD0..=0xD7 => at += 2,
                0xFF => at += 1,
                _ => return Some(at),
            }
        } else {
            at += 1;
        }
    }
    None
}

/// Encodes RGBA pixels as PNG. Fast compression: these files are written on every click.
pub fn encode_png(img: &RgbaImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(img.as_raw().len() / 4);
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgba8,
        )
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The cut-out: the image's colours with the mask as alpha (times any alpha it had).
pub fn compose_cutout(image: &RgbaImage, mask: &GrayImage) -> RgbaImage {
    let mut out = image.clone();
    for (px, m) in out.pixels_mut().zip(mask.pixels()) {
        px.0[3] = ((px.0[3] as u16 * m.0[0] as u16 + 127) / 255) as u8;
    }
    out
}

/// Why a save failed, with the path, so the user knows what to change.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SaveError {
    #[error("refusing to overwrite the original image {0}; choose another name")]
    WouldOverwriteSource(String),
    #[error("could not save {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then
/// renamed over the target. A failure (full disk, no permission) leaves any existing file
/// untouched and no temporary behind. Refuses to write over any of `protected`.
pub fn save_atomic(path: &Path, bytes: &[u8], protected: &[&Path]) -> Result<(), SaveError> {
    let write_err = |reason: String| SaveError::Write {
        path: path.display().to_string(),
        reason,
    };
    if protected.iter().any(|p| same_file(p, path)) {
        return Err(SaveError::WouldOverwriteSource(path.display().to_string()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.is_dir() {
        return Err(write_err("it is a folder".into()));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".aicut-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| write_err(format!("cannot create a file in {}: {e}", dir.display())))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| write_err(e.to_string()))?;
    tmp.persist(path)
        .map_err(|e| write_err(e.error.to_string()))?;
    Ok(())
}

/// Whether two paths name the same file (the second may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| -> Option<PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
            _ => std::env::current_dir().ok()?,
        };
        Some(parent.join(p.file_name()?))
    };
    match (canon(a), canon(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// `<stem>-cutout.png` beside the source, the name proposed for a save.
pub fn default_output_path(source: &Path) -> PathBuf {
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    source.with_file_name(format!("{stem}-cutout.png"))
}
