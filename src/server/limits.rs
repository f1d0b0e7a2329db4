//! Per-key checks for `aicut serve`: who may call, and how fast (in this process; the
//! Redis backend has its own limiter, and credits are the backends' business).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use governor::Quota;
use governor::state::keyed::HashMapStateStore;
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::engine::store::Clock;

/// Which bearer tokens are accepted.
#[derive(Debug, Clone)]
pub enum KeyPolicy {
    /// Only these keys.
    Keys(Vec<String>),
    /// Any non-empty token. For local use: `aicut serve` refuses a non-loopback address
    /// without keys, but the server itself does not check.
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
            KeyPolicy::Keys(keys) if is_listed(keys, token) => Ok(token.to_string()),
            KeyPolicy::Keys(_) => Err(ApiError::new(401, "Invalid API key.")),
        }
    }
}

/// Whether `token` is one of `keys`. Every key is compared in constant time, so the time
/// taken reveals neither a key's prefix nor which key matched (only lengths).
fn is_listed(keys: &[String], token: &str) -> bool {
    keys.iter()
        .fold(subtle::Choice::from(0), |found, key| {
            found | key.as_bytes().ct_eq(token.as_bytes())
        })
        .into()
}

/// The server's clock in the form governor reads.
#[derive(Clone)]
struct LimiterClock(Clock);

impl governor::clock::Clock for LimiterClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        (self.0)()
    }
}

type KeyedLimiter = governor::RateLimiter<String, HashMapStateStore<String>, LimiterClock>;

/// Checks between two sweeps of keys whose allowance has fully refilled.
const SWEEP_EVERY: u64 = 1024;

/// `per_second` requests a second per key on average, in bursts of as many (at least one).
///
/// Keys whose allowance has refilled are indistinguishable from new ones, so they are
/// dropped every [`SWEEP_EVERY`] checks: the map holds only the keys active lately.
pub struct RateLimiter {
    keyed: Option<KeyedLimiter>,
    clock: LimiterClock,
    checks: AtomicU64,
}

impl RateLimiter {
    pub fn new(per_second: Option<f64>, clock: Clock) -> Self {
        let clock = LimiterClock(clock);
        RateLimiter {
            keyed: per_second
                .and_then(quota)
                .map(|q| KeyedLimiter::hashmap_with_clock(q, clock.clone())),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Admits one request for `key`, or answers 429 with how long to wait.
    pub fn admit(&self, key: &str) -> Result<(), ApiError> {
        let Some(keyed) = &self.keyed else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            keyed.retain_recent();
            keyed.shrink_to_fit();
        }
        keyed.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
            ApiError::new(429, "Rate limit exceeded. Slow down requests.").retry_after(wait)
        })
    }

    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.keyed.as_ref().map_or(0, |k| k.len())
    }
}

/// The quota for a rate; `None` (no limit) unless the rate is positive and finite.
fn quota(per_second: f64) -> Option<Quota> {
    let (period, burst) = super::backend::quota(per_second)?;
    Some(Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// A clock moved by hand, and the limiter reading it.
    fn limiter(per_second: f64) -> (RateLimiter, Arc<Mutex<Instant>>) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let read = now.clone();
        let clock: Clock = Arc::new(move || *read.lock().unwrap());
        (RateLimiter::new(Some(per_second), clock), now)
    }

    #[test]
    fn a_key_over_its_rate_is_told_how_long_to_wait() {
        let (limiter, now) = limiter(2.0);
        assert!(limiter.admit("a").is_ok());
        assert!(limiter.admit("a").is_ok(), "a burst of the rate itself");
        let refused = limiter.admit("a").unwrap_err();
        assert_eq!(refused.status, 429);
        assert_eq!(refused.retry_after, Some(Duration::from_millis(500)));
        assert!(limiter.admit("b").is_ok(), "keys are limited apart");
        *now.lock().unwrap() += Duration::from_millis(500);
        assert!(limiter.admit("a").is_ok());
    }

    #[test]
    fn keys_gone_quiet_are_forgotten() {
        let (limiter, now) = limiter(1.0);
        for i in 0..SWEEP_EVERY - 1 {
            limiter.admit(&format!("key-{i}")).unwrap();
        }
        assert_eq!(limiter.tracked_keys(), (SWEEP_EVERY - 1) as usize);
        *now.lock().unwrap() += Duration::from_secs(2);
        limiter.admit("one-more").unwrap(); // the sweep runs before this check
        assert_eq!(limiter.tracked_keys(), 1);
    }

    #[test]
    fn a_rate_that_is_not_positive_means_no_limit() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let (limiter, _) = limiter(rate);
            assert!((0..100).all(|_| limiter.admit("a").is_ok()), "{rate}");
        }
    }

    #[test]
    fn only_listed_keys_are_accepted() {
        let keys = KeyPolicy::Keys(vec!["alpha".into(), "beta-key".into()]);
        assert_eq!(keys.authorize(Some("Bearer beta-key")).unwrap(), "beta-key");
        for header in [
            Some("Bearer beta"),
            Some("Bearer beta-kez"),
            Some("Basic alpha"),
            None,
        ] {
            assert_eq!(
                keys.authorize(header).unwrap_err().status,
                401,
                "{header:?}"
            );
        }
    }
}
