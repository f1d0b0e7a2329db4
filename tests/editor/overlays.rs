//! Overlay pictures: built off the UI thread, only for the view shown, for the newest mask.

use aicut::app::ViewMode;
use egui::{Key, Modifiers, PointerButton};

use crate::support::*;

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
    wait_until(&mut h, "the engine to settle", |a| !a.is_busy());
    for _ in 0..10 {
        h.step();
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

    // Back to the selection view (V past Outline and Original): its overlay is rebuilt
    // for the newest mask.
    for _ in 0..3 {
        h.key_press(Key::V);
        h.step();
    }
    assert_eq!(h.state().view_mode(), ViewMode::Mask);
    wait_until(&mut h, "the selection overlay of request 2", |a| {
        a.overlay_request() == Some(2)
    });
    h.step();
    assert_eq!(texture_sizes(&h, "selection"), vec![[240, 180]]);
    // The uploaded cut-out of the shown mask stays for a quick switch back; no other.
    assert_eq!(texture_sizes(&h, "cutout"), vec![[240, 180]]);
}
