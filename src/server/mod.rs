//! `aicut serve`: the AI Cut HTTP API over any engine.
//!
//! The routes, field names, content types and status codes are exactly those of the
//! hosted service's documentation, so any AI Cut client works against it with only a new
//! base URL. Cut-outs are kept in memory under unguessable tokens and served at
//! `output_url` without the API key, for a limited time.

pub mod faults;
mod limits;
mod routes;
mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::trace::TraceLayer;

pub use faults::{Fault, FaultContext, FaultHook, Gate, Route};
pub use limits::KeyPolicy;

use crate::engine::store::Clock;
use crate::engine::{Engine, EngineError};
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
    /// Base of `output_url`; by default the address the client used (its Host header).
    pub public_url: Option<String>,
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
            public_url: None,
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

/// Builds the router over an engine.
pub fn router(engine: Arc<dyn Engine>, config: ServeConfig) -> Router {
    let body_limit = config.max_upload_bytes + 64 * 1024; // multipart overhead on top
    let faults = config.faults.clone();
    let mut app = Router::new()
        .route(wire::INITIALIZE_PATH, post(routes::initialize))
        .route(
            wire::INITIALIZE_PATH.trim_end_matches('/'),
            post(routes::initialize),
        )
        .route(wire::SEGMENT_PATH, post(routes::segment))
        .route(
            wire::SEGMENT_PATH.trim_end_matches('/'),
            post(routes::segment),
        )
        .route(
            &format!("{}{{file}}", wire::OUTPUTS_PREFIX),
            get(routes::output),
        )
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async { ApiError::new(404, "Not found.") })
        .method_not_allowed_fallback(|| async { ApiError::new(405, "Method not allowed.") })
        // Axum's limit, not tower-http's: extractors then answer 413 as the contract's JSON.
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(Arc::new(routes::AppState::new(engine, config)));
    if let Some(hook) = faults {
        app = app.layer(middleware::from_fn_with_state(hook, faults::layer));
    }
    let log = TraceLayer::new_for_http()
        .make_span_with(log_span)
        .on_request(())
        .on_response(log_response)
        .on_failure(());
    app.layer(log)
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
    let app = router(engine, config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(RunningServer {
        addr,
        shutdown: Some(tx),
        task,
    })
}
