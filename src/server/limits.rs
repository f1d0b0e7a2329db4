//! Per-key accounting for `aicut serve`: who may call, how many credits remain, how fast.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ApiError;

/// Which bearer tokens are accepted.
#[derive(Debug, Clone)]
pub enum KeyPolicy {
    /// Only these keys.
    Keys(Vec<String>),
    /// Any non-empty token (local use; the server then binds loopback only).
    AnyToken,
}

impl KeyPolicy {
    /// The key from an `Authorization: Bearer KEY` header value, or 401.
    pub fn authorize(&self, header: Option<&str>) -> Result<String, ApiError> {
        let token = header
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::new(401, "Missing or invalid Authorization header."))?;
        match self {
            KeyPolicy::AnyToken => Ok(token.to_string()),
            KeyPolicy::Keys(keys) if keys.iter().any(|k| constant_time_eq(k, token)) => {
                Ok(token.to_string())
            }
            KeyPolicy::Keys(_) => Err(ApiError::new(401, "Invalid API key.")),
        }
    }
}

/// Compares without an early exit, so response time does not reveal a key's prefix.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An optional credit budget per key: initialize costs one, segment is free.
pub struct Credits {
    per_key: Option<u64>,
    spent: Mutex<HashMap<String, u64>>,
}

impl Credits {
    pub fn new(per_key: Option<u64>) -> Self {
        Credits {
            per_key,
            spent: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one credit for `key`, or answers 402 when none is left.
    pub fn charge(&self, key: &str) -> Result<(), ApiError> {
        let Some(budget) = self.per_key else {
            return Ok(());
        };
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let used = spent.entry(key.to_string()).or_insert(0);
        if *used >= budget {
            return Err(ApiError::new(402, "Insufficient credits."));
        }
        *used += 1;
        Ok(())
    }

    /// Gives a credit back when the charged call failed (e.g. the upload was not an image).
    pub fn refund(&self, key: &str) {
        if self.per_key.is_none() {
            return;
        }
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(used) = spent.get_mut(key) {
            *used = used.saturating_sub(1);
        }
    }
}

/// A token bucket per key: `per_second` requests a second on average, bursts of the same.
pub struct RateLimiter {
    per_second: Option<f64>,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: Option<f64>) -> Self {
        RateLimiter {
            per_second: per_second.filter(|r| *r > 0.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request for `key`, or answers 429 with how long to wait.
    pub fn admit(&self, key: &str) -> Result<(), ApiError> {
        let Some(rate) = self.per_second else {
            return Ok(());
        };
        let burst = rate.max(1.0);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets.entry(key.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - *tokens) / rate);
        Err(ApiError::new(429, "Rate limit exceeded. Slow down requests.").retry_after(wait))
    }
}
