//! What the user chooses and what persists across runs: the engine, the view, the recent
//! files. Also the one place the editor builds its engine from those choices.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::factory::{
    EngineSetupError, EngineSpec, SamLoading, build_engine as build_engine_from,
};
use crate::engine::remote::{DEFAULT_API_URL, RemoteConfig};
use crate::engine::{Engine, EngineKind};
use crate::imageio::{ExportFormat, ExportOptions};
use crate::worker::WorkerPolicy;

use super::hover::HoverSettings;
use super::tasks::{LayerKind, read_key, write_key};

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
    /// The photo with the cut's edge alone, to judge it (see `super::outline`).
    Outline,
}

impl ViewMode {
    pub const ALL: [ViewMode; 4] = [
        ViewMode::Mask,
        ViewMode::Cutout,
        ViewMode::Outline,
        ViewMode::Original,
    ];

    pub fn next(self) -> Self {
        match self {
            ViewMode::Mask => ViewMode::Cutout,
            ViewMode::Cutout => ViewMode::Outline,
            ViewMode::Outline => ViewMode::Original,
            ViewMode::Original => ViewMode::Mask,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ViewMode::Mask => "Selection",
            ViewMode::Cutout => "Cut-out",
            ViewMode::Original => "Original",
            ViewMode::Outline => "Outline",
        }
    }

    /// The overlay picture this view draws, if any.
    pub(crate) fn layer(self) -> Option<LayerKind> {
        match self {
            ViewMode::Mask => Some(LayerKind::Tint),
            ViewMode::Cutout => Some(LayerKind::Cutout),
            ViewMode::Original | ViewMode::Outline => None,
        }
    }
}

/// What persists across runs in eframe's storage. Never the API key: that lives in its
/// own owner-only file (see [`super::tasks::write_key`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub engine: EngineKind,
    pub api_base_url: String,
    /// The SAM checkpoint used when `engine` is `Sam`.
    pub sam_model: String,
    pub view_mode: ViewMode,
    pub recent: Vec<PathBuf>,
    /// How Save writes the cut-out, remembered between runs.
    pub save: SaveOptions,
    /// The hover preview: on or off, and after how long a rest.
    pub hover: HoverSettings,
}

/// The editor's save options: the same choices as `aicut cut`'s flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SaveOptions {
    /// The format proposed; a typed `.png` or `.webp` name wins.
    pub format: ExportFormat,
    /// Crop to the subject plus `margin` pixels.
    pub trim: bool,
    pub margin: u32,
    /// Save the selection as a grey mask instead of the cut-out.
    pub mask_only: bool,
    /// Hard or soft edges and the band's width; also what the view shows.
    pub edges: crate::matting::EdgeOptions,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            format: ExportFormat::Png,
            trim: false,
            margin: 16,
            mask_only: false,
            // Hard: the soft pass takes seconds on multi-megapixel photos, and the view would
            // lag the clicks (see the README's Edges section). What is shown is saved.
            edges: crate::matting::EdgeOptions::HARD,
        }
    }
}

impl SaveOptions {
    pub fn export_options(&self) -> ExportOptions {
        ExportOptions {
            trim: self.trim.then_some(self.margin),
            mask_only: self.mask_only,
            edges: self.edges,
        }
    }

    /// `<stem>-cutout.<ext>` (or `-mask`) beside `source`, the name a save proposes.
    pub fn proposed_path(&self, source: &Path) -> PathBuf {
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let kind = if self.mask_only { "mask" } else { "cutout" };
        source.with_file_name(format!("{stem}-{kind}.{}", self.format.extension()))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            engine: EngineKind::Builtin,
            api_base_url: DEFAULT_API_URL.into(),
            sam_model: std::env::var(crate::engine::sam::MODEL_ENV).unwrap_or_default(),
            view_mode: ViewMode::Mask,
            recent: Vec::new(),
            save: SaveOptions::default(),
            hover: HoverSettings::default(),
        }
    }
}

/// How many recent files are remembered.
const MAX_RECENT: usize = 10;

impl Settings {
    /// Puts `path` first in the recent files (once), keeping at most [`MAX_RECENT`].
    pub fn remember_recent(&mut self, path: &Path) {
        self.recent.retain(|p| p != path);
        self.recent.insert(0, path.to_path_buf());
        self.recent.truncate(MAX_RECENT);
    }

    /// Takes in an applied settings draft (trimmed).
    pub fn apply_draft(&mut self, draft: &SettingsDraft) {
        self.engine = draft.engine;
        self.api_base_url = draft.api_base_url.trim().to_string();
        self.sam_model = draft.sam_model.trim().to_string();
        self.hover = draft.hover;
    }
}

/// Settings being edited in the settings window, applied with "Apply".
#[derive(Debug, Clone)]
pub struct SettingsDraft {
    pub engine: EngineKind,
    pub api_base_url: String,
    pub sam_model: String,
    pub api_key: String,
    pub hover: HoverSettings,
}

