//! The one-machine backend: state in this process, credit balances in the data folder.
//!
//! Sessions are not shared: the per-replica cache in `sessions.rs` is their only home, so
//! a cache miss is a 404 and nothing is stored here for them. Credits spent are saved
//! (atomically, after each change) to `credits.json` when a data folder is given, so a
//! restart does not hand every key a fresh balance.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use axum::body::Bytes;
use serde::{Deserialize, Serialize};

use super::{Backend, Charge, SessionRecord, Ttls};
use crate::engine::SessionId;
use crate::engine::store::{Clock, SessionStore, StoreConfig};
use crate::server::ApiError;
use crate::server::limits::RateLimiter;

/// What `credits.json` holds: credits spent per key (hashed).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Spent {
    spent: HashMap<String, u64>,
}

struct Ledger {
    spent: Spent,
    /// Idempotency keys charged lately: (owner, request) -> (session id, when).
    requests: HashMap<(String, String), (String, Instant)>,
}

pub struct Memory {
    outputs: SessionStore<Bytes>,
    budget: Option<u64>,
    ledger: Arc<Mutex<Ledger>>,
    /// Serialises writes of `credits.json` so a later balance never loses to an earlier one.
    file: Option<Arc<Mutex<PathBuf>>>,
    limiter: RateLimiter,
    ttls: Ttls,
    clock: Clock,
}

impl Memory {
    /// `credits_file`: where spent credits are kept across restarts (`None`: nowhere).
    pub fn new(
        ttls: Ttls,
        output_memory_cap: usize,
        budget: Option<u64>,
        credits_file: Option<PathBuf>,
        rate_limit: Option<f64>,
        clock: Clock,
    ) -> Result<Self, String> {
        let outputs = StoreConfig {
            idle_ttl: ttls.output,
            memory_cap_bytes: output_memory_cap,
            refresh_on_get: false,
        };
        let spent = match &credits_file {
            Some(path) => load_spent(path)?,
            None => Spent::default(),
        };
        Ok(Memory {
            outputs: SessionStore::with_clock(outputs, clock.clone()),
            budget,
            ledger: Arc::new(Mutex::new(Ledger {
                spent,
                requests: HashMap::new(),
            })),
            file: credits_file.map(|p| Arc::new(Mutex::new(p))),
            limiter: RateLimiter::new(rate_limit, clock.clone()),
            ttls,
            clock,
        })
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ledger's side of [`Backend::charge`].
    fn take_credit(&self, owner: &str, request: Option<&str>, new_id: &str, budget: u64) -> Charge {
        let now = (self.clock)();
        let mut ledger = self.ledger();
        let ttl = self.ttls.request;
        ledger
            .requests
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= ttl);
        let slot = request.map(|r| (owner.to_string(), r.to_string()));
        if let Some((id, _)) = slot.as_ref().and_then(|s| ledger.requests.get(s)) {
            return Charge::Session {
                id: id.clone(),
                fresh: false,
            };
        }
        let used = ledger.spent.spent.entry(owner.to_string()).or_insert(0);
        if *used >= budget {
            return Charge::Insufficient;
        }
        *used += 1;
        if let Some(slot) = slot {
            ledger.requests.insert(slot, (new_id.to_string(), now));
        }
        Charge::fresh(new_id)
    }

    /// The ledger's side of [`Backend::refund`].
    fn give_back(&self, owner: &str, request: Option<&str>) {
        let mut ledger = self.ledger();
        if let Some(r) = request {
            ledger.requests.remove(&(owner.to_string(), r.to_string()));
        }
        if let Some(used) = ledger.spent.spent.get_mut(owner) {
            *used = used.saturating_sub(1);
        }
    }

    /// Writes the current balances, off the async threads.
    async fn save(&self) -> Result<(), ApiError> {
        let Some(file) = self.file.clone() else {
            return Ok(());
        };
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || {
            let path = file.lock().unwrap_or_else(|p| p.into_inner());
            // Read under the file's lock: the last write holds the latest balances.
            let snapshot = ledger
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .spent
                .clone();
            let json = serde_json::to_vec_pretty(&snapshot).map_err(|e| e.to_string())?;
            crate::imageio::save_atomic(&path, &json, &[]).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| {
            tracing::error!(error = %e, "could not save credit balances");
            ApiError::new(500, "Could not record the credit charge.")
        })
    }
}

/// Reads `credits.json`; a missing file is an empty ledger, an unreadable one an error
/// (starting with fresh balances would hand out credits).
fn load_spent(path: &std::path::Path) -> Result<Spent, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a credit ledger: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Spent::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[async_trait]
impl Backend for Memory {
    fn shares_sessions(&self) -> bool {
        false
    }

    async fn put_session(&self, _id: &str, _record: &SessionRecord) -> Result<(), ApiError> {
        Ok(())
    }

    async fn load_session(&self, _id: &str) -> Result<Option<SessionRecord>, ApiError> {
        Ok(None)
    }

    async fn touch_session(&self, _id: &str) -> Result<bool, ApiError> {
        Ok(true)
    }

    async fn put_output(&self, token: &str, png: Bytes) -> Result<(), ApiError> {
        let size = png.len();
        self.outputs
            .insert_with_id(SessionId(token.to_string()), png, size)?;
        Ok(())
    }

    async fn get_output(&self, token: &str) -> Result<Option<Bytes>, ApiError> {
        Ok(self
            .outputs
            .get(&SessionId(token.to_string()))
            .map(|b| (*b).clone()))
    }

    async fn charge(
        &self,
        owner: &str,
        request: Option<&str>,
        new_id: &str,
    ) -> Result<Charge, ApiError> {
        let Some(budget) = self.budget else {
            return Ok(Charge::fresh(new_id));
        };
        let charge = self.take_credit(owner, request, new_id, budget);
        if matches!(charge, Charge::Session { fresh: true, .. }) {
            self.save().await?;
        }
        Ok(charge)
    }

    async fn refund(&self, owner: &str, request: Option<&str>) -> Result<(), ApiError> {
        if self.budget.is_none() {
            return Ok(());
        }
        self.give_back(owner, request);
        self.save().await
    }

    async fn admit(&self, owner: &str) -> Result<(), ApiError> {
        self.limiter.admit(owner)
    }

    async fn ready(&self) -> Result<(), ApiError> {
        Ok(())
    }
}
