//! Everything around the canvas: the toolbar, the status bar, the settings and help
//! windows, the banner for engine problems, toasts, and the in-app path box used where
//! no native file dialog can open.

use std::path::PathBuf;

use egui::{Color32, RichText, Ui};

use super::{App, BannerAction, PathEntry, SessionState, ViewMode};
use crate::engine::EngineKind;

/// Every shortcut, for the help overlay.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("Left click", "add a green dot (keep)"),
    ("Right click", "add a red dot (drop)"),
    ("Drag a dot", "move it"),
    ("Alt/Ctrl + click a dot", "delete it"),
    ("Hover a dot + Delete", "delete it"),
    ("Ctrl+Shift+Delete", "clear all dots"),
    ("Ctrl+Z", "undo"),
    ("Ctrl+Shift+Z or Ctrl+Y", "redo"),
    ("V or Tab", "switch view: selection / cut-out / original"),
    ("Wheel or pinch", "zoom about the cursor"),
    ("+ / -", "zoom in / out"),
    ("F", "fit the image in the window"),
    ("1", "100 % (one image pixel per screen pixel)"),
    ("Middle drag, Space + drag", "pan"),
    ("Ctrl+O", "open an image (or drop one onto the window)"),
    ("Ctrl+S", "save the cut-out as PNG"),
    ("F1 or ?", "show or hide this help"),
];

