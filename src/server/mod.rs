//! `aicut serve`: the AI Cut HTTP API over any engine.
//!
//! The routes, field names, content types and status codes are exactly those of the
//! hosted service's documentation, so any AI Cut client works against it with only a new
//! base URL. Cut-outs are kept under unguessable tokens and served at `output_url`
//! without the API key, for a limited time. State lives in a [`backend`]: this process
//! (one machine), or Redis, shared by any number of replicas.

pub mod backend;
mod deadline;
pub mod faults;
mod limits;
mod listen;
mod metrics;
mod routes;
mod sessions;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

pub use faults::{Fault, FaultContext, FaultHook, Gate, Route};
pub use limits::KeyPolicy;
pub use listen::{ConnInfo, ListenConfig};

use crate::engine::store::Clock;
use crate::engine::{Engine, EngineError};
use crate::imageio::DecodeLimits;
use crate::wire::{self, ErrorBody};

/// Everything `aicut serve` can be told about HTTP.
#[derive(Clone)]
pub struct ServeConfig {
    pub keys: KeyPolicy,
    /// Credits per key; `None` is unlimited.
    pub credits: Option<u64>,
    /// Requests per second per key; `None` is unlimited.
    pub rate_limit: Option<f64>,
    /// Sessions unused this long expire. Give the engine's own sessions the same.
    pub session_ttl: Duration,
    /// The images kept for cut-outs are evicted (least recently used first) to stay under
    /// this. Give the engine's own sessions the same cap (see `sessions.rs` on counting).
    pub session_memory_cap: usize,
    /// Download links expire this long after they were made.
    pub output_ttl: Duration,
    /// Cut-outs awaiting download are evicted (oldest first) to stay under this.
    pub output_memory_cap: usize,
    /// The largest upload accepted.
    pub max_upload_bytes: usize,
    /// The largest segment body accepted (413 beyond): dots are small.
    pub max_segment_body_bytes: usize,
    /// The most dots (green and red together) one segment call may carry.
    pub max_dots: usize,
    /// Limits on uploads' decoded size (decompression bombs).
    pub decode_limits: DecodeLimits,
    /// Base of `output_url`. Without it, the proxy's forwarded headers when trusted, else
    /// the server address the connection reached; never the Host header.
    pub public_url: Option<String>,
    /// Take `output_url`'s scheme and host from `X-Forwarded-Proto`/`X-Forwarded-Host`
    /// (only behind a proxy that sets them).
    pub trust_forwarded_headers: bool,
    /// Without Redis: where spent credits are kept across restarts.
    pub credits_file: Option<PathBuf>,
    /// `redis://HOST:PORT/DB`: all state in Redis, shared by replicas.
    pub redis_url: Option<String>,
    /// A request body that sends nothing for this long is dropped.
    pub body_timeout: Duration,
    /// A request body must arrive whole within this long, however steadily it trickles.
    pub body_deadline: Duration,
    /// Timeouts, connection caps and shutdown of the accept loop.
    pub listen: ListenConfig,
    /// How the cut-outs' edges are made (soft: matting in a band, see [`crate::matting`]).
    pub edges: crate::matting::EdgeOptions,
    /// Test-only fault injection.
    pub faults: Option<FaultHook>,
    /// Where the server reads the time for expiry and rate limits; tests move it by hand.
    pub clock: Clock,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            keys: KeyPolicy::AnyToken,
            credits: None,
            rate_limit: None,
            session_ttl: Duration::from_secs(30 * 60),
            session_memory_cap: 2048 * 1024 * 1024,
            output_ttl: Duration::from_secs(10 * 60),
            output_memory_cap: 512 * 1024 * 1024,
            max_upload_bytes: 64 * 1024 * 1024,
            max_segment_body_bytes: 256 * 1024,
            max_dots: 1000,
            decode_limits: DecodeLimits::default(),
            public_url: None,
            trust_forwarded_headers: false,
            credits_file: None,
            redis_url: None,
            body_timeout: Duration::from_secs(30),
            body_deadline: Duration::from_secs(300),
            listen: ListenConfig::default(),
            edges: crate::matting::EdgeOptions::default(),
            faults: None,
            clock: Arc::new(Instant::now),
        }
    }
}

