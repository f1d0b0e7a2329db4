//! The desktop editor: open a photo, click green and red dots, see the selection, save.
//!
//! `App` owns the state; the UI thread only draws and reacts. Segmentation goes through
//! the [`crate::worker`] (latest wins, retries), file work through [`tasks`] threads.
//! Submodules: [`view`] the view transform, [`state`] dots with undo/redo, [`canvas`]
//! drawing and pointer input, [`panels`] toolbar, status bar, settings, help and messages,
//! [`tasks`] background decode/overlay/save/dialogs.

pub mod canvas;
pub mod panels;
pub mod state;
pub mod tasks;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{ColorImage, TextureHandle, TextureOptions};
use serde::{Deserialize, Serialize};

use crate::engine::remote::{DEFAULT_API_URL, RemoteConfig, RemoteEngine};
use crate::engine::{AlphaMask, Engine, EngineError, EngineKind, Prompt};
use crate::imageio::{self, LoadedImage};
use crate::worker::{self, Command, Event, WorkerHandle, WorkerPolicy};

use state::DotHistory;
use tasks::{FileDialogs, LayerKind, NativeDialogs, TaskResult, Tasks};
use view::View;

/// What the canvas shows over (or instead of) the photo; V or Tab cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ViewMode {
    /// The photo with the selection tinted and outlined.
    #[default]
    Mask,
    /// The cut-out over a checkerboard.
    Cutout,
    /// The photo alone.
    Original,
}

impl ViewMode {
    pub fn next(self) -> Self {
        match self {
            ViewMode::Mask => ViewMode::Cutout,
            ViewMode::Cutout => ViewMode::Original,
            ViewMode::Original => ViewMode::Mask,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ViewMode::Mask => "Selection",
            ViewMode::Cutout => "Cut-out",
            ViewMode::Original => "Original",
        }
    }
}

/// What persists across runs in eframe's storage. Never the API key: that lives in its
/// own owner-only file (see [`tasks::write_key`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub engine: EngineKind,
    pub api_base_url: String,
    /// The SAM checkpoint used when `engine` is `Sam`.
    pub sam_model: String,
    pub view_mode: ViewMode,
    pub recent: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            engine: EngineKind::Builtin,
            api_base_url: DEFAULT_API_URL.into(),
            sam_model: std::env::var(crate::engine::sam::MODEL_ENV).unwrap_or_default(),
            view_mode: ViewMode::Mask,
            recent: Vec::new(),
        }
    }
}

/// How many recent files are remembered.
const MAX_RECENT: usize = 10;

/// How the editor starts; tests replace the dialogs, the engine and the key file.
pub struct Options {
    pub image: Option<PathBuf>,
    pub dialogs: Arc<dyn FileDialogs>,
    /// Use this engine, with this worker policy, whatever the settings say (tests).
    pub engine: Option<(Arc<dyn Engine>, WorkerPolicy)>,
    /// Where the API key is kept; `None` keeps it in memory only.
    pub key_file: Option<PathBuf>,
}

impl Options {
    /// The desktop app: native dialogs, the key in the user's config folder.
    pub fn desktop(image: Option<PathBuf>) -> Self {
        Options {
            image,
            dialogs: Arc::new(NativeDialogs),
            engine: None,
            key_file: tasks::key_file(),
        }
    }
}

/// Opens the editor window; returns when it is closed.
pub fn run(image: Option<PathBuf>) -> Result<(), String> {
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
        ..Default::default()
    };
    eframe::run_native(
        "aicut",
        options,
        Box::new(move |cc| Ok(Box::new(App::new(cc, Options::desktop(image))))),
    )
    .map_err(|e| format!("the editor window could not open: {e}"))
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

/// Where the engine session stands, for the status bar.
#[derive(Debug, Clone)]
pub enum SessionState {
    NoImage,
    Initializing(Instant),
    Ready,
    Expired,
    Failed(String),
}

/// A texture made off the UI thread, uploaded when it is first drawn.
pub(crate) enum LazyTexture {
    Pending(ColorImage),
    Ready(TextureHandle),
}

impl LazyTexture {
    fn get(&mut self, ctx: &egui::Context, name: &str) -> &TextureHandle {
        if let LazyTexture::Pending(img) = self {
            let img = std::mem::replace(
                img,
                ColorImage::new([1, 1], vec![egui::Color32::TRANSPARENT]),
            );
            *self = LazyTexture::Ready(ctx.load_texture(name, img, texture_options()));
        }
        match self {
            LazyTexture::Ready(t) => t,
            LazyTexture::Pending(_) => unreachable!("uploaded just above"),
        }
    }
}

