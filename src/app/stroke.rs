//! Strokes: Shift + drag lays a line of dots (left button green, right red) for thin
//! parts such as hair strands, straps and railings. The engine contract stays dots: a
//! stroke is sampled into dots along its path when the button is released, and those
//! go in as one undoable step.

use egui::{Key, PointerButton, Pos2, Response};

use super::dots::{DotKind, PlacedDot};
use super::view::View;

/// Screen points between two dots of a stroke: dense enough for a strand, sparse enough
/// that a sweep across the photo stays a handful of dots.
const SPACING_POINTS: f32 = 20.0;
/// At most this many dots per stroke (longer strokes are sampled more sparsely): every
/// dot is a refinement step for engines that answer click by click.
pub const MAX_DOTS: usize = 16;

/// A stroke being drawn: its colour and the way so far, in image coordinates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StrokeGesture {
    pub kind: DotKind,
    pub path: Vec<Pos2>,
}

/// What the pointer did this frame, as far as strokes care.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StrokeInput {
    /// A drag with Shift held began this frame, with this button.
    pub started: Option<PointerButton>,
    /// Where the button went down: the stroke starts there, not where egui saw a drag.
    pub press_origin: Option<Pos2>,
    pub pointer: Option<Pos2>,
    /// A drag is going on (any button).
    pub dragging: bool,
}

impl StrokeInput {
    pub fn read(response: &Response, ctx: &egui::Context) -> Self {
        let (shift, press_origin) = ctx.input(|i| {
            let shift = i.modifiers.shift && !i.modifiers.command && !i.modifiers.alt;
            (shift && !i.key_down(Key::Space), i.pointer.press_origin())
        });
        let started = [PointerButton::Primary, PointerButton::Secondary]
            .into_iter()
            .find(|b| response.drag_started_by(*b))
            .filter(|_| shift);
        StrokeInput {
            started,
            press_origin,
            pointer: response.interact_pointer_pos(),
            dragging: response.dragged(),
        }
    }
}

/// Follows a stroke: starts it, extends it, and on release returns its dots.
pub(crate) fn follow(
    input: &StrokeInput,
    view: &View,
    size: [u32; 2],
    stroke: &mut Option<StrokeGesture>,
) -> Option<Vec<PlacedDot>> {
    if let Some(button) = input.started {
        let kind = match button {
            PointerButton::Secondary => DotKind::Red,
            _ => DotKind::Green,
        };
        let path = input.press_origin.map(|p| view.screen_to_image(p));
        *stroke = Some(StrokeGesture {
            kind,
            path: path.into_iter().collect(),
        });
    }
    let s = stroke.as_mut()?;
    if let Some(p) = input.pointer {
        let q = view.screen_to_image(p);
        if s.path.last() != Some(&q) {
            s.path.push(q);
        }
    }
    if input.dragging {
        return None;
    }
    let done = stroke.take()?;
    let spacing = SPACING_POINTS / view.points_per_pixel().max(1e-6);
    Some(sample(&done.path, done.kind, spacing, size))
}

/// Dots every `spacing` pixels along `path` (its ends included), on pixels inside an image
/// of `size`, no pixel twice, at most [`MAX_DOTS`] (sparser when the path is long).
pub fn sample(path: &[Pos2], kind: DotKind, spacing: f32, size: [u32; 2]) -> Vec<PlacedDot> {
    let length: f32 = path.windows(2).map(|w| (w[1] - w[0]).length()).sum();
    let spacing = spacing
        .max(1.0)
        .max(length / (MAX_DOTS.saturating_sub(1).max(1)) as f32);
    let mut at = Vec::new();
    if let Some(&first) = path.first() {
        at.push(first);
    }
    let mut carried = 0.0;
    for w in path.windows(2) {
        let (a, b) = (w[0], w[1]);
        let len = (b - a).length();
        let mut t = spacing - carried;
        while t <= len {
            at.push(a + (b - a) * (t / len));
            t += spacing;
        }
        carried = (carried + len) % spacing;
    }
    if let Some(&last) = path.last()
        && at
            .last()
            .is_some_and(|p| (*p - last).length() > spacing * 0.5)
    {
        at.push(last);
    }
    let mut dots: Vec<PlacedDot> = Vec::new();
    for p in at {
        let (x, y) = (p.x.floor(), p.y.floor());
        if x < 0.0 || y < 0.0 || x >= size[0] as f32 || y >= size[1] as f32 {
            continue;
        }
        let dot = PlacedDot {
            kind,
            x: x as u32,
            y: y as u32,
        };
        if !dots.iter().any(|d| d.x == dot.x && d.y == dot.y) {
            dots.push(dot);
        }
    }
    dots.truncate(MAX_DOTS);
    dots
}

/// The stroke drawn so far, as a line in its colour.
pub(crate) fn draw(
    painter: &egui::Painter,
    view: &View,
    stroke: &StrokeGesture,
    colour: egui::Color32,
) {
    let points: Vec<Pos2> = stroke
        .path
        .iter()
        .map(|p| view.image_to_screen(*p))
        .collect();
    painter.add(egui::Shape::line(
        points.clone(),
        egui::Stroke::new(5.0, egui::Color32::from_black_alpha(160)),
    ));
    painter.add(egui::Shape::line(points, egui::Stroke::new(3.0, colour)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::pos2 as at;

    #[test]
    fn a_straight_stroke_becomes_evenly_spaced_dots_with_both_ends() {
        let dots = sample(
            &[at(0.5, 0.5), at(40.5, 0.5)],
            DotKind::Green,
            10.0,
            [100, 100],
        );
        let xs: Vec<u32> = dots.iter().map(|d| d.x).collect();
        assert_eq!(xs, [0, 10, 20, 30, 40]);
        assert!(dots.iter().all(|d| d.y == 0 && d.kind == DotKind::Green));
    }

    #[test]
    fn a_long_stroke_is_capped_and_points_outside_the_image_are_dropped() {
        let path = [at(0.0, 5.0), at(5000.0, 5.0)];
        let dots = sample(&path, DotKind::Red, 2.0, [5001, 10]);
        assert_eq!(dots.len(), MAX_DOTS);
        assert!(dots.iter().all(|d| d.kind == DotKind::Red));
        let path = [at(-45.5, 5.0), at(54.5, 5.0)];
        let xs: Vec<u32> = sample(&path, DotKind::Red, 10.0, [50, 10])
            .iter()
            .map(|d| d.x)
            .collect();
        assert_eq!(xs, [4, 14, 24, 34, 44]);
    }

    #[test]
    fn a_stroke_on_one_pixel_is_one_dot_and_an_empty_one_none() {
        let dots = sample(
            &[at(3.2, 3.7), at(3.4, 3.1)],
            DotKind::Green,
            10.0,
            [10, 10],
        );
        assert_eq!(dots.len(), 1);
        assert!(sample(&[], DotKind::Green, 10.0, [10, 10]).is_empty());
    }

    #[test]
    fn a_bent_stroke_keeps_the_spacing_around_the_corner() {
        let path = [at(0.5, 0.5), at(15.5, 0.5), at(15.5, 15.5)];
        let dots = sample(&path, DotKind::Green, 10.0, [100, 100]);
        let got: Vec<[u32; 2]> = dots.iter().map(|d| [d.x, d.y]).collect();
        assert_eq!(got, [[0, 0], [10, 0], [15, 5], [15, 15]]);
    }
}
