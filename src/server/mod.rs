//! `aicut serve`: the AI Cut HTTP API over a local engine.
//!
//! The routes, field names, content types and status codes are exactly those of the
//! hosted service's documentation, so any AI Cut client works against it with only a new
//! base URL. Cut-outs are kept in memory under unguessable tokens and served at
//! `output_url` without the API key, for a limited time.

pub mod faults;
mod limits;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::Semaphore;

pub use faults::{Fault, FaultContext, FaultHook, Route};
pub use limits::KeyPolicy;
use limits::{Credits, RateLimiter};

use crate::engine::local::LocalEngine;
use crate::engine::store::{SessionStore, StoreConfig};
use crate::engine::{Dot, Engine, EngineError, Prompt, SessionId};
use crate::imageio::{self, DecodeLimits};
use crate::wire::{self, ErrorBody, InitializeResponse, SegmentRequest, SegmentResponse};

/// Everything `aicut serve` can be told about HTTP. Session expiry and memory are the
/// engine's own ([`StoreConfig`] of its [`LocalEngine`]).
#[derive(Clone)]
pub struct ServeConfig {
    pub keys: KeyPolicy,
    /// Credits per key; `None` is unlimited.
    pub credits: Option<u64>,
    /// Requests per second per key; `None` is unlimited.
    pub rate_limit: Option<f64>,
    /// Download links expire this long after they were made.
    pub output_ttl: Duration,
    /// Cut-outs awaiting download are evicted (oldest first) to stay under this.
    pub output_memory_cap: usize,
    /// The largest upload accepted.
    pub max_upload_bytes: usize,
    /// Base of `output_url`; by default the address the client used (its Host header).
    pub public_url: Option<String>,
    /// Test-only fault injection.
    pub faults: Option<FaultHook>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            keys: KeyPolicy::AnyToken,
            credits: None,
            rate_limit: None,
            output_ttl: Duration::from_secs(10 * 60),
            output_memory_cap: 512 * 1024 * 1024,
            max_upload_bytes: 64 * 1024 * 1024,
            public_url: None,
            faults: None,
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

/// Shared state of a running server.
struct AppState {
    engine: Arc<LocalEngine>,
    outputs: SessionStore<Bytes>,
    keys: KeyPolicy,
    credits: Credits,
    limiter: RateLimiter,
    public_url: Option<String>,
    max_upload_bytes: usize,
    /// Bounds concurrent CPU work (decode, segment, encode) so memory stays bounded.
    cpu: Semaphore,
}

/// Builds the router over a local engine.
pub fn router(engine: Arc<LocalEngine>, config: ServeConfig) -> Router {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = Arc::new(AppState {
        engine,
        outputs: SessionStore::new(StoreConfig {
            idle_ttl: config.output_ttl,
            memory_cap_bytes: config.output_memory_cap,
            refresh_on_get: false,
        }),
        keys: config.keys.clone(),
        credits: Credits::new(config.credits),
        limiter: RateLimiter::new(config.rate_limit),
        public_url: config
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string()),
        max_upload_bytes: config.max_upload_bytes,
        cpu: Semaphore::new(workers + 1),
    });
    let mut app = Router::new()
        .route(wire::INITIALIZE_PATH, post(initialize))
        .route(
            wire::INITIALIZE_PATH.trim_end_matches('/'),
            post(initialize),
        )
        .route(wire::SEGMENT_PATH, post(segment))
        .route(wire::SEGMENT_PATH.trim_end_matches('/'), post(segment))
        .route(&format!("{}{{file}}", wire::OUTPUTS_PREFIX), get(output))
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async { ApiError::new(404, "Not found.") })
        .method_not_allowed_fallback(|| async { ApiError::new(405, "Method not allowed.") })
        // Multipart overhead on top of the file itself.
        .layer(DefaultBodyLimit::max(config.max_upload_bytes + 64 * 1024))
        .with_state(state);
    if let Some(hook) = config.faults {
        app = app.layer(middleware::from_fn_with_state(hook, faults_layer));
    }
    app.layer(middleware::from_fn(log_request))
}

