//! Results and sessions: latest wins, an expired session, a refused key, the SAM engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aicut::app::{Options, SessionState};
use aicut::engine::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use aicut::imageio::LoadedImage;
use aicut::worker::WorkerPolicy;
use egui::{Modifiers, PointerButton};
use egui_kittest::kittest::Queryable;

use crate::common;
use crate::support::*;
use crate::wrapped::{Hooks, Wrapped};

/// The built-in engine, but request 1 returns only after request 2 has returned.
struct LateFirst {
    second_done: tokio::sync::Semaphore,
    started: AtomicU64,
    first_done: AtomicBool,
}

#[async_trait::async_trait]
impl Hooks for LateFirst {
    fn name(&self, _inner: &Arc<dyn Engine>) -> String {
        "late-first".into()
    }
    async fn segment(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<AlphaMask, EngineError> {
        self.started.fetch_max(request_number, Ordering::SeqCst);
        if request_number == 1 {
            let _permit = self.second_done.acquire().await;
            let r = inner.segment(session, prompt, request_number).await;
            self.first_done.store(true, Ordering::SeqCst);
            r
        } else {
            let r = inner.segment(session, prompt, request_number).await;
            if request_number == 2 {
                self.second_done.add_permits(1);
            }
            r
        }
    }
}

#[test]
fn an_older_result_arriving_after_a_newer_one_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scene(dir.path(), "scene.png", 240, 180);
    let engine = Wrapped::builtin(LateFirst {
        second_done: tokio::sync::Semaphore::new(0),
        started: AtomicU64::new(0),
        first_done: AtomicBool::new(false),
    });
    let mut h = harness(1.0, options(None, Some(engine.clone())));
    open(&mut h, &path);
    wait_ready(&mut h);
    let p = pixel_centre(&h, 120, 90);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "request 1 to start", |_| {
        engine.started.load(Ordering::SeqCst) >= 1
    });
    let p = pixel_centre(&h, 110, 95);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "request 1 to come back late", |_| {
        engine.first_done.load(Ordering::SeqCst)
    });
    wait_until(&mut h, "the overlay of request 2", |a| {
        a.overlay_request() == Some(2)
    });
    // The worker reports "not busy" only after it has dealt with request 1's late
    // result, so any mask it let through has been taken in by now.
    wait_until(&mut h, "the worker to settle", |a| !a.is_busy());
    for _ in 0..20 {
        h.step();
    }
    let (n, _, prompt) = h.state().shown_mask().expect("a mask is shown");
    assert_eq!(n, 2);
    assert_eq!(prompt.green.len(), 2, "the shown mask answers both dots");
    assert_eq!(h.state().overlay_request(), Some(2));
}

/// The built-in engine, whose first segment call finds the session expired (404), or
/// whose initialize is refused (401).
struct Flaky {
    expire_next: AtomicBool,
    refuse_init: bool,
    inits: AtomicU64,
}

impl Flaky {
    fn new(expire_next: bool, refuse_init: bool) -> Arc<Wrapped<Self>> {
        Wrapped::builtin(Flaky {
            expire_next: AtomicBool::new(expire_next),
            refuse_init,
            inits: AtomicU64::new(0),
        })
    }
}

