//! `/metrics` in the Prometheus text format: requests by route and status, a latency
//! histogram per route, sessions held and the session cache's hits and misses.
//!
//! A handful of counters does not need a metrics framework: they are kept here under one
//! lock and rendered on demand.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

use super::routes::AppState;
use crate::wire;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

#[derive(Default)]
pub(super) struct Metrics {
    inner: Mutex<Inner>,
}

/// The route label of a path: a fixed set, so output tokens and junk paths add no series.
fn route_of(path: &str) -> &'static str {
    let trimmed = path.trim_end_matches('/');
    if path.starts_with(wire::OUTPUTS_PREFIX) {
        "output"
    } else if trimmed == wire::SEGMENT_PATH.trim_end_matches('/') {
        "segment"
    } else if trimmed == wire::INITIALIZE_PATH.trim_end_matches('/') {
        "initialize"
    } else {
        match trimmed {
            "/health" | "/healthz" => "healthz",
            "/readyz" => "readyz",
            "/metrics" => "metrics",
            _ => "other",
        }
    }
}

impl Metrics {
    fn record(&self, route: &'static str, status: u16, latency: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.requests.entry((route, status)).or_insert(0) += 1;
        let h = inner.latency.entry(route).or_default();
        let secs = latency.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The text exposition, with the gauges passed in.
    pub fn render(&self, sessions: (usize, usize), cache: [(&str, u64); 3]) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP aicut_requests_total Requests answered, by route and status."
        );
        let _ = writeln!(out, "# TYPE aicut_requests_total counter");
        for ((route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "aicut_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP aicut_request_seconds Time to answer, by route."
        );
        let _ = writeln!(out, "# TYPE aicut_request_seconds histogram");
        for (route, h) in &inner.latency {
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "aicut_request_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "aicut_request_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "aicut_request_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "aicut_request_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(out, "# HELP aicut_sessions Sessions held by this replica.");
        let _ = writeln!(out, "# TYPE aicut_sessions gauge");
        let _ = writeln!(out, "aicut_sessions {}", sessions.0);
        let _ = writeln!(
            out,
            "# HELP aicut_session_bytes Memory counted for those sessions."
        );
        let _ = writeln!(out, "# TYPE aicut_session_bytes gauge");
        let _ = writeln!(out, "aicut_session_bytes {}", sessions.1);
        let _ = writeln!(
            out,
            "# HELP aicut_session_cache_total Session look-ups: hit, miss, rebuilt from shared state."
        );
        let _ = writeln!(out, "# TYPE aicut_session_cache_total counter");
        for (kind, n) in cache {
            let _ = writeln!(out, "aicut_session_cache_total{{result=\"{kind}\"}} {n}");
        }
        out
    }
}

/// Counts every request with its route, status and latency.
pub(super) async fn layer(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let route = route_of(req.uri().path());
    let start = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .record(route, resp.status().as_u16(), start.elapsed());
    resp
}
