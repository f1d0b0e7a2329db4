//! The editor driven headless through egui_kittest: real `App`, real worker, built-in
//! engine, generated images. Tests wait for background work by stepping the harness in
//! bounded loops, never by sleeping for a fixed long time.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicut::app::state::{DotKind, PlacedDot};
use aicut::app::tasks::FileDialogs;
use aicut::app::{App, Options, SessionState, ViewMode};
use aicut::engine::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use aicut::imageio::LoadedImage;
use aicut::worker::WorkerPolicy;
use egui::{Event, Key, Modifiers, PointerButton, Pos2, pos2, vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// Dialogs that answer at once: "no dialog available" for open (as on a bare X server),
/// the file in `save_to` for save.
struct TestDialogs {
    save_to: Mutex<Option<PathBuf>>,
}

impl FileDialogs for TestDialogs {
    fn pick_image(&self, _start: Option<&Path>) -> Result<Option<PathBuf>, String> {
        Err("no desktop file dialog is available".into())
    }
    fn save_png(&self, _proposed: &Path) -> Result<Option<PathBuf>, String> {
        Ok(self.save_to.lock().unwrap().clone())
    }
}

#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn options(save_to: Option<PathBuf>, engine: Option<Arc<dyn Engine>>) -> Options {
    options_with(
        Arc::new(TestDialogs {
            save_to: Mutex::new(save_to),
        }),
        engine,
    )
}

fn options_with(dialogs: Arc<TestDialogs>, engine: Option<Arc<dyn Engine>>) -> Options {
    Options {
        image: None,
        dialogs,
        engine: engine.map(|e| (e, WorkerPolicy::default())),
        key_file: None,
    }
}

fn harness(ppp: f32, opts: Options) -> Harness<'static, App> {
    Harness::builder()
        .with_size(vec2(1000.0, 700.0))
        .with_pixels_per_point(ppp)
        .with_accessibility_check(false)
        .build_eframe(move |cc| App::new(cc, opts))
}

/// A generated photo: a red blob on a busy background, written as PNG.
fn write_scene(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let (img, _, _) = common::blob_scene(w, h);
    let path = dir.join(name);
    std::fs::write(&path, common::png_bytes(&img)).unwrap();
    path
}

/// Steps until `cond` holds; fails after a bounded number of frames.
fn wait_until(h: &mut Harness<'static, App>, what: &str, cond: impl Fn(&App) -> bool) {
    for _ in 0..4000 {
        h.step();
        if cond(h.state()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!(
        "gave up waiting for {what}; messages: {:?}",
        h.state().messages()
    );
}

fn drop_file(h: &mut Harness<'static, App>, path: &Path) {
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(path.to_path_buf())));
    h.step();
}

fn open(h: &mut Harness<'static, App>, path: &Path) {
    drop_file(h, path);
    wait_until(h, "the image to open", |a| {
        !a.is_loading() && a.image().is_some_and(|i| i.path.as_deref() == Some(path))
    });
    h.step();
}

/// A fresh scene of `w` x `h` pixels, opened in a new editor. Keep the folder alive.
fn opened_scene(
    ppp: f32,
    opts: Options,
    w: u32,
    h: u32,
) -> (tempfile::TempDir, PathBuf, Harness<'static, App>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scene(dir.path(), "scene.png", w, h);
    let mut harness = harness(ppp, opts);
    open(&mut harness, &path);
    (dir, path, harness)
}

fn wait_ready(h: &mut Harness<'static, App>) {
    wait_until(h, "the engine session", |a| {
        matches!(a.session_state(), SessionState::Ready)
    });
}

fn click(h: &mut Harness<'static, App>, pos: Pos2, button: PointerButton, modifiers: Modifiers) {
    h.event(Event::PointerMoved(pos));
    if modifiers != Modifiers::NONE {
        h.event(Event::ModifiersChanged(modifiers));
    }
    for pressed in [true, false] {
        h.event(Event::PointerButton {
            pos,
            button,
            pressed,
            modifiers,
        });
    }
    if modifiers != Modifiers::NONE {
        h.event(Event::ModifiersChanged(Modifiers::NONE));
    }
    h.step();
}

