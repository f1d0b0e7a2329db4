//! The shared backend: every piece of state in Redis, so replicas are interchangeable.
//!
//! Keys (all under a prefix, `aicut:` by default):
//! - `session:{id}`: hash of owner, file name and the uploaded bytes, expiring after the
//!   session's idle TTL, which each use restarts;
//! - `output:{token}`: a cut-out's PNG, expiring a fixed time after it was made;
//! - `credits`: hash of credits spent per key (hashed); `request:{owner}:{key}`: the
//!   session id a charged idempotency key got, so a retry is not charged twice;
//! - `rate:{owner}`: the GCRA "theoretical arrival time" of a key, in microseconds.
//!
//! Charges and rate checks are Lua scripts, so each is one atomic step however many
//! replicas race. Durability of credits is Redis's: run it with `appendonly yes`.

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Backend, Charge, SessionRecord, Ttls, quota, unavailable};
use crate::server::ApiError;

/// Charges one credit unless the request was charged before (then answers its session).
/// KEYS: credits hash, request key. ARGV: owner, budget, new id, request TTL (s), whether
/// there is a request key. Returns the session id, or "" when no credit is left.
const CHARGE: &str = r"
if ARGV[5] == '1' then
  local earlier = redis.call('GET', KEYS[2])
  if earlier then return {earlier, 0} end
end
local used = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if used >= tonumber(ARGV[2]) then return {'', 0} end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if ARGV[5] == '1' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
end
return {ARGV[3], 1}
";

/// Gives a credit back (once: only while the request's record, if any, is there).
/// KEYS: credits hash, request key. ARGV: owner, whether there is a request key.
const REFUND: &str = r"
if ARGV[2] == '1' and redis.call('DEL', KEYS[2]) == 0 then return 0 end
local used = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if used > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
return 1
";

/// GCRA: admits a request if it is no earlier than its place in the schedule allows.
/// KEYS: the key's arrival time. ARGV: interval (µs), burst. Returns 0, or the µs to wait.
/// Redis's own clock is the one clock all replicas share.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - burst * interval
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
";

pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
    ttls: Ttls,
    budget: Option<u64>,
    rate: Option<(Duration, u32)>,
    charge: redis::Script,
    refund: redis::Script,
    gcra: redis::Script,
}

impl Redis {
    /// Connects lazily: the server starts (not ready) while Redis is away and recovers
    /// when it comes back; every call in between answers 503.
    pub fn new(
        url: &str,
        ttls: Ttls,
        budget: Option<u64>,
        rate_limit: Option<f64>,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis {url}: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(|e| format!("--redis {url}: {e}"))?;
        keep_connected(conn.clone());
        Ok(Redis {
            conn,
            prefix: "aicut:".into(),
            ttls,
            budget,
            rate: rate_limit.and_then(quota),
            charge: redis::Script::new(CHARGE),
            refund: redis::Script::new(REFUND),
            gcra: redis::Script::new(GCRA),
        })
    }

    fn key(&self, parts: &[&str]) -> String {
        format!("{}{}", self.prefix, parts.join(":"))
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// Pings Redis every second: a failed command is what makes the connection manager
/// reconnect, so without traffic a replica would learn that Redis is back only from the
/// first request after (which would fail). Ends with the runtime.
fn keep_connected(conn: ConnectionManager) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = redis::cmd("PING")
                .query_async::<String>(&mut conn.clone())
                .await;
        }
    });
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

#[async_trait]
impl Backend for Redis {
    fn shares_sessions(&self) -> bool {
        true
    }

    async fn put_session(&self, id: &str, record: &SessionRecord) -> Result<(), ApiError> {
        let key = self.key(&["session", id]);
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("owner", record.owner.as_bytes()),
                    ("name", record.name.as_bytes()),
                    ("image", &record.bytes[..]),
                ],
            )
            .expire(&key, secs(self.ttls.session) as i64)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn load_session(&self, id: &str) -> Result<Option<SessionRecord>, ApiError> {
        let key = self.key(&["session", id]);
        let (fields, _): (Vec<Option<Vec<u8>>>, i64) = redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(&key)
            .arg(&["owner", "name", "image"])
            .expire(&key, secs(self.ttls.session) as i64)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let mut it = fields.into_iter();
        let (Some(Some(owner)), Some(Some(name)), Some(Some(image))) =
            (it.next(), it.next(), it.next())
        else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            owner: String::from_utf8_lossy(&owner).into_owned(),
            name: String::from_utf8_lossy(&name).into_owned(),
            bytes: Bytes::from(image),
        }))
    }

    async fn touch_session(&self, id: &str) -> Result<bool, ApiError> {
        let key = self.key(&["session", id]);
        self.conn()
            .expire(&key, secs(self.ttls.session) as i64)
            .await
            .map_err(unavailable)
    }

    async fn put_output(&self, token: &str, png: Bytes) -> Result<(), ApiError> {
        let key = self.key(&["output", token]);
        self.conn()
            .set_ex::<_, _, ()>(&key, &png[..], secs(self.ttls.output))
            .await
            .map_err(unavailable)
    }

    async fn get_output(&self, token: &str) -> Result<Option<Bytes>, ApiError> {
        let key = self.key(&["output", token]);
        let png: Option<Vec<u8>> = self.conn().get(&key).await.map_err(unavailable)?;
        Ok(png.map(Bytes::from))
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
        let (id, fresh): (String, i64) = self
            .charge
            .key(self.key(&["credits"]))
            .key(self.key(&["request", owner, request.unwrap_or("")]))
            .arg(owner)
            .arg(budget)
            .arg(new_id)
            .arg(secs(self.ttls.request))
            .arg(if request.is_some() { "1" } else { "0" })
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(if id.is_empty() {
            Charge::Insufficient
        } else {
            Charge::Session {
                id,
                fresh: fresh == 1,
            }
        })
    }

    async fn refund(&self, owner: &str, request: Option<&str>) -> Result<(), ApiError> {
        if self.budget.is_none() {
            return Ok(());
        }
        self.refund
            .key(self.key(&["credits"]))
            .key(self.key(&["request", owner, request.unwrap_or("")]))
            .arg(owner)
            .arg(if request.is_some() { "1" } else { "0" })
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn admit(&self, owner: &str) -> Result<(), ApiError> {
        let Some((interval, burst)) = self.rate else {
            return Ok(());
        };
        let wait_us: i64 = self
            .gcra
            .key(self.key(&["rate", owner]))
            .arg(interval.as_micros().max(1) as u64)
            .arg(burst)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        if wait_us > 0 {
            let wait = Duration::from_micros(wait_us as u64);
            return Err(
                ApiError::new(429, "Rate limit exceeded. Slow down requests.").retry_after(wait),
            );
        }
        Ok(())
    }

    async fn ready(&self) -> Result<(), ApiError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
