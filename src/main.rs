//! The `aicut` command: the editor by default, plus `cut` for scripts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use aicut::cut::{CutRequest, run_cut};
use aicut::engine::{Dot, Engine, EngineKind};

/// Point-based cut-outs: left-click to include, right-click to exclude, save a PNG with a
/// transparent background.
///
/// With no subcommand, opens the editor (on IMAGE if given).
#[derive(Parser, Debug)]
#[command(name = "aicut", version, about, long_about)]
struct Cli {
    /// An image to open in the editor.
    image: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Cut one image headlessly: keep what the green dots mark, drop what the red dots mark.
    ///
    /// Example: aicut cut photo.jpg --green 250,300 --red 50,50 -o photo-cutout.png
    Cut {
        /// The image to cut (JPEG, PNG, WebP, BMP, TIFF, GIF).
        image: PathBuf,
        /// A point to include, as X,Y in image pixels from the top-left corner. Repeatable.
        #[arg(long = "green", short = 'g', value_name = "X,Y", value_parser = parse_dot, required = true, allow_hyphen_values = true)]
        green: Vec<Dot>,
        /// A point to exclude, as X,Y in image pixels. Repeatable.
        #[arg(long = "red", short = 'r', value_name = "X,Y", value_parser = parse_dot, allow_hyphen_values = true)]
        red: Vec<Dot>,
        /// Where to write the cut-out PNG (never over the input).
        #[arg(long, short = 'o', value_name = "OUT.png")]
        output: PathBuf,
        /// Which engine segments the image.
        #[arg(long, value_enum, default_value_t = EngineKind::Builtin)]
        engine: EngineKind,
        #[command(flatten)]
        api: ApiArgs,
        /// With --engine sam: the model file (.safetensors, .pt or .pth); or set AICUT_SAM_MODEL.
        #[arg(long, value_name = "FILE")]
        model: Option<PathBuf>,
        /// With --engine api: if the session expires, start a new one (costs 1 credit).
        #[arg(long)]
        reinitialize: bool,
    },
    /// Serve the AI Cut HTTP API from a local engine, for any AI Cut client.
    ///
    /// Routes: POST /v3/ai-cut/initialize/ (multipart, file field 'image'),
    /// POST /v3/ai-cut/segment/ (JSON), GET output_url (no key needed, temporary).
    Serve(aicut::cli::serve::ServeArgs),
    /// Measure the built-in engine: initialize and segment (PNG included) at several sizes.
    ///
    /// Example: aicut bench ../shared/datasets/grabcut/images
    Bench {
        /// Image files or folders of images.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// How many of them to also scale up to 2 MP and 12 MP.
        #[arg(long, default_value_t = 3)]
        large: usize,
    },
}

/// Where the AI Cut API engine connects.
#[derive(clap::Args, Debug)]
struct ApiArgs {
    /// Base URL of the AI Cut API (any `aicut serve` works too).
    #[arg(long, value_name = "URL", default_value = aicut::engine::remote::DEFAULT_API_URL)]
    api_url: String,
    /// The API key (or set AICUT_API_KEY). Sent only to the API URL.
    #[arg(long, env = "AICUT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

/// Parses "X,Y" into a dot.
fn parse_dot(s: &str) -> Result<Dot, String> {
    let (x, y) = s
        .split_once(',')
        .ok_or_else(|| format!("'{s}' is not X,Y (for example 250,300)"))?;
    let num = |v: &str| -> Result<f64, String> {
        let n: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("'{v}' in '{s}' is not a number"))?;
        if n.is_finite() {
            Ok(n)
        } else {
            Err(format!("'{v}' in '{s}' is not a finite number"))
        }
    };
    Ok(Dot::new(num(x)?, num(y)?))
}

fn make_engine(
    kind: EngineKind,
    api: ApiArgs,
    model: Option<PathBuf>,
) -> Result<Arc<dyn Engine>, String> {
    use aicut::engine::remote::{RemoteConfig, RemoteEngine};
    match kind {
        EngineKind::Builtin => Ok(Arc::new(aicut::engine::builtin::engine(Default::default()))),
        EngineKind::Sam => {
            let path = aicut::engine::sam::model_path(model).map_err(|e| e.to_string())?;
            let engine =
                aicut::engine::sam::engine(&path, Default::default()).map_err(|e| e.to_string())?;
            Ok(Arc::new(engine))
        }
        EngineKind::Api => {
            if api.api_key.as_deref().is_none_or(str::is_empty) {
                return Err(
                    "--engine api needs a key: pass --api-key KEY or set AICUT_API_KEY".into(),
                );
            }
            let config = RemoteConfig {
                base_url: api.api_url,
                api_key: api.api_key,
                ..RemoteConfig::default()
            };
            Ok(Arc::new(
                RemoteEngine::new(config).map_err(|e| e.to_string())?,
            ))
        }
    }
}

fn main() -> ExitCode {
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
    match cli.command {
        None => match aicut::app::run(cli.image) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aicut: error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Cut {
            image,
            green,
            red,
            output,
            engine,
            api,
            model,
            reinitialize,
        }) => {
            let engine = match make_engine(engine, api, model) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("aicut: error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let req = CutRequest {
                input: image,
                output,
                green,
                red,
                reinitialize,
            };
            match run_cut(engine, &req) {
                Ok(report) => {
                    println!(
                        "wrote {} ({}x{}, {:.1}% selected)",
                        req.output.display(),
                        report.width,
                        report.height,
                        report.selected_fraction * 100.0
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("aicut: error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Bench { inputs, large }) => match aicut::bench::run(&inputs, large) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("aicut: error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Serve(args)) => aicut::cli::serve::run(args),
    }
}
