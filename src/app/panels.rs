//! Everything around the canvas: the toolbar, the banner for engine problems, the status
//! bar, the settings and help windows, toasts, and the in-app path box used where no
//! native file dialog can open. Each draws what the state says and returns the
//! [`Action`]s its buttons asked for.

use std::path::PathBuf;

use egui::{Color32, RichText, Ui};

use super::App;
use super::commands::{Action, CanvasAction};
use super::downloads::{ModelDownloads, Running, state_label};
use super::engine_link::SessionState;
use super::messages::{Banner, BannerAction, Toast};
use super::settings::{SettingsDraft, ViewMode};
use crate::engine::EngineKind;
use crate::models::{InstallState, human_bytes};

/// The in-app path box, used where no native dialog can open.
#[derive(Debug, Clone)]
pub struct PathEntry {
    pub save: bool,
    pub text: String,
    pub note: String,
    /// The text field got the keyboard once (on opening).
    pub focused: bool,
}

impl PathEntry {
    pub fn new(save: bool, note: impl Into<String>) -> Self {
        PathEntry {
            save,
            text: String::new(),
            note: note.into(),
            focused: false,
        }
    }

    pub fn with_text(self, text: String) -> Self {
        PathEntry { text, ..self }
    }
}

/// Which windows are open, and what is being typed into them.
pub(crate) struct Windows {
    pub show_help: bool,
    pub show_settings: bool,
    pub draft: SettingsDraft,
    pub path_entry: Option<PathEntry>,
}

impl Windows {
    pub fn new(draft: SettingsDraft) -> Self {
        Windows {
            show_help: false,
            show_settings: false,
            draft,
            path_entry: None,
        }
    }

    /// Opens the path box to open (or save, with `save`) a typed path.
    pub fn ask_path(&mut self, save: bool, note: impl Into<String>) {
        self.path_entry = Some(PathEntry::new(save, note));
    }
}

/// A button that asks for `action` when clicked.
fn button(
    ui: &mut Ui,
    enabled: bool,
    text: &str,
    hint: Option<&str>,
    action: Action,
    out: &mut Vec<Action>,
) {
    let mut r = ui.add_enabled(enabled, egui::Button::new(text));
    if let Some(hint) = hint {
        r = r.on_hover_text(hint);
    }
    if r.clicked() {
        out.push(action);
    }
}

impl App {
    /// The toolbar, with the banner under it when there is one.
    pub(super) fn toolbar(&self, ui: &mut Ui) -> Vec<Action> {
        let mut out = Vec::new();
        ui.horizontal(|ui| {
            self.file_buttons(ui, &mut out);
            ui.separator();
            self.dot_buttons(ui, &mut out);
            ui.separator();
            for mode in ViewMode::ALL {
                let shown = self.settings.view_mode == mode;
                let r = ui.selectable_label(shown, mode.label());
                if r.on_hover_text("V switches; hold O for the original")
                    .clicked()
                {
                    out.push(Action::SetViewMode(mode));
                }
            }
            ui.separator();
            button(
                ui,
                true,
                "Fit",
                Some("F"),
                Action::Canvas(CanvasAction::Fit),
                &mut out,
            );
            ui.separator();
            button(ui, true, "Settings", None, Action::ToggleSettings, &mut out);
            button(ui, true, "Help", Some("F1"), Action::ToggleHelp, &mut out);
        });
        if let Some(b) = &self.messages.banner {
            out.extend(banner(ui, b));
        }
        out
    }

    fn file_buttons(&self, ui: &mut Ui, out: &mut Vec<Action>) {
        button(ui, true, "Open...", Some("Ctrl+O"), Action::OpenDialog, out);
        let folder = Action::Tool(super::tools::ToolAction::OpenFolder);
        button(
            ui,
            true,
            "Open folder...",
            Some("Ctrl+Shift+O"),
            folder,
            out,
        );
        let recent = &self.settings.recent;
        ui.add_enabled_ui(!recent.is_empty(), |ui| {
            ui.menu_button("Recent", |ui| {
                for p in recent {
                    if ui.button(p.display().to_string()).clicked() {
                        out.push(Action::OpenPath(p.clone()));
                    }
                }
            });
        });
        let has_mask = self.open.as_ref().is_some_and(|o| o.doc.mask().is_some());
        let can_save = has_mask && !self.files.saving;
        button(
            ui,
            can_save,
            "Save...",
            Some("Ctrl+S"),
            Action::SaveDialog,
            out,
        );
        // Stays open while options are ticked; a click outside closes it.
        let config = egui::containers::menu::MenuConfig::new()
            .close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
        egui::containers::menu::MenuButton::new("Save options")
            .config(config)
            .ui(ui, |ui| {
                let mut o = self.settings.save;
                save_options(ui, &mut o);
                if o != self.settings.save {
                    out.push(Action::SetSaveOptions(o));
                }
            });
    }

