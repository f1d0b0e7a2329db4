//! The command line's subcommands: their flags and how each one runs.

pub mod serve;
