//! The sessions `aicut serve` answers for: who owns each, the image it was made from (the
//! server checks dots against it and composes cut-outs from it), and the engine's session
//! holding the prepared state.
//!
//! Each replica keeps these in a bounded cache under the server's session id, with the
//! session's idle expiry and an LRU memory cap. A session the cache drops (expired or
//! evicted) is closed on the engine. With a shared backend the upload itself lives there
//! too, so a replica that misses rebuilds the session from it (decode and prepare once);
//! without one the cache is the only home, and a miss is the contract's 404.
//!
//! Memory: a cached session counts its 8-bit pixels (the original file bytes are
//! dropped) plus what the engine reports it holds for the session's prepared state, so
//! the cap covers what a session really keeps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;

use super::ApiError;
use super::backend::{Backend, SessionRecord};
use crate::engine::store::{Clock, SessionStore, StoreConfig};
use crate::engine::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use crate::imageio::{self, DecodeLimits, LoadedImage};

/// A session as this replica holds it.
pub(super) struct Cached {
    pub owner: String,
    pub image: Arc<LoadedImage>,
    engine_id: SessionId,
    /// A fingerprint of the uploaded file, so a retried upload of the same file can keep
    /// the prepared session instead of decoding and preparing it again.
    upload: u64,
}

/// A fingerprint of an upload's bytes (not a security check: it only ever compares one
/// owner's retry with that owner's own earlier upload under the same key).
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Hits and misses of the per-replica cache, for `/metrics`.
#[derive(Default)]
pub(super) struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub rebuilds: AtomicU64,
}

pub(super) struct Sessions {
    engine: Arc<dyn Engine>,
    cache: SessionStore<Cached>,
    backend: Arc<dyn Backend>,
    decode: DecodeLimits,
    /// One rebuild per session at a time: concurrent calls for a session this replica
    /// has not seen wait for the first to prepare it instead of each preparing a copy.
    rebuilding: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub stats: CacheStats,
}

fn not_found() -> ApiError {
    ApiError::new(404, "Session not found or has expired.")
}

impl Sessions {
    pub fn new(
        engine: Arc<dyn Engine>,
        backend: Arc<dyn Backend>,
        config: StoreConfig,
        clock: Clock,
        decode: DecodeLimits,
    ) -> Self {
        Sessions {
            engine,
            cache: SessionStore::with_clock(config, clock),
            backend,
            decode,
            rebuilding: Mutex::default(),
            stats: CacheStats::default(),
        }
    }

    /// Sessions held by this replica and their counted bytes.
    pub fn cached(&self) -> (usize, usize) {
        (self.cache.len(), self.cache.total_bytes())
    }

    /// Decodes an upload and makes it session `id` of `owner`, here and in the backend.
    pub async fn open(&self, id: &str, record: SessionRecord) -> Result<(), ApiError> {
        let image = decode(record.bytes.clone(), record.name.clone(), self.decode).await?;
        self.backend.put_session(id, &record).await?;
        let upload = fingerprint(&record.bytes);
        self.prepare(id, record.owner, image, upload).await?;
        Ok(())
    }

    /// Whether this replica already holds session `id` of `record`'s owner, made from the
    /// same file: a retried initialize (same idempotency key) then has nothing to redo.
    pub async fn holds(&self, id: &str, record: &SessionRecord) -> bool {
        match self.cached_for(id, &record.owner).await {
            Ok(Some(hit)) => hit.upload == fingerprint(&record.bytes),
            _ => false,
        }
    }

    /// Prepares `image` on the engine and caches the session, closing what that evicts.
    async fn prepare(
        &self,
        id: &str,
        owner: String,
        image: Arc<LoadedImage>,
        upload: u64,
    ) -> Result<Arc<Cached>, ApiError> {
        let engine_id = self.engine.initialize(image.clone()).await?;
        // A session made again under the same id (a retried initialize) replaces the old.
        self.drop_cached(&SessionId(id.to_string())).await;
        // A local engine's count already holds the image (the same allocation it was given).
        let bytes = (self.engine.session_bytes(&engine_id)).unwrap_or_else(|| image.heap_bytes());
        let cached = Cached {
            owner,
            image,
            engine_id: engine_id.clone(),
            upload,
        };
        match self
            .cache
            .insert_with_id(SessionId(id.to_string()), cached, bytes)
        {
            Ok(dropped) => {
                for (_, old) in dropped {
                    self.engine.close(&old.engine_id).await;
                }
            }
            Err(e) => {
                self.engine.close(&engine_id).await;
                return Err(e.into());
            }
        }
        self.cache
            .get(&SessionId(id.to_string()))
            .ok_or_else(not_found)
    }

