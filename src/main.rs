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
    Serve(ServeArgs),
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

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on. Without an API key only loopback addresses are allowed.
    #[arg(long, default_value = "127.0.0.1:8000")]
    bind: std::net::SocketAddr,
    /// The local engine that segments.
    #[arg(long, value_enum, default_value_t = LocalEngineKind::Builtin)]
    engine: LocalEngineKind,
    /// With --engine sam: the model file (.safetensors, .pt or .pth); or set AICUT_SAM_MODEL.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Accept this bearer key (repeatable). Without any, every non-empty token is accepted.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "AICUT_SERVE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// Credits per key: initialize costs 1, segment is free; 402 when spent. Default: unlimited.
    #[arg(long)]
    credits: Option<u64>,
    /// Requests per second allowed per key; 429 with Retry-After beyond. Default: unlimited.
    #[arg(long, value_name = "PER_SECOND")]
    rate_limit: Option<f64>,
    /// Sessions unused this long expire (404 after). Units: s, m, h.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    session_ttl: std::time::Duration,
    /// Download links (output_url) expire this long after a segment call. Units: s, m, h.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    output_ttl: std::time::Duration,
    /// Memory for sessions in MB; least recently used sessions are evicted beyond it.
    #[arg(long, default_value_t = 2048)]
    session_memory_mb: usize,
    /// Memory for cut-outs awaiting download in MB; the oldest are evicted beyond it.
    #[arg(long, default_value_t = 512)]
    output_memory_mb: usize,
    /// The largest upload accepted, in MB (413 beyond).
    #[arg(long, default_value_t = 64)]
    max_upload_mb: usize,
    /// Base URL for output_url (e.g. behind a proxy). Default: the address the client used.
    #[arg(long)]
    public_url: Option<String>,
}

/// Engines that can run inside `aicut serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LocalEngineKind {
    /// The built-in engine (no model weights).
    Builtin,
    /// A SAM-family model file (see --model).
    Sam,
}

/// Parses "90", "90s", "15m", "2h" into a duration.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 90s, 15m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("'{s}': use s, m or h (for example 15m)")),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("'{s}' must be positive"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn serve(args: ServeArgs) -> Result<(), String> {
    use aicut::engine::store::StoreConfig;
    use aicut::server::{KeyPolicy, ServeConfig};
    let keys: Vec<String> = args
        .api_keys
        .into_iter()
        .filter(|k| !k.is_empty())
        .collect();
    let keys = if keys.is_empty() {
        if !args.bind.ip().is_loopback() {
            return Err(format!(
                "refusing to listen on {} without an API key; pass --api-key KEY or bind 127.0.0.1",
                args.bind
            ));
        }
        KeyPolicy::AnyToken
    } else {
        KeyPolicy::Keys(keys)
    };
    let any_token = matches!(keys, KeyPolicy::AnyToken);
    let store = StoreConfig {
        idle_ttl: args.session_ttl,
        memory_cap_bytes: args.session_memory_mb * 1024 * 1024,
        refresh_on_get: true,
    };
    let engine = match args.engine {
        LocalEngineKind::Builtin => Arc::new(aicut::engine::builtin::engine(store)),
        LocalEngineKind::Sam => {
            let path = aicut::engine::sam::model_path(args.model).map_err(|e| e.to_string())?;
            eprintln!("aicut serve: loading {}", path.display());
            Arc::new(aicut::engine::sam::engine(&path, store).map_err(|e| e.to_string())?)
        }
    };
    let config = ServeConfig {
        keys,
        credits: args.credits,
        rate_limit: args.rate_limit,
        output_ttl: args.output_ttl,
        output_memory_cap: args.output_memory_mb * 1024 * 1024,
        max_upload_bytes: args.max_upload_mb * 1024 * 1024,
        public_url: args.public_url,
        faults: None,
    };
    runtime().block_on(async move {
        let server = aicut::server::spawn(args.bind, engine.clone(), config)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
        let name = engine.name();
        tracing::info!(url = %server.url(), engine = %name, "aicut serve is listening");
        eprintln!("aicut serve: AI Cut API on {} (engine: {name})", server.url());
        if any_token {
            eprintln!("aicut serve: no --api-key given: any non-empty bearer token is accepted (loopback only)");
        }
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("aicut serve: shutting down");
        server.shutdown().await;
        Ok(())
    })
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts") // only fails when the OS refuses threads
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
        Some(Command::Serve(args)) => match serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aicut: error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