    fn dot_buttons(&self, ui: &mut Ui, out: &mut Vec<Action>) {
        use super::document::DotEdit;
        let doc = self.open.as_ref().map(|o| &o.doc);
        let can_undo = doc.is_some_and(|d| d.can_undo());
        let can_redo = doc.is_some_and(|d| d.can_redo());
        let any = doc.is_some_and(|d| !d.dots().is_empty());
        button(ui, can_undo, "Undo", None, Action::Edit(DotEdit::Undo), out);
        button(ui, can_redo, "Redo", None, Action::Edit(DotEdit::Redo), out);
        button(ui, any, "Clear", None, Action::Edit(DotEdit::Clear), out);
    }

    pub(super) fn status_bar(&self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label(format!("Engine: {}", self.engine.name));
            ui.separator();
            session_label(ui, &self.engine.session, self.engine.progress());
            if self.engine.busy {
                ui.spinner();
                ui.label("working");
            }
            if let Some(note) = &self.engine.retry_note {
                ui.colored_label(Color32::YELLOW, note);
            }
            if let Some(open) = &self.open {
                let [w, h] = open.doc.size();
                ui.separator();
                ui.label(format!("{w} x {h} px"));
                ui.separator();
                ui.label(format!("{:.0} %", open.view.zoom * 100.0));
                ui.separator();
                let n = open.doc.dots().len();
                ui.label(format!("{n} dot{}", if n == 1 { "" } else { "s" }));
            }
            if let Some([x, y]) = self.canvas.cursor_px {
                ui.separator();
                ui.label(format!("x {x}, y {y}"));
            }
            if let Some(rt) = self.engine.last_round_trip {
                ui.separator();
                ui.label(format!("last result {} ms", rt.as_millis()));
            }
            if self.files.saving {
                ui.separator();
                ui.spinner();
                ui.label("saving");
            }
            if let Some(batch) = self.batch_status() {
                ui.separator();
                ui.label(batch);
            }
        });
    }

    /// The help, settings and path windows, whichever are open.
    pub(super) fn windows(&mut self, ctx: &egui::Context) -> Vec<Action> {
        let mut out = Vec::new();
        if self.windows.show_help && !super::help::help_window(ctx) {
            out.push(Action::HideHelp);
        }
        if self.windows.show_settings {
            let draft = &mut self.windows.draft;
            match settings_window(ctx, draft, &self.downloads, &mut out) {
                WindowOutcome::Keep => {}
                WindowOutcome::Close => out.push(Action::HideSettings),
                WindowOutcome::Done => out.push(Action::ApplySettings),
            }
        }
        if let Some(entry) = self.windows.path_entry.as_mut() {
            match path_entry_window(ctx, entry) {
                WindowOutcome::Keep => {}
                WindowOutcome::Close => out.push(Action::ClosePathEntry),
                WindowOutcome::Done => {
                    let path = PathBuf::from(entry.text.trim());
                    out.push(Action::ClosePathEntry);
                    out.push(if entry.save {
                        Action::SaveTo(path)
                    } else {
                        Action::OpenPath(path)
                    });
                }
            }
        }
        out
    }
}

fn session_label(ui: &mut Ui, session: &SessionState, progress: Option<f32>) {
    match session {
        SessionState::NoImage => ui.label("No image"),
        SessionState::Initializing(since) => {
            ui.spinner();
            let secs = since.elapsed().as_secs_f32();
            match progress {
                Some(done) => ui.add(
                    egui::ProgressBar::new(done)
                        .desired_width(160.0)
                        .text(format!("Encoding the image {:.0} %", done * 100.0)),
                ),
                None => ui.label(format!("Initializing... {secs:.0} s")),
            }
        }
        SessionState::Ready => ui.label("Ready"),
        SessionState::Expired => ui.colored_label(Color32::YELLOW, "Session expired"),
        SessionState::Failed(e) => ui.colored_label(Color32::LIGHT_RED, format!("Error: {e}")),
        SessionState::Cancelled => ui.colored_label(Color32::YELLOW, "Cancelled"),
    };
}