/// Crisp pixels when zoomed in, smooth when zoomed out.
fn texture_options() -> TextureOptions {
    TextureOptions {
        magnification: egui::TextureFilter::Nearest,
        minification: egui::TextureFilter::Linear,
        ..TextureOptions::LINEAR
    }
}

impl ViewMode {
    /// The overlay picture this view draws, if any.
    pub(crate) fn layer(self) -> Option<LayerKind> {
        match self {
            ViewMode::Mask => Some(LayerKind::Tint),
            ViewMode::Cutout => Some(LayerKind::Cutout),
            ViewMode::Original => None,
        }
    }
}

/// An overlay picture (the tint or the cut-out) for one shown mask.
pub(crate) struct Layer {
    /// Which accepted mask it shows (see [`Document::mask_serial`]).
    pub serial: u64,
    pub request_number: u64,
    pub texture: LazyTexture,
}

/// The overlay pictures of a document. Each is built off the UI thread only when the view
/// needs it, one build per kind at a time; the newest mask's picture replaces older ones.
#[derive(Default)]
pub(crate) struct Layers {
    pub tint: Option<Layer>,
    pub cutout: Option<Layer>,
    /// The serial of the mask a build of that kind is running for.
    building_tint: Option<u64>,
    building_cutout: Option<u64>,
}

impl Layers {
    pub fn get(&self, kind: LayerKind) -> Option<&Layer> {
        match kind {
            LayerKind::Tint => self.tint.as_ref(),
            LayerKind::Cutout => self.cutout.as_ref(),
        }
    }

    pub fn get_mut(&mut self, kind: LayerKind) -> &mut Option<Layer> {
        match kind {
            LayerKind::Tint => &mut self.tint,
            LayerKind::Cutout => &mut self.cutout,
        }
    }

    fn building(&mut self, kind: LayerKind) -> &mut Option<u64> {
        match kind {
            LayerKind::Tint => &mut self.building_tint,
            LayerKind::Cutout => &mut self.building_cutout,
        }
    }
}

/// A dot being dragged: which, and where it is now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DotDrag {
    pub index: usize,
    pub to: [u32; 2],
}

/// The open image and everything tied to it.
pub(crate) struct Document {
    pub generation: u64,
    pub image: Arc<LoadedImage>,
    pub texture: LazyTexture,
    pub display_size: [usize; 2],
    pub dots: DotHistory,
    pub view: View,
    pub needs_fit: bool,
    /// The newest mask accepted: its request number, pixels and prompt.
    pub shown_request: u64,
    pub mask: Option<(Arc<AlphaMask>, Prompt)>,
    /// Counts the masks accepted for this document (whatever the worker numbers them).
    pub mask_serial: u64,
    /// Overlay pictures for masks up to this serial are stale (all dots were removed).
    pub cleared_serial: u64,
    pub layers: Layers,
    pub drag: Option<DotDrag>,
}

impl Document {
    pub fn size(&self) -> [u32; 2] {
        [self.image.width(), self.image.height()]
    }
}

/// A non-modal message.
#[derive(Debug, Clone)]
pub struct Toast {
    pub text: String,
    pub error: bool,
    pub until: Option<Instant>,
}

