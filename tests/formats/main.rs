//! Every format, depth and orientation aicut opens, what it writes, and what it refuses:
//! all over images generated here, read back with decoders independent of aicut's.

#[path = "../common/mod.rs"]
mod common;

mod basics;
mod cmyk;
mod depth;
mod export;
mod fuzz_regressions;