/// The banner's text and buttons; returns the button clicked.
fn banner(ui: &mut Ui, b: &Banner) -> Option<Action> {
    let mut act = None;
    egui::Frame::new()
        .fill(Color32::from_rgb(110, 40, 30))
        .inner_margin(6.0)
        .show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new(&b.text).color(Color32::WHITE));
                if let Some(label) = b.action.label()
                    && ui.button(label).clicked()
                {
                    act = Some(Action::Banner(b.action));
                }
                if ui.button("Dismiss").clicked() {
                    act = Some(Action::Banner(BannerAction::None));
                }
            });
        });
    act
}

/// What the user did with a window this frame.
enum WindowOutcome {
    Keep,
    Close,
    /// Applied, or the path was given.
    Done,
}

/// The settings window, editing `draft`; the model list's buttons go to `out`.
fn settings_window(
    ctx: &egui::Context,
    draft: &mut SettingsDraft,
    models: &ModelDownloads,
    out: &mut Vec<Action>,
) -> WindowOutcome {
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
            engine_choice(ui, draft);
            ui.add_space(6.0);
            model_list(ui, draft, models, out);
            ui.add_space(6.0);
            api_fields(ui, draft);
            ui.add_space(6.0);
            super::hover::settings_ui(ui, &mut draft.hover, draft.engine);
            ui.add_space(6.0);
            apply = ui.button("Apply").clicked();
        });
    match (apply, open) {
        (true, _) => WindowOutcome::Done,
        (false, false) => WindowOutcome::Close,
        (false, true) => WindowOutcome::Keep,
    }
}

fn engine_choice(ui: &mut Ui, draft: &mut SettingsDraft) {
    ui.label(RichText::new("Segmentation engine").strong());
    let choices = [
        (EngineKind::Builtin, "Built-in (no network, no account)"),
        (EngineKind::Api, "AI Cut API (hosted, needs a key)"),
        (
            EngineKind::Sam,
            "SAM model file (MobileSAM or SAM, runs locally)",
        ),
    ];
    for (kind, text) in choices {
        ui.radio_value(&mut draft.engine, kind, text);
    }
    ui.add_enabled_ui(draft.engine == EngineKind::Sam, |ui| {
        ui.horizontal(|ui| {
            ui.label("Model file");
            ui.add(
                egui::TextEdit::singleline(&mut draft.sam_model)
                    .hint_text("/path/to/mobile_sam.pt or .safetensors")
                    .desired_width(280.0),
            );
        });
    });
}

/// The known SAM models with size, licence and state; Download (or Use, once installed);
/// the running download's progress with Cancel.
fn model_list(ui: &mut Ui, draft: &SettingsDraft, models: &ModelDownloads, out: &mut Vec<Action>) {
    ui.label(RichText::new("SAM models").strong());
    let Some(folder) = models.folder() else {
        ui.label("Models cannot be downloaded here: no data folder is known.");
        return;
    };
    let running = models.running.as_ref();
    egui::Grid::new("models").num_columns(5).show(ui, |ui| {
        for row in models.rows() {
            let name = row.info.name.as_ref();
            ui.label(name).on_hover_text(row.info.description);
            ui.label(row.info.size.map(human_bytes).unwrap_or_else(|| "?".into()));
            ui.label(row.info.licence);
            let chosen = draft.sam_model.trim() == row.path.to_string_lossy();
            let state = match (running.is_some_and(|r| r.name == name), chosen) {
                (true, _) => "downloading".to_string(),
                (false, true) => "installed, chosen".into(),
                (false, false) => state_label(row.state),
            };
            ui.label(state);
            if row.state == Some(InstallState::Installed) {
                let r = ui.add_enabled(!chosen, egui::Button::new("Use"));
                if r.on_hover_text("Choose it as the SAM model").clicked() {
                    out.push(Action::UseModel(row.path.clone()));
                }
            } else {
                let r = ui.add_enabled(running.is_none(), egui::Button::new("Download"));
                let hint = "Download, check its SHA-256 and choose it (a stopped download resumes)";
                if r.on_hover_text(hint).clicked() {
                    out.push(Action::DownloadModel(name.to_string()));
                }
            }
            ui.end_row();
        }
    });
    if let Some(r) = running {
        download_progress(ui, r, out);
    }
    ui.label(RichText::new(format!("Saved in {}", folder.display())).small());
}

