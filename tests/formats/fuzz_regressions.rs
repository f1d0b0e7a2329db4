//! Inputs the decode fuzz target (`fuzz/`) found, kept in `tests/fixtures/fuzz/`: each
//! is refused with a message and no panic. `tests/broken_files.rs` also checks that
//! `aicut cut` prints nothing but its one line for them.

use aicut::imageio::{self, DecodeLimits, ImageLoadError};

pub fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fuzz");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the fuzz fixtures are in {dir}");
    files
        .into_iter()
        .map(|p| (imageio::display_name(&p), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn every_input_the_fuzzer_found_is_refused_as_damaged() {
    for (name, bytes) in fixtures() {
        let err = imageio::decode_bytes(bytes, &name, &DecodeLimits::default()).expect_err(&name);
        assert!(
            matches!(err, ImageLoadError::Corrupt { .. }),
            "{name}: {err:?}"
        );
    }
}
