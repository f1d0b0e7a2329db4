//! Long work shows a row with Cancel, and Cancel (or Esc) stops it and leaves the
//! document as it was: a decode that never ends (a named pipe nobody writes yet), an
//! engine whose preparation never ends, and a batch save cancelled before it writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aicut::app::dots::DotKind;
use aicut::app::{App, SessionState};
use aicut::engine::{Engine, EngineError, SessionId};
use aicut::imageio::LoadedImage;
use egui::{Key, Modifiers, PointerButton};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::support::*;
use crate::wrapped::{Hooks, Wrapped};

/// Steps until a label containing `text` is on screen (rows show after a short delay).
fn wait_for_label(h: &mut Harness<'static, App>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.query_by_label_contains(text).is_none() {
        assert!(Instant::now() < deadline, "no label with {text:?}");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn cancelling_an_open_keeps_the_shown_image_and_drops_the_late_decode() {
    let (dir, path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    wait_ready(&mut h);
    let p = pixel_centre(&h, 120, 90);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    // A named pipe: reading it waits until someone writes, like a decode that takes long.
    let pipe = dir.path().join("slow.png");
    let made = std::process::Command::new("mkfifo").arg(&pipe).status();
    assert!(made.unwrap().success());
    drop_file(&mut h, &pipe);
    assert!(h.state().is_loading());
    wait_for_label(&mut h, "Opening slow.png");
    assert!(h.query_by_label("Cancel").is_some(), "a Cancel button");

    h.key_press(Key::Escape);
    h.step();
    assert!(!h.state().is_loading(), "Esc cancelled the open");
    assert_eq!(
        h.state().image().unwrap().path.as_deref(),
        Some(path.as_path())
    );
    assert_eq!(h.state().dots(), &[dot(DotKind::Green, 120, 90)]);
    assert!(h.query_by_label_contains("Opening slow.png").is_none());

    // The abandoned decode now ends (with bytes that are no image): nothing of it shows.
    std::fs::write(&pipe, b"not an image").unwrap();
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let messages = h.state().messages();
    assert!(
        !messages.iter().any(|m| m.contains("slow.png")),
        "{messages:?}"
    );
    assert_eq!(
        h.state().image().unwrap().path.as_deref(),
        Some(path.as_path())
    );
}

/// The first initialize never ends (until dropped); later ones are the built-in engine's.
struct StuckFirst {
    started: AtomicUsize,
    dropped: Arc<AtomicUsize>,
}

/// Counts a future dropped before it finished.
struct OnDrop(Arc<AtomicUsize>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Hooks for StuckFirst {
    async fn initialize(
        &self,
        inner: &Arc<dyn Engine>,
        image: Arc<LoadedImage>,
    ) -> Result<SessionId, EngineError> {
        if self.started.fetch_add(1, Ordering::SeqCst) == 0 {
            let _guard = OnDrop(self.dropped.clone());
            std::future::pending::<()>().await;
        }
        inner.initialize(image).await
    }
}

#[test]
fn cancelling_the_engines_preparation_stops_it_keeps_the_dots_and_retry_prepares_again() {
    let engine = Wrapped::builtin(StuckFirst {
        started: AtomicUsize::new(0),
        dropped: Arc::new(AtomicUsize::new(0)),
    });
    let (_dir, path, mut h) = opened_scene(1.0, options(None, Some(engine.clone())), 240, 180);
    let p = pixel_centre(&h, 100, 80);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_for_label(&mut h, "Preparing the image");
    h.get_by_label("Cancel").click();
    h.step();
    h.step();
    assert!(matches!(h.state().session_state(), SessionState::Cancelled));
    wait_until(&mut h, "the stuck initialize to be dropped", |_| {
        engine.dropped.load(Ordering::SeqCst) == 1
    });
    assert_eq!(
        h.state().image().unwrap().path.as_deref(),
        Some(path.as_path())
    );
    assert_eq!(h.state().dots(), &[dot(DotKind::Green, 100, 80)]);
    assert!(h.query_by_label_contains("Preparing the image").is_none());

    h.get_by_label("Retry").click();
    wait_ready(&mut h);
    assert_eq!(engine.started.load(Ordering::SeqCst), 2);
    wait_until(&mut h, "the kept dot's result", |a| {
        a.shown_mask().is_some()
    });
}

#[test]
fn a_cancelled_batch_save_writes_nothing_and_does_not_count_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // Big enough that encoding the cut-out outlasts a frame by far.
    let paths: Vec<_> = ["a.png", "b.png"]
        .iter()
        .map(|n| {
            write_scene(dir.path(), n, 2400, 1600)
                .canonicalize()
                .unwrap()
        })
        .collect();
    let mut opts = options(Some(out.path().to_path_buf()), None);
    opts.batch = paths.clone();
    let mut h = harness(1.0, opts);
    wait_until(&mut h, "the batch's first image", |a| showing(a, &paths[0]));
    wait_ready(&mut h);
    let p = pixel_centre(&h, 1200, 800);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "a result", |a| a.shown_mask().is_some());
    // The first save asks for the folder, then writes.
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    let first = out.path().join("a-cutout.png");
    wait_until(&mut h, "the first cut-out", |a| {
        a.last_saved() == Some(first.as_path())
    });
    assert_eq!(h.state().batch().unwrap().2, 1);

    h.key_press(Key::PageDown);
    wait_until(&mut h, "the second image", |a| showing(a, &paths[1]));
    wait_ready(&mut h);
    let p = pixel_centre(&h, 1200, 800);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "a result", |a| a.shown_mask().is_some());
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.step();
    assert!(
        h.state().is_saving(),
        "the folder is known: the save starts at once"
    );
    h.key_press(Key::Escape);
    wait_until(&mut h, "the save to stop", |a| !a.is_saving());
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["a-cutout.png"],
        "no b-cutout.png, no temporary file"
    );
    assert_eq!(h.state().batch().unwrap().2, 1, "still one done");
    let messages = h.state().messages();
    assert!(
        messages.iter().any(|m| m.contains("Save cancelled")),
        "{messages:?}"
    );
}
