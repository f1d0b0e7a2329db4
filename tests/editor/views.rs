//! Judging the cut: the Outline view, holding O for the original, and the F1 help.

use aicut::app::ViewMode;
use egui::{Key, Modifiers, PointerButton};
use egui_kittest::kittest::Queryable;

use crate::support::*;

#[test]
fn the_outline_view_draws_the_edge_of_the_newest_mask_and_o_shows_the_original() {
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    wait_ready(&mut h);
    let p = pixel_centre(&h, 120, 90);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "a result", |a| a.shown_mask().is_some());
    for _ in 0..2 {
        h.key_press(Key::V);
        h.step();
    }
    assert_eq!(h.state().view_mode(), ViewMode::Outline);
    wait_until(&mut h, "the outline picture", |a| {
        a.outline_serial().is_some()
    });
    h.step();
    assert_eq!(texture_sizes(&h, "outline"), vec![[240, 180]]);
    let first = h.state().outline_serial().unwrap();
    let q = pixel_centre(&h, 100, 95);
    click(&mut h, q, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "the outline of the second result", |a| {
        a.outline_serial().is_some_and(|s| s > first)
    });

    assert!(!h.state().comparing());
    key_event(&mut h, Key::O, true);
    h.step();
    assert!(h.state().comparing(), "O held shows the original");
    key_event(&mut h, Key::O, false);
    h.step();
    assert!(!h.state().comparing());
    assert_eq!(h.state().dots().len(), 2, "O changes no dots");
}

#[test]
fn f1_lists_every_key_and_gesture() {
    let mut h = harness(1.0, options(None, None));
    h.key_press(Key::F1);
    h.step();
    h.step();
    for (keys, what) in aicut::app::SHORTCUTS {
        for text in [keys, what] {
            let shown = h.query_all_by_label(text).count();
            assert!(shown >= 1, "the help shows {text:?}");
        }
    }
    for needed in [
        "Shift + drag",
        "Rest the pointer",
        "Tab / Shift+Tab",
        "Hold Z",
        "Hold O",
        "PageDown / PageUp",
        "Ctrl+Shift+O",
        "Ctrl+Shift+S",
        "Esc",
        "F1 or ?",
    ] {
        assert!(
            aicut::app::SHORTCUTS.iter().any(|(k, _)| *k == needed),
            "{needed} is in the help"
        );
    }
}
