//! The desktop editor: open a photo, click green and red dots, see the selection, save.
//!
//! The state is split by concern: the `document` (image, dots with undo/redo, the shown
//! mask) holds the rules and knows nothing of egui; beside it sit how it is shown
//! ([`view`]), its GPU `pictures`, the `settings`, the engine link (`engine_link`, over
//! the [`crate::worker`]), background file work ([`tasks`], `files`) and model
//! downloads (`downloads`). Each frame,
//! input (`input`: keyboard and pointer; `panels`: buttons) becomes `commands::Action`s
//! that `App::apply` carries out in one place; then `canvas` and `panels` draw from the
//! state. The UI thread only draws and reacts: file, network and model work run off it.

mod batch;
mod candidates;
mod canvas;
pub mod clipboard;
mod commands;
mod document;
pub mod dots;
mod downloads;
mod engine_link;
mod files;
mod frame_stats;
mod help;
mod hover;
mod inbox;
mod input;
mod loupe;
mod messages;
mod outline;
mod panels;
mod pictures;
mod progress;
mod settings;
mod soft_memo;
mod stroke;
pub mod tasks;
mod tools;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::TextureHandle;

use crate::engine::{AlphaMask, Engine, Prompt};
use crate::imageio::LoadedImage;
use crate::models::{ModelStore, Progress};
use crate::worker::WorkerPolicy;

use commands::{Action, CanvasAction};
use document::Document;
use downloads::ModelDownloads;
use engine_link::EngineLink;
use files::FileWork;
use frame_stats::FrameStats;
use input::{Gesture, KeyTarget};
use messages::{Banner, Messages};
use panels::Windows;
use pictures::Pictures;
use settings::{ApiKey, SettingsDraft};
use tasks::{FileDialogs, LayerKind, NativeDialogs, Tasks};
use tools::Tools;
use view::View;

pub use engine_link::SessionState;
pub use help::SHORTCUTS;
pub use hover::HoverSettings;
pub use loupe::RADIUS as LOUPE_RADIUS;
pub use panels::PathEntry;
pub use settings::{SaveOptions, Settings, ViewMode};

/// How the editor starts; tests replace the dialogs, the engine and the key file.
pub struct Options {
    /// A file to open alone.
    pub image: Option<PathBuf>,
    /// Files and folders to open as a batch (see [`start_paths`]).
    pub batch: Vec<PathBuf>,
    pub dialogs: Arc<dyn FileDialogs>,
    /// Use this engine, with this worker policy, whatever the settings say (tests).
    pub engine: Option<(Arc<dyn Engine>, WorkerPolicy)>,
    /// Where the API key is kept; `None` keeps it in memory only.
    pub key_file: Option<PathBuf>,
    /// The models Settings offers to download, and their folder; `None` offers none.
    pub models: Option<ModelStore>,
    /// The clipboard for Copy and Paste.
    pub clipboard: clipboard::ClipboardOpener,
}

impl Options {
    /// The desktop app on the command line's paths: native dialogs, the key in the
    /// user's config folder.
    pub fn desktop(paths: Vec<PathBuf>) -> Self {
        let (image, batch) = start_paths(paths);
        Options {
            image,
            batch,
            dialogs: Arc::new(NativeDialogs),
            engine: None,
            key_file: tasks::key_file(),
            models: ModelStore::user().ok(),
            clipboard: clipboard::system(),
        }
    }
}

/// Opens the editor window on `paths`; returns when it is closed. One file opens alone;
/// several files, or a folder, open as a batch (the desktop entry's `Exec=aicut %F`).
pub fn run(paths: Vec<PathBuf>) -> Result<(), String> {
    return_big_buffers_to_the_os();
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("aicut")
        .with_app_id("io.github.aicut")
        .with_inner_size([1200.0, 800.0])
        .with_min_inner_size([480.0, 320.0])
        .with_drag_and_drop(true);
    if let Some(icon) = window_icon() {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        viewport,
        // Ctrl+C/V reach the editor as keys: the clipboard thread does the work, instead
        // of egui reading a pasted image on the UI thread (text fields still get theirs,
        // see `input::text_field_clipboard`).
        clipboard_shortcuts: false,
        ..Default::default()
    };
    eframe::run_native(
        "aicut",
        options,
        Box::new(move |cc| Ok(Box::new(App::new(cc, Options::desktop(paths))))),
    )
    .map_err(|e| format!("the editor window could not open: {e}"))
}

/// The command line's paths: one file to open alone, or a batch (several paths, or a
/// folder; a folder is checked here, before the window's first frame).
pub fn start_paths(mut paths: Vec<PathBuf>) -> (Option<PathBuf>, Vec<PathBuf>) {
    if paths.len() == 1 && !paths[0].is_dir() {
        return (paths.pop(), Vec::new());
    }
    (None, paths)
}

