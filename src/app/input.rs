//! Keyboard and pointer input, turned into [`Action`]s. Each function reads what egui saw
//! this frame and says what the user asked for; nothing here changes the editor.
//! Every screen/image conversion goes through [`View`].

use egui::{Key, Modifiers, PointerButton, Pos2, Rect, Response, pos2};

use super::commands::{Action, CanvasAction};
use super::document::DotEdit;
use super::dots::{DotKind, PlacedDot};
use super::view::View;

/// How close (points) the pointer must be to grab or delete a dot.
const GRAB_RADIUS: f32 = 9.0;
/// Zoom step of the + and - keys.
const KEY_ZOOM: f32 = 1.25;
/// Wheel points per e-fold of zoom.
const WHEEL_ZOOM: f32 = 200.0;

/// A dot being dragged: which, and where it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DotDrag {
    pub index: usize,
    pub to: [u32; 2],
}

/// Pointer gestures that last several frames.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Gesture {
    /// The pointer position a pan continues from.
    pub pan_from: Option<Pos2>,
    pub drag: Option<DotDrag>,
}

/// The dot nearest to a screen point, within grabbing distance.
pub fn dot_at(view: &View, dots: &[PlacedDot], p: Pos2) -> Option<usize> {
    dots.iter()
        .enumerate()
        .map(|(i, d)| (i, (dot_centre(view, d.x, d.y) - p).length()))
        .filter(|(_, dist)| *dist <= GRAB_RADIUS)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// The screen centre of the pixel a dot marks.
pub fn dot_centre(view: &View, x: u32, y: u32) -> Pos2 {
    view.image_to_screen(pos2(x as f32 + 0.5, y as f32 + 0.5))
}

/// The file dropped onto the window, to open (several at once make a batch, see
/// [`super::tools::keys`]).
pub(crate) fn dropped_file(ctx: &egui::Context) -> Option<Action> {
    ctx.input(|i| match &i.raw.dropped_files[..] {
        [one] => Some(one.path().to_path_buf()),
        _ => None,
    })
    .map(Action::OpenPath)
}

/// The open image as the keyboard sees it: how it is shown and its dots.
pub(crate) struct KeyTarget<'a> {
    pub view: &'a View,
    pub dots: &'a [PlacedDot],
    /// The canvas, whose centre zooms when the pointer is elsewhere.
    pub canvas: Rect,
}

/// Ctrl+C/X/V for a focused text field. The editor turns egui's own clipboard shortcuts
/// off (see `app::run`), so they come as keys: copy and cut become egui's events at once
/// (the text goes out through egui), paste asks the clipboard thread for the text.
fn text_field_clipboard(ctx: &egui::Context) -> Vec<Action> {
    ctx.input_mut(|i| {
        for (key, event) in [(Key::C, egui::Event::Copy), (Key::X, egui::Event::Cut)] {
            if i.consume_key(Modifiers::COMMAND, key) {
                i.events.push(event);
            }
        }
        if i.consume_key(Modifiers::COMMAND, Key::V) {
            vec![Action::PasteText]
        } else {
            Vec::new()
        }
    })
}

