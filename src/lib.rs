//! aicut: point-based cut-outs.
//!
//! The crate is organised by concern: [`engine`] holds the AI Cut contract and the engines
//! behind it, [`worker`] the latest-wins bridge every front door uses, [`app`] the editor,
//! [`server`] `aicut serve`, [`imageio`] decoding and saving, [`cut`] the headless cut-out,
//! [`cli`] the subcommands' flags and runners. The binary in `main.rs` only parses
//! arguments and dispatches.

pub mod app;
pub mod bench;
pub mod cli;
pub mod cut;
pub mod engine;
pub mod imageio;
pub mod server;
pub mod wire;
pub mod worker;