/// glibc raises its mmap threshold each time a large block is freed, so after the first
/// few display-sized pictures (12 MB each for a 12 MP photo) freed ones stay in the heap
/// and keep counting as resident memory. A fixed 1 MiB threshold keeps every picture in
/// its own mapping, given back to the system as soon as it is dropped.
fn return_big_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before the editor
    // starts its threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn window_icon() -> Option<egui::IconData> {
    let img = image::load_from_memory(include_bytes!("../../assets/icon.png")).ok()?;
    let img = img.into_rgba8();
    Some(egui::IconData {
        width: img.width(),
        height: img.height(),
        rgba: img.into_raw(),
    })
}

/// An open image: the document, how it is shown, and its pictures on the GPU.
pub(crate) struct OpenImage {
    doc: Document,
    view: View,
    /// Fit the image to the canvas when it is next drawn (its size is known then).
    needs_fit: bool,
    gesture: Gesture,
    pictures: Pictures,
}

impl OpenImage {
    fn new(doc: Document, pictures: Pictures) -> Self {
        OpenImage {
            doc,
            view: View::default(),
            needs_fit: true,
            gesture: Gesture::default(),
            pictures,
        }
    }
}

/// The canvas as last laid out, for input that arrives before it is drawn again.
struct CanvasState {
    rect: egui::Rect,
    /// The image pixel under the pointer, for the status bar.
    cursor_px: Option<[u32; 2]>,
    /// The cut-out view's checkerboard, made when first needed.
    checker: Option<TextureHandle>,
}

/// The editor.
pub struct App {
    /// What persists across runs.
    settings: Settings,
    api_key: ApiKey,
    engine: EngineLink,
    files: FileWork,
    downloads: ModelDownloads,
    open: Option<OpenImage>,
    messages: Messages,
    windows: Windows,
    canvas: CanvasState,
    frame_stats: Option<FrameStats>,
    /// Hover preview, strokes, loupe, candidates, batches.
    tools: Tools,
    ctx: egui::Context,
}

impl App {
    pub fn new(cc: &eframe::CreationContext<'_>, options: Options) -> Self {
        let ctx = cc.egui_ctx.clone();
        let settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        let api_key = ApiKey::load(options.key_file);
        let wake = waker(&ctx);
        let (engine, problem) =
            EngineLink::start(options.engine, &settings, &api_key.value, wake.clone());
        let mut app = App {
            windows: Windows::new(SettingsDraft::new(&settings, &api_key.value)),
            settings,
            api_key,
            engine,
            downloads: ModelDownloads::new(options.models, wake.clone()),
            tools: Tools::new(wake.clone()),
            files: FileWork::new(
                Tasks::new(options.dialogs, options.clipboard, wake),
                options.image,
            ),
            open: None,
            messages: Messages {
                toasts: Vec::new(),
                banner: problem.map(Banner::settings),
            },
            canvas: CanvasState {
                rect: egui::Rect::NOTHING,
                cursor_px: None,
                checker: None,
            },
            frame_stats: FrameStats::from_env(),
            ctx,
        };
        if !options.batch.is_empty() {
            app.open_batch(options.batch);
        }
        app
    }

    /// Wakes the UI when background work reports.
    fn wake(&self) -> Arc<dyn Fn() + Send + Sync> {
        waker(&self.ctx)
    }

    // ---- read-only views for tests ----

    /// The dots on the current image.
    pub fn dots(&self) -> &[dots::PlacedDot] {
        self.open.as_ref().map(|o| o.doc.dots()).unwrap_or(&[])
    }

    /// The open image, once decoded.
    pub fn image(&self) -> Option<&Arc<LoadedImage>> {
        self.open.as_ref().map(|o| o.doc.image())
    }

    /// Whether an image is being decoded.
    pub fn is_loading(&self) -> bool {
        self.files.loading.is_some()
    }

    /// The view transform of the current image.
    pub fn view(&self) -> Option<View> {
        self.open.as_ref().map(|o| o.view)
    }

    /// Zooms by `factor` about a screen point, as the wheel does.
    pub fn zoom_about(&mut self, anchor: egui::Pos2, factor: f32) {
        self.apply(Action::Canvas(CanvasAction::Zoom { anchor, factor }));
    }

    /// The screen area of the canvas, in points.
    pub fn canvas_rect(&self) -> egui::Rect {
        self.canvas.rect
    }

    /// The mask on screen: its request number, pixels and the prompt it answers.
    pub fn shown_mask(&self) -> Option<(u64, &Arc<AlphaMask>, &Prompt)> {
        self.open.as_ref()?.doc.shown_mask()
    }

    /// The request number of the selection overlay (built off the UI thread while the
    /// selection view is shown).
    pub fn overlay_request(&self) -> Option<u64> {
        self.layer_request(LayerKind::Tint)
    }

