//! The AI Cut API client and the worker against a real `aicut serve` over loopback, with
//! faults injected by the server's test hook.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicut::engine::builtin;
use aicut::engine::remote::{RemoteConfig, RemoteEngine};
use aicut::engine::store::StoreConfig;
use aicut::engine::{Dot, Engine, EngineError, Prompt};
use aicut::imageio::LoadedImage;
use aicut::server::{
    self, Fault, FaultContext, FaultHook, KeyPolicy, Route, RunningServer, ServeConfig,
};
use aicut::worker::{self, Command, Event, WorkerHandle, WorkerPolicy};
use common::*;
use image::DynamicImage;

const KEY: &str = "secret-key-123";

/// Everything the server's hook saw, in order.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<FaultContext>>>);

impl Seen {
    fn numbers(&self) -> Vec<u64> {
        let seen = self.0.lock().unwrap();
        seen.iter().filter_map(|c| c.request_number).collect()
    }
    fn count(&self, route: Route) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.route == route)
            .count()
    }
}

/// A hook that records every request and asks `decide(route, request_number, nth call of
/// that route)` for a fault.
fn hook(
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

async fn serve(config: ServeConfig, store: StoreConfig) -> RunningServer {
    aicut::engine::remote::install_crypto_provider();
    let engine = Arc::new(builtin::engine(store));
    server::spawn("127.0.0.1:0".parse().unwrap(), engine, config)
        .await
        .unwrap()
}

/// Opens the test scene and clicks its middle; returns the click.
fn open_and_click(w: &WorkerHandle) -> (f64, f64) {
    let (img, (x, y)) = scene();
    w.send(Command::Open(img));
    w.send(Command::Prompt(prompt(x, y)));
    (x, y)
}

fn remote(url: &str, key: &str, timeout: Duration) -> Arc<dyn Engine> {
    Arc::new(
        RemoteEngine::new(RemoteConfig {
            base_url: url.to_string(),
            api_key: Some(key.to_string()),
            timeout,
        })
        .unwrap(),
    )
}

fn scene() -> (Arc<LoadedImage>, (f64, f64)) {
    let (img, _, c) = blob_scene(160, 120);
    let pixels = DynamicImage::ImageRgb8(img).to_rgba8();
    (Arc::new(LoadedImage::from_pixels("scene.png", pixels)), c)
}

fn prompt(x: f64, y: f64) -> Prompt {
    Prompt {
        green: vec![Dot::new(x, y)],
        red: vec![],
    }
}

fn fast_policy() -> WorkerPolicy {
    WorkerPolicy {
        base_backoff: Duration::from_millis(50),
        auto_reinitialize: false,
        ..WorkerPolicy::default()
    }
}

/// Collects events until `stop` returns true for one (bounded, so a bug cannot hang CI).
async fn until(worker: &WorkerHandle, mut stop: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..3000 {
        while let Some(e) = worker.try_event() {
            let done = stop(&e);
            events.push(e);
            if done {
                return events;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the expected event never came; got {events:?}");
}

fn is_mask(e: &Event) -> bool {
    matches!(e, Event::Mask { .. })
}

fn failed(events: &[Event]) -> Option<&EngineError> {
    events.iter().find_map(|e| match e {
        Event::Failed { error, .. } => Some(error),
        _ => None,
    })
}

fn start_worker(engine: Arc<dyn Engine>, policy: WorkerPolicy) -> WorkerHandle {
    worker::spawn_on_current(engine, policy, Arc::new(|| {}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_401_and_never_appears_in_messages() {
    let seen = Seen::default();
    let config = ServeConfig {
        keys: KeyPolicy::Keys(vec!["the-real-key".into()]),
        faults: Some(hook(&seen, |_, _, _| None)),
        ..Default::default()
    };
    let server = serve(config, StoreConfig::default()).await;
    let w = start_worker(
        remote(&server.url(), KEY, Duration::from_secs(10)),
        fast_policy(),
    );
    open_and_click(&w);
    let events = until(&w, |e| matches!(e, Event::Failed { .. })).await;
    let err = failed(&events).unwrap();
    assert!(matches!(err, EngineError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("key"), "{err}");
    for e in &events {
        assert!(!format!("{e:?}").contains(KEY), "the key leaked into {e:?}");
    }
    assert_eq!(seen.count(Route::Initialize), 1, "401 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_credits_is_402_without_retry() {
    let seen = Seen::default();
    let config = ServeConfig {
        credits: Some(0),
        faults: Some(hook(&seen, |_, _, _| None)),
        ..Default::default()
    };
    let server = serve(config, StoreConfig::default()).await;
    let w = start_worker(
        remote(&server.url(), KEY, Duration::from_secs(10)),
        fast_policy(),
    );
    open_and_click(&w);
    let events = until(&w, |e| matches!(e, Event::Failed { .. })).await;
    assert!(matches!(
        failed(&events).unwrap(),
        EngineError::InsufficientCredits(_)
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.count(Route::Initialize), 1, "402 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_reinitializes_with_consent_and_numbers_keep_increasing() {
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |_, _, _| None)),
        ..Default::default()
    };
    let store = StoreConfig {
        idle_ttl: Duration::from_millis(400),
        ..Default::default()
    };
    let server = serve(config, store).await;
    let w = start_worker(
        remote(&server.url(), KEY, Duration::from_secs(10)),
        fast_policy(),
    );
    let (x, y) = open_and_click(&w);
    until(&w, is_mask).await;
    tokio::time::sleep(Duration::from_millis(700)).await; // the session expires
    let newest = Prompt {
        green: vec![Dot::new(x, y)],
        red: vec![Dot::new(3.0, 3.0)],
    };
    w.send(Command::Prompt(newest.clone()));
    until(&w, |e| matches!(e, Event::SessionExpired { .. })).await;
    assert_eq!(
        seen.count(Route::Initialize),
        1,
        "no new credit spent without consent"
    );
    w.send(Command::Reinitialize);
    let events = until(&w, is_mask).await;
    let Some(Event::Mask {
        request_number,
        prompt: shown,
        ..
    }) = events.last()
    else {
        unreachable!()
    };
    assert_eq!(*shown, newest, "all dots are replayed");
    assert_eq!(*request_number, 3);
    assert_eq!(seen.count(Route::Initialize), 2);
    let numbers = seen.numbers();
    assert_eq!(
        numbers,
        vec![1, 2, 3],
        "request numbers increase across re-initialization"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_wait_for_retry_after_then_send_the_newest_prompt() {
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, _, nth| {
            (route == Route::Segment && nth == 1).then(|| Fault::Status {
                status: 429,
                detail: "Rate limit exceeded".into(),
                retry_after_s: Some(1),
            })
        })),
        ..Default::default()
    };
    let server = serve(config, StoreConfig::default()).await;
    let w = start_worker(
        remote(&server.url(), KEY, Duration::from_secs(10)),
        fast_policy(),
    );
    let (x, y) = open_and_click(&w);
    let events = until(&w, |e| matches!(e, Event::Retrying { .. })).await;
    let Some(Event::Retrying { after, .. }) = events.last() else {
        unreachable!()
    };
    assert_eq!(*after, Duration::from_secs(1), "Retry-After is honoured");
    // The user keeps clicking during the pause: only the newest prompt goes out after it.
    let newer = prompt(x + 2.0, y);
    let newest = prompt(x + 4.0, y);
    w.send(Command::Prompt(newer));
    w.send(Command::Prompt(newest.clone()));
    let events = until(&w, is_mask).await;
    let Some(Event::Mask { prompt: shown, .. }) = events.last() else {
        unreachable!()
    };
    assert_eq!(*shown, newest);
    assert_eq!(
        seen.count(Route::Segment),
        2,
        "one rejected call, then one with the newest dots"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_timeouts_and_dropped_connections_are_retried() {
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, _, nth| match (route, nth) {
            (Route::Initialize, 1) => Some(Fault::Status {
                status: 503,
                detail: "busy".into(),
                retry_after_s: None,
            }),
            (Route::Segment, 1) => Some(Fault::Delay(Duration::from_secs(3))), // times out
            (Route::Segment, 2) => Some(Fault::DropConnection),
            (Route::Output, 1) => Some(Fault::Status {
                status: 502,
                detail: "bad gateway".into(),
                retry_after_s: None,
            }),
            _ => None,
        })),
        ..Default::default()
    };
    let server = serve(config, StoreConfig::default()).await;
    let policy = WorkerPolicy {
        max_retries: 4,
        ..fast_policy()
    };
    let w = start_worker(
        remote(&server.url(), KEY, Duration::from_millis(800)),
        policy,
    );
    open_and_click(&w);
    let events = until(&w, is_mask).await;
    let retries = events
        .iter()
        .filter(|e| matches!(e, Event::Retrying { .. }))
        .count();
    assert_eq!(
        retries, 4,
        "503 on initialize, a timeout, a dropped connection, a 502 download"
    );
    assert!(failed(&events).is_none());
    let numbers = seen.numbers();
    assert!(numbers.windows(2).all(|p| p[0] < p[1]), "{numbers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_and_malformed_answers_are_clear_errors() {
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, _, _| {
            (route == Route::Segment).then(|| Fault::Status {
                status: 500,
                detail: "down".into(),
                retry_after_s: None,
            })
        })),
        ..Default::default()
    };
    let server = serve(config, StoreConfig::default()).await;
    let w = start_worker(
        remote(&server.url(), KEY, Duration::from_secs(5)),
        fast_policy(),
    );
    let (img, (x, y)) = scene();
    w.send(Command::Open(img.clone()));
    w.send(Command::Prompt(prompt(x, y)));
    let events = until(&w, |e| matches!(e, Event::Failed { .. })).await;
    assert!(matches!(
        failed(&events).unwrap(),
        EngineError::Transport(_)
    ));
    assert_eq!(
        seen.count(Route::Segment),
        1 + WorkerPolicy::default().max_retries as usize
    );
    server.shutdown().await;

    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, _, _| {
            (route == Route::Segment).then_some(Fault::Malformed)
        })),
        ..Default::default()
    };
    let server = serve(config, StoreConfig::default()).await;
    let w = start_worker(
        remote(&server.url(), KEY, Duration::from_secs(5)),
        fast_policy(),
    );
    w.send(Command::Open(img));
    w.send(Command::Prompt(prompt(x, y)));
    let events = until(&w, |e| matches!(e, Event::Failed { .. })).await;
    let err = failed(&events).unwrap();
    assert!(matches!(err, EngineError::Protocol(_)), "{err:?}");
    assert!(err.to_string().contains("unexpected response"), "{err}");
    assert_eq!(
        seen.count(Route::Segment),
        1,
        "a malformed answer is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_response_arriving_late_never_replaces_a_newer_one() {
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, n, _| {
            (route == Route::Segment && n == Some(1))
                .then_some(Fault::Delay(Duration::from_millis(1200)))
        })),
        ..Default::default()
    };
    let server = serve(config, StoreConfig::default()).await;
    let w = start_worker(
        remote(&server.url(), KEY, Duration::from_secs(10)),
        fast_policy(),
    );
    let (img, (x, y)) = scene();
    w.send(Command::Open(img));
    until(&w, |e| matches!(e, Event::Ready { .. })).await;
    w.send(Command::Prompt(prompt(x, y)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = prompt(x + 3.0, y);
    w.send(Command::Prompt(second.clone()));
    let events = until(&w, is_mask).await;
    let Some(Event::Mask { request_number, .. }) = events.last() else {
        unreachable!()
    };
    assert_eq!(*request_number, 2);
    // Request 1 completes later; wait until the server has answered it, then check.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    while let Some(e) = w.try_event() {
        if let Event::Mask { request_number, .. } = e {
            panic!("a stale result (request {request_number}) was delivered after request 2");
        }
    }
    assert_eq!(seen.numbers().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_image_cancels_its_calls() {
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, _, _| {
            (route == Route::Segment).then_some(Fault::Delay(Duration::from_millis(800)))
        })),
        ..Default::default()
    };
    let server = serve(config, StoreConfig::default()).await;
    let w = start_worker(
        remote(&server.url(), KEY, Duration::from_secs(10)),
        fast_policy(),
    );
    open_and_click(&w);
    until(&w, |e| matches!(e, Event::Busy { busy: true, .. })).await;
    until(&w, |e| matches!(e, Event::Ready { .. })).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.send(Command::Close);
    until(&w, |e| matches!(e, Event::Busy { busy: false, .. })).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    while let Some(e) = w.try_event() {
        if let Event::Mask { request_number, .. } = e {
            panic!("cancelled request {request_number} still delivered a mask");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_reaches_an_output_url_on_another_host() {
    // A second listener, standing in for a CDN: records headers, then relays the PNG.
    let recorded: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let cdn = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cdn_url = format!("http://{}", cdn.local_addr().unwrap());
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api_listener.local_addr().unwrap();
    drop(api_listener);
    let rec = recorded.clone();
    let relay = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let rec = rec.clone();
        async move {
            rec.lock().unwrap().push(req.headers().clone());
            let url = format!("http://{api_addr}{}", req.uri().path());
            let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
            ([(http::header::CONTENT_TYPE, "image/png")], bytes)
        }
    });
    tokio::spawn(async move { axum::serve(cdn, relay).await.unwrap() });

    let seen = Seen::default();
    let config = ServeConfig {
        public_url: Some(cdn_url.clone()),
        keys: KeyPolicy::Keys(vec![KEY.into()]),
        faults: Some(hook(&seen, |_, _, _| None)),
        ..Default::default()
    };
    aicut::engine::remote::install_crypto_provider();
    let engine = Arc::new(builtin::engine(StoreConfig::default()));
    let server = server::spawn(api_addr, engine, config).await.unwrap();
    let client = remote(&server.url(), KEY, Duration::from_secs(10));
    let (img, (x, y)) = scene();
    let session = client.initialize(img).await.unwrap();
    let mask = client.segment(&session, &prompt(x, y), 1).await.unwrap();
    assert_eq!(mask.dimensions(), (160, 120));
    assert_eq!(mask.get_pixel(x as u32, y as u32).0[0], 255);

    let recorded = recorded.lock().unwrap();
    assert_eq!(
        recorded.len(),
        1,
        "the output was fetched from the other host"
    );
    for headers in recorded.iter() {
        assert!(
            headers.get(http::header::AUTHORIZATION).is_none(),
            "the key reached the CDN"
        );
        assert!(!format!("{headers:?}").contains(KEY));
    }
    let api_saw_key =
        seen.0.lock().unwrap().iter().all(|c| {
            c.route == Route::Output || c.headers.get(http::header::AUTHORIZATION).is_some()
        });
    assert!(api_saw_key, "the API itself did receive the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reoriented_images_are_uploaded_as_the_pixels_the_user_sees() {
    let server = serve(ServeConfig::default(), StoreConfig::default()).await;
    // A JPEG whose EXIF says "rotate 90": the service must see the turned 120x160 grid.
    let (img, _, _) = blob_scene(160, 120);
    let stored = image::imageops::rotate270(&img);
    let mut bytes = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    let exif = exif_with_orientation(6);
    use image::ImageEncoder;
    enc.set_exif_metadata(exif).unwrap();
    enc.write_image(
        stored.as_raw(),
        stored.width(),
        stored.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let loaded = aicut::imageio::decode_bytes(bytes, "turned.jpg", &Default::default()).unwrap();
    assert!(loaded.reoriented);
    assert_eq!((loaded.width(), loaded.height()), (160, 120));
    let (upload, name, mime) = loaded.upload_bytes().unwrap();
    assert_eq!(
        (name.as_str(), mime),
        ("turned.png", "image/png"),
        "lossless PNG of the oriented pixels"
    );
    let sent = image::load_from_memory(&upload).unwrap();
    assert_eq!((sent.width(), sent.height()), (160, 120));

    let client = remote(&server.url(), KEY, Duration::from_secs(10));
    let session = client.initialize(Arc::new(loaded)).await.unwrap();
    // A dot valid only in the oriented grid (x >= 120) is accepted by the server.
    let mask = client
        .segment(&session, &prompt(150.0, 10.0), 1)
        .await
        .unwrap();
    assert_eq!(mask.dimensions(), (160, 120));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_clicks_coalesces_into_few_calls_ending_with_the_newest() {
    // Every segment call takes 300 ms on the server; count how many overlap.
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, _, _| {
            (route == Route::Segment).then_some(Fault::Delay(Duration::from_millis(300)))
        })),
        ..Default::default()
    };
    let server = serve(config, StoreConfig::default()).await;
    let counting = CountingEngine {
        inner: remote(&server.url(), KEY, Duration::from_secs(10)),
        active: active.clone(),
        peak: peak.clone(),
    };
    let w = start_worker(Arc::new(counting), fast_policy());
    let (img, (x, y)) = scene();
    w.send(Command::Open(img));
    until(&w, |e| matches!(e, Event::Ready { .. })).await;
    let mut last = prompt(x, y);
    for i in 0..10 {
        last = prompt(x + i as f64, y);
        w.send(Command::Prompt(last.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut shown = None;
    while shown.as_ref() != Some(&last) {
        let events = until(&w, is_mask).await;
        if let Some(Event::Mask { prompt, .. }) = events.last() {
            shown = Some(prompt.clone());
        }
    }
    let calls = seen.count(Route::Segment);
    assert!(calls <= 4, "10 clicks in 200 ms became {calls} calls");
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        peak <= WorkerPolicy::default().max_in_flight,
        "{peak} calls in flight at once"
    );
}

/// Wraps an engine and records how many segment calls run at once.
struct CountingEngine {
    inner: Arc<dyn Engine>,
    active: Arc<std::sync::atomic::AtomicUsize>,
    peak: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl Engine for CountingEngine {
    fn name(&self) -> String {
        self.inner.name()
    }
    async fn initialize(
        &self,
        image: Arc<LoadedImage>,
    ) -> Result<aicut::engine::SessionId, EngineError> {
        self.inner.initialize(image).await
    }
    async fn segment(
        &self,
        session: &aicut::engine::SessionId,
        prompt: &Prompt,
        n: u64,
    ) -> Result<aicut::engine::AlphaMask, EngineError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.active.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        let r = self.inner.segment(session, prompt, n).await;
        self.active.fetch_sub(1, SeqCst);
        r
    }
}
