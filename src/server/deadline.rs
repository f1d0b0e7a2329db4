//! A deadline for a whole request body. The body timeout (tower-http's) restarts with every
//! chunk, as nginx's does, so a client trickling a byte just under it would hold a
//! connection and an upload buffer for as long as it liked; this caps the total.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

/// The request's body, failing once `deadline` has passed since the headers arrived.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            let late = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body took too long to arrive",
            );
            return Poll::Ready(Some(Err(axum::Error::new(late))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: every request body must arrive whole within the deadline in the state.
pub(super) async fn layer(State(deadline): State<Duration>, req: Request, next: Next) -> Response {
    let req = req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(deadline)),
        })
    });
    next.run(req).await
}
