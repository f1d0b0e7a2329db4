//! Strokes: Shift + drag lays dots along the way, left green, right red; one undo step.

use aicut::app::dots::DotKind;
use egui::{Event, Key, Modifiers, PointerButton, Pos2};

use crate::support::*;

/// Shift + drag with `button` from `from` to `to`, a frame per move.
fn shift_drag(
    h: &mut egui_kittest::Harness<'static, aicut::app::App>,
    button: PointerButton,
    from: Pos2,
    to: Pos2,
) {
    let shift = Modifiers::SHIFT;
    h.event(Event::ModifiersChanged(shift));
    h.event(Event::PointerMoved(from));
    h.event(Event::PointerButton {
        pos: from,
        button,
        pressed: true,
        modifiers: shift,
    });
    h.step();
    for i in 1..=12 {
        h.event(Event::PointerMoved(from + (to - from) * (i as f32 / 12.0)));
        h.step();
    }
    h.event(Event::PointerButton {
        pos: to,
        button,
        pressed: false,
        modifiers: shift,
    });
    h.step();
    h.event(Event::ModifiersChanged(Modifiers::NONE));
    h.step();
}

#[test]
fn a_shift_drag_becomes_many_dots_along_the_way_and_undoes_as_one() {
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    wait_ready(&mut h);
    let (from, to) = (pixel_centre(&h, 60, 90), pixel_centre(&h, 180, 90));
    shift_drag(&mut h, PointerButton::Primary, from, to);
    let dots = h.state().dots().to_vec();
    assert!(dots.len() >= 6, "{} dots", dots.len());
    assert!(dots.iter().all(|d| d.kind == DotKind::Green && d.y == 90));
    assert_eq!(
        (dots[0].x, dots.last().unwrap().x),
        (60, 180),
        "from end to end"
    );
    assert!(
        dots.windows(2).all(|w| w[0].x < w[1].x),
        "in order along the way"
    );
    wait_until(&mut h, "the stroke's result", |a| {
        a.shown_mask()
            .is_some_and(|(_, _, p)| p.green.len() == dots.len())
    });

    // A right-button stroke across: red dots, added after the green ones.
    let (from, to) = (pixel_centre(&h, 120, 40), pixel_centre(&h, 120, 140));
    shift_drag(&mut h, PointerButton::Secondary, from, to);
    let all = h.state().dots().to_vec();
    let red: Vec<_> = all[dots.len()..].to_vec();
    assert!(red.len() >= 5 && red.iter().all(|d| d.kind == DotKind::Red && d.x == 120));

    // One undo removes the whole red stroke, the next the green one.
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert_eq!(h.state().dots(), &dots[..]);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.step();
    assert!(h.state().dots().is_empty());
}

#[test]
fn a_shift_drag_from_a_dot_strokes_instead_of_moving_it() {
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    h.key_press(Key::Num1);
    h.step();
    let p = pixel_centre(&h, 50, 50);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    let to = pixel_centre(&h, 50, 120);
    shift_drag(&mut h, PointerButton::Primary, p, to);
    let dots = h.state().dots();
    assert_eq!(dots[0], dot(DotKind::Green, 50, 50), "the dot stayed");
    assert!(dots.len() > 3);
}