/// An error answered as `{"detail": ...}` with the contract's status code.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub detail: String,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let detail = match &e {
            EngineError::BadRequest(d) | EngineError::SessionNotFound(d) => d.clone(),
            EngineError::Image(img) => format!("The upload is not a usable image: {img}"),
            other => other.to_string(),
        };
        let status = match e.http_status() {
            499 => 500,
            s => s,
        };
        if status >= 500 {
            tracing::error!(error = %e, "engine failure");
        }
        ApiError::new(status, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            status,
            Json(ErrorBody {
                detail: self.detail,
            }),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The state backend a configuration asks for.
fn backend(config: &ServeConfig) -> Result<Arc<dyn backend::Backend>, String> {
    let ttls = backend::Ttls {
        session: config.session_ttl,
        output: config.output_ttl,
        request: Duration::from_secs(24 * 3600),
    };
    Ok(match &config.redis_url {
        Some(url) => Arc::new(backend::redis::Redis::new(
            url,
            ttls,
            config.credits,
            config.rate_limit,
        )?),
        None => Arc::new(backend::memory::Memory::new(
            ttls,
            config.output_memory_cap,
            config.credits,
            config.credits_file.clone(),
            config.rate_limit,
            config.clock.clone(),
        )?),
    })
}

/// Builds the router over an engine.
pub fn router(engine: Arc<dyn Engine>, config: ServeConfig) -> Result<Router, String> {
    let upload_limit = config.max_upload_bytes + 64 * 1024; // multipart overhead on top
    let segment_limit = DefaultBodyLimit::max(config.max_segment_body_bytes);
    let faults = config.faults.clone();
    let (body_timeout, body_deadline) = (config.body_timeout, config.body_deadline);
    let state = Arc::new(routes::AppState::new(engine, backend(&config)?, config));
    let initialize = || post(routes::initialize).layer(DefaultBodyLimit::max(upload_limit));
    let segment = || post(routes::segment).layer(segment_limit);
    let mut app = Router::new()
        .route(wire::INITIALIZE_PATH, initialize())
        .route(wire::INITIALIZE_PATH.trim_end_matches('/'), initialize())
        .route(wire::SEGMENT_PATH, segment())
        .route(wire::SEGMENT_PATH.trim_end_matches('/'), segment())
        .route(
            &format!("{}{{file}}", wire::OUTPUTS_PREFIX),
            get(routes::output),
        )
        .route("/health", get(routes::healthz))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .fallback(|| async { ApiError::new(404, "Not found.") })
        .method_not_allowed_fallback(|| async { ApiError::new(405, "Method not allowed.") })
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(middleware::from_fn_with_state(
            body_deadline,
            deadline::layer,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::layer,
        ))
        .with_state(state);
    if let Some(hook) = faults {
        app = app.layer(middleware::from_fn_with_state(hook, faults::layer));
    }
    let log = TraceLayer::new_for_http()
        .make_span_with(log_span)
        .on_request(())
        .on_response(log_response)
        .on_failure(());
    Ok(app.layer(log))
}

/// Every error is the contract's `{"detail"}`: a plain-text answer from a layer or an
/// extractor (a body over a limit, a body timeout) is wrapped as one.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status.as_u16(), detail).into_response();
    if let Some(v) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, v);
    }
    out
}

/// The span of a request's log line: method and route. Output tokens are not logged.
fn log_span(req: &Request) -> tracing::Span {
    let path = req.uri().path();
    let route = if path.starts_with(wire::OUTPUTS_PREFIX) {
        format!("{}…", wire::OUTPUTS_PREFIX)
    } else {
        path.to_string()
    };
    tracing::info_span!("request", method = %req.method(), route)
}

/// One log line per request, when it is answered: status and latency.
fn log_response(resp: &Response, latency: Duration, _: &tracing::Span) {
    tracing::info!(
        status = resp.status().as_u16(),
        latency_ms = format!("{:.1}", latency.as_secs_f64() * 1000.0),
        "request"
    );
}

/// A running server, for tests and `aicut serve`.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// `http://ADDR`, the base URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes requests in flight, and returns when done.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds and serves in the background (on the current tokio runtime).
pub async fn spawn(
    bind: SocketAddr,
    engine: Arc<dyn Engine>,
    config: ServeConfig,
) -> std::io::Result<RunningServer> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let listen = config.listen;
    let app = router(engine, config).map_err(std::io::Error::other)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(listen::serve(listener, app, listen, async {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        addr,
        shutdown: Some(tx),
        task,
    })
}
