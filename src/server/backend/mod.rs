//! Where `aicut serve` keeps the state that outlives a request: uploaded sessions, cut-outs
//! awaiting download, credits and rate-limit counters.
//!
//! Two backends share the routes. [`memory::Memory`] is the one-machine default: everything
//! in this process, credit balances saved in the data folder. [`redis::Redis`] keeps it all
//! in Redis, so any number of replicas behind a balancer answer any request; each replica
//! then keeps only a bounded cache of prepared engine state (see `sessions.rs`).

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use sha2::{Digest, Sha256};

use super::ApiError;

/// What another replica needs to rebuild a session: its owner and the uploaded file.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// [`owner_of`] the key that opened it: only that key may use it.
    pub owner: String,
    /// The upload's file name (decoders use its extension as a hint).
    pub name: String,
    pub bytes: Bytes,
}

/// The outcome of charging a credit for a new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Charged (or charged before, for a retried request): build session `id`.
    Session { id: String, fresh: bool },
    /// The key has no credit left.
    Insufficient,
}

impl Charge {
    /// A first charge (or none needed) for session `id`.
    pub fn fresh(id: &str) -> Charge {
        Charge::Session {
            id: id.to_string(),
            fresh: true,
        }
    }
}

/// Shared state of a server; every method may fail with 503 when the store is away.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Whether sessions live outside this process (so a cache miss is worth a look-up).
    fn shares_sessions(&self) -> bool;

    /// Keeps a session's upload for `ttl` of idleness.
    async fn put_session(&self, id: &str, record: &SessionRecord) -> Result<(), ApiError>;

    /// A session's upload, restarting its idle time; `None` when unknown or expired.
    async fn load_session(&self, id: &str) -> Result<Option<SessionRecord>, ApiError>;

    /// Restarts a session's idle time; false when it is unknown or expired.
    async fn touch_session(&self, id: &str) -> Result<bool, ApiError>;

    /// Keeps a cut-out under `token` for the output TTL.
    async fn put_output(&self, token: &str, png: Bytes) -> Result<(), ApiError>;

    async fn get_output(&self, token: &str) -> Result<Option<Bytes>, ApiError>;

    /// Takes one credit from `owner` for a new session. `request` is the client's
    /// idempotency key: a retry with the same one is not charged again and gets the same
    /// session id; `new_id` is the id to use when this is the first try.
    async fn charge(
        &self,
        owner: &str,
        request: Option<&str>,
        new_id: &str,
    ) -> Result<Charge, ApiError>;

    /// Gives back a fresh charge whose session could not be made.
    async fn refund(&self, owner: &str, request: Option<&str>) -> Result<(), ApiError>;

    /// Admits one request for `owner`, or answers 429 with how long to wait.
    async fn admit(&self, owner: &str) -> Result<(), ApiError>;

    /// Whether the store answers (for `/readyz`).
    async fn ready(&self) -> Result<(), ApiError>;
}

/// How a key is named in shared state and on disk: a hash, so no store holds API keys.
pub fn owner_of(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The answer when the shared store cannot be reached.
pub fn unavailable(what: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %what, "shared state unavailable");
    ApiError::new(
        503,
        "The server's storage is unavailable; try again shortly.",
    )
    .retry_after(Duration::from_secs(1))
}

/// Limits common to both backends.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    pub session: Duration,
    pub output: Duration,
    /// How long a charged request's idempotency key is remembered.
    pub request: Duration,
}

/// The quota for a rate: one request every `interval`, bursts of `burst`; `None` (no
/// limit) unless the rate is positive and finite.
pub fn quota(per_second: f64) -> Option<(Duration, u32)> {
    if !(per_second.is_finite() && per_second > 0.0) {
        return None;
    }
    let burst = per_second.clamp(1.0, u32::MAX as f64) as u32;
    // At least one request a year, so the period always fits in nanoseconds.
    let interval = Duration::from_secs_f64((1.0 / per_second).min(365.0 * 86_400.0));
    Some((interval, burst))
}
