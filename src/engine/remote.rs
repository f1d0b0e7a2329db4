//! The AI Cut API client: the hosted service (or any `aicut serve`) as an engine.
//!
//! It speaks the seed's contract exactly: a multipart initialize with the file field
//! `image`, a JSON segment with every dot and the `request_number`, then a prompt download
//! of `output_url`, whose alpha channel becomes the mask. The API key goes only to the API
//! base URL: never to the `output_url` host, never into logs or error messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use crate::imageio::{self, DecodeLimits, LoadedImage};
use crate::wire::{self, ErrorBody, InitializeResponse, SegmentRequest, SegmentResponse};

/// The hosted service.
pub const DEFAULT_API_URL: &str = "https://api.backgroundcut.co";

/// Where and how to reach the service.
#[derive(Clone)]
pub struct RemoteConfig {
    pub base_url: String,
    pub api_key: Option<String>,
    /// Per-call limit; the seed's example allows 300 s for a large upload.
    pub timeout: Duration,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            base_url: DEFAULT_API_URL.into(),
            api_key: std::env::var("AICUT_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(300),
        }
    }
}

/// The AI Cut API behind the engine contract.
pub struct RemoteEngine {
    config: RemoteConfig,
    /// Sends the key: used for the API's own routes only.
    api: reqwest::Client,
    /// Never has the key: downloads of `output_url`, which may be on another host.
    downloads: reqwest::Client,
    /// The size of each session's image, to check masks against.
    sizes: Mutex<HashMap<SessionId, (u32, u32)>>,
    uploads: UploadKeys,
}

/// The `Idempotency-Key` of each upload not yet answered. A retry of the same image (the
/// same `LoadedImage`) after a lost answer sends the same key, so the service charges it
/// once; once answered, opening the image again is a new upload with a new key.
#[derive(Default)]
struct UploadKeys(Mutex<Vec<(Weak<LoadedImage>, String)>>);

impl UploadKeys {
    fn key_for(&self, image: &Arc<LoadedImage>) -> String {
        let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|(w, _)| w.strong_count() > 0);
        if let Some((_, key)) = pending.iter().find(|(w, _)| is(w, image)) {
            return key.clone();
        }
        let key = uuid::Uuid::new_v4().to_string();
        pending.push((Arc::downgrade(image), key.clone()));
        key
    }

    /// Forgets the key once the service has surely seen the upload or refused it; keeps it
    /// when the answer may have been lost (network, server failure) or the call was only
    /// turned away for now (rate limit), so the retry is recognised.
    fn settle(&self, image: &Arc<LoadedImage>, result: &Result<SessionId, EngineError>) {
        let retry_may_follow = matches!(
            result,
            Err(EngineError::Transport(_) | EngineError::RateLimited { .. })
        );
        if !retry_may_follow {
            let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
            pending.retain(|(w, _)| !is(w, image));
        }
    }
}

fn is(weak: &Weak<LoadedImage>, image: &Arc<LoadedImage>) -> bool {
    std::ptr::eq(weak.as_ptr(), Arc::as_ptr(image))
}

/// Makes ring the process-wide TLS provider (reqwest is built without a default one).
pub fn install_crypto_provider() {
    // reqwest is built without a default TLS provider; ring is ours. Installing twice is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl RemoteEngine {
    pub fn new(config: RemoteConfig) -> Result<Self, EngineError> {
        install_crypto_provider();
        let build = |redirects: reqwest::redirect::Policy| {
            reqwest::Client::builder()
                .timeout(config.timeout)
                .connect_timeout(Duration::from_secs(15))
                .redirect(redirects)
                .user_agent(concat!("aicut/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| EngineError::Transport(format!("cannot set up HTTP: {e}")))
        };
        Ok(RemoteEngine {
            // No redirects with the key: a redirect could carry it elsewhere.
            api: build(reqwest::redirect::Policy::none())?,
            downloads: build(reqwest::redirect::Policy::limited(5))?,
            config: RemoteConfig {
                base_url: config.base_url.trim_end_matches('/').to_string(),
                ..config
            },
            sizes: Mutex::new(HashMap::new()),
            uploads: UploadKeys::default(),
        })
    }

    fn key(&self) -> Result<&str, EngineError> {
        self.config
            .api_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| EngineError::Unauthorized("no API key set".into()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }

    /// Downloads a cut-out with the client that has no key: the output host is not the API.
    async fn download(&self, url: reqwest::Url) -> Result<Vec<u8>, EngineError> {
        let png = self.downloads.get(url).send().await.map_err(transport)?;
        if !png.status().is_success() {
            let status = png.status().as_u16();
            return Err(match status {
                404 | 410 => {
                    EngineError::Transport("the cut-out expired before it was downloaded".into())
                }
                500..=599 => EngineError::Transport(format!(
                    "downloading the cut-out failed (HTTP {status})"
                )),
                _ => {
                    EngineError::Protocol(format!("downloading the cut-out failed (HTTP {status})"))
                }
            });
        }
        Ok(png.bytes().await.map_err(transport)?.to_vec())
    }

    /// One initialize call, with the upload's idempotency key.
    async fn upload(
        &self,
        image: Arc<LoadedImage>,
        idempotency_key: String,
    ) -> Result<SessionId, EngineError> {
        let key = self.key()?.to_string();
        let img = image.clone();
        let (bytes, file_name, mime) = tokio::task::spawn_blocking(move || img.upload_bytes())
            .await
            .map_err(|e| EngineError::Engine(e.to_string()))??;
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name)
            .mime_str(mime)
            .map_err(|e| EngineError::Engine(e.to_string()))?;
        let resp = self
            .api
            .post(self.url(wire::INITIALIZE_PATH))
            .bearer_auth(key)
            .header("Idempotency-Key", idempotency_key)
            .multipart(reqwest::multipart::Form::new().part("image", part))
            .send()
            .await
            .map_err(transport)?;
        let body: InitializeResponse = json_or_error(resp).await?;
        if body.unique_filename.is_empty() {
            return Err(EngineError::Protocol(
                "the service returned an empty session id".into(),
            ));
        }
        let id = SessionId(body.unique_filename);
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), (image.width(), image.height()));
        Ok(id)
    }
}

