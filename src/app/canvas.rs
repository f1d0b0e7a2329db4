//! The central area: the canvas with the photo, its overlay and the dots; the invitation
//! to open an image when none is open; the notes for opening and segmenting; the overlay
//! while files are dragged over the window. Pointer input becomes actions (see
//! [`super::input`]) applied before drawing; the drawing functions only read state.

use std::path::PathBuf;

use egui::{
    Align2, Color32, CornerRadius, FontId, Painter, Pos2, Rect, Sense, Shape, Stroke, StrokeKind,
    TextureHandle, Ui, pos2, vec2,
};

use super::commands::Action;
use super::dots::{DotKind, PlacedDot};
use super::input::{self, DotDrag, PointerInput, PointerTarget, dot_at, dot_centre};
use super::pictures::{Backdrop, Pictures, checker_texture};
use super::settings::ViewMode;
use super::stroke::StrokeInput;
use super::view::View;
use super::{App, OpenImage, hover, outline, tools};

/// Dot radius in points (constant on screen, whatever the zoom).
const DOT_RADIUS: f32 = 6.0;

const GREEN: Color32 = Color32::from_rgb(40, 200, 70);
const RED: Color32 = Color32::from_rgb(235, 50, 50);

impl App {
    /// The central area. Returns what its buttons asked for; the canvas applies its
    /// pointer input itself, before drawing.
    pub(super) fn central(&mut self, ui: &mut Ui) -> Vec<Action> {
        let rect = ui.max_rect();
        self.canvas.rect = rect;
        let out = if self.open.is_none() {
            empty_state(ui, &self.settings.recent)
        } else {
            self.canvas(ui, rect);
            Vec::new()
        };
        // A file being opened shows in the progress panel, with Cancel (`super::progress`).
        drop_overlay(ui, rect);
        out
    }

    fn canvas(&mut self, ui: &mut Ui, rect: Rect) {
        let ctx = ui.ctx().clone();
        let response = ui.allocate_rect(rect, Sense::click_and_drag());
        if self.settings.view_mode == ViewMode::Cutout && self.canvas.checker.is_none() {
            self.canvas.checker = Some(checker_texture(&ctx));
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        open.fit_if_needed(rect, ctx.pixels_per_point());
        let pointer = PointerInput::read(&response, &ctx);
        // Navigation first: dots are then hit against the view the user now sees.
        let navigation = input::navigation(&pointer, &open.gesture);
        self.apply_all(navigation.into_iter().map(Action::Canvas));
        let Some(open) = self.open.as_ref() else {
            return;
        };
        let edits = input::dot_editing(&pointer, &open.pointer_target(), &open.gesture);
        self.apply_all(edits);
        let stroke_input = StrokeInput::read(&response, &ctx);
        self.tools_pointer(&ctx, &pointer, stroke_input);

        let Some(open) = self.open.as_mut() else {
            return;
        };
        let hover = pointer.hover;
        self.canvas.cursor_px = hover.and_then(|p| open.view.pixel_at(p, open.doc.size()));
        let hovered_dot = hover.and_then(|p| dot_at(&open.view, open.doc.dots(), p));
        if pointer.panning() || pointer.space {
            ctx.set_cursor_icon(egui::CursorIcon::Grabbing);
        } else if hovered_dot.is_some() {
            ctx.set_cursor_icon(egui::CursorIcon::Grab);
        } else if self.canvas.cursor_px.is_some() {
            ctx.set_cursor_icon(egui::CursorIcon::Crosshair);
        }
        // Holding O shows the original, whatever the view.
        let original = tools::showing_original(&ctx);
        self.tools.comparing = original;
        let mode = if original {
            ViewMode::Original
        } else {
            self.settings.view_mode
        };
        let backdrop = open.pictures.backdrop(mode.layer());
        open.pictures.upload(&ctx, backdrop);

        let painter = ui.painter_at(rect);
        let checker = self.canvas.checker.as_ref();
        draw_image(&painter, rect, open, backdrop, checker);
        let img_rect = open.view.image_rect(open.doc.size());
        if mode == ViewMode::Outline {
            let size = open.pictures.display_size();
            if let Some(t) = self.tools.outline.picture(&ctx, &open.doc, size) {
                outline::draw_over_image(&painter, t, img_rect);
            }
        }
        if !original {
            hover::draw(&painter, &self.tools.hover, img_rect);
        }
        draw_dots(
            &painter,
            &open.view,
            open.doc.dots(),
            open.gesture.drag,
            hovered_dot,
        );
        self.draw_tools(&ctx, ui, &painter, hover);
        if self.engine.busy {
            // The old overlay stays meanwhile.
            segmenting_note(ui, rect);
        }
    }
}

impl OpenImage {
    /// Fits the image to `canvas` when asked to, or when the screen's scale changed.
    fn fit_if_needed(&mut self, canvas: Rect, pixels_per_point: f32) {
        if self.view.pixels_per_point != pixels_per_point {
            self.view.pixels_per_point = pixels_per_point;
            self.needs_fit = true;
        }
        if self.needs_fit {
            self.view = View::fit(canvas, self.doc.size(), pixels_per_point);
            self.needs_fit = false;
            tracing::debug!(view = ?self.view, ?canvas, "fit the image");
        }
    }