/// One log line per request: method, route, status, latency. Output tokens are not logged.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = if path.starts_with(wire::OUTPUTS_PREFIX) {
        format!("{}…", wire::OUTPUTS_PREFIX)
    } else {
        path
    };
    let resp = next.run(req).await;
    tracing::info!(
        %method,
        route,
        status = resp.status().as_u16(),
        latency_ms = format!("{:.1}", start.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    resp
}

/// Applies the test hook's fault, if any, before the real handler.
async fn faults_layer(State(hook): State<FaultHook>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let route = if path.starts_with(wire::OUTPUTS_PREFIX) {
        Route::Output
    } else if path.starts_with(wire::SEGMENT_PATH.trim_end_matches('/')) {
        Route::Segment
    } else {
        Route::Initialize
    };
    let headers = req.headers().clone();
    let (parts, body) = req.into_parts();
    // Segment bodies are small JSON: read it to tell the hook the request_number.
    let (body, request_number) = if route == Route::Segment {
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let n = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("request_number")?.as_u64());
        (Body::from(bytes), n)
    } else {
        (body, None)
    };
    let req = Request::from_parts(parts, body);
    let ctx = FaultContext {
        route,
        request_number,
        headers,
    };
    match hook(&ctx) {
        None => next.run(req).await,
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(Fault::Status {
            status,
            detail,
            retry_after_s,
        }) => {
            let mut e = ApiError::new(status, detail);
            if let Some(s) = retry_after_s {
                e = e.retry_after(Duration::from_secs(s));
            }
            e.into_response()
        }
        Some(Fault::Malformed) => (StatusCode::OK, "<html>surprise</html>").into_response(),
        Some(Fault::DropConnection) => {
            let stream = futures_util::stream::iter(vec![
                Ok(Bytes::from_static(b"{\"status\": \"comp")),
                Err(std::io::Error::other(
                    "connection dropped by fault injection",
                )),
            ]);
            Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, "200")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// The caller's key, after checking it and its request rate.
fn admit(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let key = state.keys.authorize(auth)?;
    state.limiter.admit(&key)?;
    Ok(key)
}

async fn initialize(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<InitializeResponse>, ApiError> {
    let key = admit(&state, &headers)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            400,
            format!("Expected multipart/form-data with a file field 'image': {e}"),
        )
    })?;
    let mut upload = None;
    loop {
        let field = multipart.next_field().await.map_err(multipart_error)?;
        let Some(field) = field else { break };
        if field.name() == Some("image") {
            let name = field.file_name().unwrap_or("upload").to_string();
            let bytes = field.bytes().await.map_err(multipart_error)?;
            upload = Some((name, bytes));
            break;
        }
    }
    let (name, bytes) = upload.ok_or_else(|| ApiError::new(400, "Missing file field 'image'."))?;
    if bytes.len() > state.max_upload_bytes {
        return Err(ApiError::new(
            413,
            "The image is larger than this server accepts.",
        ));
    }
    state.credits.charge(&key)?;
    let result = async {
        let _permit = state
            .cpu
            .acquire()
            .await
            .map_err(|_| ApiError::new(503, "Shutting down."))?;
        let image = tokio::task::spawn_blocking(move || {
            imageio::decode_bytes(bytes.to_vec(), &name, &DecodeLimits::default())
        })
        .await
        .map_err(|e| ApiError::new(500, e.to_string()))?
        .map_err(EngineError::from)?;
        let id = state.engine.initialize(Arc::new(image)).await?;
        Ok::<_, ApiError>(id)
    }
    .await;
    match result {
        Ok(id) => Ok(Json(InitializeResponse {
            unique_filename: id.0,
        })),
        Err(e) => {
            state.credits.refund(&key);
            Err(e)
        }
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status().as_u16();
    ApiError::new(
        if status == 413 { 413 } else { 400 },
        format!("Malformed upload: {}", e.body_text()),
    )
}

/// Parses the segment body by hand so every flaw is a 400 with a helpful detail.
fn parse_segment(body: &[u8]) -> Result<SegmentRequest, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, format!("Malformed JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::new(400, "The body must be a JSON object."))?;
    let field = |name: &str| {
        obj.get(name)
            .ok_or_else(|| ApiError::new(400, format!("Missing field '{name}'.")))
    };
    let unique_filename = field("unique_filename")?
        .as_str()
        .ok_or_else(|| ApiError::new(400, "'unique_filename' must be a string."))?
        .to_string();
    let request_number = field("request_number")?
        .as_u64()
        .ok_or_else(|| ApiError::new(400, "'request_number' must be a non-negative integer."))?;
    let dots = |name: &str| -> Result<Vec<Dot>, ApiError> {
        let arr = field(name)?
            .as_array()
            .ok_or_else(|| ApiError::new(400, format!("'{name}' must be an array.")))?;
        arr.iter()
            .enumerate()
            .map(|(i, d)| {
                let num = |k: &str| d.get(k).and_then(|n| n.as_f64()).filter(|n| n.is_finite());
                match (num("x"), num("y")) {
                    (Some(x), Some(y)) => Ok(Dot::new(x, y)),
                    _ => Err(ApiError::new(
                        400,
                        format!("Invalid point format: {name}[{i}] must be {{\"x\": number, \"y\": number}}."),
                    )),
                }
            })
            .collect()
    };
    Ok(SegmentRequest {
        unique_filename,
        green_dots: dots("greenDots")?,
        red_dots: dots("redDots")?,
        request_number,
    })
}

async fn segment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SegmentResponse>, ApiError> {
    admit(&state, &headers)?;
    let req = parse_segment(&body)?;
    let session = SessionId(req.unique_filename.clone());
    let image = state.engine.session_image(&session)?;
    let prompt = Prompt {
        green: req.green_dots,
        red: req.red_dots,
    };
    prompt
        .validate(image.width(), image.height())
        .map_err(EngineError::from)?;
    let _permit = state
        .cpu
        .acquire()
        .await
        .map_err(|_| ApiError::new(503, "Shutting down."))?;
    let mask = state
        .engine
        .segment(&session, &prompt, req.request_number)
        .await?;
    let png = tokio::task::spawn_blocking(move || {
        imageio::encode_png(&imageio::compose_cutout(image.pixels(), &mask))
    })
    .await
    .map_err(|e| ApiError::new(500, e.to_string()))?
    .map_err(|e| ApiError::new(500, format!("Could not encode the cut-out: {e}")))?;
    let size = png.len();
    let token = state.outputs.insert(Bytes::from(png), size)?;
    let base = match &state.public_url {
        Some(u) => u.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            format!("http://{host}")
        }
    };
    Ok(Json(SegmentResponse {
        status: "completed".into(),
        unique_filename: req.unique_filename,
        output_url: format!("{base}{}{}.png", wire::OUTPUTS_PREFIX, token.0),
        request_number: req.request_number,
    }))
}

async fn output(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::new(404, "Output not found or has expired.");
    // Tokens are UUIDs; anything else (dots, slashes, encodings) never reaches the store.
    let token = file.strip_suffix(".png").ok_or_else(not_found)?;
    if uuid::Uuid::try_parse(token).is_err() {
        return Err(not_found());
    }
    let png = state
        .outputs
        .get(&SessionId(token.to_string()))
        .ok_or_else(not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        Body::from((*png).clone()),
    )
        .into_response())
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
    engine: Arc<LocalEngine>,
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
