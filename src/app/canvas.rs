//! The canvas: draws the photo, the overlay and the dots, and turns pointer input into
//! dots, drags, zoom and pan. Every screen/image conversion goes through [`View`].

use egui::{
    Align2, Color32, CornerRadius, FontId, Key, Modifiers, PointerButton, Pos2, Rect, Sense, Shape,
    Stroke, StrokeKind, TextureOptions, Ui, pos2, vec2,
};

use super::state::{DotKind, PlacedDot};
use super::view::View;
use super::{App, DotDrag, ViewMode};

/// Dot radius in points (constant on screen, whatever the zoom).
const DOT_RADIUS: f32 = 6.0;
/// How close (points) the pointer must be to grab or delete a dot.
const GRAB_RADIUS: f32 = 9.0;
/// Zoom step of the + and - keys.
const KEY_ZOOM: f32 = 1.25;

const GREEN: Color32 = Color32::from_rgb(40, 200, 70);
const RED: Color32 = Color32::from_rgb(235, 50, 50);

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
fn dot_centre(view: &View, x: u32, y: u32) -> Pos2 {
    view.image_to_screen(pos2(x as f32 + 0.5, y as f32 + 0.5))
}

impl App {
    /// Keyboard shortcuts; none fire while a text field has the keyboard.
    pub(crate) fn shortcuts(&mut self, ctx: &egui::Context) {
        use Modifiers as M;
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let pressed = |m: Modifiers, k: Key| ctx.input_mut(|i| i.consume_key(m, k));
        if pressed(M::COMMAND, Key::O) {
            self.open_dialog();
        }
        if pressed(M::COMMAND, Key::S) {
            self.save_dialog();
        }
        if pressed(M::COMMAND | M::SHIFT, Key::Z) || pressed(M::COMMAND, Key::Y) {
            self.redo();
        }
        if pressed(M::COMMAND, Key::Z) {
            self.undo();
        }
        if pressed(M::NONE, Key::F1) || pressed(M::NONE, Key::Questionmark) {
            self.show_help = !self.show_help;
        }
        if pressed(M::NONE, Key::Escape) {
            self.show_help = false;
        }
        if pressed(M::NONE, Key::V) || pressed(M::NONE, Key::Tab) {
            self.settings.view_mode = self.settings.view_mode.next();
        }
        let canvas = self.canvas_rect;
        let hover = ctx.input(|i| i.pointer.hover_pos());
        let Some(doc) = self.doc.as_mut() else { return };
        let anchor = hover
            .filter(|p| canvas.contains(*p))
            .unwrap_or(canvas.center());
        if pressed(M::NONE, Key::Plus) || pressed(M::NONE, Key::Equals) {
            doc.view.zoom_about(anchor, KEY_ZOOM);
            doc.needs_fit = false;
        }
        if pressed(M::NONE, Key::Minus) {
            doc.view.zoom_about(anchor, 1.0 / KEY_ZOOM);
            doc.needs_fit = false;
        }
        if pressed(M::NONE, Key::F) {
            doc.needs_fit = true;
        }
        if pressed(M::NONE, Key::Num1) {
            doc.view = View::actual_size(canvas, doc.size(), ctx.pixels_per_point());
            doc.needs_fit = false;
        }
        if pressed(M::COMMAND | M::SHIFT, Key::Delete) {
            self.clear_dots();
            return;
        }
        if pressed(M::NONE, Key::Delete) || pressed(M::NONE, Key::Backspace) {
            let hit = hover.and_then(|p| dot_at(&doc.view, doc.dots.dots(), p));
            if let Some(i) = hit
                && doc.dots.remove(i)
            {
                self.dots_changed();
            }
        }
    }

    /// The central area: the canvas, or an invitation to open an image.
    pub(crate) fn central(&mut self, ui: &mut Ui) {
        let rect = ui.max_rect();
        self.canvas_rect = rect;
        if self.doc.is_none() {
            self.empty_state(ui);
        } else {
            self.canvas(ui, rect);
        }
        if let Some(path) = &self.loading {
            let name = crate::imageio::display_name(path);
            let painter = ui.painter_at(rect);
            let r = Rect::from_center_size(rect.center(), vec2(320.0, 60.0));
            painter.rect_filled(r, 8.0, Color32::from_black_alpha(200));
            let mut child = ui.new_child(egui::UiBuilder::new().max_rect(r.shrink(12.0)));
            child.horizontal_centered(|ui| {
                ui.spinner();
                ui.label(format!("Opening {name}..."));
            });
        }
        self.drop_overlay(ui, rect);
    }