#[async_trait::async_trait]
impl Hooks for Flaky {
    fn name(&self, _inner: &Arc<dyn Engine>) -> String {
        "flaky".into()
    }
    async fn initialize(
        &self,
        inner: &Arc<dyn Engine>,
        image: Arc<LoadedImage>,
    ) -> Result<SessionId, EngineError> {
        self.inits.fetch_add(1, Ordering::SeqCst);
        if self.refuse_init {
            return Err(EngineError::Unauthorized("invalid key".into()));
        }
        inner.initialize(image).await
    }
    async fn segment(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<AlphaMask, EngineError> {
        if self.expire_next.swap(false, Ordering::SeqCst) {
            return Err(EngineError::SessionNotFound("expired".into()));
        }
        inner.segment(session, prompt, request_number).await
    }
}

fn api_like(engine: Arc<dyn Engine>) -> Options {
    let mut o = options(None, None);
    o.engine = Some((
        engine,
        WorkerPolicy {
            auto_reinitialize: false,
            ..WorkerPolicy::default()
        },
    ));
    o
}

#[test]
fn an_expired_session_offers_a_new_one_and_keeps_the_dots() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scene(dir.path(), "scene.png", 240, 180);
    let engine = Flaky::new(true, false);
    let mut h = harness(1.0, api_like(engine.clone()));
    open(&mut h, &path);
    wait_ready(&mut h);
    let p = pixel_centre(&h, 120, 90);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "the expiry", |a| {
        matches!(a.session_state(), SessionState::Expired)
    });
    assert!(h.state().messages().iter().any(|m| m.contains("expired")));
    assert_eq!(h.state().dots().len(), 1, "the dots are kept");
    assert!(h.state().shown_mask().is_none());
    assert_eq!(
        engine.inits.load(Ordering::SeqCst),
        1,
        "no new session without consent"
    );
    h.get_by_label("Start a new session (costs 1 credit)")
        .click();
    wait_until(&mut h, "a mask from the new session", |a| {
        a.shown_mask().is_some()
    });
    assert_eq!(engine.inits.load(Ordering::SeqCst), 2);
    assert_eq!(h.state().shown_mask().unwrap().2.green.len(), 1);
}

#[test]
fn a_refused_key_says_what_to_do_and_the_app_goes_on() {
    let (_dir, _path, mut h) = opened_scene(1.0, api_like(Flaky::new(false, true)), 240, 180);
    wait_until(&mut h, "the failure", |a| {
        matches!(a.session_state(), SessionState::Failed(_))
    });
    let messages = h.state().messages();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("API key") && m.contains("Settings")),
        "{messages:?}"
    );
    // The image stays open and dots can still be placed.
    let p = pixel_centre(&h, 30, 30);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    assert_eq!(h.state().dots().len(), 1);
    h.get_by_label("Open Settings").click();
    for _ in 0..5 {
        h.step();
    }
    assert!(
        h.query_by_label("Apply").is_some(),
        "the settings window opened"
    );
}

#[test]
fn the_sam_engine_loads_in_the_background_and_a_bad_model_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scene(dir.path(), "scene.png", 160, 120);

    // A model file that does not exist: the app reports it and keeps the image.
    let missing =
        aicut::engine::sam::LazySamEngine::new(dir.path().join("nope.pt"), Default::default());
    let mut h = harness(1.0, options(None, Some(Arc::new(missing))));
    open(&mut h, &path);
    wait_until(&mut h, "the load error", |a| {
        a.messages()
            .iter()
            .any(|m| m.contains("cannot load the SAM model"))
    });
    assert!(h.state().image().is_some());

    // A real (randomly initialised) MobileSAM checkpoint: a click gets a mask.
    let model = dir.path().join("mobile_sam.safetensors");
    common::write_random_mobile_sam(&model);
    let sam = aicut::engine::sam::LazySamEngine::new(model, Default::default()).without_cache();
    let mut h = harness(1.0, options(None, Some(Arc::new(sam))));
    open(&mut h, &path);
    // While the encoder runs (seconds here), the status bar shows its progress.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut shown = false;
    while !matches!(h.state().session_state(), SessionState::Ready) {
        assert!(
            std::time::Instant::now() < deadline,
            "the session never got ready"
        );
        h.step();
        shown |= h.query_by_label_contains("Encoding the image").is_some();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(shown, "the status bar showed the encoder's progress");
    wait_ready(&mut h);
    assert_eq!(h.state().encode_progress(), None, "no progress once ready");
    let p = pixel_centre(&h, 80, 60);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "the SAM overlay", |a| {
        a.overlay_request() == Some(1)
    });
    let (_, mask, _) = h.state().shown_mask().expect("a mask is shown");
    assert_eq!(mask.dimensions(), (160, 120));
}
