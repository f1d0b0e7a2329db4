//! CMYK and YCCK JPEGs (as Photoshop writes them, Adobe-inverted) decode to sRGB through
//! their embedded profile, not through naive arithmetic.

use aicut::imageio::{self, DecodeLimits};
use jpeg_encoder::{ColorType, Encoder};
use moxcms::{
    ColorProfile, DataColorSpace, LutDataType, LutStore, LutType, LutWarehouse, Matrix3d,
    ProfileClass,
};

/// D50 XYZ of sRGB's white, red, green and blue (the ICC PCS values of sRGB's primaries).
const WHITE: [f64; 3] = [0.9642, 1.0, 0.8249];
const RED: [f64; 3] = [0.4361, 0.2225, 0.0139];
const GREEN: [f64; 3] = [0.3851, 0.7169, 0.0971];
const BLUE: [f64; 3] = [0.1431, 0.0606, 0.7141];

/// A deliberately odd CMYK output profile (lut16, XYZ PCS, a 2-point grid): cyan ink
/// prints sRGB red, magenta prints green, yellow prints blue, no ink is white, black ink
/// or any mix of inks is black. Naive arithmetic would give cyan, magenta and yellow.
fn odd_cmyk_profile() -> Vec<u8> {
    let mut clut = Vec::new();
    for corner in 0..16u32 {
        // The grid's first input (C) varies slowest.
        let [c, m, y, k] = [
            corner >> 3 & 1,
            corner >> 2 & 1,
            corner >> 1 & 1,
            corner & 1,
        ];
        let xyz = match (c, m, y, k) {
            (0, 0, 0, 0) => WHITE,
            (1, 0, 0, 0) => RED,
            (0, 1, 0, 0) => GREEN,
            (0, 0, 1, 0) => BLUE,
            _ => [0.0; 3],
        };
        // lut16 XYZ encoding: u1Fixed15, 1.0 = 32768.
        clut.extend(xyz.map(|v| (v * 32768.0).round() as u16));
    }
    let lut = LutDataType {
        num_input_channels: 4,
        num_output_channels: 3,
        num_clut_grid_points: 2,
        matrix: Matrix3d::IDENTITY,
        num_input_table_entries: 2,
        num_output_table_entries: 2,
        input_table: LutStore::Store16([0, 65535].repeat(4)),
        clut_table: LutStore::Store16(clut),
        output_table: LutStore::Store16([0, 65535].repeat(3)),
        lut_type: LutType::Lut16,
    };
    let white = moxcms::Xyzd {
        x: WHITE[0],
        y: WHITE[1],
        z: WHITE[2],
    };
    let mut profile = ColorProfile::default();
    profile.pcs = DataColorSpace::Xyz;
    profile.color_space = DataColorSpace::Cmyk;
    profile.profile_class = ProfileClass::OutputDevice;
    profile.white_point = white;
    profile.media_white_point = Some(white);
    profile.lut_a_to_b_perceptual = Some(LutWarehouse::Lut(lut.clone()));
    profile.lut_a_to_b_colorimetric = Some(LutWarehouse::Lut(lut));
    profile.encode().expect("the test profile encodes")
}

/// Four 8x8 patches side by side, each one ink at 100% (or none), as CMYK ink amounts.
fn patches() -> (Vec<u8>, u16, u16) {
    let inks: [[u8; 4]; 4] = [[255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0], [0, 0, 0, 0]];
    let (w, h) = (32u16, 8u16);
    let mut data = Vec::new();
    for _y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&inks[x as usize / 8]);
        }
    }
    (data, w, h)
}

fn cmyk_jpeg(color: ColorType, profile: Option<&[u8]>, progressive: bool) -> Vec<u8> {
    let (data, w, h) = patches();
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 100);
    enc.set_progressive(progressive);
    if let Some(p) = profile {
        enc.add_icc_profile(p).unwrap();
    }
    enc.encode(&data, w, h, color).unwrap();
    out
}

fn centre(img: &image::RgbaImage, patch: u32) -> [u8; 3] {
    let p = img.get_pixel(patch * 8 + 4, 4).0;
    [p[0], p[1], p[2]]
}

fn assert_near(got: [u8; 3], want: [u8; 3], tol: u8, what: &str) {
    let diff = (0..3).map(|c| got[c].abs_diff(want[c])).max().unwrap();
    assert!(diff <= tol, "{what}: got {got:?}, want {want:?}");
}

#[test]
fn cmyk_and_ycck_jpegs_go_through_their_embedded_profile() {
    let profile = odd_cmyk_profile();
    for (color, progressive) in [
        (ColorType::Cmyk, false),
        (ColorType::CmykAsYcck, false),
        (ColorType::Cmyk, true),
    ] {
        let what = format!("{color:?} progressive={progressive}");
        let bytes = cmyk_jpeg(color, Some(&profile), progressive);
        let img = imageio::decode_bytes(bytes, "cmyk.jpg", &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!((img.width(), img.height()), (32, 8));
        let px = img.pixels();
        assert_near(centre(px, 0), [255, 0, 0], 6, &format!("{what} cyan ink"));
        assert_near(
            centre(px, 1),
            [0, 255, 0],
            6,
            &format!("{what} magenta ink"),
        );
        assert_near(centre(px, 2), [0, 0, 255], 6, &format!("{what} yellow ink"));
        assert_near(centre(px, 3), [255, 255, 255], 6, &format!("{what} paper"));
        // The pixels are sRGB now, and the export says so.
        let icc = img.icc_profile().expect("an sRGB profile for the export");
        let srgb = moxcms::ColorProfile::new_from_slice(icc).unwrap();
        assert_eq!(srgb.color_space, DataColorSpace::Rgb);
    }
}

#[test]
fn cmyk_without_a_profile_uses_the_uncalibrated_formula() {
    let bytes = cmyk_jpeg(ColorType::Cmyk, None, false);
    let img = imageio::decode_bytes(bytes, "plain.jpg", &DecodeLimits::default()).unwrap();
    let px = img.pixels();
    assert_near(centre(px, 0), [0, 255, 255], 3, "cyan ink");
    assert_near(centre(px, 1), [255, 0, 255], 3, "magenta ink");
    assert_near(centre(px, 2), [255, 255, 0], 3, "yellow ink");
    assert_near(centre(px, 3), [255, 255, 255], 3, "paper");
}

#[test]
fn a_cmyk_jpeg_follows_its_exif_orientation() {
    let (data, w, h) = patches();
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 100);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(crate::common::exif_with_orientation(6));
    enc.add_app_segment(1, app1).unwrap();
    enc.encode(&data, w, h, ColorType::Cmyk).unwrap();
    let img = imageio::decode_bytes(out, "turned.jpg", &DecodeLimits::default()).unwrap();
    assert!(img.reoriented);
    assert_eq!(
        (img.width(), img.height()),
        (8, 32),
        "orientation 6 turns it upright"
    );
    // Turned clockwise: the first patch (cyan ink) is now at the top.
    let top = img.pixels().get_pixel(4, 4).0;
    let bottom = img.pixels().get_pixel(4, 28).0;
    assert_near([top[0], top[1], top[2]], [0, 255, 255], 3, "cyan on top");
    assert_near(
        [bottom[0], bottom[1], bottom[2]],
        [255, 255, 255],
        3,
        "paper at the bottom",
    );
}
