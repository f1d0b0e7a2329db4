//! The contract's three routes (initialize, segment, the download of a cut-out) and the
//! operational ones (`/healthz`, `/readyz`, `/metrics`).

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Multipart, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::backend::{Backend, Charge, SessionRecord, owner_of};
use super::limits::KeyPolicy;
use super::listen::ConnInfo;
use super::metrics::Metrics;
use super::sessions::Sessions;
use super::{ApiError, ServeConfig};
use crate::engine::store::StoreConfig;
use crate::engine::{Dot, Engine, EngineError, Prompt};
use crate::imageio;
use crate::wire::{self, InitializeResponse, SegmentRequest, SegmentResponse};

/// Shared state of a running server.
pub(super) struct AppState {
    pub sessions: Sessions,
    backend: Arc<dyn Backend>,
    keys: KeyPolicy,
    public_url: Option<String>,
    trust_forwarded: bool,
    max_upload_bytes: usize,
    max_dots: usize,
    edges: crate::matting::EdgeOptions,
    /// Bounds concurrent CPU work (decode, segment, encode) so memory stays bounded.
    cpu: Semaphore,
    pub metrics: Metrics,
}

/// Who is calling: the hashed key that owns sessions and the one credits are charged to.
struct Caller {
    owner: String,
    /// Without configured keys every token shares one balance: a fresh token must not
    /// mint fresh credits.
    credit_owner: String,
}

impl AppState {
    pub fn new(engine: Arc<dyn Engine>, backend: Arc<dyn Backend>, config: ServeConfig) -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sessions = StoreConfig {
            idle_ttl: config.session_ttl,
            memory_cap_bytes: config.session_memory_cap,
            refresh_on_get: true,
        };
        AppState {
            sessions: Sessions::new(
                engine,
                backend.clone(),
                sessions,
                config.clock.clone(),
                config.decode_limits,
            ),
            backend,
            keys: config.keys,
            public_url: config
                .public_url
                .map(|u| u.trim_end_matches('/').to_string()),
            trust_forwarded: config.trust_forwarded_headers,
            max_upload_bytes: config.max_upload_bytes,
            max_dots: config.max_dots,
            edges: config.edges,
            cpu: Semaphore::new(workers + 1),
            metrics: Metrics::default(),
        }
    }

    /// The caller, after checking the key and its request rate.
    async fn admit(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let key = self.keys.authorize(auth)?;
        let owner = owner_of(&key);
        self.backend.admit(&owner).await?;
        let credit_owner = match self.keys {
            KeyPolicy::AnyToken => "any-token".to_string(),
            KeyPolicy::Keys(_) => owner.clone(),
        };
        Ok(Caller {
            owner,
            credit_owner,
        })
    }

    async fn cpu_permit(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.cpu
            .acquire()
            .await
            .map_err(|_| ApiError::new(503, "Shutting down."))
    }

    /// Where a cut-out is downloaded: `--public-url`; else, when trusted, the proxy's
    /// `X-Forwarded-Proto`/`X-Forwarded-Host`; else the address the connection reached.
    /// Never the request's Host header, which any client sets to anything.
    fn output_url(&self, headers: &HeaderMap, conn: Option<&ConnInfo>, token: &str) -> String {
        let forwarded = || {
            let proto = forwarded_value(headers, "x-forwarded-proto")
                .filter(|p| *p == "http" || *p == "https")
                .unwrap_or("http");
            let host = forwarded_value(headers, "x-forwarded-host").filter(|h| is_host(h))?;
            Some(format!("{proto}://{host}"))
        };
        let base = match &self.public_url {
            Some(u) => u.clone(),
            None => self
                .trust_forwarded
                .then(forwarded)
                .flatten()
                .or_else(|| conn.map(|c| format!("http://{}", c.local)))
                .unwrap_or_else(|| "http://localhost".to_string()),
        };
        format!("{base}{}{token}.png", wire::OUTPUTS_PREFIX)
    }
}

/// The first value of a (possibly comma-separated) forwarded header.
fn forwarded_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?;
    Some(v.split(',').next()?.trim()).filter(|v| !v.is_empty())
}

