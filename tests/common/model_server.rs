//! A loopback HTTP server that serves one generated file the way download hosts do
//! (Content-Length, Range requests answered with 206), and misbehaves on request: drops
//! the connection after some bytes, ignores ranges, stalls, or sends slowly. It runs on
//! its own runtime, so sync tests, async tests and child processes can all use it.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use sha2::{Digest, Sha256};

/// How the server misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// The first `drops` responses break the connection after `drop_after` body bytes.
    pub drops: usize,
    pub drop_after: u64,
    /// Answer every request with the whole file (200), as servers without Range do.
    pub ignore_range: bool,
    /// Stop sending, without closing, after this many body bytes.
    pub stall_after: Option<u64>,
    /// A pause after each 64 KiB chunk, so progress is reported several times.
    pub pause: Option<Duration>,
}

impl Behaviour {
    /// Pauses after each chunk.
    pub fn paused(ms: u64) -> Self {
        Behaviour {
            pause: Some(Duration::from_millis(ms)),
            ..Behaviour::default()
        }
    }

    /// Drops the first response's connection after `after` bytes.
    pub fn dropping_once(after: u64) -> Self {
        Behaviour {
            drops: 1,
            drop_after: after,
            ..Behaviour::default()
        }
    }

    /// Stops sending after `at` bytes.
    pub fn stalling(at: u64) -> Self {
        Behaviour {
            stall_after: Some(at),
            ..Behaviour::default()
        }
    }
}

/// A generated file, a server for it and an empty folder to download into.
pub struct Setup {
    pub file: Vec<u8>,
    pub server: ModelServer,
    pub dir: tempfile::TempDir,
}

/// Serves a generated file of `len` bytes as `behaviour` says.
pub fn serve(len: usize, behaviour: Behaviour) -> Setup {
    let file = test_file(len);
    Setup {
        server: ModelServer::start(file.clone(), behaviour),
        file,
        dir: tempfile::tempdir().unwrap(),
    }
}

struct Shared {
    file: Bytes,
    behaviour: Behaviour,
    /// The Range header of each request, in order.
    ranges: Mutex<Vec<Option<String>>>,
}

pub struct ModelServer {
    pub base: String,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// `len` bytes that are the same on every run.
pub fn test_file(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl ModelServer {
    /// Serves `file` at every path except those starting with `/missing` (404).
    pub fn start(file: Vec<u8>, behaviour: Behaviour) -> ModelServer {
        let shared = Arc::new(Shared {
            file: Bytes::from(file),
            behaviour,
            ranges: Mutex::new(Vec::new()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        ModelServer {
            base,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// The Range header of each request so far.
    pub fn ranges(&self) -> Vec<Option<String>> {
        self.shared.ranges.lock().unwrap().clone()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        // Stalled responses never end: do not wait for them.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A port nothing listens on (bound, then released).
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/mobile_sam.pt")
}

async fn answer(
    State(s): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if uri.path().starts_with("/missing") {
        return status(StatusCode::NOT_FOUND);
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let nth = {
        let mut ranges = s.ranges.lock().unwrap();
        ranges.push(range.clone());
        ranges.len()
    };
    let len = s.file.len() as u64;
    let start = match range.as_deref().filter(|_| !s.behaviour.ignore_range) {
        Some(r) => match r.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')) {
            Some(n) => n.parse::<u64>().unwrap_or(u64::MAX),
            None => return status(StatusCode::BAD_REQUEST),
        },
        None => 0,
    };
    if start > len {
        return status(StatusCode::RANGE_NOT_SATISFIABLE);
    }
    let b = &s.behaviour;
    let plan = Plan {
        drop_at: (nth <= b.drops).then_some(b.drop_after),
        stall_at: b.stall_after,
        pause: b.pause,
    };
    let body = s.file.slice(start as usize..);
    let mut response = Response::builder()
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::ACCEPT_RANGES, "bytes");
    if range.is_some() && !s.behaviour.ignore_range {
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", len.saturating_sub(1)),
        );
    }
    response.body(plan.body(body)).unwrap()
}

fn status(code: StatusCode) -> Response {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .unwrap()
}

/// What one response does on the way.
#[derive(Clone, Copy)]
struct Plan {
    drop_at: Option<u64>,
    stall_at: Option<u64>,
    pause: Option<Duration>,
}

const CHUNK: usize = 64 * 1024;

impl Plan {
    /// The body as a stream of chunks that breaks off, stalls or pauses as planned.
    fn body(self, bytes: Bytes) -> Body {
        let stream = futures_util::stream::unfold((bytes, 0usize, false), move |state| {
            let (bytes, sent, ended) = state;
            async move {
                if ended || sent >= bytes.len() {
                    return None;
                }
                let limit = [self.drop_at, self.stall_at]
                    .into_iter()
                    .flatten()
                    .map(|n| n as usize)
                    .min()
                    .unwrap_or(usize::MAX);
                if sent >= limit {
                    if self.stall_at.is_some_and(|s| s as usize == limit) {
                        std::future::pending::<()>().await;
                    }
                    // Pending first, so the server sends what it holds before it drops.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let broke = std::io::Error::other("connection dropped by the test");
                    return Some((Err(broke), (bytes, sent, true)));
                }
                if let Some(p) = self.pause.filter(|_| sent > 0) {
                    tokio::time::sleep(p).await;
                }
                let end = (sent + CHUNK).min(bytes.len()).min(limit);
                let chunk = bytes.slice(sent..end);
                Some((Ok::<_, std::io::Error>(chunk), (bytes, end, false)))
            }
        });
        Body::from_stream(stream)
    }
}
