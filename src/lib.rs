//! aicut: point-based cut-outs.
//!
//! The crate is organised by concern: [`engine`] holds the AI Cut contract and the engines
//! behind it, [`worker`] the latest-wins bridge every front door uses, [`app`] the editor,
//! [`server`] `aicut serve`, [`imageio`] decoding and saving, [`cut`] the headless cut-out.
//! [`models`] knows the SAM-family checkpoints and downloads them verified.
//! [`cli`] holds each subcommand's arguments and runner; the binary in `main.rs` only
//! parses and dispatches. [`prompt`] (dots) is the leaf everything builds on; [`wire`] is
//! the AI Cut HTTP bodies, shared by the server and the remote engine.

pub mod app;
pub mod bench;
pub mod cli;
pub mod cut;
pub mod engine;
pub mod imageio;
pub mod matting;
pub mod models;
pub mod morphology;
pub mod prompt;
pub mod server;
pub mod wire;
pub mod worker;
