//! Opening and saving: the editor's side of the background [`tasks`]. The UI thread starts
//! them and takes in their results; no file work happens on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::imageio;

use super::clipboard::{ClipboardResult, Pasted};
use super::document::Document;
use super::engine_link::SessionState;
use super::messages::BannerAction;
use super::panels::PathEntry;
use super::pictures::Pictures;
use super::tasks::{Decoded, LayerImage, SAVE_CANCELLED, SaveJob, TaskResult, Tasks};
use super::{App, OpenImage};

/// Background file work and where it stands.
pub(crate) struct FileWork {
    pub tasks: Tasks,
    /// Counts the opens started, so that a decode a later open superseded (or Cancel
    /// abandoned) is dropped.
    pub open_gen: u64,
    /// The file being decoded, and since when.
    pub loading: Option<PathBuf>,
    pub loading_since: Option<Instant>,
    pub saving: bool,
    /// Since when the running save runs, and its stop flag (see [`SaveJob::cancel`]).
    pub saving_since: Option<Instant>,
    pub save_cancel: Option<Arc<AtomicBool>>,
    pub last_saved: Option<PathBuf>,
    /// The image given on the command line, opened on the first frame, when the GPU's
    /// texture limit is known.
    pub open_on_start: Option<PathBuf>,
}

impl FileWork {
    pub fn new(tasks: Tasks, open_on_start: Option<PathBuf>) -> Self {
        FileWork {
            tasks,
            open_gen: 0,
            loading: None,
            loading_since: None,
            saving: false,
            saving_since: None,
            save_cancel: None,
            last_saved: None,
            open_on_start,
        }
    }
}

impl App {
    /// Starts decoding a file off the UI thread; the current image stays until it is ready.
    pub fn open_path(&mut self, path: PathBuf) {
        let files = &mut self.files;
        files.open_gen += 1;
        files.loading = Some(path.clone());
        files.loading_since = Some(Instant::now());
        let max_side = self.ctx.input(|i| i.max_texture_side).clamp(256, 16384);
        files.tasks.decode(files.open_gen, path, max_side);
    }

    /// Ctrl+O: the system's dialog, starting in the folder of the open or latest image.
    pub(super) fn open_dialog(&mut self) {
        if self.files.tasks.dialog_open {
            // A dialog that never came back (a stuck portal) must not lock the user out.
            self.windows.ask_path(
                false,
                "The system file dialog is still open elsewhere. Type the path of an image to open:",
            );
            return;
        }
        let dir = self
            .open
            .as_ref()
            .and_then(|o| o.doc.image().path.as_ref())
            .or(self.settings.recent.first())
            .and_then(|p| p.parent().map(Path::to_path_buf));
        self.files.tasks.pick_image(dir);
    }

    /// Ctrl+S: asks where, then writes the cut-out in the background.
    pub(super) fn save_dialog(&mut self) {
        let Some(open) = &self.open else {
            self.toast(
                "Open an image first (Ctrl+O or drop one onto the window).",
                true,
            );
            return;
        };
        if open.doc.mask().is_none() {
            self.toast(
                "Nothing is selected yet: left-click what to keep, then save.",
                true,
            );
            return;
        }
        if self.batch_save() {
            return;
        }
        let proposed = self.proposed_output();
        self.files.tasks.pick_save_path(proposed);
    }

    /// Next to the open image, named after it and the save options.
    fn proposed_output(&self) -> PathBuf {
        let options = &self.settings.save;
        let Some(open) = &self.open else {
            return options.proposed_path(Path::new("image"));
        };
        let image = open.doc.image();
        match &image.path {
            Some(p) => options.proposed_path(p),
            None => options.proposed_path(Path::new(&image.name)),
        }
    }

    /// Writes the cut-out (or mask) in the background; the extension picks the format.
    pub(super) fn save_to(&mut self, mut path: PathBuf) {
        let Some(open) = &self.open else { return };
        let Some(mask) = open.doc.mask() else { return };
        let options = self.settings.save;
        if path.extension().is_none() {
            path.set_extension(options.format.extension());
        }
        let format = match imageio::ExportFormat::from_path(&path) {
            Ok(f) => f,
            Err(e) => return self.toast(e, true),
        };
        self.files.saving = true;
        self.files.saving_since = Some(Instant::now());
        let cancel = Arc::new(AtomicBool::new(false));
        self.files.save_cancel = Some(cancel.clone());
        let image = open.doc.image().clone();
        let job = SaveJob {
            image,
            mask: mask.clone(),
            path,
            format,
            options: options.export_options(),
            cancel,
        };
        self.files.tasks.save(job);
    }