/// Where the centre of image pixel (x, y) is on screen, computed here from the view's
/// origin and zoom, independently of the app's own conversion.
fn pixel_centre(h: &Harness<'static, App>, x: u32, y: u32) -> Pos2 {
    let v = h.state().view().expect("an image is open");
    let s = v.zoom / v.pixels_per_point;
    pos2(
        v.origin.x + (x as f32 + 0.5) * s,
        v.origin.y + (y as f32 + 0.5) * s,
    )
}

fn dot(kind: DotKind, x: u32, y: u32) -> PlacedDot {
    PlacedDot { kind, x, y }
}

#[test]
fn clicks_land_on_image_pixels_at_zoom_1_and_after_pan_and_zoom_3() {
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    let v = h.state().view().unwrap();
    assert_eq!(v.zoom, 1.0);

    let p = pixel_centre(&h, 50, 40);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    let p = pixel_centre(&h, 200, 20);
    click(&mut h, p, PointerButton::Secondary, Modifiers::NONE);
    assert_eq!(
        h.state().dots(),
        &[dot(DotKind::Green, 50, 40), dot(DotKind::Red, 200, 20)]
    );
    // Outside the image: nothing.
    let outside = v.origin - vec2(10.0, 10.0);
    assert!(h.state().canvas_rect().contains(outside));
    click(&mut h, outside, PointerButton::Primary, Modifiers::NONE);
    assert_eq!(h.state().dots().len(), 2);

    // Pan with a middle drag, then zoom to 3x about a point.
    let start = v.origin + vec2(120.0, 90.0);
    h.event(Event::PointerMoved(start));
    h.event(Event::PointerButton {
        pos: start,
        button: PointerButton::Middle,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    for i in 1..=10 {
        h.event(Event::PointerMoved(
            start + vec2(4.0 * i as f32, 3.0 * i as f32),
        ));
    }
    let end = start + vec2(40.0, 30.0);
    h.event(Event::PointerButton {
        pos: end,
        button: PointerButton::Middle,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    let panned = h.state().view().unwrap();
    assert_eq!(panned.zoom, 1.0);
    assert!(
        (panned.origin - (v.origin + vec2(40.0, 30.0))).length() < 0.01,
        "a 40x30 point middle drag moves the image by as much: {:?} -> {:?}",
        v.origin,
        panned.origin
    );
    h.state_mut().zoom_about(end, 3.0);
    h.step();
    let z = h.state().view().unwrap();
    assert_eq!(z.zoom, 3.0);
    // The point under the anchor stays; the expected origin follows from that.
    let expected = end + (panned.origin - end) * 3.0;
    assert!((z.origin - expected).length() < 0.01);

    for (x, y, button, kind) in [
        (100, 77, PointerButton::Primary, DotKind::Green),
        (131, 95, PointerButton::Secondary, DotKind::Red),
    ] {
        let p = pixel_centre(&h, x, y);
        assert!(
            h.state().canvas_rect().contains(p),
            "({x},{y}) is on screen"
        );
        click(&mut h, p, button, Modifiers::NONE);
        assert_eq!(*h.state().dots().last().unwrap(), dot(kind, x, y));
        // The pixel's corners (just inside) land on the same pixel.
        let corner = p - vec2(1.4, 1.4);
        click(&mut h, corner, button, Modifiers::NONE);
        assert_eq!(*h.state().dots().last().unwrap(), dot(kind, x, y));
    }
}

#[test]
fn clicks_land_on_image_pixels_at_pixels_per_point_2() {
    let (_dir, _path, mut h) = opened_scene(2.0, options(None, None), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    let v = h.state().view().unwrap();
    assert_eq!(v.pixels_per_point, 2.0);
    assert_eq!(v.zoom, 1.0, "100 % is one image pixel per physical pixel");
    // At 100 % on a 2x screen one image pixel is half a point.
    let p = v.origin + vec2(61.0 * 0.5 + 0.25, 33.0 * 0.5 + 0.25);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    let p = pixel_centre(&h, 239, 179);
    click(&mut h, p, PointerButton::Secondary, Modifiers::NONE);
    assert_eq!(
        h.state().dots(),
        &[dot(DotKind::Green, 61, 33), dot(DotKind::Red, 239, 179)]
    );
}

#[test]
fn undo_redo_delete_and_drag_dots() {
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    for (x, y) in [(10, 10), (60, 60), (120, 100)] {
        let p = pixel_centre(&h, x, y);
        click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    }
    assert_eq!(h.state().dots().len(), 3);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(h.state().dots().len(), 2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(h.state().dots(), &[dot(DotKind::Green, 10, 10)]);
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    h.step();
    assert_eq!(h.state().dots().len(), 2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Y);
    h.step();
    assert_eq!(h.state().dots().len(), 3);

    // Alt+click on a dot deletes it; undo brings it back.
    let p = pixel_centre(&h, 60, 60) + vec2(2.0, -1.0);
    click(&mut h, p, PointerButton::Primary, Modifiers::ALT);
    assert_eq!(
        h.state().dots(),
        &[dot(DotKind::Green, 10, 10), dot(DotKind::Green, 120, 100)]
    );
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(h.state().dots().len(), 3);

    // Drag the dot at (10, 10) to (30, 25).
    let from = pixel_centre(&h, 10, 10);
    let to = pixel_centre(&h, 30, 25);
    h.event(Event::PointerMoved(from));
    h.event(Event::PointerButton {
        pos: from,
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    for i in 1..=8 {
        h.event(Event::PointerMoved(from + (to - from) * (i as f32 / 8.0)));
    }
    h.event(Event::PointerButton {
        pos: to,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    h.step();
    assert_eq!(h.state().dots()[0], dot(DotKind::Green, 30, 25));
    assert_eq!(h.state().dots().len(), 3, "a drag moves, it does not add");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(h.state().dots()[0], dot(DotKind::Green, 10, 10));
}

/// The built-in engine, but request 1 returns only after request 2 has returned.
struct LateFirst {
    inner: Arc<dyn Engine>,
    second_done: tokio::sync::Semaphore,
    started: AtomicU64,
    first_done: AtomicBool,
}

#[async_trait::async_trait]
impl Engine for LateFirst {
    fn name(&self) -> String {
        "late-first".into()
    }
    async fn initialize(&self, image: Arc<LoadedImage>) -> Result<SessionId, EngineError> {
        self.inner.initialize(image).await
    }
    async fn segment(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<AlphaMask, EngineError> {
        self.started.fetch_max(request_number, Ordering::SeqCst);
        if request_number == 1 {
            let _permit = self.second_done.acquire().await;
            let r = self.inner.segment(session, prompt, request_number).await;
            self.first_done.store(true, Ordering::SeqCst);
            r
        } else {
            let r = self.inner.segment(session, prompt, request_number).await;
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
    let engine = Arc::new(LateFirst {
        inner: Arc::new(aicut::engine::builtin::engine(Default::default())),
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
    for _ in 0..20 {
        h.step();
        std::thread::sleep(Duration::from_millis(2));
    }
    let (n, _, prompt) = h.state().shown_mask().expect("a mask is shown");
    assert_eq!(n, 2);
    assert_eq!(prompt.green.len(), 2, "the shown mask answers both dots");
    assert_eq!(h.state().overlay_request(), Some(2));
}

#[test]
fn save_writes_the_full_size_cutout_with_the_mask_as_alpha() {
    let dir = tempfile::tempdir().unwrap();
    // Larger than the (lowered) texture limit: shown downscaled, saved at full size.
    let path = write_scene(dir.path(), "big.png", 1400, 900);
    let out = dir.path().join("saved-cutout.png");
    let dialogs = Arc::new(TestDialogs {
        save_to: Mutex::new(Some(out.clone())),
    });
    let mut h = harness(1.0, options_with(dialogs.clone(), None));
    h.input_mut().max_texture_side = Some(1024);
    h.step();
    open(&mut h, &path);
    wait_ready(&mut h);
    let v = h.state().view().unwrap();
    assert!(v.zoom < 1.0, "fit shows the whole 1400x900 image");
    let p = pixel_centre(&h, 700, 450);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    assert_eq!(h.state().dots(), &[dot(DotKind::Green, 700, 450)]);
    let p = pixel_centre(&h, 20, 20);
    click(&mut h, p, PointerButton::Secondary, Modifiers::NONE);
    wait_until(&mut h, "a mask for both dots", |a| {
        a.shown_mask().is_some_and(|(_, _, p)| p.red.len() == 1)
    });
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    wait_until(&mut h, "the save", |a| a.last_saved().is_some());
    assert_eq!(h.state().last_saved(), Some(out.as_path()));
    let saved = image::open(&out).unwrap();
    assert_eq!(saved.color(), image::ColorType::Rgba8);
    let saved = saved.into_rgba8();
    assert_eq!(saved.dimensions(), (1400, 900));
    let (_, mask, _) = h.state().shown_mask().unwrap();
    assert_eq!(mask.dimensions(), (1400, 900));
    assert!(
        saved
            .pixels()
            .zip(mask.pixels())
            .all(|(s, m)| s.0[3] == m.0[0]),
        "alpha is the mask"
    );
    let selected = mask.pixels().filter(|m| m.0[0] >= 128).count();
    assert!(
        selected > 1000 && selected < 1400 * 900 / 2,
        "a real selection: {selected}"
    );
    assert!(h.state().messages().iter().any(|m| m.contains("Saved")));

    // Saving over the original is refused, and the original is untouched.
    let original = std::fs::read(&path).unwrap();
    *dialogs.save_to.lock().unwrap() = Some(path.clone());
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    wait_until(&mut h, "the refusal", |a| {
        !a.is_saving()
            && a.messages()
                .iter()
                .any(|m| m.contains("refusing to overwrite"))
    });
    assert_eq!(std::fs::read(&path).unwrap(), original);
}

#[test]
fn without_a_native_dialog_ctrl_o_offers_a_path_box() {
    let mut h = harness(1.0, options(None, None));
    assert!(h.state().path_entry().is_none());
    h.key_press_modifiers(Modifiers::COMMAND, Key::O);
    wait_until(&mut h, "the path box", |a| a.path_entry().is_some());
    assert!(!h.state().path_entry().unwrap().save);
}

#[test]
fn a_broken_file_shows_an_error_and_the_app_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"this is not a picture at all").unwrap();
    let mut h = harness(1.0, options(None, None));
    drop_file(&mut h, &broken);
    wait_until(&mut h, "the error message", |a| !a.is_loading());
    let messages = h.state().messages();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("broken.png") && m.contains("not an image")),
        "{messages:?}"
    );
    assert!(h.state().image().is_none());
    // Still alive: a good file opens afterwards.
    let good = write_scene(dir.path(), "good.png", 120, 90);
    open(&mut h, &good);
    assert_eq!(h.state().image().unwrap().width(), 120);
    assert_eq!(
        h.state().recent_files().len(),
        1,
        "only the good file is recent"
    );
}

#[test]
fn an_image_given_at_start_opens_and_v_switches_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scene(dir.path(), "start.png", 160, 120);
    let mut opts = options(None, None);
    opts.image = Some(path.clone());
    let mut h = harness(1.0, opts);
    wait_until(&mut h, "the image to open", |a| a.image().is_some());
    assert_eq!(
        h.state().image().unwrap().path.as_deref(),
        Some(path.as_path())
    );
    let before = h.state().view_mode();
    h.key_press(Key::V);
    h.step();
    assert_ne!(h.state().view_mode(), before);
}

/// The sizes of the uploaded textures called `name`.
fn texture_sizes(h: &Harness<'static, App>, name: &str) -> Vec<[usize; 2]> {
    let mgr = h.ctx.tex_manager();
    let mgr = mgr.read();
    mgr.allocated()
        .filter(|(_, meta)| meta.name == name)
        .map(|(_, meta)| meta.size)
        .collect()
}

#[test]
fn the_cutout_is_built_only_for_the_cutout_view_and_follows_the_newest_mask() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scene(dir.path(), "cut.png", 240, 180);
    let mut h = harness(1.0, options(None, None));
    open(&mut h, &path);
    wait_ready(&mut h);
    assert_eq!(h.state().view_mode(), ViewMode::Mask);
    let p = pixel_centre(&h, 120, 90);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "the selection overlay of request 1", |a| {
        a.overlay_request() == Some(1)
    });
    for _ in 0..10 {
        h.step();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        h.state().cutout_request(),
        None,
        "no cut-out picture is built while the selection view is shown"
    );
    assert!(texture_sizes(&h, "cutout").is_empty());

    // V: the cut-out view builds the cut-out for the shown mask, off the UI thread.
    h.key_press(Key::V);
    h.step();
    assert_eq!(h.state().view_mode(), ViewMode::Cutout);
    wait_until(&mut h, "the cut-out of request 1", |a| {
        a.cutout_request() == Some(1)
    });
    h.step();
    assert_eq!(texture_sizes(&h, "cutout"), vec![[240, 180]]);

    // A new dot in the cut-out view: the cut-out follows the newest mask, the stale
    // selection overlay is freed, and only one cut-out texture is kept.
    let p = pixel_centre(&h, 110, 95);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "the cut-out of request 2", |a| {
        a.shown_mask().is_some_and(|(n, _, _)| n == 2) && a.cutout_request() == Some(2)
    });
    h.step();
    assert_eq!(h.state().overlay_request(), None);
    assert_eq!(texture_sizes(&h, "cutout"), vec![[240, 180]]);

    // Back to the selection view (V twice): its overlay is rebuilt for the newest mask.
    h.key_press(Key::V);
    h.step();
    h.key_press(Key::V);
    h.step();
    assert_eq!(h.state().view_mode(), ViewMode::Mask);
    wait_until(&mut h, "the selection overlay of request 2", |a| {
        a.overlay_request() == Some(2)
    });
    h.step();
    assert_eq!(texture_sizes(&h, "selection"), vec![[240, 180]]);
    // The uploaded cut-out of the shown mask stays for a quick switch back; no other.
    assert_eq!(texture_sizes(&h, "cutout"), vec![[240, 180]]);
}

/// The built-in engine, whose first segment call finds the session expired (404), or
/// whose initialize is refused (401).
struct Flaky {
    inner: Arc<dyn Engine>,
    expire_next: AtomicBool,
    refuse_init: bool,
    inits: AtomicU64,
}

impl Flaky {
    fn new(expire_next: bool, refuse_init: bool) -> Arc<Self> {
        Arc::new(Flaky {
            inner: Arc::new(aicut::engine::builtin::engine(Default::default())),
            expire_next: AtomicBool::new(expire_next),
            refuse_init,
            inits: AtomicU64::new(0),
        })
    }
}

#[async_trait::async_trait]
impl Engine for Flaky {
    fn name(&self) -> String {
        "flaky".into()
    }
    async fn initialize(&self, image: Arc<LoadedImage>) -> Result<SessionId, EngineError> {
        self.inits.fetch_add(1, Ordering::SeqCst);
        if self.refuse_init {
            return Err(EngineError::Unauthorized("invalid key".into()));
        }
        self.inner.initialize(image).await
    }
    async fn segment(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<AlphaMask, EngineError> {
        if self.expire_next.swap(false, Ordering::SeqCst) {
            return Err(EngineError::SessionNotFound("expired".into()));
        }
        self.inner.segment(session, prompt, request_number).await
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
fn the_wheel_zooms_about_the_cursor() {
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    let before = h.state().view().unwrap();
    let anchor = pixel_centre(&h, 70, 50);
    h.event(Event::PointerMoved(anchor));
    h.event(Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: vec2(0.0, 120.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
        modifiers: Modifiers::NONE,
    });
    for _ in 0..30 {
        h.step();
    }
    let after = h.state().view().unwrap();
    assert!(
        after.zoom > before.zoom * 1.2,
        "{} -> {}",
        before.zoom,
        after.zoom
    );
    let under = |v: &aicut::app::view::View| v.screen_to_image(anchor);
    assert!((under(&after) - under(&before)).length() < 0.05);
    // Keyboard zoom out and "fit" also work.
    h.key_press(Key::Minus);
    h.step();
    assert!(h.state().view().unwrap().zoom < after.zoom);
    h.key_press(Key::F);
    h.step();
    h.step();
    let fit = h.state().view().unwrap();
    assert!(
        h.state()
            .canvas_rect()
            .contains_rect(fit.image_rect([240, 180]))
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
    let sam = aicut::engine::sam::LazySamEngine::new(model, Default::default());
    let mut h = harness(1.0, options(None, Some(Arc::new(sam))));
    open(&mut h, &path);
    wait_ready(&mut h);
    let p = pixel_centre(&h, 80, 60);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "the SAM overlay", |a| {
        a.overlay_request() == Some(1)
    });
    let (_, mask, _) = h.state().shown_mask().expect("a mask is shown");
    assert_eq!(mask.dimensions(), (160, 120));
}
