//! The AI Cut API client and the worker against a real `aicut serve` over loopback, with
//! faults injected by the server's test hook.
//!
//! `worker`: the worker over the client, under faults, on a paused clock (see `harness`).
//! `remote`: the client alone: where the key goes, what pixels are uploaded.

#[path = "../common/mod.rs"]
mod common;
mod harness;
mod remote;
mod worker;
#[path = "../common/wrapped.rs"]
mod wrapped;