/// A lasting problem with the engine, shown above the canvas with the next step.
#[derive(Debug, Clone)]
pub struct Banner {
    pub text: String,
    pub action: BannerAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BannerAction {
    None,
    Retry,
    NewSession,
    Settings,
}

/// The in-app path box, used where no native dialog can open.
#[derive(Debug, Clone)]
pub struct PathEntry {
    pub save: bool,
    pub text: String,
    pub note: String,
    /// The text field got the keyboard once (on opening).
    pub focused: bool,
}

/// Settings being edited, applied with "Apply".
#[derive(Debug, Clone)]
pub struct SettingsDraft {
    pub engine: EngineKind,
    pub api_base_url: String,
    pub sam_model: String,
    pub api_key: String,
}

/// Whether a mask numbered `incoming` may replace the one shown (numbered `shown`).
/// The worker already drops stale results; the UI checks again so that nothing older
/// than what is on screen can ever appear.
pub fn newer_than_shown(shown: u64, incoming: u64) -> bool {
    incoming > shown
}

/// The editor.
pub struct App {
    pub(crate) settings: Settings,
    key_file: Option<PathBuf>,
    api_key: String,
    engine_override: Option<(Arc<dyn Engine>, WorkerPolicy)>,
    worker: WorkerHandle,
    /// The worker numbers the images it opens; this mirrors its count so that reports
    /// about an earlier image are recognised and dropped.
    worker_image: u64,
    pub(crate) engine_name: String,
    pub(crate) session: SessionState,
    pub(crate) busy: bool,
    pub(crate) retry_note: Option<String>,
    pub(crate) tasks: Tasks,
    open_gen: u64,
    pub(crate) loading: Option<PathBuf>,
    pub(crate) doc: Option<Document>,
    pub(crate) toasts: Vec<Toast>,
    pub(crate) banner: Option<Banner>,
    pub(crate) show_help: bool,
    pub(crate) show_settings: bool,
    pub(crate) draft: SettingsDraft,
    pub(crate) path_entry: Option<PathEntry>,
    pub(crate) saving: bool,
    last_saved: Option<PathBuf>,
    pub(crate) last_round_trip: Option<Duration>,
    pub(crate) cursor_px: Option<[u32; 2]>,
    pub(crate) canvas_rect: egui::Rect,
    /// The pointer position a pan continues from.
    pub(crate) pan_from: Option<egui::Pos2>,
    pub(crate) checker: Option<TextureHandle>,
    pub(crate) last_error: Option<String>,
    frame_stats: Option<FrameStats>,
    open_on_start: Option<PathBuf>,
    ctx: egui::Context,
}

/// `AICUT_FRAME_STATS=1`: repaint continuously and print frame times to stderr every two
/// seconds (for measuring; off by default).
struct FrameStats {
    last: Instant,
    window_start: Instant,
    frames: u32,
    sum: Duration,
    max: Duration,
    /// Time spent in `App::ui` itself (our UI-thread work, without rendering).
    ui_sum: Duration,
    ui_max: Duration,
}

impl FrameStats {
    fn from_env() -> Option<Self> {
        std::env::var_os("AICUT_FRAME_STATS").map(|_| FrameStats {
            last: Instant::now(),
            window_start: Instant::now(),
            frames: 0,
            sum: Duration::ZERO,
            max: Duration::ZERO,
            ui_sum: Duration::ZERO,
            ui_max: Duration::ZERO,
        })
    }

    fn frame(&mut self, busy: bool, ui_time: Duration) {
        let now = Instant::now();
        let dt = now - self.last;
        self.last = now;
        self.frames += 1;
        self.sum += dt;
        self.max = self.max.max(dt);
        self.ui_sum += ui_time;
        self.ui_max = self.ui_max.max(ui_time);
        if now - self.window_start >= Duration::from_secs(2) {
            eprintln!(
                "aicut frame stats: {} frames, frame mean {:.1} ms, max {:.1} ms; \
                 ui() mean {:.2} ms, max {:.2} ms; engine busy: {busy}",
                self.frames,
                self.sum.as_secs_f64() * 1000.0 / self.frames as f64,
                self.max.as_secs_f64() * 1000.0,
                self.ui_sum.as_secs_f64() * 1000.0 / self.frames as f64,
                self.ui_max.as_secs_f64() * 1000.0,
            );
            self.window_start = now;
            self.frames = 0;
            self.sum = Duration::ZERO;
            self.max = Duration::ZERO;
            self.ui_sum = Duration::ZERO;
            self.ui_max = Duration::ZERO;
        }
    }
}

impl App {
    pub fn new(cc: &eframe::CreationContext<'_>, options: Options) -> Self {
        let ctx = cc.egui_ctx.clone();
        let settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        let api_key = options
            .key_file
            .as_deref()
            .and_then(tasks::read_key)
            .unwrap_or_default();
        let wake = {
            let ctx = ctx.clone();
            Arc::new(move || ctx.request_repaint()) as Arc<dyn Fn() + Send + Sync>
        };
        let draft = SettingsDraft {
            engine: settings.engine,
            api_base_url: settings.api_base_url.clone(),
            sam_model: settings.sam_model.clone(),
            api_key: api_key.clone(),
        };
        let (engine, policy, problem) = make_engine(options.engine.clone(), &settings, &api_key);
        let mut app = App {
            engine_name: engine.name(),
            worker: worker::spawn(engine, policy, wake.clone()),
            settings,
            key_file: options.key_file,
            api_key,
            engine_override: options.engine,
            worker_image: 0,
            session: SessionState::NoImage,
            busy: false,
            retry_note: None,
            tasks: Tasks::new(options.dialogs, wake),
            open_gen: 0,
            loading: None,
            doc: None,
            toasts: Vec::new(),
            banner: None,
            show_help: false,
            show_settings: false,
            draft,
            path_entry: None,
            saving: false,
            last_saved: None,
            last_round_trip: None,
            cursor_px: None,
            canvas_rect: egui::Rect::NOTHING,
            pan_from: None,
            checker: None,
            last_error: None,
            frame_stats: FrameStats::from_env(),
            open_on_start: None,
            ctx,
        };
        if let Some(problem) = problem {
            app.banner = Some(Banner {
                text: problem,
                action: BannerAction::Settings,
            });
        }
        // Opened on the first frame, when the GPU's texture limit is known.
        app.open_on_start = options.image;
        app
    }

