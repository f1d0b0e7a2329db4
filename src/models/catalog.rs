//! The SAM-family checkpoints aicut knows: where they are published, how big they are,
//! under which licence, and the SHA-256 each download must have.
//!
//! Provenance of the pinned values (looked up in other projects' model registries; they
//! agree with one another):
//! - SHA-256 of all four files: micro-sam's registry
//!   (github.com/computational-cell-analytics/micro-sam, `micro_sam/util.py`,
//!   `_CHECKSUMS`: vit_h, vit_l, vit_b and vit_t = MobileSAM), repeated by several
//!   independent download scripts that check the same digests against the same URLs.
//! - Sizes in bytes: model registries that pin size and digest together (MobileSAM
//!   40,728,226; ViT-B 375,042,383; ViT-L 1,249,524,607; ViT-H 2,564,550,879).
//! - The six hex digits in SAM's file names (`01ec64`, `0b3195`, `4b8939`) are the start
//!   of each file's **MD5**, not of its SHA-256: IOPaint's registry
//!   (github.com/Sanster/IOPaint, `iopaint/plugins/interactive_seg.py`) lists the MD5s
//!   `01ec64d29a2fca3f0661936605ae66f8`, `0b3195507c641ddb6910d2bb5adee89c` and
//!   `4b8939a88964f0f4ff5f5b2642c598a6`, while the SHA-256s start `ec2df6`, `3adcc4` and
//!   `a7bf3b`. [`ModelInfo::published_md5`] records them and a test checks the names
//!   against them; downloads are verified by SHA-256 only.

use std::borrow::Cow;

/// One downloadable model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The name users type: `aicut model fetch mobile-sam`, `--model mobile-sam`.
    pub name: Cow<'static, str>,
    /// The file's name in the models folder (as published, so other tools recognise it).
    pub file_name: Cow<'static, str>,
    /// The official download location.
    pub url: Cow<'static, str>,
    /// Size in bytes; `None` where it is not known (tests with their own files).
    pub size: Option<u64>,
    /// The SHA-256 of the whole file, lowercase hex.
    pub sha256: Cow<'static, str>,
    /// The MD5 published alongside (SAM's file names carry its first six hex digits).
    pub published_md5: Option<&'static str>,
    pub licence: &'static str,
    pub description: &'static str,
}

const fn known(
    name: &'static str,
    file_name: &'static str,
    url: &'static str,
    size: u64,
    sha256: &'static str,
    published_md5: Option<&'static str>,
    description: &'static str,
) -> ModelInfo {
    ModelInfo {
        name: Cow::Borrowed(name),
        file_name: Cow::Borrowed(file_name),
        url: Cow::Borrowed(url),
        size: Some(size),
        sha256: Cow::Borrowed(sha256),
        published_md5,
        licence: "Apache-2.0",
        description,
    }
}

/// The known models, smallest first.
pub static CATALOG: [ModelInfo; 4] = [
    known(
        "mobile-sam",
        "mobile_sam.pt",
        "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
        40_728_226,
        "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        None,
        "MobileSAM (TinyViT encoder): small and fast on a CPU",
    ),
    known(
        "sam-vit-b",
        "sam_vit_b_01ec64.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        375_042_383,
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        Some("01ec64d29a2fca3f0661936605ae66f8"),
        "SAM ViT-B: the smallest original SAM",
    ),
    known(
        "sam-vit-l",
        "sam_vit_l_0b3195.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        1_249_524_607,
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        Some("0b3195507c641ddb6910d2bb5adee89c"),
        "SAM ViT-L: close to ViT-H at half its size",
    ),
    known(
        "sam-vit-h",
        "sam_vit_h_4b8939.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        2_564_550_879,
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        Some("4b8939a88964f0f4ff5f5b2642c598a6"),
        "SAM ViT-H: the largest and most accurate, slow on a CPU",
    ),
];

/// The known model called `name`.
pub fn find(name: &str) -> Option<&'static ModelInfo> {
    CATALOG.iter().find(|m| m.name == name)
}

/// The known names, for messages: "mobile-sam, sam-vit-b, ...".
pub fn names() -> String {
    CATALOG
        .iter()
        .map(|m| m.name.as_ref())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ModelInfo {
    /// The pinned digest as bytes; `None` if the hex is malformed (a test pins all four).
    pub fn sha256_bytes(&self) -> Option<[u8; 32]> {
        parse_sha256(&self.sha256)
    }
}

/// 64 hex digits as 32 bytes.
pub fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where Meta publishes the SAM checkpoints.
    const SAM_BASE: &str = "https://dl.fbaipublicfiles.com/segment_anything/";

    #[test]
    fn every_pinned_digest_is_sha256_hex_and_every_size_is_known() {
        for m in &CATALOG {
            assert!(m.sha256_bytes().is_some(), "{}", m.name);
            assert_eq!(m.sha256, m.sha256.to_lowercase(), "{}", m.name);
            assert!(m.size.is_some_and(|s| s > 10_000_000), "{}", m.name);
            assert!(m.url.ends_with(m.file_name.as_ref()), "{}", m.name);
        }
    }

    #[test]
    fn sam_urls_are_the_official_location_plus_the_file_name() {
        for m in CATALOG.iter().filter(|m| m.name.starts_with("sam-")) {
            assert_eq!(m.url, format!("{SAM_BASE}{}", m.file_name));
        }
    }

    #[test]
    fn sam_file_names_carry_the_start_of_their_md5_not_of_their_sha256() {
        for m in CATALOG.iter().filter(|m| m.name.starts_with("sam-")) {
            let stem = m.file_name.trim_end_matches(".pth");
            let tag = stem.rsplit('_').next().unwrap();
            assert_eq!(tag.len(), 6);
            let md5 = m.published_md5.expect("SAM publishes an MD5");
            assert!(md5.starts_with(tag), "{}: {tag} vs MD5 {md5}", m.name);
            assert!(!m.sha256.starts_with(tag), "{}", m.name);
        }
    }

    #[test]
    fn names_are_found_and_unknown_names_are_not() {
        assert_eq!(find("sam-vit-b").unwrap().file_name, "sam_vit_b_01ec64.pth");
        assert!(find("sam-vit-x").is_none());
        assert_eq!(names(), "mobile-sam, sam-vit-b, sam-vit-l, sam-vit-h");
    }

    #[test]
    fn malformed_digests_are_refused() {
        assert!(parse_sha256("00").is_none());
        assert!(parse_sha256(&"g".repeat(64)).is_none());
        assert_eq!(parse_sha256(&"ff".repeat(32)), Some([0xff; 32]));
    }
}
