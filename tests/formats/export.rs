//! What aicut writes, read back with decoders that are not aicut's (the `png` and
//! `image-webp` crates directly): pixels, alpha, bit depth, the ICC profile, trim, mask.

use std::io::Cursor;

use aicut::imageio::{self, DecodeLimits, ExportFormat, ExportOptions, LoadedImage};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, GrayImage, ImageEncoder, Luma};

const W: u32 = 9;
const H: u32 = 6;

/// A Display P3 profile: what a designer's photo from a recent phone or Mac carries.
pub fn p3_profile() -> Vec<u8> {
    moxcms::ColorProfile::new_display_p3().encode().unwrap()
}

fn rgb16(x: u32, y: u32, c: u32) -> u16 {
    ((x * 7001 + y * 3119 + c * 20011 + 5) % 65536) as u16
}

/// A 16-bit RGB PNG with the P3 profile, decoded by aicut.
fn deep_source() -> LoadedImage {
    let data: Vec<u8> = (0..W * H)
        .flat_map(|i| (0..3).flat_map(move |c| rgb16(i % W, i / W, c).to_ne_bytes()))
        .collect();
    let mut bytes = Vec::new();
    let mut enc = PngEncoder::new(&mut bytes);
    enc.set_icc_profile(p3_profile()).unwrap();
    enc.write_image(&data, W, H, ExtendedColorType::Rgb16)
        .unwrap();
    imageio::decode_bytes(bytes, "deep.png", &DecodeLimits::default()).unwrap()
}

/// A selection: a rectangle at x 2..=5, y 1..=3, soft at its left column.
fn selection() -> GrayImage {
    GrayImage::from_fn(W, H, |x, y| match (x, y) {
        (2, 1..=3) => Luma([100]),
        (3..=5, 1..=3) => Luma([255]),
        _ => Luma([0]),
    })
}

fn read_png(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>, Option<Vec<u8>>) {
    let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
    let icc = reader.info().icc_profile.as_ref().map(|p| p.to_vec());
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info, buf, icc)
}

#[test]
fn a_16_bit_source_exports_16_bit_rgba_png_with_its_profile() {
    let img = deep_source();
    assert_eq!(img.bit_depth(), 16);
    let mask = selection();
    let bytes =
        imageio::export_cutout(&img, &mask, ExportFormat::Png, ExportOptions::default()).unwrap();
    let (info, buf, icc) = read_png(&bytes);
    assert_eq!((info.width, info.height), (W, H));
    assert_eq!(info.bit_depth, png::BitDepth::Sixteen);
    assert_eq!(info.color_type, png::ColorType::Rgba);
    assert_eq!(
        icc.as_deref(),
        Some(&p3_profile()[..]),
        "the ICC profile travels"
    );
    for (i, px) in buf.chunks_exact(8).enumerate() {
        let (x, y) = (i as u32 % W, i as u32 / W);
        let v = |c: usize| u16::from_be_bytes([px[2 * c], px[2 * c + 1]]);
        for c in 0..3 {
            assert_eq!(
                v(c),
                rgb16(x, y, c as u32),
                "colour keeps all 16 bits at {x},{y}"
            );
        }
        let m = mask.get_pixel(x, y).0[0] as u32;
        assert_eq!(
            v(3) as u32,
            (65535 * m + 127) / 255,
            "alpha is the mask at {x},{y}"
        );
    }
}

#[test]
fn trim_crops_to_the_subject_plus_margin_and_mask_writes_grey() {
    let img = deep_source();
    let mask = selection();
    let trimmed = ExportOptions {
        trim: Some(1),
        mask_only: false,
        edges: aicut::matting::EdgeOptions::HARD,
    };
    let bytes = imageio::export_cutout(&img, &mask, ExportFormat::Png, trimmed).unwrap();
    let (info, buf, _) = read_png(&bytes);
    // Subject x 2..=5, y 1..=3; one pixel more each side: x 1..=6, y 0..=4.
    assert_eq!((info.width, info.height), (6, 5));
    let first = u16::from_be_bytes([buf[0], buf[1]]);
    assert_eq!(
        first,
        rgb16(1, 0, 0),
        "the crop starts at the margin's corner"
    );

    let mask_opts = ExportOptions {
        trim: None,
        mask_only: true,
        edges: aicut::matting::EdgeOptions::HARD,
    };
    let bytes = imageio::export_cutout(&img, &mask, ExportFormat::Png, mask_opts).unwrap();
    let (info, buf, icc) = read_png(&bytes);
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    assert_eq!(buf, mask.as_raw().to_vec());
    assert!(icc.is_none(), "a mask is data, not colour");

    let nothing = GrayImage::new(W, H);
    let err = imageio::export_cutout(&img, &nothing, ExportFormat::Png, trimmed).unwrap_err();
    assert!(err.contains("nothing is selected"), "{err}");
}

#[test]
fn webp_is_lossless_with_alpha_and_the_profile() {
    let img = deep_source();
    let mask = selection();
    let bytes =
        imageio::export_cutout(&img, &mask, ExportFormat::WebP, ExportOptions::default()).unwrap();
    let mut dec = image_webp::WebPDecoder::new(Cursor::new(&bytes)).unwrap();
    assert_eq!(dec.dimensions(), (W, H));
    assert!(dec.has_alpha());
    assert_eq!(
        dec.icc_profile().unwrap().as_deref(),
        Some(&p3_profile()[..])
    );
    let mut buf = vec![0; dec.output_buffer_size().unwrap()];
    dec.read_image(&mut buf).unwrap();
    let want = imageio::compose_cutout(img.pixels(), &mask);
    assert_eq!(
        buf,
        want.into_raw(),
        "lossless: every 8-bit value and alpha"
    );
}

#[test]
fn an_8_bit_png_export_is_8_bit_and_untagged_sources_stay_untagged() {
    let rgb = crate::basics::reference();
    let bytes = crate::common::png_bytes(&rgb);
    let img = imageio::decode_bytes(bytes, "flat.png", &DecodeLimits::default()).unwrap();
    let mask = GrayImage::from_fn(24, 16, |x, _| Luma([(x * 10) as u8]));
    let out =
        imageio::export_cutout(&img, &mask, ExportFormat::Png, ExportOptions::default()).unwrap();
    let (info, buf, icc) = read_png(&out);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    assert_eq!(info.color_type, png::ColorType::Rgba);
    assert!(icc.is_none());
    for (i, px) in buf.chunks_exact(4).enumerate() {
        let (x, y) = (i as u32 % 24, i as u32 / 24);
        assert_eq!(&px[..3], &rgb.get_pixel(x, y).0[..]);
        assert_eq!(px[3], (x * 10) as u8);
    }
}

#[test]
fn a_cut_out_too_wide_for_webp_says_so_in_one_line() {
    let img = LoadedImage::from_pixels("strip.png", image::RgbaImage::new(16_384, 1));
    let mask = GrayImage::from_pixel(16_384, 1, Luma([255]));
    let err = imageio::export_cutout(&img, &mask, ExportFormat::WebP, ExportOptions::default())
        .unwrap_err();
    assert!(err.contains("16383") && err.contains(".png"), "{err}");
    assert!(!err.contains('\n'));
    let png = imageio::export_cutout(&img, &mask, ExportFormat::Png, ExportOptions::default());
    assert!(png.is_ok(), "PNG takes it");
}