/// A host\[:port\] made only of the characters host names and addresses use.
fn is_host(h: &str) -> bool {
    h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// The client's `Idempotency-Key`: a retried initialize with the same one is charged once.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(s) if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(s.to_string()))
        }
        _ => Err(ApiError::new(
            400,
            "Idempotency-Key must be 1 to 128 visible ASCII characters.",
        )),
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
    let caller = state.admit(&headers).await?;
    let request = idempotency_key(&headers)?.map(|k| format!("{}:{k}", caller.owner));
    let (name, bytes) = read_upload(multipart, state.max_upload_bytes).await?;
    if bytes.len() > state.max_upload_bytes {
        return Err(too_large(state.max_upload_bytes));
    }
    let new_id = uuid::Uuid::new_v4().to_string();
    let charge = state
        .backend
        .charge(&caller.credit_owner, request.as_deref(), &new_id)
        .await?;
    let Charge::Session { id, fresh } = charge else {
        return Err(ApiError::new(402, "Insufficient credits."));
    };
    let record = SessionRecord {
        owner: caller.owner,
        name,
        bytes,
    };
    // A retry of an upload this replica has prepared: the same session, nothing to redo.
    if !fresh && state.sessions.holds(&id, &record).await {
        return Ok(Json(InitializeResponse {
            unique_filename: id,
        }));
    }
    let opened = {
        let _permit = state.cpu_permit().await?;
        state.sessions.open(&id, record).await
    };
    if let Err(e) = opened {
        if fresh {
            state
                .backend
                .refund(&caller.credit_owner, request.as_deref())
                .await?;
        }
        return Err(e);
    }
    Ok(Json(InitializeResponse {
        unique_filename: id,
    }))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        format!(
            "The image is larger than this server accepts ({} MB).",
            limit.div_ceil(1024 * 1024)
        ),
    )
}

/// The file field `image` of a multipart upload: its name and bytes.
async fn read_upload(
    multipart: Result<Multipart, MultipartRejection>,
    limit: usize,
) -> Result<(String, Bytes), ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            400,
            format!("Expected multipart/form-data with a file field 'image': {e}"),
        )
    })?;
    let error = |e: MultipartError| {
        if e.status().as_u16() == 413 {
            too_large(limit)
        } else {
            ApiError::new(400, format!("Malformed upload: {}", e.body_text()))
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(error)? {
        if field.name() == Some("image") {
            let name = field.file_name().unwrap_or("upload").to_string();
            let bytes = field.bytes().await.map_err(error)?;
            return Ok((name, bytes));
        }
    }
    Err(ApiError::new(400, "Missing file field 'image'."))
}

/// A segment body that could not be read: too large (413) or cut off (400).
fn body_error(e: BytesRejection) -> ApiError {
    if e.status().as_u16() == 413 {
        ApiError::new(413, "The request body is larger than a segment call needs.")
    } else {
        ApiError::new(
            400,
            format!("Could not read the request body: {}", e.body_text()),
        )
    }
}

pub(super) async fn segment(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SegmentResponse>, ApiError> {
    let caller = state.admit(&headers).await?;
    let body = body.map_err(body_error)?;
    let req = parse_segment(&body, state.max_dots)?;
    let prompt = Prompt {
        green: req.green_dots,
        red: req.red_dots,
    };
    let png = {
        let _permit = state.cpu_permit().await?;
        let session = state
            .sessions
            .get(&req.unique_filename, &caller.owner)
            .await?;
        let image = session.image.clone();
        prompt
            .validate(image.width(), image.height())
            .map_err(EngineError::from)?;
        let mask = state
            .sessions
            .segment(&req.unique_filename, &session, &prompt, req.request_number)
            .await?;
        let edges = state.edges;
        blocking(move || imageio::encode_png(&imageio::compose_edges(image.pixels(), &mask, edges)))
            .await?
            .map_err(|e| ApiError::new(500, format!("Could not encode the cut-out: {e}")))?
    };
    let token = uuid::Uuid::new_v4().to_string();
    state.backend.put_output(&token, Bytes::from(png)).await?;
    Ok(Json(SegmentResponse {
        status: "completed".into(),
        unique_filename: req.unique_filename,
        output_url: state.output_url(&headers, conn.as_ref().map(|c| &c.0), &token),
        request_number: req.request_number,
    }))
}

/// Parses the segment body by hand so every flaw is a 400 with a helpful detail.
fn parse_segment(body: &[u8], max_dots: usize) -> Result<SegmentRequest, ApiError> {
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
    let green_dots = parse_dots("greenDots", field("greenDots")?)?;
    let red_dots = parse_dots("redDots", field("redDots")?)?;
    if green_dots.len() + red_dots.len() > max_dots {
        return Err(ApiError::new(
            400,
            format!("Too many dots: at most {max_dots} per segment call."),
        ));
    }
    Ok(SegmentRequest {
        unique_filename,
        green_dots,
        red_dots,
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
        .backend
        .get_output(token)
        .await?
        .ok_or_else(not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        Body::from(png),
    )
        .into_response())
}

/// Alive: the process answers.
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// Ready for traffic: the shared state answers (always, without one).
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.backend.ready().await?;
    Ok("ready")
}

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &state.sessions.stats;
    let text = state.metrics.render(
        state.sessions.cached(),
        [
            ("hit", stats.hits.load(Relaxed)),
            ("miss", stats.misses.load(Relaxed)),
            ("rebuilt", stats.rebuilds.load(Relaxed)),
        ],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
