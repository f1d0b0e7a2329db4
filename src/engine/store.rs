//! An in-process session store for local engines and the server.
//!
//! Sessions hold per-image precomputation, which is large, so the store bounds both time
//! and memory: a session idle longer than `idle_ttl` expires, and when the total size would
//! pass `memory_cap_bytes` the least recently used sessions are evicted. Either way the id
//! then answers "not found or expired"; stale data is never returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{EngineError, SessionId};

/// Limits of a [`SessionStore`].
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// A session unused for this long expires.
    pub idle_ttl: Duration,
    /// The total size of all sessions is kept under this by evicting the least recently used.
    pub memory_cap_bytes: usize,
    /// Whether reading a value restarts its clock. Sessions: yes (idle expiry). Download
    /// links: no, they expire a fixed time after they were made.
    pub refresh_on_get: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            idle_ttl: Duration::from_secs(30 * 60),
            memory_cap_bytes: 2 * 1024 * 1024 * 1024,
            refresh_on_get: true,
        }
    }
}

/// Where the store reads the time; replaceable so tests can move time by hand.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

struct Entry<T> {
    value: Arc<T>,
    bytes: usize,
    last_used: Instant,
}

struct Inner<T> {
    entries: HashMap<SessionId, Entry<T>>,
    total_bytes: usize,
}

/// A map from session id to value with idle expiry and an LRU memory cap.
pub struct SessionStore<T> {
    config: StoreConfig,
    clock: Clock,
    inner: Mutex<Inner<T>>,
}

impl<T> SessionStore<T> {
    pub fn new(config: StoreConfig) -> Self {
        Self::with_clock(config, Arc::new(Instant::now))
    }

    pub fn with_clock(config: StoreConfig, clock: Clock) -> Self {
        SessionStore {
            config,
            clock,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                total_bytes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        // A panic while holding the lock leaves the map consistent (every update is a
        // single insert/remove), so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `value` (about `bytes` large) under a fresh unguessable id.
    pub fn insert(&self, value: T, bytes: usize) -> Result<SessionId, EngineError> {
        let id = SessionId(uuid::Uuid::new_v4().to_string());
        self.insert_with_id(id.clone(), value, bytes)?;
        Ok(id)
    }

    /// Stores `value` under a given id, evicting least recently used sessions as needed.
    /// Returns what it dropped (expired or evicted), so an owner can release what it
    /// keeps elsewhere for them.
    pub fn insert_with_id(
        &self,
        id: SessionId,
        value: T,
        bytes: usize,
    ) -> Result<Vec<(SessionId, Arc<T>)>, EngineError> {
        if bytes > self.config.memory_cap_bytes {
            return Err(EngineError::BadRequest(format!(
                "the image needs {} MB, more than the session memory cap of {} MB",
                bytes / (1024 * 1024),
                self.config.memory_cap_bytes / (1024 * 1024)
            )));
        }
        let now = (self.clock)();
        let mut inner = self.lock();
        let mut dropped = Self::purge_expired_locked(&mut inner, now, self.config.idle_ttl);
        if let Some(old) = inner.entries.remove(&id) {
            inner.total_bytes -= old.bytes;
        }
        while inner.total_bytes + bytes > self.config.memory_cap_bytes {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.total_bytes -= e.bytes;
                tracing::info!(session = %oldest, "session evicted under the memory cap");
                dropped.push((oldest, e.value));
            }
        }
        inner.total_bytes += bytes;
        inner.entries.insert(
            id,
            Entry {
                value: Arc::new(value),
                bytes,
                last_used: now,
            },
        );
        Ok(dropped)
    }

    /// The session's value, refreshing its idle timer; `None` if unknown, expired or evicted.
    pub fn get(&self, id: &SessionId) -> Option<Arc<T>> {
        let now = (self.clock)();
        let mut inner = self.lock();
        let ttl = self.config.idle_ttl;
        let expired = match inner.entries.get_mut(id) {
            None => return None,
            Some(e) if now.saturating_duration_since(e.last_used) > ttl => true,
            Some(e) => {
                if self.config.refresh_on_get {
                    e.last_used = now;
                }
                return Some(e.value.clone());
            }
        };
        if expired && let Some(e) = inner.entries.remove(id) {
            inner.total_bytes -= e.bytes;
        }
        None
    }

    /// Like [`get`](Self::get) but with the contract's error for a missing session.
    pub fn require(&self, id: &SessionId) -> Result<Arc<T>, EngineError> {
        self.get(id)
            .ok_or_else(|| EngineError::SessionNotFound("Session not found or has expired.".into()))
    }

    pub fn remove(&self, id: &SessionId) {
        self.take(id);
    }

    /// Removes a session and hands back its value.
    pub fn take(&self, id: &SessionId) -> Option<Arc<T>> {
        let mut inner = self.lock();
        let e = inner.entries.remove(id)?;
        inner.total_bytes -= e.bytes;
        Some(e.value)
    }

    /// The bytes counted for a session.
    pub fn bytes_of(&self, id: &SessionId) -> Option<usize> {
        self.lock().entries.get(id).map(|e| e.bytes)
    }

    /// Removes expired entries and returns them.
    fn purge_expired_locked(
        inner: &mut Inner<T>,
        now: Instant,
        ttl: Duration,
    ) -> Vec<(SessionId, Arc<T>)> {
        let expired: Vec<SessionId> = inner
            .entries
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.last_used) > ttl)
            .map(|(id, _)| id.clone())
            .collect();
        let mut gone = Vec::with_capacity(expired.len());
        for id in expired {
            if let Some(e) = inner.entries.remove(&id) {
                inner.total_bytes -= e.bytes;
                gone.push((id, e.value));
            }
        }
        gone
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn total_bytes(&self) -> usize {
        self.lock().total_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock the test moves by hand.
    fn manual_clock() -> (Clock, Arc<Mutex<Instant>>) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let n = now.clone();
        (Arc::new(move || *n.lock().unwrap()), now)
    }

