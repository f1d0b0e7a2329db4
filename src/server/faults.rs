//! Fault injection for tests of AI Cut clients: a hook decides, per request, to answer
//! with an error, hold the call until the test lets it through, send garbage or drop the
//! connection. Never set by the CLI.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::ApiError;
use crate::wire;

/// Which contract route a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Initialize,
    Segment,
    Output,
}

impl Route {
    fn of(path: &str) -> Route {
        if path.starts_with(wire::OUTPUTS_PREFIX) {
            Route::Output
        } else if path.starts_with(wire::SEGMENT_PATH.trim_end_matches('/')) {
            Route::Segment
        } else {
            Route::Initialize
        }
    }
}

/// What the hook sees of a request.
#[derive(Debug, Clone)]
pub struct FaultContext {
    pub route: Route,
    /// The segment call's `request_number`, when the body had one.
    pub request_number: Option<u64>,
    /// Headers as received (tests check what a client sent).
    pub headers: http::HeaderMap,
}

/// What to do instead of, or before, answering normally.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and `{"detail"}` (and `Retry-After` seconds when given).
    Status {
        status: u16,
        detail: String,
        retry_after_s: Option<u64>,
    },
    /// Wait until the gate opens, then answer normally: a call held in flight for as long
    /// as the test needs, with no clock involved.
    Hold(Gate),
    /// Answer 200 with a body that is not the contract's JSON.
    Malformed,
    /// Start a 200 answer and break the connection mid-body.
    DropConnection,
    /// Handle the request (a charge, a session: its effects happen), then break the
    /// connection instead of answering: an answer lost on the way back.
    LoseAnswer,
}

/// Decides a fault for each request; `None` answers normally.
pub type FaultHook = Arc<dyn Fn(&FaultContext) -> Option<Fault> + Send + Sync>;

/// A barrier that a test opens; calls held at it wait until then. Clones share it.
#[derive(Debug, Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Arc::new(watch::Sender::new(false)))
    }
}

impl Gate {
    /// Lets every held call through, and every later one.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Returns once the gate is open.
    pub async fn passed(&self) {
        let mut open = self.0.subscribe();
        // The sender lives in `self`, so this ends only when the gate opens.
        let _ = open.wait_for(|open| *open).await;
    }
}

/// Applies the test hook's fault, if any, before the real handler.
pub(super) async fn layer(State(hook): State<FaultHook>, req: Request, next: Next) -> Response {
    let (req, ctx) = context(req).await;
    match hook(&ctx) {
        None => next.run(req).await,
        Some(Fault::Hold(gate)) => {
            gate.passed().await;
            next.run(req).await
        }
        Some(Fault::Status {
            status,
            detail,
            retry_after_s,
        }) => {
            let mut e = ApiError::new(status, detail);
            if let Some(s) = retry_after_s {
                e = e.retry_after(Duration::from_secs(s));
            }
            e.into_response()
        }
        Some(Fault::Malformed) => (StatusCode::OK, "<html>surprise</html>").into_response(),
        Some(Fault::DropConnection) => broken_body(),
        Some(Fault::LoseAnswer) => {
            let _ = next.run(req).await;
            broken_body()
        }
    }
}

/// What the hook is told; segment bodies are small JSON, read to find the request_number.
async fn context(req: Request) -> (Request, FaultContext) {
    let route = Route::of(req.uri().path());
    let headers = req.headers().clone();
    let (parts, body) = req.into_parts();
    let (body, request_number) = if route == Route::Segment {
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let n = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("request_number")?.as_u64());
        (Body::from(bytes), n)
    } else {
        (body, None)
    };
    let ctx = FaultContext {
        route,
        request_number,
        headers,
    };
    (Request::from_parts(parts, body), ctx)
}

/// A 200 whose body breaks off after a few bytes of JSON.
fn broken_body() -> Response {
    let stream = futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"{\"status\": \"comp")),
        Err(std::io::Error::other(
            "connection dropped by fault injection",
        )),
    ]);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "200")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