    /// `owner`'s session `id` (refreshing its idle time), rebuilt from the backend when this
    /// replica does not hold it; someone else's session is "not found" as well.
    pub async fn get(&self, id: &str, owner: &str) -> Result<Arc<Cached>, ApiError> {
        if let Some(hit) = self.cached_for(id, owner).await? {
            return Ok(hit);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        if !self.backend.shares_sessions() {
            return Err(not_found());
        }
        let turn = {
            let mut rebuilding = self.rebuilding.lock().unwrap_or_else(|p| p.into_inner());
            rebuilding.entry(id.to_string()).or_default().clone()
        };
        let rebuilt = {
            let _turn = turn.lock().await;
            // Another call may have rebuilt it while this one waited.
            match self.cached_for(id, owner).await? {
                Some(hit) => Ok(hit),
                None => self.rebuild(id, owner).await,
            }
        };
        let mut rebuilding = self.rebuilding.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&turn) == 2 {
            rebuilding.remove(id); // no one else is waiting
        }
        rebuilt
    }

    /// The session from this replica's cache, if it holds it and `owner` owns it.
    async fn cached_for(&self, id: &str, owner: &str) -> Result<Option<Arc<Cached>>, ApiError> {
        let sid = SessionId(id.to_string());
        if let Some(hit) = self.cache.get(&sid) {
            if hit.owner != owner {
                return Err(not_found());
            }
            if self.backend.touch_session(id).await? {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(hit));
            }
            // Expired in the shared store: another replica's view wins.
            self.drop_cached(&sid).await;
            return Err(not_found());
        }
        Ok(None)
    }

    /// Decodes and prepares a session from the shared store.
    async fn rebuild(&self, id: &str, owner: &str) -> Result<Arc<Cached>, ApiError> {
        let record = self.backend.load_session(id).await?.ok_or_else(not_found)?;
        if record.owner != owner {
            return Err(not_found());
        }
        let upload = fingerprint(&record.bytes);
        let image = decode(record.bytes, record.name, self.decode).await?;
        self.stats.rebuilds.fetch_add(1, Ordering::Relaxed);
        self.prepare(id, record.owner, image, upload).await
    }

    async fn drop_cached(&self, id: &SessionId) {
        if let Some(old) = self.cache.take(id) {
            self.engine.close(&old.engine_id).await;
        }
    }

    /// The engine's mask; a session the engine has dropped is dropped here as well (and
    /// rebuilt on the next call when the backend still has it).
    pub async fn segment(
        &self,
        id: &str,
        session: &Cached,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<AlphaMask, ApiError> {
        let result = self
            .engine
            .segment(&session.engine_id, prompt, request_number)
            .await;
        if let Err(EngineError::SessionNotFound(_)) = &result {
            self.cache.remove(&SessionId(id.to_string()));
        }
        Ok(result?)
    }
}

/// Decodes an upload off the async threads, keeping only what a session needs.
async fn decode(
    bytes: Bytes,
    name: String,
    limits: DecodeLimits,
) -> Result<Arc<LoadedImage>, ApiError> {
    let image = tokio::task::spawn_blocking(move || {
        let mut image = imageio::decode_bytes(bytes.to_vec(), &name, &limits)?;
        // Sessions answer with 8-bit PNGs from the pixels: the 16-bit copy and the file
        // bytes would only hold memory.
        image.drop_deep_pixels();
        image.drop_file_bytes();
        Ok::<_, imageio::ImageLoadError>(image)
    })
    .await
    .map_err(|e| ApiError::new(500, e.to_string()))?
    .map_err(EngineError::from)?;
    Ok(Arc::new(image))
}