    /// The request number of the cut-out picture (built off the UI thread while the
    /// cut-out view is shown).
    pub fn cutout_request(&self) -> Option<u64> {
        self.layer_request(LayerKind::Cutout)
    }

    fn layer_request(&self, kind: LayerKind) -> Option<u64> {
        let layer = self.open.as_ref()?.pictures.layer(kind);
        layer.map(|l| l.request_number)
    }

    pub fn view_mode(&self) -> ViewMode {
        self.settings.view_mode
    }

    pub fn last_saved(&self) -> Option<&Path> {
        self.files.last_saved.as_deref()
    }

    pub fn is_saving(&self) -> bool {
        self.files.saving
    }

    /// The messages on screen (toasts and the banner).
    pub fn messages(&self) -> Vec<String> {
        self.messages.texts()
    }

    /// The in-app path box, when it is open (no native dialog could be shown).
    pub fn path_entry(&self) -> Option<&PathEntry> {
        self.windows.path_entry.as_ref()
    }

    pub fn recent_files(&self) -> &[PathBuf] {
        &self.settings.recent
    }

    /// Whether engine calls are in flight.
    pub fn is_busy(&self) -> bool {
        self.engine.busy
    }

    pub fn session_state(&self) -> &SessionState {
        &self.engine.session
    }

    /// How far the engine has got preparing the open image, when it can tell.
    pub fn encode_progress(&self) -> Option<f32> {
        self.engine.progress()
    }

    /// The settings in force (not the window's unapplied edits).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The model being downloaded, and how far it is (once it has started).
    pub fn model_download(&self) -> Option<(&str, Option<&Progress>)> {
        let r = self.downloads.running.as_ref()?;
        Some((r.name.as_str(), r.progress.as_ref()))
    }

    // ---- each frame ----

    /// Takes in worker reports, finished tasks and candidates' thumbnails.
    fn poll(&mut self, ctx: &egui::Context) {
        self.receive_candidate_thumbs(ctx);
        while let Some(ev) = self.engine.try_event() {
            self.worker_event(ev);
        }
        while let Some(r) = self.files.tasks.try_result() {
            self.task_result(r);
        }
        while let Some(ev) = self.downloads.try_event() {
            self.download_event(ev);
        }
        self.poll_batch();
    }

    /// Starts building the overlay picture the current view needs, if any.
    fn update_layers(&mut self) {
        let needed = self.settings.view_mode.layer();
        let Some(open) = self.open.as_mut() else {
            return;
        };
        open.pictures.set_edges(self.settings.save.edges);
        if let Some(job) = open.pictures.next_job(needed, &open.doc) {
            self.files.tasks.layer(job);
        }
    }

    /// Dropped files and keyboard shortcuts.
    fn keyboard_and_drops(&self, ctx: &egui::Context) -> Vec<Action> {
        let mut out = self.cancel_keys(ctx);
        out.extend(tools::keys(ctx));
        out.extend(input::dropped_file(ctx));
        let target = self.open.as_ref().map(|o| KeyTarget {
            view: &o.view,
            dots: o.doc.dots(),
            canvas: self.canvas.rect,
        });
        out.extend(input::shortcuts(ctx, target));
        out
    }
}

fn waker(ctx: &egui::Context) -> Arc<dyn Fn() + Send + Sync> {
    let ctx = ctx.clone();
    Arc::new(move || ctx.request_repaint())
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let started = Instant::now();
        if let Some(path) = self.files.open_on_start.take() {
            self.open_path(path);
        }
        self.poll(&ctx);
        let actions = self.keyboard_and_drops(&ctx);
        self.apply_all(actions);
        self.update_layers();
        let actions = egui::Panel::top("toolbar")
            .show(ui, |ui| self.toolbar(ui))
            .inner;
        self.apply_all(actions);
        // The toolbar may have switched the view.
        self.update_layers();
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        let actions = egui::CentralPanel::no_frame()
            .show(ui, |ui| self.central(ui))
            .inner;
        self.apply_all(actions);
        let actions = self.windows(&ctx);
        self.apply_all(actions);
        let actions = self.progress_panel(&ctx);
        self.apply_all(actions);
        let now = Instant::now();
        if let Some(next) = self.messages.expire(now) {
            ctx.request_repaint_after(next - now);
        }
        let close = panels::toasts(&ctx, &self.messages.toasts);
        self.apply_all(close);
        if matches!(self.engine.session, SessionState::Initializing(_)) {
            ctx.request_repaint_after(Duration::from_millis(500));
        }
        if let Some(stats) = self.frame_stats.as_mut() {
            stats.frame(self.engine.busy, started.elapsed());
            ctx.request_repaint();
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}