    fn pointer_target(&self) -> PointerTarget<'_> {
        PointerTarget {
            view: &self.view,
            size: self.doc.size(),
            dots: self.doc.dots(),
        }
    }
}

/// The photo or the cut-out, with the overlay the view shows, and a thin frame.
fn draw_image(
    painter: &Painter,
    canvas: Rect,
    open: &OpenImage,
    backdrop: Backdrop,
    checker: Option<&TextureHandle>,
) {
    painter.rect_filled(canvas, CornerRadius::ZERO, Color32::from_gray(32));
    let img_rect = open.view.image_rect(open.doc.size());
    let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
    let pictures: &Pictures = &open.pictures;
    let draw = |id: Option<egui::TextureId>| {
        if let Some(id) = id {
            painter.image(id, img_rect, uv, Color32::WHITE);
        }
    };
    match backdrop {
        Backdrop::Cutout => {
            if let Some(checker) = checker {
                draw_checker(painter, canvas, img_rect, checker);
            }
            draw(pictures.cutout.as_ref().and_then(|l| l.texture.id()));
        }
        Backdrop::Photo { tint } => {
            draw(pictures.photo.id());
            if tint {
                draw(pictures.tint.as_ref().and_then(|l| l.texture.id()));
            }
        }
    }
    painter.rect_stroke(
        img_rect,
        0.0,
        Stroke::new(1.0, Color32::from_gray(90)),
        StrokeKind::Outside,
    );
}

/// The checker texture repeats; one quad covers the visible image at 8-point squares.
fn draw_checker(painter: &Painter, canvas: Rect, img_rect: Rect, checker: &TextureHandle) {
    let visible = img_rect.intersect(canvas);
    let cells = visible.size() / 16.0;
    let start = (visible.min - canvas.min) / 16.0;
    painter.image(
        checker.id(),
        visible,
        Rect::from_min_size(start.to_pos2(), cells),
        Color32::WHITE,
    );
}

/// The dots, a dragged one where it is being dragged, the hovered one larger.
fn draw_dots(
    painter: &Painter,
    view: &View,
    dots: &[PlacedDot],
    drag: Option<DotDrag>,
    hovered: Option<usize>,
) {
    for (i, d) in dots.iter().enumerate() {
        let [x, y] = match drag {
            Some(drag) if drag.index == i => drag.to,
            _ => [d.x, d.y],
        };
        let c = dot_centre(view, x, y);
        let fill = if d.kind == DotKind::Green { GREEN } else { RED };
        let r = if hovered == Some(i) {
            DOT_RADIUS + 2.0
        } else {
            DOT_RADIUS
        };
        painter.add(Shape::circle_filled(c, r + 2.5, Color32::BLACK));
        painter.add(Shape::circle_filled(c, r + 1.5, Color32::WHITE));
        painter.add(Shape::circle_filled(c, r, fill));
    }
}

/// Work in flight: a small spinner in the canvas's corner.
fn segmenting_note(ui: &mut Ui, canvas: Rect) {
    let r = Rect::from_min_size(canvas.right_top() + vec2(-150.0, 10.0), vec2(140.0, 28.0));
    ui.painter_at(canvas)
        .rect_filled(r, 6.0, Color32::from_black_alpha(170));
    let mut child = ui.new_child(egui::UiBuilder::new().max_rect(r.shrink(5.0)));
    child.horizontal(|ui| {
        ui.spinner();
        ui.label("Segmenting...");
    });
}

/// While files are dragged over the window: where dropping them leads.
fn drop_overlay(ui: &Ui, rect: Rect) {
    let hovering = ui.ctx().input(|i| !i.raw.hovered_files.is_empty());
    if !hovering {
        return;
    }
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

/// No image open: how to open one, and the recent files.
fn empty_state(ui: &mut Ui, recent: &[PathBuf]) -> Vec<Action> {
    let mut out = Vec::new();
    ui.vertical_centered(|ui| {
        ui.add_space((ui.available_height() / 2.0 - 120.0).max(20.0));
        ui.heading("Open a photo to start cutting it out");
        ui.add_space(8.0);
        ui.label("Drop an image onto this window, or");
        if ui.button("Open an image... (Ctrl+O)").clicked() {
            out.push(Action::OpenDialog);
        }
        if ui.button("Type a path...").clicked() {
            out.push(Action::TypePath);
        }
        ui.add_space(8.0);
        ui.label("Then left-click what to keep, right-click what to drop.");
        if !recent.is_empty() {
            ui.add_space(16.0);
            ui.label("Recent files:");
            for p in recent.iter().take(6) {
                if ui.link(p.display().to_string()).clicked() {
                    out.push(Action::OpenPath(p.clone()));
                }
            }
        }
    });
    out
}
