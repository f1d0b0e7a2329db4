//! What every editor test needs: test dialogs, a harness, generated scenes, clicks, and
//! waiting for background work.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use aicut::app::dots::{DotKind, PlacedDot};
use aicut::app::tasks::FileDialogs;
use aicut::app::{App, Options, SessionState};
use aicut::engine::Engine;
use aicut::worker::WorkerPolicy;
use egui::{Event, Modifiers, PointerButton, Pos2, pos2, vec2};
use egui_kittest::Harness;

use crate::common;

/// Dialogs that answer at once: "no dialog available" for open (as on a bare X server),
/// the file in `save_to` for save.
pub struct TestDialogs {
    pub save_to: Mutex<Option<PathBuf>>,
}

impl FileDialogs for TestDialogs {
    fn pick_image(&self, _start: Option<&Path>) -> Result<Option<PathBuf>, String> {
        Err("no desktop file dialog is available".into())
    }
    fn save_path(&self, _proposed: &Path) -> Result<Option<PathBuf>, String> {
        Ok(self.save_to.lock().unwrap().clone())
    }
    /// A batch's output folder: `save_to` too.
    fn pick_folder(&self, _title: &str, _start: Option<&Path>) -> Result<Option<PathBuf>, String> {
        Ok(self.save_to.lock().unwrap().clone())
    }
}

#[derive(Debug)]
pub struct Dropped(pub PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

pub fn options(save_to: Option<PathBuf>, engine: Option<Arc<dyn Engine>>) -> Options {
    options_with(
        Arc::new(TestDialogs {
            save_to: Mutex::new(save_to),
        }),
        engine,
    )
}

pub fn options_with(dialogs: Arc<TestDialogs>, engine: Option<Arc<dyn Engine>>) -> Options {
    Options {
        image: None,
        batch: Vec::new(),
        dialogs,
        engine: engine.map(|e| (e, WorkerPolicy::default())),
        key_file: None,
        clipboard: aicut::app::clipboard::system(),
        models: None,
    }
}

pub fn harness(ppp: f32, opts: Options) -> Harness<'static, App> {
    let h = Harness::builder()
        .with_size(vec2(1000.0, 700.0))
        .with_pixels_per_point(ppp)
        .with_accessibility_check(false)
        .build_eframe(move |cc| App::new(cc, opts));
    Wakes::watch(&h.ctx);
    h
}

/// Background work (decoding, the engine's worker, saving, dialogs) reports and then wakes
/// the UI with `request_repaint` from its own thread. Waiting for exactly those wakes,
/// rather than sleeping, lets a test step as soon as there is news and never sooner.
/// Repaints the UI thread asks for itself (spinners, timers) do not count.
struct Wakes {
    ui_thread: ThreadId,
    woken: Mutex<bool>,
    signal: Condvar,
}

impl Wakes {
    fn id() -> egui::Id {
        egui::Id::unique("editor-test-wakes")
    }

    fn watch(ctx: &egui::Context) {
        let wakes = Arc::new(Wakes {
            ui_thread: std::thread::current().id(),
            woken: Mutex::new(false),
            signal: Condvar::new(),
        });
        let seen = wakes.clone();
        // Called while the context is locked: touches only `Wakes`.
        ctx.set_repaint_observer(move |_| {
            if std::thread::current().id() != seen.ui_thread {
                *seen.woken.lock().unwrap() = true;
                seen.signal.notify_all();
            }
        });
        ctx.data_mut(|d| d.insert_temp(Self::id(), wakes));
    }

    fn of(h: &Harness<'static, App>) -> Arc<Wakes> {
        h.ctx
            .data(|d| d.get_temp::<Arc<Wakes>>(Self::id()))
            .expect("the harness watches wakes")
    }

    /// Returns once background work woke the UI since the last call, or after `most`.
    fn wait(&self, most: Duration) {
        let woken = self.woken.lock().unwrap();
        let (mut woken, _) = self
            .signal
            .wait_timeout_while(woken, most, |w| !*w)
            .unwrap();
        *woken = false;
    }
}

