//! The hover preview: the pointer resting over the photo shows what a click there would
//! select, without a click, never as the result, and gone once the pointer leaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aicut::engine::{AlphaMask, Dot, Engine, EngineError, Prompt, SessionId};
use egui::{Event, Key, Modifiers, PointerButton, vec2};
use egui_kittest::kittest::Queryable;

use crate::support::*;
use crate::wrapped::{Hooks, Wrapped};

/// The built-in engine, counting its segment calls.
struct Counting {
    calls: AtomicU64,
}

#[async_trait::async_trait]
impl Hooks for Counting {
    fn name(&self, _inner: &Arc<dyn Engine>) -> String {
        "counting".into()
    }
    async fn segment(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        n: u64,
    ) -> Result<AlphaMask, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        inner.segment(session, prompt, n).await
    }
}

fn counting() -> Arc<Wrapped<Counting>> {
    Wrapped::builtin(Counting {
        calls: AtomicU64::new(0),
    })
}

#[test]
fn a_resting_pointer_previews_a_click_and_the_preview_goes_when_the_pointer_leaves() {
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    wait_ready(&mut h);
    let p = pixel_centre(&h, 120, 90);
    h.event(Event::PointerMoved(p));
    wait_until(&mut h, "a hover preview", |a| a.hover_preview().is_some());
    let preview = h.state().hover_preview().unwrap().clone();
    assert_eq!(preview.green, [Dot::new(120.0, 90.0)]);
    assert!(preview.red.is_empty());
    assert!(h.state().dots().is_empty(), "no click, no dot");
    assert!(
        h.state().shown_mask().is_none(),
        "a preview is never the result"
    );
    h.step();
    assert_eq!(texture_sizes(&h, "preview"), vec![[240, 180]]);

    h.event(Event::PointerGone);
    h.step();
    assert!(h.state().hover_preview().is_none(), "the pointer left");

    // With a dot placed, the preview shows the effect of adding one more.
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "the first result", |a| a.shown_mask().is_some());
    let q = pixel_centre(&h, 100, 95);
    h.event(Event::PointerMoved(q));
    wait_until(&mut h, "a preview of a second dot", |a| {
        a.hover_preview().is_some_and(|p| p.green.len() == 2)
    });
    let preview = h.state().hover_preview().unwrap().clone();
    assert_eq!(
        preview.green,
        [Dot::new(120.0, 90.0), Dot::new(100.0, 95.0)]
    );
    let (_, _, shown) = h.state().shown_mask().unwrap();
    assert_eq!(shown.green.len(), 1, "the result still answers one dot");
    assert_eq!(h.state().dots().len(), 1);

    // Moving away drops it at once; Shift (a stroke about to start) holds previews back.
    h.event(Event::PointerMoved(q + vec2(60.0, 0.0)));
    h.step();
    assert!(h.state().hover_preview().is_none());
}

#[test]
fn sweeping_the_pointer_over_the_photo_does_not_flood_the_engine() {
    let engine = counting();
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, Some(engine.clone())), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    wait_ready(&mut h);
    let before = engine.calls.load(Ordering::SeqCst);
    // 60 frames (a quarter second each on the harness's clock), a new pixel each: the
    // pointer never rests, so no preview is asked for.
    for i in 0..60 {
        let p = pixel_centre(&h, 60 + 2 * i, 90);
        h.event(Event::PointerMoved(p));
        h.step();
    }
    let during = engine.calls.load(Ordering::SeqCst) - before;
    assert_eq!(during, 0, "preview calls while sweeping");
    wait_until(&mut h, "the preview where the pointer rests", |a| {
        a.hover_preview()
            .is_some_and(|p| p.green == [Dot::new(178.0, 90.0)])
    });
}

#[test]
fn the_preview_can_be_turned_off_in_settings() {
    let engine = counting();
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, Some(engine.clone())), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    wait_ready(&mut h);
    h.get_by_label("Settings").click();
    // A window takes a few frames to size itself and appear.
    for _ in 0..5 {
        h.step();
    }
    h.get_by_label("Preview the selection under the resting pointer")
        .click();
    h.step();
    h.get_by_label("Apply").click();
    h.step();
    assert_eq!(h.state().settings().hover.enabled, Some(false));
    wait_ready(&mut h);
    let before = engine.calls.load(Ordering::SeqCst);
    h.event(Event::PointerMoved(pixel_centre(&h, 120, 90)));
    // Ten frames, a quarter second each on the harness's clock: a preview would have
    // been asked for by now.
    for _ in 0..10 {
        h.step();
    }
    h.step();
    // Asked-for is the app's own state, so this holds at once, unlike a worker call.
    assert!(h.state().hover_asked().is_none(), "no preview asked for");
    assert!(h.state().hover_preview().is_none());
    assert_eq!(
        engine.calls.load(Ordering::SeqCst),
        before,
        "no call while it is off"
    );
}