    // ---- read-only views for tests and panels ----

    /// The dots on the current image.
    pub fn dots(&self) -> &[state::PlacedDot] {
        self.doc.as_ref().map(|d| d.dots.dots()).unwrap_or(&[])
    }

    /// The open image, once decoded.
    pub fn image(&self) -> Option<&Arc<LoadedImage>> {
        self.doc.as_ref().map(|d| &d.image)
    }

    /// Whether an image is being decoded.
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// The view transform of the current image.
    pub fn view(&self) -> Option<View> {
        self.doc.as_ref().map(|d| d.view)
    }

    /// Replaces the view transform (tests, scripted zoom).
    pub fn set_view(&mut self, view: View) {
        if let Some(d) = self.doc.as_mut() {
            d.view = view;
            d.needs_fit = false;
        }
    }

    /// Zooms by `factor` about a screen point, as the wheel does.
    pub fn zoom_about(&mut self, anchor: egui::Pos2, factor: f32) {
        if let Some(d) = self.doc.as_mut() {
            d.view.zoom_about(anchor, factor);
            d.needs_fit = false;
        }
    }

    /// The screen area of the canvas, in points.
    pub fn canvas_rect(&self) -> egui::Rect {
        self.canvas_rect
    }

    /// The mask on screen: its request number, pixels and the prompt it answers.
    pub fn shown_mask(&self) -> Option<(u64, &Arc<AlphaMask>, &Prompt)> {
        let d = self.doc.as_ref()?;
        d.mask.as_ref().map(|(m, p)| (d.shown_request, m, p))
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
        self.doc
            .as_ref()?
            .layers
            .get(kind)
            .map(|l| l.request_number)
    }

    pub fn view_mode(&self) -> ViewMode {
        self.settings.view_mode
    }

    pub fn last_saved(&self) -> Option<&Path> {
        self.last_saved.as_deref()
    }

    pub fn is_saving(&self) -> bool {
        self.saving
    }

    /// The messages on screen (toasts and the banner).
    pub fn messages(&self) -> Vec<String> {
        let mut v: Vec<String> = self.toasts.iter().map(|t| t.text.clone()).collect();
        if let Some(b) = &self.banner {
            v.push(b.text.clone());
        }
        v
    }

    /// The in-app path box, when it is open (no native dialog could be shown).
    pub fn path_entry(&self) -> Option<&PathEntry> {
        self.path_entry.as_ref()
    }

    pub fn recent_files(&self) -> &[PathBuf] {
        &self.settings.recent
    }

    pub fn is_busy(&self) -> bool {
        self.busy
    }

    pub fn session_state(&self) -> &SessionState {
        &self.session
    }

    // ---- actions ----

    pub(crate) fn toast(&mut self, text: impl Into<String>, error: bool) {
        let text = text.into();
        if error {
            self.last_error = Some(text.clone());
        }
        self.toasts.push(Toast {
            text,
            error,
            until: (!error).then(|| Instant::now() + Duration::from_secs(6)),
        });
        if self.toasts.len() > 5 {
            self.toasts.remove(0);
        }
    }

    /// Starts decoding a file off the UI thread; the current image stays until it is ready.
    pub fn open_path(&mut self, path: PathBuf) {
        self.open_gen += 1;
        self.loading = Some(path.clone());
        let max_side = self.ctx.input(|i| i.max_texture_side).clamp(256, 16384);
        self.tasks.decode(self.open_gen, path, max_side);
    }

