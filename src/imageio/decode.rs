//! Bytes to a [`LoadedImage`]: the format from the bytes, the declared size checked before
//! any pixel memory is spent, full depth and the ICC profile kept, EXIF orientation applied.

use std::io::Cursor;
use std::sync::Arc;

use image::error::LimitErrorKind;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use super::sniff::{Sniffed, sniff};
use super::{DecodeLimits, ImageLoadError, LoadedImage, colour, jpeg, tiff_check};

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
    let format = match sniff(&bytes, &name) {
        Sniffed::Decodable(f) => f,
        Sniffed::Unsupported { format, advice } => {
            return Err(ImageLoadError::Unsupported {
                name,
                format,
                advice,
            });
        }
        Sniffed::Unknown => return Err(ImageLoadError::NotAnImage { name }),
    };
    let corrupt = |reason: String| ImageLoadError::Corrupt {
        name: name.clone(),
        reason,
    };
    if format == ImageFormat::Jpeg && !jpeg::is_complete(&bytes) {
        // The JPEG decoder fills a cut-off file with grey instead of failing; a cut-out of
        // half a photo is worse than a clear message.
        return Err(corrupt(
            "the JPEG data ends early (the file is truncated)".into(),
        ));
    }
    if format == ImageFormat::Tiff {
        tiff_check::check(&bytes).map_err(corrupt)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(&bytes[..]), format);
    let mut lib_limits = image::Limits::default();
    // Room for 16-bit RGBA at the largest size allowed; a bomb hits this before allocating.
    lib_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(lib_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| library_error(&name, e, None, limits))?;
    let (width, height) = decoder.dimensions();
    check_size(&name, width, height, limits)?;
    let lib_err = |e| library_error(&name, e, Some((width, height)), limits);

    if format == ImageFormat::Jpeg && jpeg::is_cmyk(&bytes) {
        drop(decoder);
        let cmyk = jpeg::decode_cmyk(&bytes, limits.max_side).map_err(corrupt)?;
        let mut img = DynamicImage::ImageRgba8(cmyk.pixels);
        img.apply_orientation(cmyk.orientation);
        let mut loaded = LoadedImage::from_decoded(img, format, bytes);
        loaded.reoriented = cmyk.orientation != Orientation::NoTransforms;
        loaded.icc = colour::srgb_profile().map(Arc::from);
        loaded.name = name;
        return Ok(loaded);
    }

    let icc = decoder.icc_profile().ok().flatten();
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(lib_err)?;
    img.apply_orientation(orientation);
    let mut loaded = LoadedImage::from_decoded(img, format, bytes);
    loaded.reoriented = orientation != Orientation::NoTransforms;
    loaded.icc = icc.filter(|p| colour::is_rgb_profile(p)).map(Arc::from);
    loaded.name = name;
    Ok(loaded)
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
        return Err(too_large(name, width, height, limits));
    }
    Ok(())
}

fn too_large(name: &str, width: u32, height: u32, limits: &DecodeLimits) -> ImageLoadError {
    ImageLoadError::TooLarge {
        name: name.to_string(),
        width,
        height,
        max_mp: limits.max_pixels / 1_000_000,
        max_side: limits.max_side,
    }
}

/// A decoder error in the user's words; limit errors say which limit, with the declared
/// size when it is known.
fn library_error(
    name: &str,
    e: ImageError,
    size: Option<(u32, u32)>,
    limits: &DecodeLimits,
) -> ImageLoadError {
    match (e, size) {
        (ImageError::Limits(l), Some((w, h)))
            if matches!(l.kind(), LimitErrorKind::DimensionError) =>
        {
            too_large(name, w, h, limits)
        }
        (ImageError::Limits(_), _) => ImageLoadError::TooMuchMemory {
            name: name.to_string(),
            max_mb: limits.max_pixels.saturating_mul(8) / (1024 * 1024),
        },
        (e, _) => ImageLoadError::Corrupt {
            name: name.to_string(),
            // Some decoders' messages span lines; ours are one line.
            reason: e.to_string().replace('\n', " "),
        },
    }
}
