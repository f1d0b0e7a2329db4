//! From a photo to the encoder's input, as the reference predictor does it: the long side
//! resized to 1024 with Pillow's antialiased bilinear filter (what torchvision's `resize`
//! calls on a PIL image), and clicks mapped into that frame.
//!
//! The resize reproduces Pillow's `Resample.c` exactly (double-precision coefficients,
//! 22-bit fixed point, a horizontal pass over only the rows the vertical pass reads), so the
//! encoder sees the same bytes as PyTorch's. The parity suite checks that byte for byte.

use image::RgbImage;

use super::model::IMAGE_SIZE;

/// The encoder-frame size `(width, height)` of an image: long side 1024, the other side
/// rounded half up, as `ResizeLongestSide.get_preprocess_shape`.
pub fn encoder_size(width: u32, height: u32) -> (u32, u32) {
    let scale = IMAGE_SIZE as f64 / width.max(height) as f64;
    let side = |s: u32| ((s as f64 * scale + 0.5) as u32).max(1);
    (side(width), side(height))
}

/// A click in original pixels mapped into the encoder frame (`apply_coords`: a float64
/// product, then float32 as the predictor's tensor).
pub fn to_encoder_frame(x: f64, y: f64, original: (u32, u32)) -> (f32, f32) {
    let (w, h) = original;
    let (ew, eh) = encoder_size(w, h);
    (
        (x * (ew as f64 / w as f64)) as f32,
        (y * (eh as f64 / h as f64)) as f32,
    )
}

/// The image at its encoder size.
pub fn resize_for_encoder(image: &RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let (ew, eh) = encoder_size(w, h);
    if (ew, eh) == (w, h) {
        return image.clone();
    }
    pil_bilinear(image, ew, eh)
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// One output sample's source range and fixed-point weights.
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for the bilinear filter.
fn taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the bilinear filter's support is 1
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let inv = 1.0 / filter_scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let raw: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) * inv).abs();
                    if t < 1.0 { 1.0 - t } else { 0.0 }
                })
                .collect();
            let total: f64 = raw.iter().sum();
            let unit = (1u32 << PRECISION_BITS) as f64;
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    if w < 0.0 {
                        (-0.5 + w * unit) as i32
                    } else {
                        (0.5 + w * unit) as i32
                    }
                })
                .collect();
            Taps {
                first: xmin,
                weights,
            }
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    if v >= (1i64 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Pillow's `Image.resize(size, Image.BILINEAR)` on an RGB image.
pub fn pil_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (iw, ih) = (image.width() as usize, image.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let horizontal = taps(iw, ow);
    let vertical = taps(ih, oh);
    // Only the rows the vertical pass reads go through the horizontal pass.
    let first_row = vertical.first().map_or(0, |t| t.first);
    let last_row = vertical.last().map_or(0, |t| t.first + t.weights.len());
    let src = image.as_raw();
    let round = 1i64 << (PRECISION_BITS - 1);
    let mut temp = vec![0u8; (last_row - first_row) * ow * 3];
    for (r, row) in temp.chunks_exact_mut(ow * 3).enumerate() {
        let line = &src[(first_row + r) * iw * 3..][..iw * 3];
        for (xx, t) in horizontal.iter().enumerate() {
            for c in 0..3 {
                let sum = t.weights.iter().enumerate().fold(round, |acc, (k, &w)| {
                    acc + line[(t.first + k) * 3 + c] as i64 * w as i64
                });
                row[xx * 3 + c] = clip8(sum);
            }
        }
    }
    let mut out = vec![0u8; oh * ow * 3];
    for (yy, t) in vertical.iter().enumerate() {
        let first = t.first - first_row;
        for i in 0..ow * 3 {
            let sum = t.weights.iter().enumerate().fold(round, |acc, (k, &w)| {
                acc + temp[(first + k) * ow * 3 + i] as i64 * w as i64
            });
            out[yy * ow * 3 + i] = clip8(sum);
        }
    }
    RgbImage::from_raw(width, height, out).expect("buffer sized from the dimensions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_size_rounds_like_the_reference() {
        assert_eq!(encoder_size(1280, 853), (1024, 682)); // 682.4 rounds down
        assert_eq!(encoder_size(600, 900), (683, 1024)); // 682.67 rounds up
        assert_eq!(encoder_size(400, 300), (1024, 768));
        assert_eq!(encoder_size(1024, 10), (1024, 10));
    }

    #[test]
    fn a_flat_image_stays_flat_at_any_scale() {
        let flat = RgbImage::from_pixel(37, 11, image::Rgb([200, 13, 99]));
        for (w, h) in [(1024, 304), (5, 3), (37, 40)] {
            let out = pil_bilinear(&flat, w, h);
            assert!(out.pixels().all(|p| p.0 == [200, 13, 99]), "{w}x{h}");
        }
    }
}
