//! Decoding through the real decoders: orientation, formats, and hostile files.

use std::io::Cursor;

use crate::common::{self, exif_with_orientation};
use aicut::imageio::{self, DecodeLimits, ImageLoadError};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops;
use image::{DynamicImage, ImageEncoder, ImageFormat, Rgb, RgbImage};

/// A 24x16 picture of four flat, distinct quadrants: any flip or turn changes it.
pub fn reference() -> RgbImage {
    RgbImage::from_fn(24, 16, |x, y| match (x < 12, y < 8) {
        (true, true) => Rgb([230, 20, 20]),
        (false, true) => Rgb([20, 200, 30]),
        (true, false) => Rgb([30, 40, 220]),
        (false, false) => Rgb([240, 240, 30]),
    })
}

/// The stored pixels that EXIF `orientation` turns into `displayed`.
pub fn stored_for(displayed: &RgbImage, orientation: u16) -> RgbImage {
    let transpose = |p: &RgbImage| imageops::flip_horizontal(&imageops::rotate90(p));
    match orientation {
        1 => displayed.clone(),
        2 => imageops::flip_horizontal(displayed),
        3 => imageops::rotate180(displayed),
        4 => imageops::flip_vertical(displayed),
        5 => transpose(displayed),
        6 => imageops::rotate270(displayed),
        7 => imageops::rotate180(&transpose(displayed)),
        8 => imageops::rotate90(displayed),
        _ => unreachable!(),
    }
}

/// Writes `img` through an encoder that carries EXIF.
fn with_exif(mut enc: impl ImageEncoder, img: &RgbImage, exif: Vec<u8>) {
    enc.set_exif_metadata(exif).unwrap();
    let (w, h) = img.dimensions();
    enc.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
}

fn encode(img: &RgbImage, format: ImageFormat, orientation: u16) -> Vec<u8> {
    encode_with_exif(img, format, exif_with_orientation(orientation))
}

/// PNG, JPEG (quality 100), lossless WebP or TIFF carrying the given EXIF block (TIFF:
/// its own Orientation tag, read from the block's first entry).
fn encode_with_exif(img: &RgbImage, format: ImageFormat, exif: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        ImageFormat::Png => with_exif(PngEncoder::new(&mut out), img, exif),
        ImageFormat::Jpeg => with_exif(JpegEncoder::new_with_quality(&mut out, 100), img, exif),
        ImageFormat::WebP => {
            let enc = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
            with_exif(enc, img, exif)
        }
        ImageFormat::Tiff => {
            let orientation = u16::from_le_bytes([exif[18], exif[19]]);
            let mut cursor = Cursor::new(&mut out);
            let mut enc = tiff::encoder::TiffEncoder::new(&mut cursor).unwrap();
            let mut tif = enc
                .new_image::<tiff::encoder::colortype::RGB8>(img.width(), img.height())
                .unwrap();
            tif.encoder()
                .write_tag(tiff::tags::Tag::Orientation, orientation)
                .unwrap();
            tif.write_data(img.as_raw()).unwrap();
        }
        _ => unreachable!(),
    }
    out
}

fn max_channel_diff(a: &image::RgbaImage, b: &RgbImage) -> u8 {
    a.pixels()
        .zip(b.pixels())
        .flat_map(|(p, q)| (0..3).map(move |c| p.0[c].abs_diff(q.0[c])))
        .max()
        .unwrap_or(0)
}

#[test]
fn all_eight_exif_orientations_decode_to_the_same_grid() {
    let want = reference();
    for (format, tolerance) in [
        (ImageFormat::Png, 0u8),
        (ImageFormat::Jpeg, 40),
        (ImageFormat::WebP, 0),
        (ImageFormat::Tiff, 0),
    ] {
        for o in 1..=8u16 {
            let stored = stored_for(&want, o);
            if o >= 5 {
                assert_eq!(
                    stored.dimensions(),
                    (16, 24),
                    "orientations 5-8 store a turned image"
                );
            }
            let bytes = encode(&stored, format, o);
            let img = imageio::decode_bytes(bytes, "t", &DecodeLimits::default()).unwrap();
            assert_eq!(
                (img.width(), img.height()),
                (24, 16),
                "{format:?} orientation {o}"
            );
            assert_eq!(img.reoriented, o != 1);
            let diff = max_channel_diff(img.pixels(), &want);
            assert!(
                diff <= tolerance,
                "{format:?} orientation {o}: pixels differ by {diff}"
            );
        }
    }
}