impl SettingsDraft {
    pub fn new(settings: &Settings, api_key: &str) -> Self {
        SettingsDraft {
            engine: settings.engine,
            api_base_url: settings.api_base_url.clone(),
            sam_model: settings.sam_model.clone(),
            api_key: api_key.to_string(),
            hover: settings.hover,
        }
    }
}

/// The API key, and the owner-only file it is kept in (never the shared settings).
pub(crate) struct ApiKey {
    /// `None` keeps the key in memory only.
    file: Option<PathBuf>,
    pub value: String,
}

impl ApiKey {
    /// Reads the key file (a few bytes, once at start).
    pub fn load(file: Option<PathBuf>) -> Self {
        let value = file.as_deref().and_then(read_key).unwrap_or_default();
        ApiKey { file, value }
    }

    /// Takes the key typed in the settings; a changed key is written off the UI thread.
    pub fn replace(&mut self, typed: &str) {
        let typed = typed.trim();
        if typed == self.value {
            return;
        }
        self.value = typed.to_string();
        if let Some(path) = self.file.clone() {
            let key = self.value.clone();
            std::thread::spawn(move || {
                if let Err(e) = write_key(&path, &key) {
                    tracing::error!(error = %e, "could not store the API key");
                }
            });
        }
    }
}

/// The engine the settings choose, or why it cannot be used (a sentence for the user).
/// The editor builds engines nowhere else. Nothing slow happens here: a SAM model loads
/// in the worker on the first image, never on the UI thread.
pub(crate) fn build_engine(settings: &Settings, api_key: &str) -> Result<Arc<dyn Engine>, String> {
    let model = settings.sam_model.trim();
    let spec = EngineSpec {
        kind: settings.engine,
        sam_model: (!model.is_empty()).then(|| PathBuf::from(model)),
        sam_loading: SamLoading::OnFirstImage,
        api: RemoteConfig {
            base_url: settings.api_base_url.clone(),
            api_key: Some(api_key.to_string()),
            timeout: Duration::from_secs(300),
        },
        ..EngineSpec::builtin()
    };
    build_engine_from(spec).map_err(|e| match e {
        EngineSetupError::NoModelFile => {
            "The SAM engine needs a model file: enter its path in Settings.".into()
        }
        EngineSetupError::NoApiKey => "The AI Cut API needs a key: enter it in Settings.".into(),
        EngineSetupError::Engine(e) => format!("The AI Cut API cannot be used ({e})."),
    })
}

/// How the worker treats an engine of this kind.
pub(crate) fn worker_policy(kind: EngineKind) -> WorkerPolicy {
    WorkerPolicy {
        // A new session costs a credit: ask first.
        auto_reinitialize: !kind.new_session_costs_credit(),
        ..WorkerPolicy::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_options_persist_and_name_the_file() {
        let s = Settings {
            save: SaveOptions {
                format: ExportFormat::WebP,
                trim: true,
                margin: 8,
                mask_only: true,
                edges: crate::matting::EdgeOptions::HARD,
            },
            ..Settings::default()
        };
        let back: Settings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.save, s.save);
        let p = back.save.proposed_path(Path::new("/photos/cat.jpg"));
        assert_eq!(p, Path::new("/photos/cat-mask.webp"));
        assert_eq!(back.save.export_options().trim, Some(8));
        // Settings saved before save options existed still load, with the defaults.
        let old: Settings = serde_json::from_str(r#"{"view_mode":"Cutout"}"#).unwrap();
        assert_eq!(old.save, SaveOptions::default());
    }

    #[test]
    fn settings_never_hold_the_key() {
        let json = serde_json::to_string(&Settings::default()).unwrap();
        assert!(!json.to_lowercase().contains("key"));
    }

    #[test]
    fn recent_files_put_the_newest_first_once_and_keep_ten() {
        let mut s = Settings::default();
        for i in 0..12 {
            s.remember_recent(Path::new(&format!("/photos/{i}.jpg")));
        }
        s.remember_recent(Path::new("/photos/5.jpg"));
        assert_eq!(s.recent.len(), MAX_RECENT);
        assert_eq!(s.recent[0], Path::new("/photos/5.jpg"));
        assert_eq!(s.recent[1], Path::new("/photos/11.jpg"));
        assert_eq!(s.recent.iter().filter(|p| p.ends_with("5.jpg")).count(), 1);
    }

    #[test]
    fn an_engine_choice_without_its_file_or_key_is_explained() {
        let mut s = Settings {
            engine: EngineKind::Sam,
            sam_model: "  ".into(),
            ..Settings::default()
        };
        let err = build_engine(&s, "").err().expect("no model file");
        assert!(err.contains("model file"), "{err}");
        s.engine = EngineKind::Api;
        let err = build_engine(&s, " ").err().expect("no key");
        assert!(err.contains("key"), "{err}");
        s.engine = EngineKind::Builtin;
        assert!(build_engine(&s, "").is_ok());
    }

    #[test]
    fn only_the_paid_api_asks_before_a_new_session() {
        assert!(!worker_policy(EngineKind::Api).auto_reinitialize);
        assert!(worker_policy(EngineKind::Builtin).auto_reinitialize);
        assert!(worker_policy(EngineKind::Sam).auto_reinitialize);
    }
}
