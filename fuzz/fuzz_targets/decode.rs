//! Any bytes through aicut's decoder, and what decodes through the export: never a panic,
//! never more memory than the limits allow.
#![no_main]

use image::{GrayImage, Luma};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../src/imageio/mod.rs"]
mod imageio;

use imageio::{DecodeLimits, ExportFormat, ExportOptions};

/// File names steer the RAW check, which looks at the extension.
const NAMES: [&str; 4] = ["photo.jpg", "photo.png", "photo.nef", "photo"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    // Small limits: the fuzzer's memory limit is 2 GB, and big sizes only slow it down.
    let limits = DecodeLimits {
        max_side: 4096,
        max_pixels: 4_000_000,
        max_file_bytes: 1 << 20,
    };
    let name = NAMES[pick as usize % NAMES.len()];
    let Ok(img) = imageio::decode_bytes(bytes.to_vec(), name, &limits) else {
        return;
    };
    assert!(img.width() <= limits.max_side && img.height() <= limits.max_side);
    let mask = GrayImage::from_fn(img.width(), img.height(), |x, _| Luma([(x * 37) as u8]));
    let format = if pick & 0x80 == 0 {
        ExportFormat::Png
    } else {
        ExportFormat::WebP
    };
    let options = ExportOptions {
        trim: (pick & 0x40 != 0).then_some(3),
        mask_only: pick & 0x20 != 0,
    };
    imageio::export_cutout(&img, &mask, format, options).expect("a decoded image exports");
});
