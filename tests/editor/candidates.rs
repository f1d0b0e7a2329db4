//! Candidates: Tab switches among the engine's answers for the dots, without a click.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aicut::engine::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use aicut::imageio::LoadedImage;
use egui::{Key, Modifiers, PointerButton};
use egui_kittest::kittest::Queryable;

use crate::support::*;
use crate::wrapped::{Hooks, Wrapped};

/// The built-in engine's answer first, then two others: the left half and the top half
/// of the image. Records the choice made.
struct ThreeAnswers {
    size: Mutex<(u32, u32)>,
    chosen: AtomicUsize,
}

fn half(w: u32, h: u32, left: bool) -> AlphaMask {
    AlphaMask::from_fn(w, h, |x, y| {
        let inside = if left { x < w / 2 } else { y < h / 2 };
        image::Luma([if inside { 255 } else { 0 }])
    })
}

#[async_trait::async_trait]
impl Hooks for ThreeAnswers {
    fn name(&self, _inner: &Arc<dyn Engine>) -> String {
        "three answers".into()
    }
    async fn initialize(
        &self,
        inner: &Arc<dyn Engine>,
        image: Arc<LoadedImage>,
    ) -> Result<SessionId, EngineError> {
        *self.size.lock().unwrap() = (image.width(), image.height());
        inner.initialize(image).await
    }
    async fn candidates(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        n: u64,
    ) -> Result<Vec<AlphaMask>, EngineError> {
        let (w, h) = *self.size.lock().unwrap();
        let first = inner.segment(session, prompt, n).await?;
        Ok(vec![first, half(w, h, true), half(w, h, false)])
    }
    async fn choose(
        &self,
        _inner: &Arc<dyn Engine>,
        _s: &SessionId,
        _p: &Prompt,
        index: usize,
    ) -> Result<(), EngineError> {
        self.chosen.store(index, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn tab_switches_the_overlay_among_the_engines_answers_without_a_click() {
    let engine = Wrapped::builtin(ThreeAnswers {
        size: Mutex::new((0, 0)),
        chosen: AtomicUsize::new(usize::MAX),
    });
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, Some(engine.clone())), 240, 180);
    wait_ready(&mut h);
    let p = pixel_centre(&h, 120, 90);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "the first answer's overlay", |a| {
        a.overlay_request() == Some(1) && !a.is_busy()
    });
    let first = h.state().shown_mask().unwrap().1.clone();
    let first_serial = h.state().overlay_serial().unwrap();
    assert_eq!(h.state().candidate(), None, "nothing asked yet");

    h.key_press(Key::Tab);
    h.step();
    wait_until(&mut h, "the second answer", |a| {
        a.candidate() == Some((1, 3))
    });
    let shown = h.state().shown_mask().unwrap().1.clone();
    assert_eq!(*shown, half(240, 180, true));
    assert_ne!(*shown, *first);
    wait_until(&mut h, "its overlay", |a| {
        a.overlay_serial().is_some_and(|s| s > first_serial)
    });
    wait_until(&mut h, "the engine to be told", |_| {
        engine.chosen.load(Ordering::SeqCst) == 1
    });
    assert_eq!(h.state().dots().len(), 1, "no click, no dot");

    h.key_press(Key::Tab);
    h.step();
    assert_eq!(h.state().candidate(), Some((2, 3)));
    assert_eq!(
        *h.state().shown_mask().unwrap().1.clone(),
        half(240, 180, false)
    );
    h.key_press(Key::Tab);
    h.step();
    assert_eq!(h.state().candidate(), Some((0, 3)), "round to the first");
    assert_eq!(*h.state().shown_mask().unwrap().1.clone(), *first);
    h.key_press_modifiers(Modifiers::SHIFT, Key::Tab);
    h.step();
    assert_eq!(h.state().candidate(), Some((2, 3)), "Shift+Tab goes back");

    // Their thumbnails, built off the UI thread: a click on one shows it, adding no dot.
    wait_until(&mut h, "the thumbnails", |a| a.candidate_thumbnails() == 3);
    assert_eq!(texture_sizes(&h, "candidate"), vec![[80, 60]; 3]);
    h.step();
    h.get_by_label("Answer 1").click();
    h.step();
    assert_eq!(h.state().candidate(), Some((0, 3)));
    assert_eq!(*h.state().shown_mask().unwrap().1.clone(), *first);
    assert_eq!(
        h.state().dots().len(),
        1,
        "a thumbnail is not a click on the photo"
    );

    // A new dot: the answers were for the old dots, so they are gone.
    let q = pixel_centre(&h, 100, 95);
    click(&mut h, q, PointerButton::Primary, Modifiers::NONE);
    assert_eq!(h.state().candidate(), None);
}
