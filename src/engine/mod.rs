//! The engine contract: the AI Cut API's two calls as Rust types.
//!
//! `initialize` takes an image once (the expensive step) and returns a session id;
//! `segment` takes every dot placed so far and returns an alpha mask at the image's full
//! resolution. Dots and masks live in the canonical pixel grid: the decoded image with its
//! EXIF orientation applied, i.e. what the user sees. Editor, CLI and server talk to an
//! `Arc<dyn Engine>` and never know which engine is behind it.

pub mod builtin;
pub mod embedding_cache;
mod error;
pub mod factory;
pub mod history;
pub mod local;
pub mod remote;
pub mod sam;
pub mod store;

pub use crate::prompt::{Dot, Prompt, PromptError};
pub use error::EngineError;

use std::sync::Arc;

use async_trait::async_trait;
use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::imageio::LoadedImage;

/// The session id the AI Cut API calls `unique_filename`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionId(pub String);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An alpha mask at the image's full resolution: 255 selected, 0 not, soft in between.
pub type AlphaMask = GrayImage;

/// The contract every engine fulfils.
#[async_trait]
pub trait Engine: Send + Sync {
    /// A short name for status bars and logs ("built-in", "AI Cut API", ...).
    fn name(&self) -> String;

    /// How much of a running `initialize` is done (0 to 1), when the engine can tell:
    /// the editor shows it while a model encodes a photo. Cheap; the UI polls it.
    fn progress(&self) -> Option<f32> {
        None
    }

    /// Uploads or prepares the image once; returns the session to segment against.
    async fn initialize(&self, image: Arc<LoadedImage>) -> Result<SessionId, EngineError>;

    /// Segments with every dot so far. `request_number` increases with each call of a
    /// session; engines that talk to a server pass it on, local ones may ignore it.
    async fn segment(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<AlphaMask, EngineError>;

    /// Every answer the engine sees for `prompt`, best first: the first is what `segment`
    /// returns, the others are runner-ups the user may prefer (a part instead of the
    /// whole, as SAM's multimask offers). Engines without alternatives offer one.
    async fn candidates(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<Vec<AlphaMask>, EngineError> {
        Ok(vec![self.segment(session, prompt, request_number).await?])
    }

    /// Makes candidate `index` of [`Engine::candidates`] the answer to `prompt`: `segment`
    /// returns it from now on and later clicks refine it.
    async fn choose(
        &self,
        _session: &SessionId,
        _prompt: &Prompt,
        index: usize,
    ) -> Result<(), EngineError> {
        only_first_candidate(index)
    }

    /// Frees a session early (e.g. the image was closed). Unknown ids are ignored.
    async fn close(&self, _session: &SessionId) {}

    /// The memory a session holds in this process (image and prepared state), when the
    /// engine keeps it here; the server counts it under its session cap.
    fn session_bytes(&self, _session: &SessionId) -> Option<usize> {
        None
    }
}

/// `choose` for an engine that offers one candidate: index 0 is a no-op, others are refused.
pub(crate) fn only_first_candidate(index: usize) -> Result<(), EngineError> {
    match index {
        0 => Ok(()),
        _ => Err(EngineError::BadRequest(format!("no candidate {index}"))),
    }
}

/// Which engine a front door should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EngineKind {
    /// The built-in engine: no model weights, no network. The default.
    #[default]
    Builtin,
    /// A SAM-family model file (MobileSAM, SAM ViT-B/L/H) run locally through candle.
    Sam,
    /// The hosted AI Cut service (needs an API key).
    Api,
}

impl EngineKind {
    /// Every kind, in the order front doors list them.
    pub const ALL: [EngineKind; 3] = [EngineKind::Builtin, EngineKind::Sam, EngineKind::Api];

    /// Whether a new session costs the user money (a credit), so front doors ask before
    /// starting one on their own.
    pub fn new_session_costs_credit(self) -> bool {
        self == EngineKind::Api
    }
}
