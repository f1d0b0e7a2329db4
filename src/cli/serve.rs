//! `aicut serve`: its flags, and running the AI Cut HTTP API until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;

use super::{ModelArgs, runtime, setup_error_message};
use crate::engine::factory::{EngineSpec, SamLoading, build_engine as build_engine_from};
use crate::engine::store::StoreConfig;
use crate::engine::{Engine, EngineKind};
use crate::imageio::DecodeLimits;
use crate::server::{self, KeyPolicy, ListenConfig, ServeConfig};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Without an API key only loopback addresses are allowed.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// The local engine that segments: builtin or sam.
    #[arg(long, default_value = "builtin", value_parser = local_engine_kind)]
    pub engine: EngineKind,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Accept this bearer key (repeatable). Without any, every non-empty token is accepted.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "AICUT_SERVE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// Credits per key: initialize costs 1, segment is free; 402 when spent. Default: unlimited.
    #[arg(long)]
    pub credits: Option<u64>,
    /// Requests per second allowed per key; 429 with Retry-After beyond. Default: unlimited.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate_limit: Option<f64>,
    /// Sessions unused this long expire (404 after), e.g. 90s, 15m, 2h, 1h30m; a bare
    /// number is seconds.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// Download links (output_url) expire this long after a segment call, e.g. 90s, 15m;
    /// a bare number is seconds.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub output_ttl: Duration,
    /// Memory for sessions in MB; least recently used sessions are evicted beyond it.
    #[arg(long, default_value_t = 2048)]
    pub session_memory_mb: usize,
    /// Memory for cut-outs awaiting download in MB; the oldest are evicted beyond it.
    #[arg(long, default_value_t = 512)]
    pub output_memory_mb: usize,
    /// The largest upload accepted, in MB (413 beyond).
    #[arg(long, default_value_t = 64)]
    pub max_upload_mb: usize,
    /// Base URL for output_url, e.g. https://cut.example.com (behind a proxy or a
    /// balancer). Default: the server address the connection reached.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Build output_url from the proxy's X-Forwarded-Proto and X-Forwarded-Host (only
    /// behind a proxy that sets them; clients could otherwise choose the link).
    #[arg(long)]
    pub trust_forwarded_headers: bool,
    /// Keep all state (sessions, outputs, credits, rate limits) in Redis, so replicas
    /// behind a balancer share it: redis://HOST:PORT/DB. Run Redis with appendonly yes.
    #[arg(
        long,
        value_name = "URL",
        env = "AICUT_REDIS_URL",
        hide_env_values = true
    )]
    pub redis: Option<String>,
    /// Without --redis: the folder where credit balances are kept across restarts.
    /// Default: the data folder (~/.local/share/aicut/serve on Linux).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The most dots (green and red together) in one segment call.
    #[arg(long, default_value_t = 1000)]
    pub max_dots: usize,
    /// The largest decoded upload, in megapixels (decompression bombs are refused).
    #[arg(long, default_value_t = 150)]
    pub max_megapixels: u64,
    /// The longest side of an upload, in pixels.
    #[arg(long, default_value_t = 30_000)]
    pub max_side: u32,
    /// Time a client has to send a request's headers; also how long an idle connection
    /// is kept open.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long is dropped.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// A request body must arrive whole within this long (an upload on a slow link
    /// included), however steadily it trickles.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub body_deadline: Duration,
    /// Open connections allowed per client address.
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_ip: usize,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    #[command(flatten)]
    pub edges: super::EdgeArgs,
}

/// `--engine`: one of the engine kinds that run in this process. (`api` is refused: its
/// key flags would clash with the server's own `--api-key`.)
fn local_engine_kind(s: &str) -> Result<EngineKind, String> {
    match EngineKind::from_str(s, true)? {
        EngineKind::Api => Err("aicut serve runs a local engine: builtin or sam".into()),
        kind => Ok(kind),
    }
}

/// Parses a duration: "90s", "15m", "2h", "1h 30m" (humantime), or a bare number of
/// seconds ("90"), as earlier versions accepted.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let duration = match s.parse::<f64>() {
        Ok(secs) => {
            Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' must be positive"))?
        }
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("'{s}' is not a duration like 90s, 15m or 2h ({e})"))?,
    };
    if duration.is_zero() {
        return Err(format!("'{s}' must be positive"));
    }
    Ok(duration)
}

/// Without keys, any token is accepted: only on loopback.
fn key_policy(keys: Vec<String>, bind: SocketAddr) -> Result<KeyPolicy, String> {
    let keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty()).collect();
    if !keys.is_empty() {
        return Ok(KeyPolicy::Keys(keys));
    }
    if !bind.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {bind} without an API key; pass --api-key KEY or bind 127.0.0.1"
        ));
    }
    Ok(KeyPolicy::AnyToken)
}

