//! The server's accept loop: HTTP/1 and HTTP/2 over hyper with the protections that
//! `axum::serve` lacks.
//!
//! - A client has `header_timeout` to send a request's headers, on a new connection and
//!   between requests on a kept-alive one: slow-header and idle connections are closed.
//! - Each client address may hold at most `max_connections_per_ip` connections; more are
//!   closed on accept.
//! - Shutdown stops accepting, lets requests in flight finish, and after `drain_deadline`
//!   drops whatever is left (a half-sent request must not hold the process).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The addresses of a connection, for handlers (`Extension<ConnInfo>`).
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The server's address that the client reached.
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ListenConfig {
    pub header_timeout: Duration,
    pub max_connections_per_ip: usize,
    pub drain_deadline: Duration,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            header_timeout: Duration::from_secs(10),
            max_connections_per_ip: 256,
            drain_deadline: Duration::from_secs(20),
        }
    }
}

/// Open connections per client address; a guard gives its slot back when dropped.
#[derive(Default, Clone)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

struct Slot(PerIp, IpAddr);

impl PerIp {
    fn take(&self, ip: IpAddr, cap: usize) -> Option<Slot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot(self.clone(), ip))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ListenConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.header_timeout);
    let graceful = GracefulShutdown::new();
    let per_ip = PerIp::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(slot) = per_ip.take(remote.ip(), config.max_connections_per_ip) else {
            tracing::warn!(client = %remote.ip(), "connection refused: too many from one address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(remote);
        let info = ConnInfo { local, remote };
        let app = app.clone();
        let service = TowerToHyperService::new(app.map_request(move |mut req: Request<_>| {
            req.extensions_mut().insert(info);
            req
        }));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(config.drain_deadline) => {
            tracing::warn!("shutdown deadline passed with requests still open; dropping them");
        }
    }
}
