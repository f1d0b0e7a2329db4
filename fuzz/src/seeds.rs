//! Writes one small valid file of each format and depth into `corpus/decode/`, so the
//! fuzzer starts from real structure instead of random bytes.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/decode");
    std::fs::create_dir_all(&dir).unwrap();
    let img = RgbaImage::from_fn(12, 9, |x, y| Rgba([x as u8 * 20, y as u8 * 25, 90, 200]));
    let dynamic = DynamicImage::ImageRgba8(img.clone());
    let variants = [
        ("png8", dynamic.clone(), ImageFormat::Png),
        (
            "png16",
            DynamicImage::ImageRgba16(dynamic.to_rgba16()),
            ImageFormat::Png,
        ),
        (
            "gray",
            DynamicImage::ImageLuma8(dynamic.to_luma8()),
            ImageFormat::Png,
        ),
        (
            "jpg",
            DynamicImage::ImageRgb8(dynamic.to_rgb8()),
            ImageFormat::Jpeg,
        ),
        ("webp", dynamic.clone(), ImageFormat::WebP),
        (
            "tif16",
            DynamicImage::ImageRgb16(dynamic.to_rgb16()),
            ImageFormat::Tiff,
        ),
        ("bmp", dynamic.clone(), ImageFormat::Bmp),
        ("gif", dynamic.clone(), ImageFormat::Gif),
    ];
    for (name, img, format) in variants {
        let mut out = vec![0u8]; // the target's first byte picks the name and options
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        std::fs::write(dir.join(name), &out).unwrap();
    }
    for (name, color, progressive) in [
        ("cmyk", jpeg_encoder::ColorType::Cmyk, false),
        ("ycck", jpeg_encoder::ColorType::CmykAsYcck, false),
        ("progressive", jpeg_encoder::ColorType::Rgba, true),
    ] {
        let mut out = vec![0x60u8];
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
        enc.set_progressive(progressive);
        enc.encode(img.as_raw(), 12, 9, color).unwrap();
        std::fs::write(dir.join(name), &out).unwrap();
    }
}
