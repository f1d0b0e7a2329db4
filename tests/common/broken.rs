//! Broken and hostile files, generated: each with the words its one-line error must hold.
//! The CLI, the server and the editor all run this same corpus.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

/// A file that must be refused, never decoded or panicked on.
pub struct Broken {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    /// Lower-case words the message holds.
    pub expect: &'static str,
}

/// CRC-32 (IEEE) for hand-made PNG chunks.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    v.extend_from_slice(&body);
    v.extend_from_slice(&crc32(&body).to_be_bytes());
    v
}

/// A PNG whose header declares `w` x `h` 8-bit RGBA and whose data is a few bytes.
pub fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend(png_chunk(b"IHDR", &ihdr));
    bytes.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    bytes.extend(png_chunk(b"IEND", &[]));
    bytes
}

/// A real decompression bomb: a valid 1-bit PNG of 20000 x 20000 zeros (400 MP, 1.6 GB
/// as RGBA) in a file of some tens of kilobytes.
fn png_bomb() -> Vec<u8> {
    let (w, h) = (20_000u32, 20_000u32);
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        enc.set_compression(png::Compression::High);
        let zeros = vec![0u8; w.div_ceil(8) as usize * h as usize];
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(&zeros).unwrap();
        writer.finish().unwrap();
    }
    out
}

fn encoded(format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_fn(64, 48, |x, y| Rgb([x as u8 * 4, y as u8 * 5, 128]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// A GIF whose logical screen is 60000 x 60000 around one 1 x 1 frame.
fn gif_bomb() -> Vec<u8> {
    let mut v = b"GIF89a".to_vec();
    v.extend_from_slice(&60_000u16.to_le_bytes());
    v.extend_from_slice(&60_000u16.to_le_bytes());
    v.extend_from_slice(&[0x80, 0, 0]); // global colour table of 2 entries
    v.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    v.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // image descriptor 1x1
    v.extend_from_slice(&[2, 2, 0x4C, 0x01, 0, 0x3B]);
    v
}

/// A JPEG whose frame header is patched to claim 65000 x 65000 pixels.
fn jpeg_lying_about_its_size() -> Vec<u8> {
    let mut v = encoded(ImageFormat::Jpeg);
    let sof = v
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    v[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
    v
}

/// A BMP whose header puts the pixels far past the end of the file.
fn bmp_lying_about_its_data() -> Vec<u8> {
    let mut v = encoded(ImageFormat::Bmp);
    v[10..14].copy_from_slice(&0x0100_0000u32.to_le_bytes());
    v
}

/// A PNG that declares 64 x 48 but whose image data holds a single row.
fn png_with_too_little_data() -> Vec<u8> {
    let full = encoded(ImageFormat::Png);
    let mut v = full[..33].to_vec(); // signature + IHDR
    v.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    ));
    v.extend(png_chunk(b"IEND", &[]));
    v
}

fn half(format: ImageFormat) -> Vec<u8> {
    let full = encoded(format);
    full[..full.len() / 2].to_vec()
}

fn heic() -> Vec<u8> {
    let mut v = vec![0, 0, 0, 24];
    v.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    v.extend_from_slice(&[0; 64]);
    v
}

/// The corpus. Names end in what a user would have called the file.
pub fn corpus() -> Vec<Broken> {
    let b = |name, bytes, expect| Broken {
        name,
        bytes,
        expect,
    };
    vec![
        b("empty.jpg", Vec::new(), "empty (0 bytes)"),
        b(
            "truncated.png",
            half(ImageFormat::Png),
            "damaged or incomplete",
        ),
        b("truncated.jpg", half(ImageFormat::Jpeg), "truncated"),
        b(
            "truncated.webp",
            half(ImageFormat::WebP),
            "damaged or incomplete",
        ),
        b(
            "truncated.gif",
            half(ImageFormat::Gif),
            "damaged or incomplete",
        ),
        b(
            "truncated.tif",
            half(ImageFormat::Tiff),
            "damaged or incomplete",
        ),
        b(
            "shopping-list.png",
            b"milk, eggs, bread\n".to_vec(),
            "not an image",
        ),
        b(
            "too-little-data.png",
            png_with_too_little_data(),
            "damaged or incomplete",
        ),
        b("lying-size.jpg", jpeg_lying_about_its_size(), "65000x65000"),
        b(
            "lying-offset.bmp",
            bmp_lying_about_its_data(),
            "damaged or incomplete",
        ),
        b("bomb.png", png_bomb(), "20000x20000 pixels"),
        b(
            "huge-header.png",
            png_declaring(100_000, 100_000),
            "100000x100000",
        ),
        b("strip.png", png_declaring(100_000, 1), "100000x1 pixels"),
        b("bomb.gif", gif_bomb(), "60000x60000"),
        b("phone.heic", heic(), "heic/heif"),
        b(
            "brochure.pdf",
            b"%PDF-1.7\n%\xe2\xe3\n1 0 obj\n".to_vec(),
            "pdf",
        ),
        b(
            "layers.psd",
            b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03".to_vec(),
            "photoshop",
        ),
        b(
            "DSC_0001.NEF",
            b"MM\x00*\x00\x00\x00\x08\x00\x00".to_vec(),
            "camera raw",
        ),
    ]
}
