//! The editor driven headless through egui_kittest: real `App`, real worker, built-in
//! engine, generated images. Tests wait for background work by stepping the harness each
//! time that work wakes the UI (see `support::wait_until`), never by sleeping for a fixed
//! time.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/model_server.rs"]
mod model_server;
mod support;
#[path = "../common/wrapped.rs"]
mod wrapped;

mod batch;
mod candidates;
mod clipboard;
mod downloads;
mod engines;
mod export;
mod files;
mod hover;
mod loupe;
mod overlays;
mod pointer;
mod progress;
mod strokes;
mod views;
