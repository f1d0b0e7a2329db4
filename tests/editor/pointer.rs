//! The pointer and the keyboard on the canvas: dots land on the pixel under the pointer
//! at any zoom, pan and screen scale; edits undo and redo; the wheel zooms.

use aicut::app::dots::DotKind;
use egui::{Event, Key, Modifiers, PointerButton, vec2};

use crate::support::*;

#[test]
fn a_click_marks_the_pixel_under_it_at_100_percent_after_a_pan_and_at_300_percent() {
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
    let end = start + vec2(40.0, 30.0);
    drag(&mut h, PointerButton::Middle, start, end, 10);
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
fn a_click_marks_the_pixel_under_it_on_a_2x_screen() {
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
fn undo_and_redo_step_through_added_deleted_and_dragged_dots() {
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
    drag(&mut h, PointerButton::Primary, from, to, 8);
    h.step();
    assert_eq!(h.state().dots()[0], dot(DotKind::Green, 30, 25));
    assert_eq!(h.state().dots().len(), 3, "a drag moves, it does not add");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(h.state().dots()[0], dot(DotKind::Green, 10, 10));
}

#[test]
fn the_wheel_zooms_about_the_cursor_and_the_keys_zoom_out_and_fit() {
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

/// Press, a small move (less than a drag) and release: the dot lands where the button went
/// down, whether it all comes in one frame or the release comes a frame later.
#[test]
fn a_click_that_moves_a_little_before_the_release_marks_the_pressed_pixel() {
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    let anchor = pixel_centre(&h, 60, 45);
    h.state_mut().zoom_about(anchor, 4.0);
    h.step();
    let press_and_release =
        |h: &mut egui_kittest::Harness<'static, aicut::app::App>, x: u32, y: u32, split: bool| {
            let at = pixel_centre(h, x, y);
            // 5 points at 400 %: a pixel and a bit to the right, still a click in egui.
            let to = at + vec2(5.0, 0.0);
            h.event(Event::PointerMoved(at));
            let button = |pos, pressed| Event::PointerButton {
                pos,
                button: PointerButton::Primary,
                pressed,
                modifiers: Modifiers::NONE,
            };
            h.event(button(at, true));
            if split {
                h.step();
            }
            h.event(Event::PointerMoved(to));
            h.event(button(to, false));
            h.step();
        };
    press_and_release(&mut h, 60, 45, false);
    assert_eq!(h.state().dots(), &[dot(DotKind::Green, 60, 45)]);
    press_and_release(&mut h, 50, 40, true);
    assert_eq!(h.state().dots()[1], dot(DotKind::Green, 50, 40));
}
