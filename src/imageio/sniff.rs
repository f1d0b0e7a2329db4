//! Which format a file is, from its first bytes (and its name where the bytes are shared
//! with TIFF, as camera RAW files are): the formats aicut decodes, and the ones people
//! often try that it does not, each with a message that says what to do.

use image::ImageFormat;

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sniffed {
    Decodable(ImageFormat),
    Unsupported {
        format: &'static str,
        advice: &'static str,
    },
    Unknown,
}

const EXPORT_ADVICE: &str = "export or convert it to JPEG, PNG or TIFF first";

/// Camera RAW extensions; most are TIFF inside, so the bytes alone would pass as TIFF.
const RAW_EXTENSIONS: &[&str] = &[
    "dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "orf", "rw2", "raf", "pef",
    "srw", "x3f", "3fr", "iiq", "erf", "kdc", "mos", "mrw", "rwl",
];

fn raw() -> Sniffed {
    Sniffed::Unsupported {
        format: "camera RAW",
        advice: "develop it in your RAW converter (e.g. darktable, Lightroom) and export a 16-bit TIFF or a PNG",
    }
}

/// The format of `bytes`, with `name` consulted only for camera RAW files.
pub(super) fn sniff(bytes: &[u8], name: &str) -> Sniffed {
    let ext = std::path::Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"FUJIFILMCCD-RAW") || starts(b"IIRO") || starts(b"IIRS") || starts(b"IIU\0") {
        return raw();
    }
    if (starts(b"II*\0") || starts(b"MM\0*")) && RAW_EXTENSIONS.contains(&ext.as_str()) {
        return raw();
    }
    if starts(b"II*\0") && bytes.get(8..10) == Some(b"CR") {
        return raw();
    }
    if let Some(f) = iso_media(bytes) {
        return f;
    }
    if starts(b"%PDF-") {
        return Sniffed::Unsupported {
            format: "PDF",
            advice: "export the page as a PNG (e.g. `pdftoppm -png -r 300 file.pdf page`) and open that",
        };
    }
    if starts(b"8BPS") {
        return Sniffed::Unsupported {
            format: "Photoshop (PSD)",
            advice: "in Photoshop use File > Export > Export As... PNG (or TIFF) and open that",
        };
    }
    match image::guess_format(bytes) {
        Ok(
            f @ (ImageFormat::Jpeg
            | ImageFormat::Png
            | ImageFormat::WebP
            | ImageFormat::Bmp
            | ImageFormat::Tiff
            | ImageFormat::Gif),
        ) => Sniffed::Decodable(f),
        Ok(other) => Sniffed::Unsupported {
            format: other
                .extensions_str()
                .first()
                .map_or("image", |e| format_name(e)),
            advice: EXPORT_ADVICE,
        },
        Err(_) => Sniffed::Unknown,
    }
}

fn format_name(ext: &str) -> &'static str {
    match ext {
        "ico" => "ICO icon",
        "exr" => "OpenEXR",
        "hdr" => "Radiance HDR",
        "tga" => "TGA",
        "dds" => "DDS texture",
        "qoi" => "QOI",
        "pbm" | "pam" | "ppm" | "pgm" | "pnm" => "Netpbm",
        "ff" => "Farbfeld",
        _ => "image",
    }
}

/// HEIC/HEIF, AVIF and Canon CR3: ISO media files told apart by their `ftyp` brand.
fn iso_media(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.get(4..8) != Some(b"ftyp") {
        return None;
    }
    let brand = bytes.get(8..12)?;
    match brand {
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
            Some(Sniffed::Unsupported {
                format: "HEIC/HEIF",
                advice: "on an iPhone set Settings > Camera > Formats > Most Compatible, or convert it to JPEG (e.g. `heif-convert photo.heic photo.jpg`) and open that",
            })
        }
        b"avif" | b"avis" => Some(Sniffed::Unsupported {
            format: "AVIF",
            advice: "this build has no AVIF decoder; convert it to PNG (e.g. `avifdec photo.avif photo.png`) and open that",
        }),
        b"crx " => Some(raw()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 24];
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(brand);
        v.extend_from_slice(&[0; 12]);
        v
    }

    #[test]
    fn formats_people_try_are_named() {
        let named = |bytes: &[u8], name: &str| match sniff(bytes, name) {
            Sniffed::Unsupported { format, .. } => format,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(named(&ftyp(b"heic"), "a.heic"), "HEIC/HEIF");
        assert_eq!(named(&ftyp(b"mif1"), "a.heif"), "HEIC/HEIF");
        assert_eq!(named(&ftyp(b"avif"), "a.avif"), "AVIF");
        assert_eq!(named(&ftyp(b"crx "), "a.cr3"), "camera RAW");
        assert_eq!(named(b"%PDF-1.7\n...", "a.pdf"), "PDF");
        assert_eq!(named(b"8BPS\0\x01", "a.psd"), "Photoshop (PSD)");
        assert_eq!(named(b"II*\0\x10\0\0\0CR\x02\0", "a.cr2"), "camera RAW");
        assert_eq!(named(b"II*\0\x08\0\0\0", "IMG_1.NEF"), "camera RAW");
        assert_eq!(named(b"FUJIFILMCCD-RAW 0201", "a.raf"), "camera RAW");
        assert_eq!(
            sniff(b"II*\0\x08\0\0\0", "scan.tif"),
            Sniffed::Decodable(ImageFormat::Tiff)
        );
        assert_eq!(sniff(b"hello", "a.jpg"), Sniffed::Unknown);
    }
}