/// Keyboard shortcuts (listed in the help, see `help::SHORTCUTS`); none fire while a
/// text field has the keyboard. Consumes the keys it acts on.
pub(crate) fn shortcuts(ctx: &egui::Context, target: Option<KeyTarget>) -> Vec<Action> {
    use Modifiers as M;
    if ctx.egui_wants_keyboard_input() {
        return text_field_clipboard(ctx);
    }
    let pressed = |m: Modifiers, k: Key| ctx.input_mut(|i| i.consume_key(m, k));
    let mut out = Vec::new();
    let mut on = |yes: bool, action: Action| {
        if yes {
            out.push(action);
        }
    };
    on(pressed(M::COMMAND, Key::C), Action::Copy);
    on(pressed(M::COMMAND, Key::V), Action::Paste);
    on(pressed(M::COMMAND, Key::O), Action::OpenDialog);
    on(pressed(M::COMMAND, Key::S), Action::SaveDialog);
    let redo = pressed(M::COMMAND | M::SHIFT, Key::Z) || pressed(M::COMMAND, Key::Y);
    on(redo, Action::Edit(DotEdit::Redo));
    on(pressed(M::COMMAND, Key::Z), Action::Edit(DotEdit::Undo));
    let help = pressed(M::NONE, Key::F1) || pressed(M::NONE, Key::Questionmark);
    on(help, Action::ToggleHelp);
    on(pressed(M::NONE, Key::Escape), Action::HideHelp);
    // Tab switches the engine's answers (see `super::tools::keys`).
    on(pressed(M::NONE, Key::V), Action::NextViewMode);
    let Some(t) = target else { return out };
    let hover = ctx.input(|i| i.pointer.hover_pos());
    let anchor = hover
        .filter(|p| t.canvas.contains(*p))
        .unwrap_or(t.canvas.center());
    let zoom = |factor| Action::Canvas(CanvasAction::Zoom { anchor, factor });
    let zoom_in = pressed(M::NONE, Key::Plus) || pressed(M::NONE, Key::Equals);
    on(zoom_in, zoom(KEY_ZOOM));
    on(pressed(M::NONE, Key::Minus), zoom(1.0 / KEY_ZOOM));
    on(pressed(M::NONE, Key::F), Action::Canvas(CanvasAction::Fit));
    on(
        pressed(M::NONE, Key::Num1),
        Action::Canvas(CanvasAction::ActualSize),
    );
    if pressed(M::COMMAND | M::SHIFT, Key::Delete) {
        out.push(Action::Edit(DotEdit::Clear));
        return out;
    }
    if pressed(M::NONE, Key::Delete) || pressed(M::NONE, Key::Backspace) {
        let hit = hover.and_then(|p| dot_at(t.view, t.dots, p));
        out.extend(hit.map(|i| Action::Edit(DotEdit::Remove(i))));
    }
    out
}

/// What the pointer did over the canvas this frame, read from egui once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PointerInput {
    pub hover: Option<Pos2>,
    /// Where the pointer is while it presses, drags or has just clicked.
    pub pointer: Option<Pos2>,
    /// Where the button of a click went down: the dot goes there, even when the pointer
    /// moved a little (less than a drag) before the release, in the same frame or not.
    pub click_at: Option<Pos2>,
    /// Where the button that is down went down.
    pub press_origin: Option<Pos2>,
    /// Vertical wheel points and the pinch factor (1.0: none).
    pub scroll: f32,
    pub pinch: f32,
    /// Space is held: the primary button pans instead of placing dots.
    pub space: bool,
    pub modifiers: Modifiers,
    pub clicked_primary: bool,
    pub clicked_secondary: bool,
    pub drag_started_primary: bool,
    pub dragged: bool,
    pub dragged_primary: bool,
    pub dragged_middle: bool,
}

impl Default for PointerInput {
    /// Nothing happened.
    fn default() -> Self {
        PointerInput {
            hover: None,
            pointer: None,
            click_at: None,
            press_origin: None,
            scroll: 0.0,
            pinch: 1.0,
            space: false,
            modifiers: Modifiers::NONE,
            clicked_primary: false,
            clicked_secondary: false,
            drag_started_primary: false,
            dragged: false,
            dragged_primary: false,
            dragged_middle: false,
        }
    }
}

impl PointerInput {
    pub fn read(response: &Response, ctx: &egui::Context) -> Self {
        let (scroll, pinch, space, modifiers, press_origin) = ctx.input(|i| {
            let space = i.key_down(Key::Space);
            let origin = i.pointer.press_origin();
            (
                i.smooth_scroll_delta.y,
                i.zoom_delta(),
                space,
                i.modifiers,
                origin,
            )
        });
        let pointer = response.interact_pointer_pos();
        PointerInput {
            hover: response.hover_pos(),
            pointer,
            click_at: press_position(ctx, press_origin).or(pointer),
            press_origin,
            scroll,
            pinch,
            space,
            modifiers,
            clicked_primary: response.clicked_by(PointerButton::Primary),
            clicked_secondary: response.clicked_by(PointerButton::Secondary),
            drag_started_primary: response.drag_started_by(PointerButton::Primary),
            dragged: response.dragged(),
            dragged_primary: response.dragged_by(PointerButton::Primary),
            dragged_middle: response.dragged_by(PointerButton::Middle),
        }
    }

    /// Middle drag, or Space + drag.
    pub fn panning(&self) -> bool {
        self.dragged_middle || (self.space && self.dragged_primary)
    }
}

