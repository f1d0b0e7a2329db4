//! One error type for every engine, mirroring the AI Cut API's error table.
//!
//! The seed's status codes (400/401/402/404/429) map one to one onto variants, so the
//! server can answer with the right status and the client can turn a status back into
//! the same variant. The rest are failures that never cross the wire as such.

use std::time::Duration;

use crate::imageio::ImageLoadError;
use crate::prompt::PromptError;

/// Everything that can go wrong between a front door and an engine. Each message is
/// written for the person using the app: what happened, and what to do next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// 400: missing fields, invalid point format, malformed JSON, a dot outside the image.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: no key, or a key the service does not know.
    #[error("the API key is missing or invalid ({0}); check the key in Settings or AICUT_API_KEY")]
    Unauthorized(String),
    /// 402: the account has no credits left for a new image (segmenting stays free).
    #[error("out of credits ({0}); opening a new image costs one credit")]
    InsufficientCredits(String),
    /// 404: the session expired, was evicted, or never existed.
    #[error(
        "the session was not found or has expired ({0}); open the image again to start a new one"
    )]
    SessionNotFound(String),
    /// 429: too many requests; `retry_after` is the server's hint when it gave one.
    #[error("rate limit exceeded ({detail}); slow down and try again{}", retry_hint(.retry_after))]
    RateLimited {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// The image could not be read or decoded.
    #[error(transparent)]
    Image(#[from] ImageLoadError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The network failed: connection refused or dropped, timeout, server error.
    #[error("network problem: {0}")]
    Transport(String),
    /// The service answered something that does not follow the AI Cut contract.
    #[error("unexpected response from the service: {0}")]
    Protocol(String),
    /// The engine itself failed (a model error, an internal bug).
    #[error("the segmentation engine failed: {0}")]
    Engine(String),
    /// The call was cancelled, e.g. because the image was closed.
    #[error("cancelled")]
    Cancelled,
}

impl From<PromptError> for EngineError {
    fn from(e: PromptError) -> Self {
        EngineError::BadRequest(e.to_string())
    }
}

fn retry_hint(after: &Option<Duration>) -> String {
    match after {
        Some(d) => format!(" in {} s", d.as_secs().max(1)),
        None => String::new(),
    }
}

impl EngineError {
    /// The HTTP status the AI Cut API uses for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            EngineError::BadRequest(_) | EngineError::Image(_) => 400,
            EngineError::Unauthorized(_) => 401,
            EngineError::InsufficientCredits(_) => 402,
            EngineError::SessionNotFound(_) => 404,
            EngineError::RateLimited { .. } => 429,
            EngineError::Cancelled => 499,
            EngineError::Io(_)
            | EngineError::Transport(_)
            | EngineError::Protocol(_)
            | EngineError::Engine(_) => 500,
        }
    }

    /// Whether retrying the same call later may succeed without the user doing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            EngineError::Transport(_) | EngineError::RateLimited { .. }
        )
    }
}