    pub(crate) fn open_dialog(&mut self) {
        let dir = self
            .doc
            .as_ref()
            .and_then(|d| d.image.path.as_ref())
            .or(self.settings.recent.first())
            .and_then(|p| p.parent().map(Path::to_path_buf));
        if self.tasks.dialog_open {
            // A dialog that never came back (a stuck portal) must not lock the user out.
            self.path_entry = Some(PathEntry {
                save: false,
                text: String::new(),
                note: "The system file dialog is still open elsewhere. Type the path of an image to open:".into(),
                focused: false,
            });
            return;
        }
        self.tasks.pick_image(dir);
    }

    /// Ctrl+S: asks where, then writes the cut-out in the background.
    pub(crate) fn save_dialog(&mut self) {
        let Some(doc) = &self.doc else {
            self.toast(
                "Open an image first (Ctrl+O or drop one onto the window).",
                true,
            );
            return;
        };
        if doc.mask.is_none() {
            self.toast(
                "Nothing is selected yet: left-click what to keep, then save.",
                true,
            );
            return;
        }
        let proposed = match &doc.image.path {
            Some(p) => imageio::default_output_path(p),
            None => imageio::default_output_path(Path::new(&doc.image.name)),
        };
        self.tasks.pick_save_path(proposed);
    }

    pub(crate) fn save_to(&mut self, mut path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        let Some((mask, _)) = &doc.mask else { return };
        if path.extension().is_none() {
            path.set_extension("png");
        }
        self.saving = true;
        self.tasks.save(doc.image.clone(), mask.clone(), path);
    }

    /// Sends every dot to the worker; clears the overlay when no green dot is left.
    pub(crate) fn dots_changed(&mut self) {
        let Some(doc) = self.doc.as_mut() else { return };
        let prompt = doc.dots.prompt();
        if prompt.green.is_empty() {
            doc.mask = None;
            doc.cleared_serial = doc.mask_serial;
            doc.layers.tint = None;
            doc.layers.cutout = None;
        }
        self.worker.send(Command::Prompt(prompt));
    }

    pub(crate) fn undo(&mut self) {
        if self.doc.as_mut().is_some_and(|d| d.dots.undo()) {
            self.dots_changed();
        }
    }

    pub(crate) fn redo(&mut self) {
        if self.doc.as_mut().is_some_and(|d| d.dots.redo()) {
            self.dots_changed();
        }
    }

    pub(crate) fn clear_dots(&mut self) {
        if self.doc.as_mut().is_some_and(|d| d.dots.clear()) {
            self.dots_changed();
        }
    }

    pub(crate) fn banner_action(&mut self, action: BannerAction) {
        match action {
            BannerAction::Retry => self.worker.send(Command::Retry),
            BannerAction::NewSession => self.worker.send(Command::Reinitialize),
            BannerAction::Settings => self.show_settings = true,
            BannerAction::None => {}
        }
        if action != BannerAction::Settings {
            self.banner = None;
        }
    }

    /// Applies the settings draft: stores the key (owner-only file, off the UI thread)
    /// and restarts the worker on the chosen engine.
    pub(crate) fn apply_settings(&mut self) {
        self.settings.engine = self.draft.engine;
        self.settings.api_base_url = self.draft.api_base_url.trim().to_string();
        self.settings.sam_model = self.draft.sam_model.trim().to_string();
        if self.draft.api_key != self.api_key {
            self.api_key = self.draft.api_key.trim().to_string();
            if let Some(path) = self.key_file.clone() {
                let key = self.api_key.clone();
                std::thread::spawn(move || {
                    if let Err(e) = tasks::write_key(&path, &key) {
                        tracing::error!(error = %e, "could not store the API key");
                    }
                });
            }
        }
        self.restart_worker();
    }

    fn restart_worker(&mut self) {
        let (engine, policy, problem) =
            make_engine(self.engine_override.clone(), &self.settings, &self.api_key);
        self.engine_name = engine.name();
        let ctx = self.ctx.clone();
        self.worker = worker::spawn(engine, policy, Arc::new(move || ctx.request_repaint()));
        self.worker_image = 0;
        self.busy = false;
        self.retry_note = None;
        self.banner = problem.map(|text| Banner {
            text,
            action: BannerAction::Settings,
        });
        self.session = SessionState::NoImage;
        if let Some(doc) = self.doc.as_mut() {
            // The new worker numbers its requests from 1 again.
            doc.shown_request = 0;
            let image = doc.image.clone();
            self.worker.send(Command::Open(image));
            self.worker_image += 1;
            self.dots_changed();
        }
    }