/// Where the latest press went down: this frame's press event, or the press origin egui
/// reported while the button was down (remembered, as egui forgets it on release).
fn press_position(ctx: &egui::Context, origin: Option<Pos2>) -> Option<Pos2> {
    let id = egui::Id::unique("aicut-press-position");
    let this_frame = ctx.input(|i| {
        i.events.iter().rev().find_map(|e| match e {
            egui::Event::PointerButton {
                pos, pressed: true, ..
            } => Some(*pos),
            _ => None,
        })
    });
    match this_frame.or(origin) {
        Some(p) => {
            ctx.data_mut(|d| d.insert_temp(id, p));
            Some(p)
        }
        None => ctx.data(|d| d.get_temp(id)),
    }
}

/// Wheel or pinch zoom about the pointer, and panning. Pans go by absolute pointer
/// positions from where the button went down, so the few points before egui recognises a
/// drag are not lost.
pub(crate) fn navigation(input: &PointerInput, gesture: &Gesture) -> Vec<CanvasAction> {
    let mut out = Vec::new();
    if let Some(anchor) = input.hover {
        let factor = if input.pinch != 1.0 {
            input.pinch
        } else {
            (input.scroll / WHEEL_ZOOM).exp()
        };
        if factor != 1.0 {
            out.push(CanvasAction::Zoom { anchor, factor });
        }
    }
    if input.panning() {
        let from = gesture.pan_from.or(input.press_origin);
        if let (Some(from), Some(to)) = (from, input.pointer) {
            out.push(CanvasAction::Pan { from, to });
        }
    } else if gesture.pan_from.is_some() {
        out.push(CanvasAction::EndPan);
    }
    out
}

/// The image under the canvas as the pointer sees it: how it is shown, its size and dots.
pub(crate) struct PointerTarget<'a> {
    pub view: &'a View,
    pub size: [u32; 2],
    pub dots: &'a [PlacedDot],
}

