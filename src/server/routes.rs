//! The contract's three routes: initialize, segment, and the download of a cut-out.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::limits::{Credits, KeyPolicy, RateLimiter};
use super::sessions::Sessions;
use super::{ApiError, ServeConfig};
use crate::engine::store::{SessionStore, StoreConfig};
use crate::engine::{Dot, Engine, EngineError, Prompt, SessionId};
use crate::imageio::{self, DecodeLimits};
use crate::wire::{self, InitializeResponse, SegmentRequest, SegmentResponse};

/// Shared state of a running server.
pub(super) struct AppState {
    sessions: Sessions,
    outputs: SessionStore<Bytes>,
    keys: KeyPolicy,
    credits: Credits,
    limiter: RateLimiter,
    public_url: Option<String>,
    max_upload_bytes: usize,
    edges: crate::matting::EdgeOptions,
    /// Bounds concurrent CPU work (decode, segment, encode) so memory stays bounded.
    cpu: Semaphore,
}

impl AppState {
    pub fn new(engine: Arc<dyn Engine>, config: ServeConfig) -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sessions = StoreConfig {
            idle_ttl: config.session_ttl,
            memory_cap_bytes: config.session_memory_cap,
            refresh_on_get: true,
        };
        let outputs = StoreConfig {
            idle_ttl: config.output_ttl,
            memory_cap_bytes: config.output_memory_cap,
            refresh_on_get: false,
        };
        AppState {
            sessions: Sessions::new(engine, sessions, config.clock.clone()),
            outputs: SessionStore::with_clock(outputs, config.clock.clone()),
            keys: config.keys,
            credits: Credits::new(config.credits),
            limiter: RateLimiter::new(config.rate_limit, config.clock),
            public_url: config
                .public_url
                .map(|u| u.trim_end_matches('/').to_string()),
            max_upload_bytes: config.max_upload_bytes,
            edges: config.edges,
            cpu: Semaphore::new(workers + 1),
        }
    }

    /// The caller's key, after checking it and its request rate.
    fn admit(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let key = self.keys.authorize(auth)?;
        self.limiter.admit(&key)?;
        Ok(key)
    }

    async fn cpu_permit(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.cpu
            .acquire()
            .await
            .map_err(|_| ApiError::new(503, "Shutting down."))
    }

    /// Where a cut-out is downloaded: the public URL, or the address the client used.
    fn output_url(&self, headers: &HeaderMap, token: &SessionId) -> String {
        let base = match &self.public_url {
            Some(u) => u.clone(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("127.0.0.1");
                format!("http://{host}")
            }
        };
        format!("{base}{}{}.png", wire::OUTPUTS_PREFIX, token.0)
    }
}

/// Runs CPU work off the async threads.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(500, e.to_string()))
}

pub(super) async fn initialize(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<InitializeResponse>, ApiError> {
    let key = state.admit(&headers)?;
    let (name, bytes) = read_upload(multipart).await?;
    if bytes.len() > state.max_upload_bytes {
        return Err(ApiError::new(
            413,
            "The image is larger than this server accepts.",
        ));
    }
    state.credits.charge(&key)?;
    let opened = open_session(&state, name, bytes).await;
    if opened.is_err() {
        state.credits.refund(&key);
    }
    Ok(Json(InitializeResponse {
        unique_filename: opened?.0,
    }))
}

/// The file field `image` of a multipart upload: its name and bytes.
async fn read_upload(
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(String, Bytes), ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            400,
            format!("Expected multipart/form-data with a file field 'image': {e}"),
        )
    })?;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() == Some("image") {
            let name = field.file_name().unwrap_or("upload").to_string();
            let bytes = field.bytes().await.map_err(multipart_error)?;
            return Ok((name, bytes));
        }
    }
    Err(ApiError::new(400, "Missing file field 'image'."))
}

fn multipart_error(e: MultipartError) -> ApiError {
    let status = e.status().as_u16();
    ApiError::new(
        if status == 413 { 413 } else { 400 },
        format!("Malformed upload: {}", e.body_text()),
    )
}

/// Decodes the upload and starts a session on it.
async fn open_session(state: &AppState, name: String, bytes: Bytes) -> Result<SessionId, ApiError> {
    let _permit = state.cpu_permit().await?;
    let image = blocking(move || {
        let mut image = imageio::decode_bytes(bytes.to_vec(), &name, &DecodeLimits::default())?;
        // Sessions answer with 8-bit PNGs: a 16-bit copy would only hold memory.
        image.drop_deep_pixels();
        Ok::<_, imageio::ImageLoadError>(image)
    })
    .await?
    .map_err(EngineError::from)?;
    Ok(state.sessions.open(Arc::new(image)).await?)
}

pub(super) async fn segment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SegmentResponse>, ApiError> {
    state.admit(&headers)?;
    let req = parse_segment(&body)?;
    let session = SessionId(req.unique_filename.clone());
    let image = state.sessions.image(&session).await?;
    let prompt = Prompt {
        green: req.green_dots,
        red: req.red_dots,
    };
    prompt
        .validate(image.width(), image.height())
        .map_err(EngineError::from)?;
    let png = {
        let _permit = state.cpu_permit().await?;
        let mask = state
            .sessions
            .segment(&session, &prompt, req.request_number)
            .await?;
        let edges = state.edges;
        blocking(move || {
            imageio::encode_png(&crate::matting::compose(image.pixels(), &mask, edges))
        })
        .await?
        .map_err(|e| ApiError::new(500, format!("Could not encode the cut-out: {e}")))?
    };
    let size = png.len();
    let token = state.outputs.insert(Bytes::from(png), size)?;
    Ok(Json(SegmentResponse {
        status: "completed".into(),
        unique_filename: req.unique_filename,
        output_url: state.output_url(&headers, &token),
        request_number: req.request_number,
    }))
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
    Ok(SegmentRequest {
        unique_filename,
        green_dots: parse_dots("greenDots", field("greenDots")?)?,
        red_dots: parse_dots("redDots", field("redDots")?)?,
        request_number,
    })
}

/// An array of `{"x": number, "y": number}`.
fn parse_dots(name: &str, value: &serde_json::Value) -> Result<Vec<Dot>, ApiError> {
    let arr = value
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
                    format!(
                        "Invalid point format: {name}[{i}] must be {{\"x\": number, \"y\": number}}."
                    ),
                )),
            }
        })
        .collect()
}

pub(super) async fn output(
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