/// The running download: a bar with amount, rate and time left, and Cancel.
fn download_progress(ui: &mut Ui, r: &Running, out: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        let (fraction, text) = match &r.progress {
            Some(p) => (p.fraction(), format!("{}: {}", r.name, p.summary())),
            None => (None, format!("{}: connecting...", r.name)),
        };
        let bar = egui::ProgressBar::new(fraction.unwrap_or(0.0))
            .text(text)
            .desired_width(380.0)
            .animate(fraction.is_none());
        ui.add(bar);
        if ui
            .add_enabled(!r.cancelling(), egui::Button::new("Cancel"))
            .clicked()
        {
            out.push(Action::CancelDownload);
        }
    });
}

fn api_fields(ui: &mut Ui, draft: &mut SettingsDraft) {
    ui.add_enabled_ui(draft.engine == EngineKind::Api, |ui| {
        egui::Grid::new("api").num_columns(2).show(ui, |ui| {
            ui.label("API address");
            ui.text_edit_singleline(&mut draft.api_base_url);
            ui.end_row();
            ui.label("API key");
            ui.add(
                egui::TextEdit::singleline(&mut draft.api_key)
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
}

/// The path box; `Done` when a path was given (Enter or the button), `Close` on Escape or
/// the window's close button.
fn path_entry_window(ctx: &egui::Context, entry: &mut PathEntry) -> WindowOutcome {
    let mut open = true;
    let mut escape = false;
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
            escape = r.has_focus() && ui.input(|i| i.key_pressed(egui::Key::Escape));
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let label = if entry.save { "Save" } else { "Open" };
            ui.horizontal(|ui| go = ui.button(label).clicked() || enter);
        });
    if go && !entry.text.trim().is_empty() {
        WindowOutcome::Done
    } else if !open || escape {
        WindowOutcome::Close
    } else {
        WindowOutcome::Keep
    }
}

/// The toasts in the corner; returns the one whose close button was clicked.
pub(super) fn toasts(ctx: &egui::Context, toasts: &[Toast]) -> Option<Action> {
    if toasts.is_empty() {
        return None;
    }
    let mut close = None;
    egui::Area::new(egui::Id::unique("toasts"))
        .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -36.0])
        .order(egui::Order::Foreground)
        .show(ctx, |ui| {
            for (i, t) in toasts.iter().enumerate() {
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
                            // Wrapped: a download error names two 64-digit digests.
                            let text = RichText::new(&t.text).color(Color32::WHITE);
                            ui.add(egui::Label::new(text).wrap());
                            if ui.small_button("x").clicked() {
                                close = Some(Action::CloseToast(i));
                            }
                        });
                    });
                ui.add_space(4.0);
            }
        });
    close
}

/// The save options: the same choices as `aicut cut --trim --mask` and `-o OUT.webp`.
fn save_options(ui: &mut Ui, o: &mut super::SaveOptions) {
    use crate::imageio::ExportFormat;
    ui.label("Format (a typed .png or .webp name wins)");
    ui.radio_value(
        &mut o.format,
        ExportFormat::Png,
        "PNG (16-bit for 16-bit photos)",
    );
    ui.radio_value(&mut o.format, ExportFormat::WebP, "WebP, lossless");
    ui.separator();
    ui.checkbox(&mut o.trim, "Trim to the subject");
    ui.add_enabled_ui(o.trim, |ui| {
        ui.horizontal(|ui| {
            ui.label("Margin");
            ui.add(
                egui::DragValue::new(&mut o.margin)
                    .range(0..=10_000)
                    .suffix(" px"),
            );
        });
    });
    ui.checkbox(
        &mut o.mask_only,
        "Save the mask (grey) instead of the cut-out",
    );
    ui.separator();
    edges_control(ui, &mut o.edges);
}

/// Edges: hard, or soft (matting in a band, as `aicut cut --edges soft --band PX`).
fn edges_control(ui: &mut Ui, e: &mut crate::matting::EdgeOptions) {
    use crate::matting::{Edges, pass::MAX_BAND};
    ui.label("Edges");
    ui.radio_value(
        &mut e.edges,
        Edges::Soft,
        "Soft: hair and fur, no old background",
    );
    ui.radio_value(&mut e.edges, Edges::Hard, "Hard: the selection as it is");
    ui.add_enabled_ui(e.edges == Edges::Soft, |ui| {
        ui.horizontal(|ui| {
            ui.label("Band");
            ui.add(
                egui::DragValue::new(&mut e.band)
                    .range(1..=MAX_BAND)
                    .suffix(" px"),
            );
        });
    });
}