/// Dot editing: drag a dot to move it, click to add (left green, right red), Alt or
/// Ctrl + click a dot to delete it. Clicks outside the image drop no dot.
pub(crate) fn dot_editing(
    input: &PointerInput,
    t: &PointerTarget,
    gesture: &Gesture,
) -> Vec<Action> {
    let mut out = Vec::new();
    let mut drag = gesture.drag;
    // Shift + drag lays a stroke (see `super::stroke`), even from a dot.
    if input.drag_started_primary && !input.space && !input.modifiers.shift {
        let grabbed = input.press_origin.and_then(|p| dot_at(t.view, t.dots, p));
        if let Some(index) = grabbed {
            let d = t.dots[index];
            let grab = DotDrag {
                index,
                to: [d.x, d.y],
            };
            drag = Some(grab);
            out.push(Action::Canvas(CanvasAction::GrabDot(grab)));
        }
    }
    if drag.is_some() {
        let px = input.pointer.and_then(|p| t.view.pixel_at(p, t.size));
        out.extend(px.map(|px| Action::Canvas(CanvasAction::DragDotTo(px))));
        if !input.dragged {
            out.push(Action::Canvas(CanvasAction::DropDot));
        }
    }
    for (clicked, kind) in [
        (input.clicked_primary, DotKind::Green),
        (input.clicked_secondary, DotKind::Red),
    ] {
        let Some(p) = input.click_at.filter(|_| clicked && !input.space) else {
            continue;
        };
        let edit = if input.modifiers.alt || input.modifiers.command {
            dot_at(t.view, t.dots, p).map(DotEdit::Remove)
        } else {
            let px = t.view.pixel_at(p, t.size);
            px.map(|[x, y]| DotEdit::Add(PlacedDot { kind, x, y }))
        };
        out.extend(edit.map(Action::Edit));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 points per pixel, the image's corner at (100, 50).
    fn view() -> View {
        View {
            zoom: 2.0,
            origin: pos2(100.0, 50.0),
            pixels_per_point: 1.0,
        }
    }

    fn green(x: u32, y: u32) -> PlacedDot {
        PlacedDot {
            kind: DotKind::Green,
            x,
            y,
        }
    }

    fn edit(input: &PointerInput, dots: &[PlacedDot], gesture: &Gesture) -> Vec<Action> {
        let v = view();
        let target = PointerTarget {
            view: &v,
            size: [10, 10],
            dots,
        };
        dot_editing(input, &target, gesture)
    }

    fn click(at: Pos2, primary: bool) -> PointerInput {
        PointerInput {
            hover: Some(at),
            pointer: Some(at),
            click_at: Some(at),
            clicked_primary: primary,
            clicked_secondary: !primary,
            ..PointerInput::default()
        }
    }

    #[test]
    fn a_click_adds_a_dot_on_the_pixel_under_it_left_green_right_red() {
        let out = edit(&click(pos2(103.0, 55.0), true), &[], &Gesture::default());
        assert_eq!(out, [Action::Edit(DotEdit::Add(green(1, 2)))]);
        let out = edit(&click(pos2(100.5, 50.5), false), &[], &Gesture::default());
        let red = PlacedDot {
            kind: DotKind::Red,
            x: 0,
            y: 0,
        };
        assert_eq!(out, [Action::Edit(DotEdit::Add(red))]);
    }

    #[test]
    fn a_click_outside_the_image_or_while_space_is_held_adds_nothing() {
        assert!(edit(&click(pos2(99.0, 55.0), true), &[], &Gesture::default()).is_empty());
        assert!(edit(&click(pos2(121.0, 55.0), true), &[], &Gesture::default()).is_empty());
        let mut space = click(pos2(103.0, 55.0), true);
        space.space = true;
        assert!(edit(&space, &[], &Gesture::default()).is_empty());
    }

    #[test]
    fn alt_or_ctrl_click_near_a_dot_deletes_it_and_elsewhere_does_nothing() {
        let dots = [green(1, 1), green(8, 8)];
        let mut alt = click(dot_centre(&view(), 8, 8) + egui::vec2(3.0, -2.0), true);
        alt.modifiers = Modifiers::ALT;
        assert_eq!(
            edit(&alt, &dots, &Gesture::default()),
            [Action::Edit(DotEdit::Remove(1))]
        );
        let mut ctrl = click(pos2(110.0, 60.0), false);
        ctrl.modifiers = Modifiers::COMMAND;
        assert!(edit(&ctrl, &dots, &Gesture::default()).is_empty());
    }

    #[test]
    fn a_drag_from_a_dot_grabs_it_follows_the_pointer_and_drops_on_release() {
        let dots = [green(1, 1)];
        let start = PointerInput {
            press_origin: Some(dot_centre(&view(), 1, 1)),
            pointer: Some(pos2(107.0, 57.0)),
            drag_started_primary: true,
            dragged: true,
            dragged_primary: true,
            ..PointerInput::default()
        };
        let grab = DotDrag {
            index: 0,
            to: [1, 1],
        };
        assert_eq!(
            edit(&start, &dots, &Gesture::default()),
            [
                Action::Canvas(CanvasAction::GrabDot(grab)),
                Action::Canvas(CanvasAction::DragDotTo([3, 3]))
            ]
        );
        let gesture = Gesture {
            drag: Some(grab),
            ..Gesture::default()
        };
        let release = PointerInput {
            pointer: Some(pos2(109.0, 51.0)),
            ..PointerInput::default()
        };
        assert_eq!(
            edit(&release, &dots, &gesture),
            [
                Action::Canvas(CanvasAction::DragDotTo([4, 0])),
                Action::Canvas(CanvasAction::DropDot)
            ]
        );
    }

    #[test]
    fn the_wheel_zooms_about_the_pointer_and_a_middle_drag_pans_from_the_press() {
        let wheel = PointerInput {
            hover: Some(pos2(5.0, 6.0)),
            scroll: WHEEL_ZOOM,
            ..PointerInput::default()
        };
        match navigation(&wheel, &Gesture::default())[..] {
            [CanvasAction::Zoom { anchor, factor }] => {
                assert_eq!(anchor, pos2(5.0, 6.0));
                assert!((factor - std::f32::consts::E).abs() < 1e-5, "{factor}");
            }
            ref other => panic!("{other:?}"),
        }
        let pan = PointerInput {
            press_origin: Some(pos2(10.0, 10.0)),
            pointer: Some(pos2(14.0, 13.0)),
            dragged: true,
            dragged_middle: true,
            ..PointerInput::default()
        };
        let (from, to) = (pos2(10.0, 10.0), pos2(14.0, 13.0));
        assert_eq!(
            navigation(&pan, &Gesture::default()),
            [CanvasAction::Pan { from, to }]
        );
        let panning = Gesture {
            pan_from: Some(pos2(12.0, 12.0)),
            ..Gesture::default()
        };
        let from = pos2(12.0, 12.0);
        assert_eq!(navigation(&pan, &panning), [CanvasAction::Pan { from, to }]);
        let still = PointerInput::default();
        assert_eq!(navigation(&still, &panning), [CanvasAction::EndPan]);
    }
}