    /// `path` comes resolved from the decode task (no file system work here).
    fn remember_recent(&mut self, path: &Path) {
        let path = path.to_path_buf();
        self.settings.recent.retain(|p| p != &path);
        self.settings.recent.insert(0, path);
        self.settings.recent.truncate(MAX_RECENT);
    }

    // ---- each frame ----

    /// Picks up worker events and finished tasks.
    fn poll(&mut self) {
        while let Some(ev) = self.worker.try_event() {
            self.worker_event(ev);
        }
        while let Some(r) = self.tasks.try_result() {
            self.task_result(r);
        }
    }

    fn worker_event(&mut self, ev: Event) {
        let image = match &ev {
            Event::Initializing { image }
            | Event::Ready { image, .. }
            | Event::Mask { image, .. }
            | Event::Busy { image, .. }
            | Event::Retrying { image, .. }
            | Event::SessionExpired { image }
            | Event::Failed { image, .. } => *image,
        };
        if image != self.worker_image {
            return; // about an image no longer shown
        }
        match ev {
            Event::Initializing { .. } => self.session = SessionState::Initializing(Instant::now()),
            Event::Ready { .. } => {
                self.session = SessionState::Ready;
                self.retry_note = None;
                if self
                    .banner
                    .as_ref()
                    .is_some_and(|b| b.action != BannerAction::Settings)
                {
                    self.banner = None;
                }
            }
            Event::Busy { busy, .. } => self.busy = busy,
            Event::Retrying { after, error, .. } => {
                self.retry_note = Some(format!(
                    "{}; trying again in {:.0} s",
                    short_error(&error),
                    after.as_secs_f32().ceil()
                ));
            }
            Event::SessionExpired { .. } => {
                self.session = SessionState::Expired;
                self.banner = Some(Banner {
                    text: "The AI Cut session expired. Your dots are kept; a new session \
                           uploads the image again and costs 1 credit."
                        .into(),
                    action: BannerAction::NewSession,
                });
            }
            Event::Failed { error, .. } => {
                if !matches!(self.session, SessionState::Ready) {
                    self.session = SessionState::Failed(short_error(&error));
                }
                self.retry_note = None;
                let action = match error {
                    EngineError::Unauthorized(_) | EngineError::InsufficientCredits(_) => {
                        BannerAction::Settings
                    }
                    EngineError::BadRequest(_) | EngineError::Image(_) => BannerAction::None,
                    _ => BannerAction::Retry,
                };
                let text = error_advice(&error);
                self.last_error = Some(text.clone());
                self.banner = Some(Banner { text, action });
            }
            Event::Mask {
                request_number,
                prompt,
                mask,
                round_trip,
                ..
            } => {
                let Some(doc) = self.doc.as_mut() else { return };
                if !newer_than_shown(doc.shown_request, request_number)
                    || mask.dimensions() != (doc.image.width(), doc.image.height())
                {
                    return;
                }
                // A result for dots that were all removed since is not shown.
                if doc.dots.prompt().green.is_empty() {
                    return;
                }
                doc.shown_request = request_number;
                doc.mask_serial += 1;
                doc.mask = Some((mask, prompt));
                self.last_round_trip = Some(round_trip);
                self.retry_note = None;
                if self
                    .banner
                    .as_ref()
                    .is_some_and(|b| b.action == BannerAction::Retry)
                {
                    self.banner = None;
                }
                // The overlay the view needs is built by `update_layers` this frame.
            }
        }
    }

