//! What the user can ask of the editor, as values: the keyboard, the pointer, the toolbar
//! and the windows turn their input into [`Action`]s, and [`App::apply`] carries them out,
//! in one place.

use std::path::PathBuf;

use egui::Pos2;

use super::App;
use super::document::DotEdit;
use super::engine_link::SessionState;
use super::input::DotDrag;
use super::messages::BannerAction;
use super::progress::Work;
use super::settings::{SaveOptions, ViewMode};
use super::tools::ToolAction;
use super::view::View;
use crate::worker::Command;

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Change the dots (each change is sent to the engine).
    Edit(DotEdit),
    OpenDialog,
    SaveDialog,
    OpenPath(PathBuf),
    SaveTo(PathBuf),
    /// Put the cut-out on the clipboard.
    Copy,
    /// Open the image on the clipboard.
    Paste,
    /// Paste text into the focused text field (the clipboard is read off the UI thread).
    PasteText,
    /// New save options (format, trim, mask), remembered in the settings.
    SetSaveOptions(SaveOptions),
    /// Open the in-app path box to type an image's path.
    TypePath,
    ToggleHelp,
    HideHelp,
    ToggleSettings,
    HideSettings,
    /// Apply the settings being edited, and close their window.
    ApplySettings,
    /// Download a known model (Settings); it becomes the SAM model when it is ready.
    DownloadModel(String),
    CancelDownload,
    /// Put an installed model in the settings being edited.
    UseModel(PathBuf),
    ClosePathEntry,
    NextViewMode,
    SetViewMode(ViewMode),
    /// Zoom, pan or drag on the canvas.
    Canvas(CanvasAction),
    /// A banner's button; `BannerAction::None` is "Dismiss".
    Banner(BannerAction),
    CloseToast(usize),
    /// Hover preview, strokes, candidates, batches (see [`super::tools`]).
    Tool(ToolAction),
    /// Stop long work (see [`super::progress`]).
    Cancel(Work),
}

/// How the open image is shown, and dots picked up to move: not changes to the dots
/// until a dragged dot is dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CanvasAction {
    /// Multiply the zoom, keeping the image point under `anchor` in place.
    Zoom {
        anchor: Pos2,
        factor: f32,
    },
    Fit,
    /// 100 %: one image pixel per physical screen pixel.
    ActualSize,
    /// Move the image by the pointer's way from `from` to `to`.
    Pan {
        from: Pos2,
        to: Pos2,
    },
    EndPan,
    /// Pick up a dot to drag it; it is drawn at `drag.to` until dropped.
    GrabDot(DotDrag),
    DragDotTo([u32; 2]),
    /// Put the dragged dot down where it is: one undoable move.
    DropDot,
}

impl App {
    pub(super) fn apply_all(&mut self, actions: impl IntoIterator<Item = Action>) {
        for action in actions {
            self.apply(action);
        }
    }

    /// Carries out one action.
    pub(super) fn apply(&mut self, action: Action) {
        match action {
            Action::Edit(edit) => self.edit_dots(edit),
            Action::OpenDialog => self.open_dialog(),
            Action::SaveDialog => self.save_dialog(),
            Action::OpenPath(path) => self.open_path(path),
            Action::SaveTo(path) => self.save_to(path),
            Action::SetSaveOptions(options) => self.settings.save = options,
            Action::Copy => self.copy(),
            Action::Paste => self.paste(),
            Action::PasteText => self.files.tasks.clipboard.paste_text(),
            Action::TypePath => self
                .windows
                .ask_path(false, "Type the path of an image to open:"),
            Action::ToggleHelp => self.windows.show_help ^= true,
            Action::HideHelp => self.windows.show_help = false,
            Action::ToggleSettings => {
                self.windows.show_settings ^= true;
                if self.windows.show_settings {
                    self.downloads.rescan();
                }
            }
            Action::HideSettings => self.windows.show_settings = false,
            Action::ApplySettings => {
                self.apply_settings();
                self.windows.show_settings = false;
            }
            Action::DownloadModel(name) => {
                if let Err(e) = self.downloads.start(&name) {
                    self.messages.toast(e, true, std::time::Instant::now());
                }
            }
            Action::CancelDownload => self.downloads.cancel(),
            Action::UseModel(path) => {
                self.windows.draft.engine = crate::engine::EngineKind::Sam;
                self.windows.draft.sam_model = path.display().to_string();
            }
            Action::ClosePathEntry => self.windows.path_entry = None,
            Action::NextViewMode => self.settings.view_mode = self.settings.view_mode.next(),
            Action::SetViewMode(mode) => self.settings.view_mode = mode,
            Action::Banner(action) => self.banner_action(action),
            Action::CloseToast(i) if i < self.messages.toasts.len() => {
                self.messages.toasts.remove(i);
            }
            Action::CloseToast(_) => {}
            Action::Canvas(action) => self.canvas_action(action),
            Action::Tool(action) => self.tool_action(action),
            Action::Cancel(work) => self.cancel(work),
        }
    }

    fn canvas_action(&mut self, action: CanvasAction) {
        let canvas = self.canvas.rect;
        let ppp = self.ctx.pixels_per_point();
        let Some(open) = self.open.as_mut() else {
            return;
        };
        match action {
            CanvasAction::Zoom { anchor, factor } => {
                open.view.zoom_about(anchor, factor);
                open.needs_fit = false;
            }
            CanvasAction::Fit => open.needs_fit = true,
            CanvasAction::ActualSize => {
                open.view = View::actual_size(canvas, open.doc.size(), ppp);
                open.needs_fit = false;
            }
            CanvasAction::Pan { from, to } => {
                open.view.pan(to - from);
                open.gesture.pan_from = Some(to);
            }
            CanvasAction::EndPan => open.gesture.pan_from = None,
            CanvasAction::GrabDot(drag) => open.gesture.drag = Some(drag),
            CanvasAction::DragDotTo(px) => {
                if let Some(drag) = open.gesture.drag.as_mut() {
                    drag.to = px;
                }
            }
            CanvasAction::DropDot => {
                if let Some(drag) = open.gesture.drag.take() {
                    self.edit_dots(DotEdit::Move {
                        index: drag.index,
                        to: drag.to,
                    });
                }
            }
        }
    }

    /// Changes the dots; a change goes to the engine, and pictures of a mask that no
    /// longer applies are dropped.
    fn edit_dots(&mut self, edit: DotEdit) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if open.doc.edit(edit) {
            open.pictures.forget_stale(&open.doc);
            self.engine.send(Command::Prompt(open.doc.prompt()));
        }
    }

    fn banner_action(&mut self, action: BannerAction) {
        match action {
            BannerAction::Retry if matches!(self.engine.session, SessionState::Cancelled) => {
                self.prepare_again()
            }
            BannerAction::Retry => self.engine.send(Command::Retry),
            BannerAction::NewSession => self.engine.send(Command::Reinitialize),
            BannerAction::Settings => {
                self.windows.show_settings = true;
                self.downloads.rescan();
            }
            BannerAction::None => {}
        }
        if action != BannerAction::Settings {
            self.messages.banner = None;
        }
    }

    /// Applies the settings draft: stores the key (owner-only file, off the UI thread)
    /// and restarts the worker on the chosen engine.
    fn apply_settings(&mut self) {
        self.settings.apply_draft(&self.windows.draft);
        self.api_key.replace(&self.windows.draft.api_key);
        self.restart_engine();
    }
}
