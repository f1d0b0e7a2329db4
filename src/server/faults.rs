//! Fault injection for tests of AI Cut clients: a hook decides, per request, to answer
//! with an error, wait, send garbage or drop the connection. Never set by the CLI.

use std::sync::Arc;
use std::time::Duration;

/// Which contract route a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Initialize,
    Segment,
    Output,
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
    /// Wait, then answer normally.
    Delay(Duration),
    /// Answer 200 with a body that is not the contract's JSON.
    Malformed,
    /// Start a 200 answer and break the connection mid-body.
    DropConnection,
}

/// Decides a fault for each request; `None` answers normally.
pub type FaultHook = Arc<dyn Fn(&FaultContext) -> Option<Fault> + Send + Sync>;