#[test]
fn every_supported_format_decodes() {
    let want = DynamicImage::ImageRgb8(reference());
    for format in [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::WebP,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
        ImageFormat::Gif,
    ] {
        let mut bytes = Vec::new();
        let src = if format == ImageFormat::Gif {
            DynamicImage::ImageRgba8(want.to_rgba8())
        } else {
            want.clone()
        };
        src.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
        let img = imageio::decode_bytes(bytes, "t", &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(img.format, format);
        assert_eq!((img.width(), img.height()), (24, 16));
        let diff = max_channel_diff(img.pixels(), &reference());
        assert!(diff <= 40, "{format:?} differs by {diff}");
    }
}

#[test]
fn a_png_declaring_100000_square_pixels_is_refused_before_allocating() {
    let bytes = common::broken::png_declaring(100_000, 100_000);
    let err = imageio::decode_bytes(bytes, "bomb.png", &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, ImageLoadError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("bomb.png"), "{err}");
}

#[test]
fn truncated_files_are_errors_not_panics() {
    for format in [ImageFormat::Png, ImageFormat::Jpeg] {
        let full = encode(&reference(), format, 1);
        let cut = full[..full.len() / 2].to_vec();
        let err = imageio::decode_bytes(cut, "half", &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(err, ImageLoadError::Corrupt { .. }),
            "{format:?}: {err:?}"
        );
    }
}

/// A camera-style EXIF block: orientation 1 in IFD0 and a whole thumbnail JPEG in IFD1
/// (JPEGInterchangeFormat / JPEGInterchangeFormatLength), as phones and cameras write it.
fn exif_with_thumbnail(thumbnail: &[u8]) -> Vec<u8> {
    let entry = |tag: u16, kind: u16, value: u32| {
        let mut e = tag.to_le_bytes().to_vec();
        e.extend_from_slice(&kind.to_le_bytes());
        e.extend_from_slice(&1u32.to_le_bytes());
        e.extend_from_slice(&value.to_le_bytes());
        e
    };
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    let ifd1_at = 8 + 2 + 12 + 4;
    let thumbnail_at = ifd1_at + 2 + 2 * 12 + 4;
    let mut v = b"II*\0".to_vec();
    v.extend_from_slice(&8u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend(entry(0x0112, SHORT, 1));
    v.extend_from_slice(&(ifd1_at as u32).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend(entry(0x0201, LONG, thumbnail_at as u32));
    v.extend(entry(0x0202, LONG, thumbnail.len() as u32));
    v.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(v.len(), thumbnail_at);
    v.extend_from_slice(thumbnail);
    v
}

#[test]
fn a_camera_jpeg_cut_off_after_its_exif_thumbnail_is_reported_truncated() {
    let thumbnail = encode(&reference(), ImageFormat::Jpeg, 1);
    let photo = encode_with_exif(
        &common::textured_background(160, 120, 7),
        ImageFormat::Jpeg,
        exif_with_thumbnail(&thumbnail),
    );
    let whole = imageio::decode_bytes(photo.clone(), "camera.jpg", &DecodeLimits::default())
        .expect("the whole camera-style photo decodes");
    assert_eq!((whole.width(), whole.height()), (160, 120));

    let thumbnail_end = photo
        .windows(thumbnail.len())
        .position(|w| w == thumbnail)
        .expect("the thumbnail is inside the photo")
        + thumbnail.len();
    let cut = photo[..(thumbnail_end + photo.len()) / 2].to_vec();
    assert!(
        cut.windows(2).any(|w| w == [0xFF, 0xD9]),
        "the cut file still holds the thumbnail's end marker, the trap this test is about"
    );
    let err = imageio::decode_bytes(cut, "camera.jpg", &DecodeLimits::default()).unwrap_err();
    assert!(
        matches!(&err, ImageLoadError::Corrupt { reason, .. } if reason.contains("truncated")),
        "{err:?}"
    );
}

#[test]
fn a_jpeg_with_data_after_its_end_marker_still_decodes() {
    let mut photo = encode(&reference(), ImageFormat::Jpeg, 1);
    photo.extend_from_slice(b"maker notes appended after the image\xff\x00");
    let img = imageio::decode_bytes(photo, "trailer.jpg", &DecodeLimits::default())
        .expect("trailing bytes after the end-of-image marker are allowed");
    assert_eq!((img.width(), img.height()), (24, 16));
}

#[test]
fn empty_text_and_missing_files_each_get_their_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let err = imageio::load_file(&empty, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, ImageLoadError::Empty { .. }), "{err:?}");

    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, b"this is a shopping list, not a photo\n").unwrap();
    let err = imageio::load_file(&text, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, ImageLoadError::NotAnImage { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.jpg"));

    let missing = dir.path().join("nope.png");
    let err = imageio::load_file(&missing, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, ImageLoadError::Read { .. }), "{err:?}");
}

#[test]
fn atomic_save_writes_whole_files_and_never_over_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("photo.png");
    std::fs::write(&src, b"original").unwrap();
    let err = imageio::save_atomic(&src, b"new", &[&src]).unwrap_err();
    assert!(matches!(err, imageio::SaveError::WouldOverwriteSource(_)));
    // The same file through another spelling of the path is still refused.
    let sneaky = dir.path().join(".").join("photo.png");
    assert!(imageio::save_atomic(&sneaky, b"new", &[&src]).is_err());
    assert_eq!(std::fs::read(&src).unwrap(), b"original");

    let out = imageio::default_output_path(&src);
    assert_eq!(out.file_name().unwrap(), "photo-cutout.png");
    imageio::save_atomic(&out, b"first", &[&src]).unwrap();
    imageio::save_atomic(&out, b"second", &[&src]).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"second");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");

    let err = imageio::save_atomic(&dir.path().join("no/such/dir/x.png"), b"x", &[]).unwrap_err();
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[test]
fn a_full_disk_mid_write_is_reported_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cutout.png");
    std::fs::write(&out, b"the previous cut-out").unwrap();
    // A disk that fills up after the first bytes, as ENOSPC arrives in the middle of a write.
    let err = imageio::save_atomic_with(&out, &[], |f| {
        use std::io::Write;
        f.write_all(b"half a PNG")?;
        Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cutout.png") && msg.contains("disk is full"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"the previous cut-out");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary left"
    );
}