/// A transport failure in words, without URLs' query strings or headers.
fn transport(e: reqwest::Error) -> EngineError {
    let what = if e.is_timeout() {
        "the service did not answer in time"
    } else if e.is_connect() {
        "cannot connect to the service"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while receiving the answer"
    } else {
        "the request failed"
    };
    let host = e
        .url()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    EngineError::Transport(if host.is_empty() {
        what.to_string()
    } else {
        format!("{what} ({host})")
    })
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Turns a non-success answer into the contract's error.
async fn error_from(resp: reqwest::Response) -> EngineError {
    let status = resp.status().as_u16();
    let wait = retry_after(resp.headers());
    let text = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.detail)
        .unwrap_or_else(|_| format!("HTTP {status}"));
    match status {
        400 | 413 | 422 => EngineError::BadRequest(detail),
        401 | 403 => EngineError::Unauthorized(detail),
        402 => EngineError::InsufficientCredits(detail),
        404 => EngineError::SessionNotFound(detail),
        429 => EngineError::RateLimited {
            detail,
            retry_after: wait,
        },
        500..=599 => {
            EngineError::Transport(format!("the service failed (HTTP {status}): {detail}"))
        }
        _ => EngineError::Protocol(format!("HTTP {status}: {detail}")),
    }
}

async fn json_or_error<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
) -> Result<T, EngineError> {
    if !resp.status().is_success() {
        return Err(error_from(resp).await);
    }
    let bytes = resp.bytes().await.map_err(transport)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::Protocol(format!("the answer is not the expected JSON ({e})")))
}

#[async_trait]
impl Engine for RemoteEngine {
    fn name(&self) -> String {
        "AI Cut API".into()
    }

    async fn initialize(&self, image: Arc<LoadedImage>) -> Result<SessionId, EngineError> {
        let upload = self.uploads.key_for(&image);
        let result = self.upload(image.clone(), upload).await;
        self.uploads.settle(&image, &result);
        result
    }

    async fn segment(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<AlphaMask, EngineError> {
        let key = self.key()?.to_string();
        let size = self
            .sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session)
            .copied();
        if let Some((w, h)) = size {
            prompt.validate(w, h)?;
        }
        let body = SegmentRequest {
            unique_filename: session.0.clone(),
            green_dots: prompt.green.clone(),
            red_dots: prompt.red.clone(),
            request_number,
        };
        let resp = self
            .api
            .post(self.url(wire::SEGMENT_PATH))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let answer: SegmentResponse = json_or_error(resp).await?;
        let url = output_url(&answer, session, request_number)?;
        let bytes = self.download(url).await?;
        let expect = size;
        tokio::task::spawn_blocking(move || mask_from_png(bytes, expect))
            .await
            .map_err(|e| EngineError::Engine(e.to_string()))?
    }

    async fn close(&self, session: &SessionId) {
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
    }
}

/// The cut-out's URL from a segment answer, once the answer is checked to be the one asked.
fn output_url(
    answer: &SegmentResponse,
    session: &SessionId,
    request_number: u64,
) -> Result<reqwest::Url, EngineError> {
    if answer.request_number != request_number || answer.unique_filename != session.0 {
        return Err(EngineError::Protocol(format!(
            "the answer is for request {} of another session or number (sent {request_number})",
            answer.request_number
        )));
    }
    if answer.status != "completed" {
        return Err(EngineError::Protocol(format!(
            "status '{}' instead of 'completed'",
            answer.status
        )));
    }
    let url = reqwest::Url::parse(&answer.output_url)
        .map_err(|_| EngineError::Protocol("output_url is not a URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EngineError::Protocol(
            "output_url is not an http(s) URL".into(),
        ));
    }
    Ok(url)
}

/// The alpha channel of a downloaded cut-out, checked against the image's size.
fn mask_from_png(bytes: Vec<u8>, expect: Option<(u32, u32)>) -> Result<AlphaMask, EngineError> {
    let img = imageio::decode_bytes(bytes, "cut-out", &DecodeLimits::default())
        .map_err(|e| EngineError::Protocol(format!("the cut-out is not a readable image: {e}")))?;
    if let Some((w, h)) = expect
        && (img.width(), img.height()) != (w, h)
    {
        return Err(EngineError::Protocol(format!(
            "the cut-out is {}x{} but the image is {w}x{h}",
            img.width(),
            img.height()
        )));
    }
    let rgba = img.pixels();
    Ok(AlphaMask::from_fn(rgba.width(), rgba.height(), |x, y| {
        image::Luma([rgba.get_pixel(x, y).0[3]])
    }))
}
