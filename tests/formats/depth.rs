//! Every colour type and depth decodes to the right pixel grid: PNG written with the `png`
//! crate itself (grey, grey+alpha, RGB, RGBA at 8 and 16 bits, palettes with
//! transparency), TIFF at 8 and 16 bits, BMP, the first frame of an animated GIF, and
//! progressive and greyscale JPEGs. 16-bit sources keep all 16 bits.

use std::io::Cursor;

use aicut::imageio::{self, DecodeLimits, LoadedImage};
use image::{ImageFormat, Rgba};

const W: u32 = 7;
const H: u32 = 5;

/// A 16-bit RGBA sample for every pixel and channel, all distinct and none a multiple of
/// 257, so any lost bit, swapped channel or moved pixel shows.
fn sample16(x: u32, y: u32, c: u32) -> u16 {
    let v = (x * 9173 + y * 4241 + c * 15401 + 1) % 65536;
    if v.is_multiple_of(257) {
        (v + 1) as u16
    } else {
        v as u16
    }
}

fn to8(v: u16) -> u8 {
    ((v as u32 + 128) / 257) as u8
}

fn decode(bytes: Vec<u8>) -> LoadedImage {
    imageio::decode_bytes(bytes, "t", &DecodeLimits::default()).unwrap()
}

/// PNG bytes from the `png` crate: `channels` samples a pixel at `depth` bits.
fn png_of(
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    extra: impl Fn(&mut png::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, W, H);
    enc.set_color(color);
    enc.set_depth(depth);
    extra(&mut enc);
    enc.write_header().unwrap().write_image_data(data).unwrap();
    out
}

/// The expected decoded RGBA16 pixel of a source with `channels` of the reference.
fn expected(x: u32, y: u32, channels: usize) -> [u16; 4] {
    let s = |c| sample16(x, y, c);
    match channels {
        1 => [s(0), s(0), s(0), 65535],
        2 => [s(0), s(0), s(0), s(1)],
        3 => [s(0), s(1), s(2), 65535],
        _ => [s(0), s(1), s(2), s(3)],
    }
}

fn source(channels: usize, sixteen: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for y in 0..H {
        for x in 0..W {
            for c in 0..channels as u32 {
                let s = sample16(x, y, c);
                if sixteen {
                    v.extend_from_slice(&s.to_be_bytes());
                } else {
                    v.push(to8(s));
                }
            }
        }
    }
    v
}

fn check(img: &LoadedImage, channels: usize, sixteen: bool, what: &str) {
    assert_eq!((img.width(), img.height()), (W, H), "{what}");
    assert_eq!(img.bit_depth(), if sixteen { 16 } else { 8 }, "{what}");
    for y in 0..H {
        for x in 0..W {
            let want = expected(x, y, channels);
            let want8 = want.map(to8);
            if sixteen {
                let deep = img.deep_pixels().unwrap().get_pixel(x, y).0;
                assert_eq!(deep, want, "{what} 16-bit at {x},{y}");
                let got = img.pixels().get_pixel(x, y).0;
                let diff = (0..4).map(|c| got[c].abs_diff(want8[c])).max().unwrap();
                assert!(
                    diff <= 1,
                    "{what} 8-bit copy at {x},{y}: {got:?} vs {want8:?}"
                );
            } else {
                assert_eq!(img.pixels().get_pixel(x, y).0, want8, "{what} at {x},{y}");
            }
        }
    }
}

#[test]
fn png_every_colour_type_and_depth() {
    use png::{BitDepth, ColorType};
    for (color, channels) in [
        (ColorType::Grayscale, 1),
        (ColorType::GrayscaleAlpha, 2),
        (ColorType::Rgb, 3),
        (ColorType::Rgba, 4),
    ] {
        for (depth, sixteen) in [(BitDepth::Eight, false), (BitDepth::Sixteen, true)] {
            let bytes = png_of(color, depth, &source(channels, sixteen), |_| {});
            let what = format!("PNG {color:?} {depth:?}");
            check(&decode(bytes), channels, sixteen, &what);
        }
    }
}