    fn drop_overlay(&self, ui: &Ui, rect: Rect) {
        let hovering = ui.ctx().input(|i| !i.raw.hovered_files.is_empty());
        if hovering {
            let painter = ui.ctx().layer_painter(egui::LayerId::new(
                egui::Order::Foreground,
                egui::Id::unique("drop-overlay"),
            ));
            let screen = ui.ctx().content_rect();
            painter.rect_filled(
                screen,
                0.0,
                Color32::from_rgba_unmultiplied(20, 60, 120, 170),
            );
            painter.rect_stroke(
                rect.shrink(16.0),
                12.0,
                Stroke::new(3.0, Color32::WHITE),
                StrokeKind::Inside,
            );
            painter.text(
                screen.center(),
                Align2::CENTER_CENTER,
                "Drop the image to open it",
                FontId::proportional(28.0),
                Color32::WHITE,
            );
        }
    }

    fn canvas(&mut self, ui: &mut Ui, rect: Rect) {
        let ctx = ui.ctx().clone();
        let ppp = ctx.pixels_per_point();
        let response = ui.allocate_rect(rect, Sense::click_and_drag());
        let mode = self.settings.view_mode;
        if mode == ViewMode::Cutout && self.checker.is_none() {
            self.checker = Some(checker_texture(&ctx));
        }
        let Some(doc) = self.doc.as_mut() else { return };
        let size = doc.size();
        if doc.view.pixels_per_point != ppp {
            doc.view.pixels_per_point = ppp;
            doc.needs_fit = true;
        }
        if doc.needs_fit {
            doc.view = View::fit(rect, size, ppp);
            doc.needs_fit = false;
            tracing::debug!(view = ?doc.view, canvas = ?rect, "fit the image");
        }

        // ---- navigation: wheel/pinch zoom about the cursor, middle or space drag pans ----
        let (scroll, zoom_delta, space, modifiers) = ctx.input(|i| {
            (
                i.smooth_scroll_delta.y,
                i.zoom_delta(),
                i.key_down(Key::Space),
                i.modifiers,
            )
        });
        if let Some(p) = response.hover_pos() {
            let factor = if zoom_delta != 1.0 {
                zoom_delta
            } else {
                (scroll / 200.0).exp()
            };
            if factor != 1.0 {
                doc.view.zoom_about(p, factor);
            }
        }
        // Pan by absolute pointer positions from where the button went down, so the few
        // points before egui recognises a drag are not lost.
        let panning = response.dragged_by(PointerButton::Middle)
            || (space && response.dragged_by(PointerButton::Primary));
        if panning {
            if self.pan_from.is_none() {
                self.pan_from = ctx.input(|i| i.pointer.press_origin());
            }
            if let (Some(from), Some(now)) = (self.pan_from, response.interact_pointer_pos()) {
                doc.view.pan(now - from);
                self.pan_from = Some(now);
            }
        } else {
            self.pan_from = None;
        }

        // ---- dots: drag to move, click to add, Alt/Ctrl+click to delete ----
        let mut changed = false;
        if response.drag_started_by(PointerButton::Primary) && !space {
            let origin = ctx.input(|i| i.pointer.press_origin());
            if let Some(i) = origin.and_then(|p| dot_at(&doc.view, doc.dots.dots(), p)) {
                let d = doc.dots.dots()[i];
                doc.drag = Some(DotDrag {
                    index: i,
                    to: [d.x, d.y],
                });
            }
        }
        if let Some(drag) = doc.drag.as_mut() {
            if let Some(px) = response
                .interact_pointer_pos()
                .and_then(|p| doc.view.pixel_at(p, size))
            {
                drag.to = px;
            }
            if !response.dragged() {
                let drag = doc.drag.take().expect("checked above");
                changed |= doc.dots.move_dot(drag.index, drag.to);
            }
        }
        for (button, kind) in [
            (PointerButton::Primary, DotKind::Green),
            (PointerButton::Secondary, DotKind::Red),
        ] {
            if !response.clicked_by(button) || space {
                continue;
            }
            let Some(p) = response.interact_pointer_pos() else {
                continue;
            };
            if modifiers.alt || modifiers.command {
                if let Some(i) = dot_at(&doc.view, doc.dots.dots(), p) {
                    changed |= doc.dots.remove(i);
                }
            } else if let Some([x, y]) = doc.view.pixel_at(p, size) {
                doc.dots.add(PlacedDot { kind, x, y });
                changed = true;
            }
        }
        let hover = response.hover_pos();
        self.cursor_px = hover.and_then(|p| doc.view.pixel_at(p, size));
        if panning || space {
            ctx.set_cursor_icon(egui::CursorIcon::Grabbing);
        } else if hover.is_some_and(|p| dot_at(&doc.view, doc.dots.dots(), p).is_some()) {
            ctx.set_cursor_icon(egui::CursorIcon::Grab);
        } else if self.cursor_px.is_some() {
            ctx.set_cursor_icon(egui::CursorIcon::Crosshair);
        }

        // ---- drawing ----
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, CornerRadius::ZERO, Color32::from_gray(32));
        let img_rect = doc.view.image_rect(size);
        let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
        // Until the first cut-out picture is built, the photo is shown.
        let show_cutout = mode == ViewMode::Cutout && doc.layers.cutout.is_some();
        if show_cutout {
            if let Some(checker) = &self.checker {
                // The checker texture repeats; one quad covers the image at 8-point squares.
                let visible = img_rect.intersect(rect);
                let cells = visible.size() / 16.0;
                let start = (visible.min - rect.min) / 16.0;
                painter.image(
                    checker.id(),
                    visible,
                    Rect::from_min_size(start.to_pos2(), cells),
                    Color32::WHITE,
                );
            }
            if let Some(l) = doc.layers.cutout.as_mut() {
                let tex = l.texture.get(&ctx, "cutout");
                painter.image(tex.id(), img_rect, uv, Color32::WHITE);
            }
        } else {
            let tex = doc.texture.get(&ctx, "photo");
            painter.image(tex.id(), img_rect, uv, Color32::WHITE);
            if mode == ViewMode::Mask
                && let Some(l) = doc.layers.tint.as_mut()
            {
                let tex = l.texture.get(&ctx, "selection");
                painter.image(tex.id(), img_rect, uv, Color32::WHITE);
            }
        }
        painter.rect_stroke(
            img_rect,
            0.0,
            Stroke::new(1.0, Color32::from_gray(90)),
            StrokeKind::Outside,
        );
        let hovered_dot = hover.and_then(|p| dot_at(&doc.view, doc.dots.dots(), p));
        for (i, d) in doc.dots.dots().iter().enumerate() {
            let (x, y) = match doc.drag {
                Some(drag) if drag.index == i => (drag.to[0], drag.to[1]),
                _ => (d.x, d.y),
            };
            let c = dot_centre(&doc.view, x, y);
            let fill = if d.kind == DotKind::Green { GREEN } else { RED };
            let r = if hovered_dot == Some(i) {
                DOT_RADIUS + 2.0
            } else {
                DOT_RADIUS
            };
            painter.add(Shape::circle_filled(c, r + 2.5, Color32::BLACK));
            painter.add(Shape::circle_filled(c, r + 1.5, Color32::WHITE));
            painter.add(Shape::circle_filled(c, r, fill));
        }
        // Work in flight: a small spinner in the corner; the old overlay stays meanwhile.
        if self.busy {
            let r = Rect::from_min_size(rect.right_top() + vec2(-150.0, 10.0), vec2(140.0, 28.0));
            painter.rect_filled(r, 6.0, Color32::from_black_alpha(170));
            let mut child = ui.new_child(egui::UiBuilder::new().max_rect(r.shrink(5.0)));
            child.horizontal(|ui| {
                ui.spinner();
                ui.label("Segmenting...");
            });
        }
        if changed {
            self.dots_changed();
        }
    }

    fn empty_state(&mut self, ui: &mut Ui) {
        ui.vertical_centered(|ui| {
            ui.add_space((ui.available_height() / 2.0 - 120.0).max(20.0));
            ui.heading("Open a photo to start cutting it out");
            ui.add_space(8.0);
            ui.label("Drop an image onto this window, or");
            if ui.button("Open an image... (Ctrl+O)").clicked() {
                self.open_dialog();
            }
            if ui.button("Type a path...").clicked() {
                self.path_entry = Some(super::PathEntry {
                    save: false,
                    text: String::new(),
                    note: "Type the path of an image to open:".into(),
                    focused: false,
                });
            }
            ui.add_space(8.0);
            ui.label("Then left-click what to keep, right-click what to drop.");
            if !self.settings.recent.is_empty() {
                ui.add_space(16.0);
                ui.label("Recent files:");
                let mut open = None;
                for p in self.settings.recent.iter().take(6) {
                    if ui.link(p.display().to_string()).clicked() {
                        open = Some(p.clone());
                    }
                }
                if let Some(p) = open {
                    self.open_path(p);
                }
            }
        });
    }
}

/// A 2x2 checkerboard that repeats, for the cut-out view's transparent parts.
fn checker_texture(ctx: &egui::Context) -> egui::TextureHandle {
    let (a, b) = (Color32::from_gray(200), Color32::from_gray(150));
    let img = egui::ColorImage::new([2, 2], vec![a, b, b, a]);
    ctx.load_texture(
        "checker",
        img,
        TextureOptions {
            magnification: egui::TextureFilter::Nearest,
            minification: egui::TextureFilter::Nearest,
            wrap_mode: egui::TextureWrapMode::Repeat,
            mipmap_mode: None,
        },
    )
}
