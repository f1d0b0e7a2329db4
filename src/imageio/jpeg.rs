//! JPEG specifics: telling a complete file from a cut-off one, and decoding CMYK/YCCK
//! files into sRGB through their ICC profile (the `image` crate's own path converts them
//! with naive arithmetic, which shifts every colour).

use image::RgbaImage;
use image::metadata::Orientation;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use super::colour;

/// Whether a JPEG stream reaches its own end-of-image marker.
///
/// Walks the marker structure instead of searching for the bytes `FF D9` anywhere: a camera
/// photo's EXIF block (APP1) carries a whole thumbnail JPEG with its own end marker, so a
/// search would pass a photo cut off right after its thumbnail. Segments with a length are
/// skipped by it; after a start-of-scan, entropy-coded data runs to the next marker other
/// than byte stuffing (`FF 00`) and restarts (`FF D0`..`FF D7`). Data after the end marker
/// (some cameras append some) is allowed.
pub(super) fn is_complete(bytes: &[u8]) -> bool {
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    let mut complete = false;
    walk_segments(bytes, |code, at, len| {
        if code == EOI {
            complete = true;
            return None;
        }
        if code == SOS {
            return skip_entropy_coded_data(bytes, at + len);
        }
        Some(at + len)
    });
    complete
}

/// Whether the first frame header declares four components (CMYK or YCCK).
pub(super) fn is_cmyk(bytes: &[u8]) -> bool {
    let mut four = false;
    walk_segments(bytes, |code, at, len| {
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC) {
            four = bytes.get(at + 7) == Some(&4);
            return None;
        }
        if code == 0xDA || code == 0xD9 {
            return None;
        }
        Some(at + len)
    });
    four
}

/// Calls `visit(code, offset of the length field, length)` for each marker segment after
/// SOI; `visit` returns where the next marker starts, or None to stop. Stops by itself at
/// anything malformed. A marker without a length (EOI, restarts) is visited with length 0.
fn walk_segments(bytes: &[u8], mut visit: impl FnMut(u8, usize, usize) -> Option<usize>) {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return;
    }
    let mut at = 2;
    loop {
        // A marker: one or more 0xFF fill bytes, then its code.
        if bytes.get(at) != Some(&0xFF) {
            return;
        }
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let Some(&code) = bytes.get(at) else { return };
        at += 1;
        let len = match code {
            // Markers without a length: EOI, restarts, TEM.
            0xD9 | 0xD0..=0xD7 | 0x01 => 0,
            _ => match bytes.get(at..at + 2) {
                Some(b) => usize::from(u16::from_be_bytes([b[0], b[1]])),
                None => return,
            },
        };
        if len != 0 && (len < 2 || at + len > bytes.len()) {
            return;
        }
        match visit(code, at, len) {
            Some(next) => at = next,
            None => return,
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

/// A CMYK or YCCK JPEG in sRGB, with its EXIF orientation (not yet applied).
pub(super) struct CmykDecoded {
    pub pixels: RgbaImage,
    pub orientation: Orientation,
}

/// Decodes a four-component JPEG to raw ink values and converts them to sRGB through the
/// embedded CMYK profile, or through the conventional uncalibrated formula when the file
/// has none (as browsers do; such a file has no defined colours).
pub(super) fn decode_cmyk(bytes: &[u8], max_side: u32) -> Result<CmykDecoded, String> {
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(max_side as usize)
        .set_max_height(max_side as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| format!("{e:?}"))?;
    let input = decoder
        .input_colorspace()
        .ok_or("the JPEG header has no colour space")?;
    if !matches!(input, ColorSpace::CMYK | ColorSpace::YCCK) {
        return Err(format!("unexpected JPEG colour space {input:?}"));
    }
    // Out = in: zune copies the raw components, and the conversion is ours.
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(input));
    let (w, h) = decoder.dimensions().ok_or("the JPEG header has no size")?;
    let mut raw = decoder.decode().map_err(|e| format!("{e:?}"))?;
    if raw.len() != w * h * 4 {
        return Err("the JPEG decoder returned the wrong number of samples".into());
    }
    to_ink(&mut raw, input == ColorSpace::YCCK);
    let orientation = decoder
        .exif()
        .and_then(|e| Orientation::from_exif_chunk(e))
        .unwrap_or(Orientation::NoTransforms);
    let rgb = colour::cmyk_to_srgb(&raw, decoder.icc_profile().as_deref())?;
    let pixels = RgbaImage::from_raw(w as u32, h as u32, rgb).ok_or("wrong pixel count")?;
    Ok(CmykDecoded {
        pixels,
        orientation,
    })
}

/// Stored samples to ink amounts (0 = no ink). Adobe's CMYK JPEGs, which are nearly all of
/// them, store inverted inks; YCCK stores the inverted C, M, Y as YCbCr (libjpeg's model).
fn to_ink(samples: &mut [u8], ycck: bool) {
    for px in samples.chunks_exact_mut(4) {
        if ycck {
            let (y, cb, cr) = (px[0] as f32, px[1] as f32 - 128.0, px[2] as f32 - 128.0);
            let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
            // Full-range BT.601 YCbCr gives R, G, B = 255 - stored C, M, Y: the inks.
            px[0] = clamp(y + 1.402 * cr);
            px[1] = clamp(y - 0.344_136 * cb - 0.714_136 * cr);
            px[2] = clamp(y + 1.772 * cb);
            px[3] = 255 - px[3];
        } else {
            for v in px.iter_mut() {
                *v = 255 - *v;
            }
        }
    }
}