#[test]
fn png_palette_with_transparency() {
    let palette: Vec<[u8; 4]> = (0..W * H)
        .map(|i| {
            [
                i as u8 * 7,
                255 - i as u8 * 5,
                i as u8 * 3 + 1,
                (i * 40 % 256) as u8,
            ]
        })
        .collect();
    let indices: Vec<u8> = (0..W * H).map(|i| i as u8).collect();
    let bytes = png_of(
        png::ColorType::Indexed,
        png::BitDepth::Eight,
        &indices,
        |enc| {
            enc.set_palette(
                palette
                    .iter()
                    .flat_map(|p| [p[0], p[1], p[2]])
                    .collect::<Vec<_>>(),
            );
            enc.set_trns(palette.iter().map(|p| p[3]).collect::<Vec<_>>());
        },
    );
    let img = decode(bytes);
    assert_eq!(img.bit_depth(), 8);
    for (i, px) in img.pixels().pixels().enumerate() {
        assert_eq!(px.0, palette[i], "palette entry {i}");
    }
}

#[test]
fn tiff_8_and_16_bit() {
    use tiff::encoder::{TiffEncoder, colortype};
    let rgb16: Vec<u16> = (0..W * H)
        .flat_map(|i| (0..3).map(move |c| sample16(i % W, i / W, c)))
        .collect();
    let mut out = Vec::new();
    TiffEncoder::new(Cursor::new(&mut out))
        .unwrap()
        .write_image::<colortype::RGB16>(W, H, &rgb16)
        .unwrap();
    check(&decode(out), 3, true, "TIFF RGB16");

    let rgba8: Vec<u8> = source(4, false);
    let mut out = Vec::new();
    TiffEncoder::new(Cursor::new(&mut out))
        .unwrap()
        .write_image::<colortype::RGBA8>(W, H, &rgba8)
        .unwrap();
    check(&decode(out), 4, false, "TIFF RGBA8");
}

/// An 8-bit RGBA picture with few colours (GIF palettes hold 256).
fn flat(seed: u8) -> image::RgbaImage {
    image::RgbaImage::from_fn(W, H, |x, y| {
        let v = ((x + 2 * y) as u8).wrapping_mul(31).wrapping_add(seed);
        Rgba([v, 255 - v, v / 2, 255])
    })
}

#[test]
fn gif_opens_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    let (first, second) = (flat(0), flat(99));
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.encode_frames([first.clone(), second].map(image::Frame::new))
            .unwrap();
    }
    let img = decode(out);
    assert_eq!(img.format, ImageFormat::Gif);
    assert_eq!(img.pixels(), &first);
}

#[test]
fn bmp_with_and_without_alpha() {
    let opaque = flat(3);
    let mut translucent = flat(5);
    translucent
        .pixels_mut()
        .enumerate()
        .for_each(|(i, p)| p.0[3] = (i * 7) as u8);
    for img in [opaque, translucent] {
        let dynamic = if img.pixels().all(|p| p.0[3] == 255) {
            image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(img.clone()).to_rgb8())
        } else {
            image::DynamicImage::ImageRgba8(img.clone())
        };
        let mut out = Vec::new();
        dynamic
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Bmp)
            .unwrap();
        assert_eq!(decode(out).pixels(), &img);
    }
}

#[test]
fn progressive_and_greyscale_jpegs() {
    let rgb = crate::basics::reference();
    for progressive in [false, true] {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 100);
        enc.set_progressive(progressive);
        enc.encode(rgb.as_raw(), 24, 16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let img = decode(out);
        let diff = img
            .pixels()
            .pixels()
            .zip(rgb.pixels())
            .flat_map(|(p, q)| (0..3).map(move |c| p.0[c].abs_diff(q.0[c])))
            .max()
            .unwrap();
        assert!(diff <= 40, "progressive={progressive}: off by {diff}");
    }
    let grey: Vec<u8> = (0..24 * 16)
        .map(|i| if i % 24 < 12 { 40 } else { 210 })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 100)
        .encode(&grey, 24, 16, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let img = decode(out);
    for (px, &g) in img.pixels().pixels().zip(&grey) {
        assert!(px.0[0].abs_diff(g) <= 8 && px.0[0] == px.0[1] && px.0[1] == px.0[2]);
    }
}
