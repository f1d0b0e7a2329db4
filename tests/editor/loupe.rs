//! The loupe: holding Z shows the pixels under the pointer, with the edge.

use egui::{Event, Key, Modifiers, PointerButton};

use crate::support::*;

#[test]
fn holding_z_draws_the_loupe_around_the_pixel_under_the_pointer() {
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    wait_ready(&mut h);
    let p = pixel_centre(&h, 120, 90);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "a result", |a| a.shown_mask().is_some());
    let q = pixel_centre(&h, 70, 60);
    h.event(Event::PointerMoved(q));
    h.step();
    assert_eq!(h.state().loupe(), None, "not without Z");
    key_event(&mut h, Key::Z, true);
    h.step();
    assert_eq!(h.state().loupe(), Some([70, 60]));
    let side = 2 * aicut::app::LOUPE_RADIUS as usize + 1;
    assert_eq!(texture_sizes(&h, "loupe"), vec![[side, side]]);
    // It follows the pointer, and goes with the key.
    let r = pixel_centre(&h, 71, 60);
    h.event(Event::PointerMoved(r));
    h.step();
    assert_eq!(h.state().loupe(), Some([71, 60]));
    assert_eq!(h.state().dots().len(), 1, "Z adds or undoes nothing");
    key_event(&mut h, Key::Z, false);
    h.step();
    assert_eq!(h.state().loupe(), None);
}
