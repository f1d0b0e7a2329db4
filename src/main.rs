//! The `aicut` command: parses arguments and dispatches. The editor by default; `cut`,
//! `serve`, `bench` and `model` live in [`aicut::cli`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Point-based cut-outs: left-click to include, right-click to exclude, save a PNG with a
/// transparent background.
///
/// With no subcommand, opens the editor: one image opens alone; several images, or a
/// folder, open as a batch (PageDown/PageUp move through it).
#[derive(Parser, Debug)]
#[command(name = "aicut", version, about, long_about)]
struct Cli {
    /// Images (or a folder) to open in the editor.
    images: Vec<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Cut one image headlessly: keep what the green dots mark, drop what the red dots mark.
    ///
    /// Example: aicut cut photo.jpg --green 250,300 --red 50,50 -o photo-cutout.png
    Cut(aicut::cli::cut::CutArgs),
    /// Serve the AI Cut HTTP API from a local engine, for any AI Cut client.
    ///
    /// Routes: POST /v3/ai-cut/initialize/ (multipart, file field 'image'),
    /// POST /v3/ai-cut/segment/ (JSON), GET output_url (no key needed, temporary).
    Serve(aicut::cli::serve::ServeArgs),
    /// Measure the built-in engine: initialize and segment (PNG included) at several sizes.
    ///
    /// Example: aicut bench ../shared/datasets/grabcut/images
    Bench(aicut::cli::bench::BenchArgs),
    /// The known SAM-family models: list them, or fetch one (SHA-256 verified) into the
    /// data folder.
    ///
    /// Example: aicut model fetch mobile-sam, then aicut cut photo.jpg --engine sam
    /// --model mobile-sam --green 250,300 -o out.png
    #[command(subcommand)]
    Model(aicut::cli::model::ModelCommand),
    /// Alpha matting under a trimap (0 background, 128 unknown, 255 foreground).
    ///
    /// Example: aicut matte photo.jpg trimap.png -o alpha.png
    Matte(aicut::cli::matte::MatteArgs),
}

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread starts.
    unsafe { aicut::engine::sam::set_thread_count_for_candle() };
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Some(Command::Serve(_))) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AICUT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        None => aicut::app::run(cli.images),
        Some(Command::Cut(args)) => aicut::cli::cut::run(args),
        Some(Command::Bench(args)) => aicut::cli::bench::run(args),
        Some(Command::Serve(args)) => aicut::cli::serve::run(args),
        Some(Command::Model(command)) => aicut::cli::model::run(command),
        Some(Command::Matte(args)) => aicut::cli::matte::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aicut: error: {e}");
            ExitCode::FAILURE
        }
    }
}
