//! The bench: a real `aicut serve` and the AI Cut client's HTTP on a real-time runtime of
//! their own (the backend), and the worker on the test's runtime, whose clock is paused.
//!
//! A paused tokio clock jumps to the next timer whenever its runtime is idle, so the
//! worker's waits (backoff, Retry-After) pass in no time. Network timeouts must not jump
//! like that, which is why the server and the client's calls run on the backend.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aicut::engine::builtin;
use aicut::engine::remote::{RemoteConfig, RemoteEngine};
use aicut::engine::store::StoreConfig;
use aicut::engine::{AlphaMask, Dot, Engine, EngineError, Prompt, SessionId};
use aicut::imageio::LoadedImage;
use aicut::server::{self, Fault, FaultContext, FaultHook, Route, RunningServer, ServeConfig};
use aicut::worker::{self, Command, Event, WorkerHandle, WorkerPolicy};
use async_trait::async_trait;
use image::DynamicImage;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::common::blob_scene;
use crate::wrapped::{Hooks, Wrapped};

/// How long a test may wait for anything, in real time, before it fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(120);

/// The server, on a real-time runtime that the test's paused clock does not touch.
pub struct Backend {
    runtime: Option<Runtime>,
    server: RunningServer,
}

impl Backend {
    pub async fn start(config: ServeConfig) -> Backend {
        aicut::engine::remote::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let engine = Arc::new(builtin::engine(StoreConfig::default()));
        let bind = "127.0.0.1:0".parse().unwrap();
        let server = runtime.spawn(server::spawn(bind, engine, config));
        let server = server.await.unwrap().unwrap();
        Backend {
            runtime: Some(runtime),
            server,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    fn handle(&self) -> Handle {
        self.runtime.as_ref().unwrap().handle().clone()
    }

    /// The AI Cut client for this server, making its calls on the backend.
    pub fn remote(&self, key: &str, timeout: Duration) -> Arc<dyn Engine> {
        Wrapped::new(
            remote(&self.url(), key, timeout),
            OnBackend {
                runtime: self.handle(),
            },
        )
    }

    /// Starts a worker on the test's runtime.
    pub fn worker(&self, engine: Arc<dyn Engine>, policy: WorkerPolicy) -> TestWorker {
        let wake = Arc::new(Notify::new());
        let notify = wake.clone();
        let handle =
            worker::spawn_on_current(engine, policy, Arc::new(move || notify.notify_one()));
        TestWorker {
            handle,
            wake,
            backend: self.handle(),
        }
    }

    /// Waits until a count of `calls` holds; fails after [`PATIENCE`] in real time.
    pub async fn wait_for_calls(&self, calls: &Calls, ready: impl Fn(CallStats) -> bool) {
        let mut deadline = Call(self.handle().spawn(real_time_limit()));
        while !ready(calls.stats()) {
            tokio::select! {
                _ = calls.changed.notified() => {}
                _ = &mut deadline => panic!("waited in vain; calls: {:?}", calls.stats()),
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Ends after [`PATIENCE`] on the clock of the runtime that polls it: spawned on the
/// backend, real time (a `sleep` made here would take the paused clock with it).
async fn real_time_limit() {
    tokio::time::sleep(PATIENCE).await
}

/// The AI Cut client.
pub fn remote(url: &str, key: &str, timeout: Duration) -> Arc<dyn Engine> {
    Arc::new(
        RemoteEngine::new(RemoteConfig {
            base_url: url.to_string(),
            api_key: Some(key.to_string()),
            timeout,
        })
        .unwrap(),
    )
}

/// A task on another runtime, aborted when this side stops waiting (as a cancelled
/// worker call does).
struct Call<T>(JoinHandle<T>);

impl<T> Future for Call<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Call<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An engine whose calls run on another runtime.
struct OnBackend {
    runtime: Handle,
}

impl OnBackend {
    async fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, EngineError>> + Send + 'static,
    ) -> Result<T, EngineError> {
        match Call(self.runtime.spawn(call)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(EngineError::Cancelled), // the backend is shutting down
        }
    }
}

#[async_trait]
impl Hooks for OnBackend {
    async fn initialize(
        &self,
        inner: &Arc<dyn Engine>,
        image: Arc<LoadedImage>,
    ) -> Result<SessionId, EngineError> {
        let inner = inner.clone();
        self.run(async move { inner.initialize(image).await }).await
    }

    async fn segment(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        number: u64,
    ) -> Result<AlphaMask, EngineError> {
        let (inner, session, prompt) = (inner.clone(), session.clone(), prompt.clone());
        self.run(async move { inner.segment(&session, &prompt, number).await })
            .await
    }

    async fn candidates(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        number: u64,
    ) -> Result<Vec<AlphaMask>, EngineError> {
        let (inner, session, prompt) = (inner.clone(), session.clone(), prompt.clone());
        self.run(async move { inner.candidates(&session, &prompt, number).await })
            .await
    }

    async fn close(&self, inner: &Arc<dyn Engine>, session: &SessionId) {
        let (inner, session) = (inner.clone(), session.clone());
        let _ = self
            .run(async move {
                inner.close(&session).await;
                Ok(())
            })
            .await;
    }
}

/// A worker, and its events awaited without polling.
pub struct TestWorker {
    handle: WorkerHandle,
    wake: Arc<Notify>,
    backend: Handle,
}

impl TestWorker {
    pub fn send(&self, command: Command) {
        self.handle.send(command);
    }

    /// Collects events until `stop` returns true for one.
    pub async fn until(&self, mut stop: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        let mut deadline = Call(self.backend.spawn(real_time_limit()));
        loop {
            while let Some(e) = self.handle.try_event() {
                let done = stop(&e);
                events.push(e);
                if done {
                    return events;
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = &mut deadline => panic!("the expected event never came; got {events:?}"),
            }
        }
    }

    /// The events already delivered and not yet read.
    pub fn delivered(&self) -> Vec<Event> {
        std::iter::from_fn(|| self.handle.try_event()).collect()
    }

    /// Opens the test scene and clicks its middle; returns the click.
    pub fn open_and_click(&self) -> (f64, f64) {
        let (img, (x, y)) = scene();
        self.send(Command::Open(img));
        self.send(Command::Prompt(prompt(x, y)));
        (x, y)
    }
}

/// Everything the server's hook saw, in order.
#[derive(Default, Clone)]
pub struct Seen(Arc<Mutex<Vec<FaultContext>>>);

impl Seen {
    pub fn numbers(&self) -> Vec<u64> {
        let seen = self.0.lock().unwrap();
        seen.iter().filter_map(|c| c.request_number).collect()
    }

    pub fn count(&self, route: Route) -> usize {
        let seen = self.0.lock().unwrap();
        seen.iter().filter(|c| c.route == route).count()
    }

    pub fn all(&self) -> Vec<FaultContext> {
        self.0.lock().unwrap().clone()
    }
}

/// A hook that records every request and asks `decide(route, request_number, nth call of
/// that route)` for a fault.
pub fn hook(
    seen: &Seen,
    decide: impl Fn(Route, Option<u64>, usize) -> Option<Fault> + Send + Sync + 'static,
) -> FaultHook {
    let seen = seen.clone();
    Arc::new(move |ctx: &FaultContext| {
        let mut all = seen.0.lock().unwrap();
        let nth = all.iter().filter(|c| c.route == ctx.route).count() + 1;
        all.push(ctx.clone());
        drop(all);
        decide(ctx.route, ctx.request_number, nth)
    })
}

/// Records every request and injects nothing.
pub fn recorder(seen: &Seen) -> Option<FaultHook> {
    Some(hook(seen, |_, _, _| None))
}

/// Wraps an engine to count its segment calls: started, in flight at once, cancelled.
pub struct Calls {
    stats: Mutex<CallStats>,
    changed: Notify,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CallStats {
    pub started: usize,
    pub in_flight: usize,
    pub peak: usize,
    /// Calls whose future was dropped before it finished.
    pub cancelled: usize,
}

impl Calls {
    pub fn new(inner: Arc<dyn Engine>) -> Arc<Wrapped<Calls>> {
        Wrapped::new(
            inner,
            Calls {
                stats: Mutex::default(),
                changed: Notify::new(),
            },
        )
    }

    pub fn stats(&self) -> CallStats {
        *self.stats.lock().unwrap()
    }

    fn update(&self, f: impl FnOnce(&mut CallStats)) {
        f(&mut self.stats.lock().unwrap());
        self.changed.notify_one();
    }
}

/// Counts one call from start to its end or its cancellation.
struct Tracked<'a> {
    calls: &'a Calls,
    finished: bool,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let finished = self.finished;
        self.calls.update(|s| {
            s.in_flight -= 1;
            s.cancelled += usize::from(!finished);
        });
    }
}

#[async_trait]
impl Hooks for Calls {
    async fn segment(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        number: u64,
    ) -> Result<AlphaMask, EngineError> {
        self.update(|s| {
            s.started += 1;
            s.in_flight += 1;
            s.peak = s.peak.max(s.in_flight);
        });
        let mut tracked = Tracked {
            calls: self,
            finished: false,
        };
        let result = inner.segment(session, prompt, number).await;
        tracked.finished = true;
        result
    }
}

pub fn scene() -> (Arc<LoadedImage>, (f64, f64)) {
    let (img, _, c) = blob_scene(160, 120);
    let pixels = DynamicImage::ImageRgb8(img).to_rgba8();
    (Arc::new(LoadedImage::from_pixels("scene.png", pixels)), c)
}

pub fn prompt(x: f64, y: f64) -> Prompt {
    Prompt {
        green: vec![Dot::new(x, y)],
        red: vec![],
    }
}

/// The editor's policy, but asking before a re-initialization (as for the paid API).
pub fn policy() -> WorkerPolicy {
    WorkerPolicy {
        auto_reinitialize: false,
        ..WorkerPolicy::default()
    }
}

pub fn is_mask(e: &Event) -> bool {
    matches!(e, Event::Mask { .. })
}

pub fn is_failed(e: &Event) -> bool {
    matches!(e, Event::Failed { .. })
}

pub fn failed(events: &[Event]) -> Option<&EngineError> {
    events.iter().find_map(|e| match e {
        Event::Failed { error, .. } => Some(error),
        _ => None,
    })
}