/// The engine behind the server, loaded before the server listens.
fn build_engine(
    kind: EngineKind,
    model: ModelArgs,
    sessions: StoreConfig,
) -> Result<Arc<dyn Engine>, String> {
    let sam_model = model.file_for(kind)?;
    if let Some(path) = &sam_model {
        eprintln!("aicut serve: loading {}", path.display());
    }
    build_engine_from(EngineSpec {
        kind,
        sam_model,
        sam_loading: SamLoading::Now,
        store: sessions,
        ..EngineSpec::builtin()
    })
    .map_err(setup_error_message)
}

/// Where credit balances are kept without Redis: `--data-dir`, else the data folder.
fn credits_file(args: &ServeArgs) -> Option<PathBuf> {
    if args.redis.is_some() || args.credits.is_none() {
        return None;
    }
    let dir = args.data_dir.clone().or_else(|| {
        directories::ProjectDirs::from("io.github", "aicut", "aicut")
            .map(|d| d.data_dir().join("serve"))
    })?;
    Some(dir.join("credits.json"))
}

/// The server's configuration from the flags.
fn config(args: &ServeArgs, keys: KeyPolicy) -> Result<ServeConfig, String> {
    let credits_file = credits_file(args);
    if let Some(dir) = credits_file.as_ref().and_then(|f| f.parent()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    Ok(ServeConfig {
        keys,
        credits: args.credits,
        rate_limit: args.rate_limit,
        session_ttl: args.session_ttl,
        session_memory_cap: args.session_memory_mb * 1024 * 1024,
        output_ttl: args.output_ttl,
        output_memory_cap: args.output_memory_mb * 1024 * 1024,
        max_upload_bytes: args.max_upload_mb * 1024 * 1024,
        max_dots: args.max_dots,
        decode_limits: DecodeLimits {
            max_side: args.max_side,
            max_pixels: args.max_megapixels.saturating_mul(1_000_000),
            ..DecodeLimits::default()
        },
        public_url: args.public_url.clone(),
        trust_forwarded_headers: args.trust_forwarded_headers,
        credits_file,
        redis_url: args.redis.clone(),
        body_timeout: args.body_timeout,
        body_deadline: args.body_deadline,
        listen: ListenConfig {
            header_timeout: args.header_timeout,
            max_connections_per_ip: args.max_connections_per_ip.max(1),
            drain_deadline: args.shutdown_grace,
        },
        edges: args.edges.options(crate::matting::Edges::Hard),
        ..ServeConfig::default()
    })
}

/// Resolves on SIGTERM (how service managers and orchestrators stop a process) or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs `aicut serve` until SIGTERM or Ctrl-C, then drains requests in flight.
pub fn run(args: ServeArgs) -> Result<(), String> {
    let keys = key_policy(args.api_keys.clone(), args.bind)?;
    let any_token = matches!(keys, KeyPolicy::AnyToken);
    let config = config(&args, keys)?;
    let sessions = StoreConfig {
        idle_ttl: args.session_ttl,
        memory_cap_bytes: config.session_memory_cap,
        refresh_on_get: true,
    };
    let engine = build_engine(args.engine, args.model, sessions)?;
    let bind = args.bind;
    let redis = config.redis_url.is_some();
    let credits_file = config.credits_file.clone();
    runtime()?.block_on(async move {
        let name = engine.name();
        let server = server::spawn(bind, engine, config)
            .await
            .map_err(|e| format!("cannot serve on {bind}: {e}"))?;
        tracing::info!(url = %server.url(), engine = %name, "aicut serve is listening");
        eprintln!("aicut serve: AI Cut API on {} (engine: {name})", server.url());
        if redis {
            eprintln!("aicut serve: state in Redis (shared with other replicas)");
        } else if let Some(f) = credits_file {
            eprintln!("aicut serve: credit balances kept in {}", f.display());
        }
        if any_token {
            eprintln!("aicut serve: no --api-key given: any non-empty bearer token is accepted (loopback only); credits, if any, are one balance for all tokens");
        }
        stop_signal().await;
        eprintln!("aicut serve: shutting down (finishing requests in flight)");
        server.shutdown().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_a_bare_number_is_seconds() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("90"), Ok(secs(90)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("90s"), Ok(secs(90)));
        assert_eq!(parse_duration(" 15m "), Ok(secs(15 * 60)));
        assert_eq!(parse_duration("2h"), Ok(secs(2 * 3600)));
        assert_eq!(parse_duration("1h 30m"), Ok(secs(90 * 60)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(90 * 60)));
    }

    #[test]
    fn durations_that_are_not_positive_or_not_durations_are_refused() {
        for bad in ["0", "0s", "-5", "NaN", "inf", "", "15x", "m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn without_keys_only_loopback_is_allowed() {
        let local = "127.0.0.1:8000".parse().unwrap();
        let public = "0.0.0.0:8000".parse().unwrap();
        assert!(matches!(key_policy(vec![], local), Ok(KeyPolicy::AnyToken)));
        assert!(key_policy(vec![String::new()], public).is_err());
        assert!(matches!(
            key_policy(vec!["k".into()], public),
            Ok(KeyPolicy::Keys(k)) if k == ["k"]
        ));
    }
}
