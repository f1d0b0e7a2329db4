//! Colour management through moxcms (pure Rust ICC): CMYK inks to sRGB through the file's
//! own profile, and which profiles can travel with an RGBA export.

use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};
use rayon::prelude::*;

/// Rows converted per parallel task: big enough to amortise, small enough to spread.
const CHUNK_PIXELS: usize = 64 * 1024;

/// RGBA sRGB pixels (alpha 255) from CMYK ink samples (0 = no ink), four bytes a pixel.
/// With an embedded CMYK profile the conversion goes through it (perceptual intent);
/// without one, the uncalibrated formula R = (1 - C)(1 - K) is all that is defined.
pub(super) fn cmyk_to_srgb(ink: &[u8], profile: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; ink.len()];
    let source = profile.and_then(|p| ColorProfile::new_from_slice(p).ok());
    match source.filter(|p| p.color_space == DataColorSpace::Cmyk) {
        Some(source) => {
            let transform = source
                .create_transform_8bit(
                    Layout::Rgba,
                    &ColorProfile::new_srgb(),
                    Layout::Rgba,
                    TransformOptions::default(),
                )
                .map_err(|e| format!("its CMYK colour profile cannot be used: {e}"))?;
            out.par_chunks_mut(CHUNK_PIXELS * 4)
                .zip(ink.par_chunks(CHUNK_PIXELS * 4))
                .try_for_each(|(dst, src)| transform.transform(src, dst))
                .map_err(|e| format!("colour conversion failed: {e}"))?;
        }
        None => {
            for (dst, src) in out.chunks_exact_mut(4).zip(ink.chunks_exact(4)) {
                let k = 255 - src[3] as u16;
                for c in 0..3 {
                    dst[c] = (((255 - src[c] as u16) * k + 127) / 255) as u8;
                }
            }
        }
    }
    for px in out.chunks_exact_mut(4) {
        px[3] = 255;
    }
    Ok(out)
}

/// Whether `icc` is a well-formed RGB profile: the only kind an RGB(A) PNG or WebP may
/// carry. Grey and CMYK profiles describe other pixels than the ones exported.
pub(super) fn is_rgb_profile(icc: &[u8]) -> bool {
    ColorProfile::new_from_slice(icc).is_ok_and(|p| p.color_space == DataColorSpace::Rgb)
}

/// The sRGB profile, for exports of pixels aicut converted to sRGB itself.
pub(super) fn srgb_profile() -> Option<Vec<u8>> {
    ColorProfile::new_srgb().encode().ok()
}