    fn task_result(&mut self, r: TaskResult) {
        match r {
            TaskResult::Decoded {
                generation,
                path,
                result,
            } => {
                if generation != self.open_gen {
                    return; // a newer open superseded this one
                }
                self.loading = None;
                match result {
                    Ok(decoded) => {
                        self.remember_recent(&path);
                        let display_size = decoded.display.size;
                        self.doc = Some(Document {
                            generation,
                            image: decoded.image.clone(),
                            texture: LazyTexture::Pending(decoded.display),
                            display_size,
                            dots: DotHistory::default(),
                            view: View::default(),
                            needs_fit: true,
                            shown_request: 0,
                            mask: None,
                            mask_serial: 0,
                            cleared_serial: 0,
                            layers: Layers::default(),
                            drag: None,
                        });
                        self.banner = self
                            .banner
                            .take()
                            .filter(|b| b.action == BannerAction::Settings);
                        self.last_round_trip = None;
                        self.worker.send(Command::Open(decoded.image));
                        self.worker_image += 1;
                        self.session = SessionState::Initializing(Instant::now());
                    }
                    Err(e) => {
                        self.settings.recent.retain(|p| p != &path);
                        self.toast(format!("{e}. Try another file."), true);
                    }
                }
            }
            TaskResult::Layer(l) => {
                let Some(doc) = self.doc.as_mut() else { return };
                if l.image_gen != doc.generation {
                    return; // for an image no longer open
                }
                let building = doc.layers.building(l.kind);
                if *building == Some(l.serial) {
                    *building = None;
                }
                let newer = doc.layers.get(l.kind).is_none_or(|c| l.serial > c.serial);
                let wanted = self.settings.view_mode.layer() == Some(l.kind);
                if newer
                    && wanted
                    && l.serial > doc.cleared_serial
                    && l.serial <= doc.mask_serial
                    && doc.mask.is_some()
                {
                    // Replaces (and frees) the older picture, uploaded or not.
                    *doc.layers.get_mut(l.kind) = Some(Layer {
                        serial: l.serial,
                        request_number: l.request_number,
                        texture: LazyTexture::Pending(l.image),
                    });
                }
                // Otherwise the picture is dropped here: superseded, or for a view that
                // is no longer shown.
            }
            TaskResult::Picked { result } => {
                self.tasks.dialog_open = false;
                match result {
                    Ok(Some(path)) => self.open_path(path),
                    Ok(None) => {}
                    Err(note) => {
                        self.path_entry = Some(PathEntry {
                            save: false,
                            text: String::new(),
                            note: format!("{note}. Type the path of an image to open:"),
                            focused: false,
                        })
                    }
                }
            }
            TaskResult::SavePath { result } => {
                self.tasks.dialog_open = false;
                match result {
                    Ok(Some(path)) => self.save_to(path),
                    Ok(None) => {}
                    Err(note) => {
                        let proposed = self
                            .doc
                            .as_ref()
                            .and_then(|d| d.image.path.as_deref())
                            .map(imageio::default_output_path)
                            .unwrap_or_else(|| PathBuf::from("cutout.png"));
                        self.path_entry = Some(PathEntry {
                            save: true,
                            text: proposed.display().to_string(),
                            note: format!("{note}. Type where to save the cut-out:"),
                            focused: false,
                        })
                    }
                }
            }
            TaskResult::Saved { path, result } => {
                self.saving = false;
                match result {
                    Ok(()) => {
                        self.toast(format!("Saved the cut-out to {}", path.display()), false);
                        self.last_saved = Some(path);
                    }
                    Err(e) => self.toast(e, true),
                }
            }
        }
    }

    /// Starts building the overlay picture the current view needs, when the shown mask is
    /// newer than the one it has (one build per kind at a time; a newer mask that arrives
    /// meanwhile is built next). Frees pictures the current view does not draw unless
    /// they are uploaded and current, so switching back to them is instant.
    fn update_layers(&mut self) {
        let needed = self.settings.view_mode.layer();
        let Some(doc) = self.doc.as_mut() else { return };
        for kind in [LayerKind::Tint, LayerKind::Cutout] {
            if Some(kind) == needed {
                continue;
            }
            let slot = doc.layers.get_mut(kind);
            let keep = slot.as_ref().is_some_and(|l| {
                l.serial == doc.mask_serial && matches!(l.texture, LazyTexture::Ready(_))
            });
            if !keep {
                *slot = None;
            }
        }
        let Some(kind) = needed else { return };
        let Some((mask, _)) = &doc.mask else { return };
        let have = doc.layers.get(kind).map_or(0, |l| l.serial);
        if have >= doc.mask_serial || doc.layers.building(kind).is_some() {
            return;
        }
        *doc.layers.building(kind) = Some(doc.mask_serial);
        self.tasks.layer(
            kind,
            doc.generation,
            doc.mask_serial,
            doc.shown_request,
            doc.image.clone(),
            mask.clone(),
            doc.display_size,
        );
    }

    /// Opens the first file dropped onto the window.
    fn handle_drops(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_path_buf()));
        if let Some(path) = dropped {
            self.open_path(path);
        }
    }
}