impl App {
    pub(crate) fn toolbar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            if ui.button("Open...").on_hover_text("Ctrl+O").clicked() {
                self.open_dialog();
            }
            let mut open = None;
            ui.add_enabled_ui(!self.settings.recent.is_empty(), |ui| {
                ui.menu_button("Recent", |ui| {
                    for p in &self.settings.recent {
                        if ui.button(p.display().to_string()).clicked() {
                            open = Some(p.clone());
                        }
                    }
                });
            });
            if let Some(p) = open {
                self.open_path(p);
            }
            let has_mask = self.doc.as_ref().is_some_and(|d| d.mask.is_some());
            if ui
                .add_enabled(has_mask && !self.saving, egui::Button::new("Save..."))
                .on_hover_text("Ctrl+S")
                .clicked()
            {
                self.save_dialog();
            }
            ui.separator();
            let (can_undo, can_redo, any) = self.doc.as_ref().map_or((false, false, false), |d| {
                (
                    d.dots.can_undo(),
                    d.dots.can_redo(),
                    !d.dots.dots().is_empty(),
                )
            });
            if ui
                .add_enabled(can_undo, egui::Button::new("Undo"))
                .clicked()
            {
                self.undo();
            }
            if ui
                .add_enabled(can_redo, egui::Button::new("Redo"))
                .clicked()
            {
                self.redo();
            }
            if ui.add_enabled(any, egui::Button::new("Clear")).clicked() {
                self.clear_dots();
            }
            ui.separator();
            for mode in [ViewMode::Mask, ViewMode::Cutout, ViewMode::Original] {
                ui.selectable_value(&mut self.settings.view_mode, mode, mode.label())
                    .on_hover_text("V or Tab switches");
            }
            ui.separator();
            if ui.button("Fit").on_hover_text("F").clicked()
                && let Some(d) = self.doc.as_mut()
            {
                d.needs_fit = true;
            }
            ui.separator();
            if ui.button("Settings").clicked() {
                self.show_settings = !self.show_settings;
            }
            if ui.button("Help").on_hover_text("F1").clicked() {
                self.show_help = !self.show_help;
            }
        });
        if let Some(b) = self.banner.clone() {
            let mut act = None;
            egui::Frame::new()
                .fill(Color32::from_rgb(110, 40, 30))
                .inner_margin(6.0)
                .show(ui, |ui| {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new(&b.text).color(Color32::WHITE));
                        let label = match b.action {
                            BannerAction::Retry => Some("Retry"),
                            BannerAction::NewSession => {
                                Some("Start a new session (costs 1 credit)")
                            }
                            BannerAction::Settings => Some("Open Settings"),
                            BannerAction::None => None,
                        };
                        if let Some(label) = label
                            && ui.button(label).clicked()
                        {
                            act = Some(b.action);
                        }
                        if ui.button("Dismiss").clicked() {
                            act = Some(BannerAction::None);
                            self.banner = None;
                        }
                    });
                });
            if let Some(a) = act {
                self.banner_action(a);
            }
        }
    }

    pub(crate) fn status_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label(format!("Engine: {}", self.engine_name));
            ui.separator();
            match &self.session {
                SessionState::NoImage => ui.label("No image"),
                SessionState::Initializing(since) => {
                    ui.spinner();
                    ui.label(format!(
                        "Initializing... {:.0} s",
                        since.elapsed().as_secs_f32()
                    ))
                }
                SessionState::Ready => ui.label("Ready"),
                SessionState::Expired => ui.colored_label(Color32::YELLOW, "Session expired"),
                SessionState::Failed(e) => {
                    ui.colored_label(Color32::LIGHT_RED, format!("Error: {e}"))
                }
            };
            if self.busy {
                ui.spinner();
                ui.label("working");
            }
            if let Some(note) = &self.retry_note {
                ui.colored_label(Color32::YELLOW, note);
            }
            if let Some(doc) = &self.doc {
                ui.separator();
                ui.label(format!("{} x {} px", doc.image.width(), doc.image.height()));
                ui.separator();
                ui.label(format!("{:.0} %", doc.view.zoom * 100.0));
                ui.separator();
                ui.label(format!("{} dots", doc.dots.dots().len()));
            }
            if let Some([x, y]) = self.cursor_px {
                ui.separator();
                ui.label(format!("x {x}, y {y}"));
            }
            if let Some(rt) = self.last_round_trip {
                ui.separator();
                ui.label(format!("last result {} ms", rt.as_millis()));
            }
            if self.saving {
                ui.separator();
                ui.spinner();
                ui.label("saving");
            }
        });
    }

    pub(crate) fn windows(&mut self, ctx: &egui::Context) {
        if self.show_help {
            let mut open = true;
            egui::Window::new("Keyboard and mouse")
                .open(&mut open)
                .collapsible(false)
                .resizable(false)
                .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
                .show(ctx, |ui| {
                    egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
                        for (keys, what) in SHORTCUTS {
                            ui.label(RichText::new(*keys).strong());
                            ui.label(*what);
                            ui.end_row();
                        }
                    });
                });
            self.show_help &= open;
        }
        if self.show_settings {
            let mut open = true;
            let mut apply = false;
            let top = egui::pos2(ctx.content_rect().center().x, 60.0);
            egui::Window::new("Settings")
                .open(&mut open)
                .collapsible(false)
                .resizable(false)
                .pivot(egui::Align2::CENTER_TOP)
                .default_pos(top)
                .show(ctx, |ui| {
                    ui.label(RichText::new("Segmentation engine").strong());
                    ui.radio_value(&mut self.draft.engine, EngineKind::Builtin, "Built-in (no network, no account)");
                    ui.radio_value(&mut self.draft.engine, EngineKind::Api, "AI Cut API (hosted, needs a key)");
                    ui.radio_value(&mut self.draft.engine, EngineKind::Sam, "SAM model file (MobileSAM or SAM, runs locally)");
                    ui.add_enabled_ui(self.draft.engine == EngineKind::Sam, |ui| {
                        ui.horizontal(|ui| {
                            ui.label("Model file");
                            ui.add(
                                egui::TextEdit::singleline(&mut self.draft.sam_model)
                                    .hint_text("/path/to/mobile_sam.pt or .safetensors")
                                    .desired_width(280.0),
                            );
                        });
                    });
                    ui.add_space(6.0);
                    ui.add_enabled_ui(self.draft.engine == EngineKind::Api, |ui| {
                        egui::Grid::new("api").num_columns(2).show(ui, |ui| {
                            ui.label("API address");
                            ui.text_edit_singleline(&mut self.draft.api_base_url);
                            ui.end_row();
                            ui.label("API key");
                            ui.add(
                                egui::TextEdit::singleline(&mut self.draft.api_key)
                                    .password(true)
                                    .hint_text("paste your key"),
                            );
                            ui.end_row();
                        });
                        ui.label(
                            RichText::new(
                                "The key is stored in a file only you can read, never in the app's shared settings.",
                            )
                            .small(),
                        );
                    });
                    ui.add_space(6.0);
                    if ui.button("Apply").clicked() {
                        apply = true;
                    }
                });
            if apply {
                self.apply_settings();
                open = false;
            }
            self.show_settings &= open;
        }
        if let Some(mut entry) = self.path_entry.take() {
            let mut open = true;
            let mut close = false;
            let mut go = false;
            let title = if entry.save {
                "Save the cut-out as"
            } else {
                "Open an image"
            };
            egui::Window::new(title)
                .open(&mut open)
                .collapsible(false)
                .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
                .show(ctx, |ui| {
                    ui.label(&entry.note);
                    let r = ui.add(
                        egui::TextEdit::singleline(&mut entry.text)
                            .desired_width(420.0)
                            .hint_text("/path/to/image.jpg"),
                    );
                    if !entry.focused {
                        r.request_focus();
                        entry.focused = true;
                    }
                    if r.has_focus() && ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                        close = true;
                    }
                    let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    ui.horizontal(|ui| {
                        go = ui
                            .button(if entry.save { "Save" } else { "Open" })
                            .clicked()
                            || enter;
                    });
                });
            let text = entry.text.trim().to_string();
            if go && !text.is_empty() {
                let path = PathBuf::from(text);
                if entry.save {
                    self.save_to(path);
                } else {
                    self.open_path(path);
                }
            } else if open && !close {
                self.path_entry = Some(entry);
            }
        }
    }

    pub(crate) fn toasts_ui(&mut self, ctx: &egui::Context) {
        let now = std::time::Instant::now();
        self.toasts.retain(|t| t.until.is_none_or(|u| u > now));
        if let Some(next) = self.toasts.iter().filter_map(|t| t.until).min() {
            ctx.request_repaint_after(next - now);
        }
        if self.toasts.is_empty() {
            return;
        }
        let mut close = None;
        egui::Area::new(egui::Id::unique("toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -36.0])
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                for (i, t) in self.toasts.iter().enumerate() {
                    let fill = if t.error {
                        Color32::from_rgb(120, 35, 35)
                    } else {
                        Color32::from_rgb(30, 90, 50)
                    };
                    egui::Frame::new()
                        .fill(fill)
                        .corner_radius(6.0)
                        .inner_margin(8.0)
                        .show(ui, |ui| {
                            ui.set_max_width(420.0);
                            ui.horizontal(|ui| {
                                ui.label(RichText::new(&t.text).color(Color32::WHITE));
                                if ui.small_button("x").clicked() {
                                    close = Some(i);
                                }
                            });
                        });
                    ui.add_space(4.0);
                }
            });
        if let Some(i) = close {
            self.toasts.remove(i);
        }
    }

    /// Opens the path box (also reachable when a native dialog cannot open).
    pub fn show_path_entry(&mut self, save: bool) {
        self.path_entry = Some(PathEntry {
            save,
            text: String::new(),
            note: "Type a path:".into(),
            focused: false,
        });
    }
}