/// A generated photo: a red blob on a busy background, written as PNG.
pub fn write_scene(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let (img, _, _) = common::blob_scene(w, h);
    let path = dir.join(name);
    std::fs::write(&path, common::png_bytes(&img)).unwrap();
    path
}

/// Generated scenes named `names` in `dir`, by their canonical paths (as a batch lists them).
pub fn scenes(dir: &Path, names: &[&str], w: u32, h: u32) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| write_scene(dir, n, w, h).canonicalize().unwrap())
        .collect()
}

/// `path` is decoded and shown.
pub fn showing(a: &App, path: &Path) -> bool {
    !a.is_loading() && a.image().is_some_and(|i| i.path.as_deref() == Some(path))
}

/// Steps until `cond` holds, stepping again each time background work reports; fails
/// when it does not hold within a generous deadline.
pub fn wait_until(h: &mut Harness<'static, App>, what: &str, cond: impl Fn(&App) -> bool) {
    let wakes = Wakes::of(h);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        h.step();
        if cond(h.state()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; messages: {:?}",
            h.state().messages()
        );
        // A safety net only: every report wakes the UI, which ends the wait at once.
        wakes.wait(Duration::from_millis(100));
    }
}

pub fn drop_file(h: &mut Harness<'static, App>, path: &Path) {
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(path.to_path_buf())));
    h.step();
}

pub fn open(h: &mut Harness<'static, App>, path: &Path) {
    drop_file(h, path);
    wait_until(h, "the image to open", |a| {
        !a.is_loading() && a.image().is_some_and(|i| i.path.as_deref() == Some(path))
    });
    h.step();
}

/// A fresh scene of `w` x `h` pixels, opened in a new editor. Keep the folder alive.
pub fn opened_scene(
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

pub fn wait_ready(h: &mut Harness<'static, App>) {
    wait_until(h, "the engine session", |a| {
        matches!(a.session_state(), SessionState::Ready)
    });
}

pub fn click(
    h: &mut Harness<'static, App>,
    pos: Pos2,
    button: PointerButton,
    modifiers: Modifiers,
) {
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

/// A key going down (`pressed`) or up without modifiers, for keys that are held.
pub fn key_event(h: &mut Harness<'static, App>, key: egui::Key, pressed: bool) {
    h.event(Event::Key {
        key,
        physical_key: None,
        pressed,
        repeat: false,
        modifiers: Modifiers::NONE,
    });
}

/// Presses `button` at `from`, moves to `to` in `moves` even steps, releases, steps.
pub fn drag(
    h: &mut Harness<'static, App>,
    button: PointerButton,
    from: Pos2,
    to: Pos2,
    moves: u32,
) {
    h.event(Event::PointerMoved(from));
    h.event(Event::PointerButton {
        pos: from,
        button,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    for i in 1..=moves {
        h.event(Event::PointerMoved(
            from + (to - from) * (i as f32 / moves as f32),
        ));
    }
    h.event(Event::PointerButton {
        pos: to,
        button,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
}

/// Where the centre of image pixel (x, y) is on screen, computed here from the view's
/// origin and zoom, independently of the app's own conversion.
pub fn pixel_centre(h: &Harness<'static, App>, x: u32, y: u32) -> Pos2 {
    let v = h.state().view().expect("an image is open");
    let s = v.zoom / v.pixels_per_point;
    pos2(
        v.origin.x + (x as f32 + 0.5) * s,
        v.origin.y + (y as f32 + 0.5) * s,
    )
}

pub fn dot(kind: DotKind, x: u32, y: u32) -> PlacedDot {
    PlacedDot { kind, x, y }
}

/// The sizes of the uploaded textures called `name`.
pub fn texture_sizes(h: &Harness<'static, App>, name: &str) -> Vec<[usize; 2]> {
    let mgr = h.ctx.tex_manager();
    let mgr = mgr.read();
    mgr.allocated()
        .filter(|(_, meta)| meta.name == name)
        .map(|(_, meta)| meta.size)
        .collect()
}