/// One line about an engine error, for the status bar.
fn short_error(e: &EngineError) -> String {
    match e {
        EngineError::Unauthorized(_) => "API key missing or invalid".into(),
        EngineError::InsufficientCredits(_) => "out of credits".into(),
        EngineError::SessionNotFound(_) => "session expired".into(),
        EngineError::RateLimited { .. } => "rate limited".into(),
        EngineError::Transport(_) => "network problem".into(),
        other => {
            let s = other.to_string();
            s.chars().take(60).collect()
        }
    }
}

/// An engine error with what to do next.
fn error_advice(e: &EngineError) -> String {
    let next = match e {
        EngineError::Unauthorized(_) => {
            "Open Settings and enter a valid AI Cut API key, or switch to the built-in engine."
        }
        EngineError::InsufficientCredits(_) => {
            "Add credits to your AI Cut account, or switch to the built-in engine in Settings."
        }
        EngineError::RateLimited { .. } => "Wait a moment, then press Retry.",
        EngineError::Transport(_) | EngineError::Protocol(_) => {
            "Check the network and the API address in Settings, then press Retry."
        }
        _ => "Your dots are kept; press Retry or change the dots.",
    };
    format!("{e}. {next}")
}

/// The engine the settings ask for, its worker policy, and a problem to show if the
/// choice could not be honoured (then the built-in engine stands in).
fn make_engine(
    overridden: Option<(Arc<dyn Engine>, WorkerPolicy)>,
    settings: &Settings,
    api_key: &str,
) -> (Arc<dyn Engine>, WorkerPolicy, Option<String>) {
    let builtin =
        || -> Arc<dyn Engine> { Arc::new(crate::engine::builtin::engine(Default::default())) };
    if let Some((e, policy)) = overridden {
        return (e, policy, None);
    }
    match settings.engine {
        EngineKind::Builtin => (builtin(), WorkerPolicy::default(), None),
        EngineKind::Sam => {
            let path = settings.sam_model.trim();
            if path.is_empty() {
                return (
                    builtin(),
                    WorkerPolicy::default(),
                    Some("The SAM engine needs a model file: enter its path in Settings. Using the built-in engine meanwhile.".into()),
                );
            }
            // Loading happens in the worker on the first image, never on the UI thread.
            let engine = crate::engine::sam::LazySamEngine::new(path.into(), Default::default());
            (Arc::new(engine), WorkerPolicy::default(), None)
        }
        EngineKind::Api => {
            if api_key.trim().is_empty() {
                return (
                    builtin(),
                    WorkerPolicy::default(),
                    Some("The AI Cut API needs a key: enter it in Settings. Using the built-in engine meanwhile.".into()),
                );
            }
            let config = RemoteConfig {
                base_url: settings.api_base_url.clone(),
                api_key: Some(api_key.trim().to_string()),
                timeout: Duration::from_secs(300),
            };
            match RemoteEngine::new(config) {
                Ok(e) => (
                    Arc::new(e),
                    WorkerPolicy {
                        // A new session costs a credit: ask first.
                        auto_reinitialize: false,
                        ..WorkerPolicy::default()
                    },
                    None,
                ),
                Err(e) => (
                    builtin(),
                    WorkerPolicy::default(),
                    Some(format!(
                        "The AI Cut API cannot be used ({e}). Using the built-in engine."
                    )),
                ),
            }
        }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let started = Instant::now();
        if let Some(path) = self.open_on_start.take() {
            self.open_path(path);
        }
        self.poll();
        self.handle_drops(&ctx);
        self.shortcuts(&ctx);
        self.update_layers();
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar(ui));
        // The toolbar may have switched the view.
        self.update_layers();
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::CentralPanel::no_frame().show(ui, |ui| self.central(ui));
        self.windows(&ctx);
        self.toasts_ui(&ctx);
        if matches!(self.session, SessionState::Initializing(_)) {
            ctx.request_repaint_after(Duration::from_millis(500));
        }
        if let Some(stats) = self.frame_stats.as_mut() {
            stats.frame(self.busy, started.elapsed());
            ctx.request_repaint();
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_newer_masks_replace_the_shown_one() {
        assert!(newer_than_shown(0, 1));
        assert!(newer_than_shown(1, 2));
        assert!(!newer_than_shown(2, 1));
        assert!(!newer_than_shown(2, 2));
    }

    #[test]
    fn settings_never_hold_the_key() {
        let json = serde_json::to_string(&Settings::default()).unwrap();
        assert!(!json.to_lowercase().contains("key"));
    }
}
