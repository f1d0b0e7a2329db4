//! The sessions `aicut serve` answers for: the engine's session, plus the image it was
//! made from, which the server needs to check dots and to compose cut-outs.
//!
//! The engine contract gives back only masks, so the server keeps each image itself, under
//! the engine's session id, in a store with the same idle expiry and memory cap as the
//! engine's sessions. The two stay in step: a session this store drops (expired or evicted)
//! is closed on the engine, and one the engine no longer knows is dropped here.
//!
//! Memory: the store counts each image's bytes. For an in-process engine the image is the
//! same allocation (an `Arc`) that the engine keeps and counts in its own store, so it is
//! counted under both caps but held once; for a remote engine this is the only copy.

use std::sync::Arc;

use crate::engine::store::{Clock, SessionStore, StoreConfig};
use crate::engine::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use crate::imageio::LoadedImage;

pub(super) struct Sessions {
    engine: Arc<dyn Engine>,
    images: SessionStore<Arc<LoadedImage>>,
}

impl Sessions {
    pub fn new(engine: Arc<dyn Engine>, config: StoreConfig, clock: Clock) -> Self {
        Sessions {
            engine,
            images: SessionStore::with_clock(config, clock),
        }
    }

    /// Starts a session on the engine and keeps its image.
    pub async fn open(&self, image: Arc<LoadedImage>) -> Result<SessionId, EngineError> {
        let id = self.engine.initialize(image.clone()).await?;
        let bytes = image.heap_bytes();
        match self.images.insert_with_id(id.clone(), image, bytes) {
            Ok(dropped) => {
                for old in dropped {
                    self.engine.close(&old).await;
                }
                Ok(id)
            }
            Err(e) => {
                self.engine.close(&id).await;
                Err(e)
            }
        }
    }

    /// The session's image (refreshing its idle time), or the contract's "not found".
    pub async fn image(&self, id: &SessionId) -> Result<Arc<LoadedImage>, EngineError> {
        match self.images.require(id) {
            Ok(image) => Ok(Arc::clone(&image)),
            Err(e) => {
                // Expired here: free the engine's side too (unknown ids are ignored).
                self.engine.close(id).await;
                Err(e)
            }
        }
    }

    /// The engine's mask; a session the engine has dropped is dropped here as well.
    pub async fn segment(
        &self,
        id: &SessionId,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<AlphaMask, EngineError> {
        let result = self.engine.segment(id, prompt, request_number).await;
        if let Err(EngineError::SessionNotFound(_)) = &result {
            self.images.remove(id);
        }
        result
    }
}
