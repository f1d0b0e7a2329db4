//! The `aicut` command: parses arguments and dispatches. The editor by default; `cut`,
//! `serve` and `bench` live in [`aicut::cli`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use aicut::engine::Engine;
use clap::{Parser, Subcommand};

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
    Cut(aicut::cli::cut::CutArgs),
    /// Serve the AI Cut HTTP API from a local engine, for any AI Cut client.
    ///
    /// Routes: POST /v3/ai-cut/initialize/ (multipart, file field 'image'),
    /// POST /v3/ai-cut/segment/ (JSON), GET output_url (no key needed, temporary).
    Serve(ServeArgs),
    /// Measure the built-in engine: initialize and segment (PNG included) at several sizes.
    ///
    /// Example: aicut bench ../shared/datasets/grabcut/images
    Bench(aicut::cli::bench::BenchArgs),
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
    let result = match cli.command {
        None => aicut::app::run(cli.image),
        Some(Command::Cut(args)) => aicut::cli::cut::run(args),
        Some(Command::Bench(args)) => aicut::cli::bench::run(args),
        Some(Command::Serve(args)) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aicut: error: {e}");
            ExitCode::FAILURE
        }
    }
}