    pub(super) fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.messages.toast(text, error, Instant::now());
    }

    /// Takes in one finished background task.
    pub(super) fn task_result(&mut self, r: TaskResult) {
        match r {
            TaskResult::Decoded {
                generation,
                path,
                result,
            } if generation == self.files.open_gen => {
                self.files.loading = None;
                self.files.loading_since = None;
                match result {
                    Ok(decoded) => self.decoded(generation, Some(&path), decoded),
                    Err(e) => {
                        self.settings.recent.retain(|p| p != &path);
                        self.toast(format!("{e}. Try another file."), true);
                    }
                }
            }
            // A newer open superseded this one.
            TaskResult::Decoded { .. } => {}
            TaskResult::Layer(l) => self.layer_built(l),
            TaskResult::Picked { result } => {
                self.files.tasks.dialog_open = false;
                match result {
                    Ok(Some(path)) => self.open_path(path),
                    Ok(None) => {}
                    Err(note) => {
                        let note = format!("{note}. Type the path of an image to open:");
                        self.windows.ask_path(false, note);
                    }
                }
            }
            TaskResult::SavePath { result } => {
                self.files.tasks.dialog_open = false;
                match result {
                    Ok(Some(path)) => self.save_to(path),
                    Ok(None) => {}
                    Err(note) => self.ask_save_path(&note),
                }
            }
            TaskResult::Saved { path, result } => self.saved(path, result),
            TaskResult::Clipboard(r) => self.clipboard_result(r),
        }
    }

    /// Ctrl+C: the cut-out to the clipboard, off the UI thread.
    pub(super) fn copy(&mut self) {
        let Some(open) = &self.open else {
            return self.toast("Open an image first, then select what to copy.", true);
        };
        let Some(mask) = open.doc.mask() else {
            return self.toast(
                "Nothing is selected yet: left-click what to keep, then copy.",
                true,
            );
        };
        let (image, mask) = (open.doc.image().clone(), mask.clone());
        let options = self.settings.save.export_options();
        let soft = self.files.tasks.soft.clone();
        self.files.tasks.clipboard.copy(image, mask, options, soft);
    }

    /// Ctrl+V: opens the clipboard's image (or copied file) like a dropped file.
    pub(super) fn paste(&mut self) {
        self.files.open_gen += 1;
        self.files.loading = Some(PathBuf::from("the clipboard"));
        self.files.loading_since = Some(Instant::now());
        let max_side = self.ctx.input(|i| i.max_texture_side).clamp(256, 16384);
        let generation = self.files.open_gen;
        self.files.tasks.clipboard.paste(generation, max_side);
    }

    fn clipboard_result(&mut self, r: ClipboardResult) {
        match r {
            ClipboardResult::Copied(Ok((w, h))) => {
                self.toast(format!("Copied the cut-out ({w} x {h} px)"), false)
            }
            ClipboardResult::Copied(Err(e)) => self.toast(format!("{e}."), true),
            ClipboardResult::Pasted { generation, result } if generation == self.files.open_gen => {
                self.files.loading = None;
                self.files.loading_since = None;
                match result {
                    Ok(Pasted::Image(decoded)) => self.decoded(generation, None, decoded),
                    Ok(Pasted::File(path)) => self.open_path(path),
                    Err(e) => self.toast(format!("{e}."), true),
                }
            }
            ClipboardResult::Pasted { .. } => {}
            ClipboardResult::Text(Ok(text)) => {
                self.ctx
                    .input_mut(|i| i.events.push(egui::Event::Paste(text)));
            }
            ClipboardResult::Text(Err(e)) => self.toast(format!("{e}."), true),
        }
    }

    /// A new document for a decoded image; the engine starts its session for it.
    fn decoded(&mut self, generation: u64, path: Option<&Path>, decoded: Decoded) {
        if let Some(path) = path {
            self.settings.remember_recent(path);
        }
        self.open = Some(OpenImage::new(
            Document::new(generation, decoded.image.clone()),
            Pictures::new(decoded.display),
        ));
        // Problems with the settings outlive the image; others were about the last one.
        self.messages
            .dismiss_banner_if(|a| a != BannerAction::Settings);
        self.engine.last_round_trip = None;
        self.engine.open(decoded.image);
        self.engine.session = SessionState::Initializing(Instant::now());
        self.tools_opened(path);
        self.sidecar_opened(path, decoded.dots);
    }

    fn layer_built(&mut self, l: LayerImage) {
        let wanted = self.settings.view_mode.layer();
        if let Some(open) = self.open.as_mut() {
            open.pictures.receive(l, wanted, &open.doc);
        }
    }

    /// No save dialog could open: the path box, with a proposed file.
    fn ask_save_path(&mut self, note: &str) {
        let proposed = self.proposed_output();
        let note = format!("{note}. Type where to save the cut-out:");
        let entry = PathEntry::new(true, note).with_text(proposed.display().to_string());
        self.windows.path_entry = Some(entry);
    }

    fn saved(&mut self, path: PathBuf, result: Result<(), String>) {
        self.files.saving = false;
        self.files.saving_since = None;
        self.files.save_cancel = None;
        self.batch_saved(result.is_ok());
        match result {
            Ok(()) => {
                self.toast(format!("Saved the cut-out to {}", path.display()), false);
                self.files.last_saved = Some(path);
            }
            Err(e) if e == SAVE_CANCELLED => {
                self.toast("Save cancelled: nothing was written", false)
            }
            Err(e) => self.toast(e, true),
        }
    }
}