    fn store(ttl_s: u64, cap: usize) -> (SessionStore<u32>, Arc<Mutex<Instant>>) {
        let (clock, now) = manual_clock();
        let config = StoreConfig {
            idle_ttl: Duration::from_secs(ttl_s),
            memory_cap_bytes: cap,
            refresh_on_get: true,
        };
        (SessionStore::with_clock(config, clock), now)
    }

    #[test]
    fn idle_sessions_expire_and_use_refreshes() {
        let (s, now) = store(10, 1000);
        let a = s.insert(1, 10).unwrap();
        let b = s.insert(2, 10).unwrap();
        *now.lock().unwrap() += Duration::from_secs(8);
        assert_eq!(s.get(&a).as_deref(), Some(&1)); // refreshes a
        *now.lock().unwrap() += Duration::from_secs(8);
        assert_eq!(s.get(&a).as_deref(), Some(&1));
        assert!(s.get(&b).is_none(), "b idle for 16 s > 10 s must be gone");
        assert!(matches!(
            s.require(&b),
            Err(EngineError::SessionNotFound(_))
        ));
        assert_eq!(s.len(), 1);
        assert_eq!(s.total_bytes(), 10);
    }

    #[test]
    fn memory_cap_evicts_least_recently_used() {
        let (s, now) = store(100, 100);
        let a = s.insert(1, 40).unwrap();
        *now.lock().unwrap() += Duration::from_secs(1);
        let b = s.insert(2, 40).unwrap();
        *now.lock().unwrap() += Duration::from_secs(1);
        s.get(&a); // a is now more recent than b
        *now.lock().unwrap() += Duration::from_secs(1);
        let c = s.insert(3, 40).unwrap();
        assert!(s.get(&b).is_none(), "b was least recently used");
        assert_eq!(s.get(&a).as_deref(), Some(&1));
        assert_eq!(s.get(&c).as_deref(), Some(&3));
        assert_eq!(s.total_bytes(), 80);
    }

    #[test]
    fn insert_reports_the_ids_it_expired_or_evicted() {
        let (s, now) = store(10, 100);
        let old = s.insert(1, 10).unwrap();
        *now.lock().unwrap() += Duration::from_secs(11);
        let lru = SessionId("lru".into());
        assert_eq!(
            s.insert_with_id(lru.clone(), 2, 50).unwrap(),
            vec![(old, Arc::new(1))]
        );
        *now.lock().unwrap() += Duration::from_secs(1);
        assert!(
            s.insert_with_id(SessionId("c".into()), 3, 10)
                .unwrap()
                .is_empty()
        );
        let evicted = s.insert_with_id(SessionId("d".into()), 4, 50).unwrap();
        assert_eq!(
            evicted,
            vec![(lru, Arc::new(2))],
            "the least recently used made room, its value handed back"
        );
    }

    #[test]
    fn a_value_larger_than_the_cap_is_refused() {
        let (s, _) = store(100, 100);
        let a = s.insert(1, 50).unwrap();
        assert!(matches!(s.insert(2, 101), Err(EngineError::BadRequest(_))));
        assert_eq!(
            s.get(&a).as_deref(),
            Some(&1),
            "a refused insert evicts nothing"
        );
    }

    #[test]
    fn without_refresh_values_expire_a_fixed_time_after_insert() {
        let (clock, now) = manual_clock();
        let config = StoreConfig {
            idle_ttl: Duration::from_secs(10),
            memory_cap_bytes: 100,
            refresh_on_get: false,
        };
        let s = SessionStore::with_clock(config, clock);
        let a = s.insert(1u8, 1).unwrap();
        *now.lock().unwrap() += Duration::from_secs(6);
        assert!(s.get(&a).is_some());
        *now.lock().unwrap() += Duration::from_secs(6);
        assert!(
            s.get(&a).is_none(),
            "reads must not extend a fixed lifetime"
        );
    }

    #[test]
    fn ids_are_unique_uuids() {
        let (s, _) = store(100, 1000);
        let a = s.insert(1, 1).unwrap();
        let b = s.insert(1, 1).unwrap();
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(&a.0).is_ok());
    }
}
