//! `aicut serve`: its flags, and running the AI Cut HTTP API until Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;

use super::{ModelArgs, runtime, setup_error_message};
use crate::engine::factory::{EngineSpec, SamLoading, build_engine as build_engine_from};
use crate::engine::store::StoreConfig;
use crate::engine::{Engine, EngineKind};
use crate::server::{self, KeyPolicy, ServeConfig};

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
    /// Base URL for output_url (e.g. behind a proxy). Default: the address the client used.
    #[arg(long)]
    pub public_url: Option<String>,
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

/// Runs `aicut serve` until Ctrl-C.
pub fn run(args: ServeArgs) -> Result<(), String> {
    let keys = key_policy(args.api_keys, args.bind)?;
    let any_token = matches!(keys, KeyPolicy::AnyToken);
    let session_memory_cap = args.session_memory_mb * 1024 * 1024;
    let sessions = StoreConfig {
        idle_ttl: args.session_ttl,
        memory_cap_bytes: session_memory_cap,
        refresh_on_get: true,
    };
    let engine = build_engine(args.engine, args.model, sessions)?;
    let config = ServeConfig {
        keys,
        credits: args.credits,
        rate_limit: args.rate_limit,
        session_ttl: args.session_ttl,
        session_memory_cap,
        output_ttl: args.output_ttl,
        output_memory_cap: args.output_memory_mb * 1024 * 1024,
        max_upload_bytes: args.max_upload_mb * 1024 * 1024,
        public_url: args.public_url,
        edges: args.edges.options(),
        ..ServeConfig::default()
    };
    let bind = args.bind;
    runtime()?.block_on(async move {
        let name = engine.name();
        let server = server::spawn(bind, engine, config)
            .await
            .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
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
