//! Model downloads from the Settings window: which models are on disk, the one download
//! that runs, its progress and its cancel button. The download runs on its own thread
//! with a small tokio runtime (like the other background tasks, never on the UI thread)
//! and reports progress over a channel, waking the UI each time. When it completes, the
//! model becomes the SAM model.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use crate::engine::EngineKind;
use crate::models::{CancelToken, InstallState, ModelInfo, ModelStore, Progress, human_bytes};

use super::App;

/// What the download thread and the folder scan report.
pub(crate) enum DownloadEvent {
    /// The install state of each model, in the store's order.
    Scanned(Vec<InstallState>),
    Progress(Progress),
    Finished {
        name: String,
        result: Result<PathBuf, String>,
        cancelled: bool,
    },
}

/// The download in progress.
pub(crate) struct Running {
    pub name: String,
    pub progress: Option<Progress>,
    cancel: CancelToken,
}

impl Running {
    pub fn cancelling(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// One model as the Settings window lists it.
pub(crate) struct ModelRow<'a> {
    pub info: &'a ModelInfo,
    pub path: PathBuf,
    /// `None` until the folder has been looked at.
    pub state: Option<InstallState>,
}

/// The models folder, what is in it, and the running download.
pub(crate) struct ModelDownloads {
    /// `None` where no data folder is known (no home folder).
    store: Option<ModelStore>,
    states: Option<Vec<InstallState>>,
    pub running: Option<Running>,
    tx: Sender<DownloadEvent>,
    rx: Receiver<DownloadEvent>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl ModelDownloads {
    pub fn new(store: Option<ModelStore>, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = channel();
        ModelDownloads {
            store,
            states: None,
            running: None,
            tx,
            rx,
            wake,
        }
    }

    pub fn folder(&self) -> Option<&std::path::Path> {
        self.store.as_ref().map(|s| s.dir.as_path())
    }

    pub fn rows(&self) -> Vec<ModelRow<'_>> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        store
            .models
            .iter()
            .enumerate()
            .map(|(i, info)| ModelRow {
                info,
                path: store.path(info),
                state: self.states.as_ref().and_then(|s| s.get(i).copied()),
            })
            .collect()
    }

    pub fn try_event(&self) -> Option<DownloadEvent> {
        self.rx.try_recv().ok()
    }

    /// Looks at the models folder off the UI thread.
    pub fn rescan(&self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let (tx, wake) = (self.tx.clone(), self.wake.clone());
        let spawned = std::thread::Builder::new()
            .name("aicut-models".into())
            .spawn(move || {
                let states = store.models.iter().map(|m| store.state(m)).collect();
                let _ = tx.send(DownloadEvent::Scanned(states));
                wake();
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a background thread");
        }
    }

    /// Starts downloading the model called `name`, unless a download runs already.
    pub fn start(&mut self, name: &str) -> Result<(), String> {
        if self.running.is_some() {
            return Err("a model is being downloaded already".into());
        }
        let store = self.store.as_ref().ok_or("there is no folder for models")?;
        let model = store.get(name)?;
        let req = store.request(model, None)?;
        let cancel = CancelToken::new();
        let (tx, wake) = (self.tx.clone(), self.wake.clone());
        let (name, thread_cancel) = (model.name.to_string(), cancel.clone());
        let thread_name = name.clone();
        std::thread::Builder::new()
            .name("aicut-download".into())
            .spawn(move || {
                let progress_tx = tx.clone();
                let progress_wake = wake.clone();
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the download: {e}"))
                    .and_then(|rt| {
                        rt.block_on(crate::models::fetch(&req, &thread_cancel, &mut |p| {
                            let _ = progress_tx.send(DownloadEvent::Progress(p.clone()));
                            progress_wake();
                        }))
                        .map_err(|e| e.to_string())
                    });
                let _ = tx.send(DownloadEvent::Finished {
                    name: thread_name,
                    cancelled: thread_cancel.is_cancelled(),
                    result: result.map(|f| f.path),
                });
                wake();
            })
            .map_err(|e| format!("cannot start the download: {e}"))?;
        self.running = Some(Running {
            name,
            progress: None,
            cancel,
        });
        Ok(())
    }

    /// Asks the running download to stop; it reports back once it has.
    pub fn cancel(&self) {
        if let Some(r) = &self.running {
            r.cancel.cancel();
        }
    }
}

impl App {
    /// Takes in one report about models.
    pub(super) fn download_event(&mut self, ev: DownloadEvent) {
        match ev {
            DownloadEvent::Scanned(states) => self.downloads.states = Some(states),
            DownloadEvent::Progress(p) => {
                if let Some(r) = self.downloads.running.as_mut() {
                    r.progress = Some(p);
                }
            }
            DownloadEvent::Finished {
                name,
                result,
                cancelled,
            } => {
                self.downloads.running = None;
                self.downloads.rescan();
                self.download_finished(&name, result, cancelled);
            }
        }
    }

    fn download_finished(&mut self, name: &str, result: Result<PathBuf, String>, cancelled: bool) {
        let now = Instant::now();
        match result {
            Ok(path) => {
                self.select_sam_model(&path);
                let text = format!("{name} is installed and selected as the SAM model.");
                self.messages.toast(text, false, now);
            }
            // "mobile-sam: the download was cancelled; 14.1 MB is kept and the next ..."
            Err(e) if cancelled => self.messages.toast(format!("{name}: {e}."), false, now),
            Err(e) => {
                let text = format!("Could not download {name}: {e}");
                self.messages.toast(text, true, now);
            }
        }
    }

    /// Makes `path` the SAM model, in the settings and in the window being edited, and
    /// restarts the engine on it.
    fn select_sam_model(&mut self, path: &std::path::Path) {
        let path = path.display().to_string();
        self.settings.engine = EngineKind::Sam;
        self.settings.sam_model = path.clone();
        self.windows.draft.engine = EngineKind::Sam;
        self.windows.draft.sam_model = path;
        self.restart_engine();
    }
}

/// "installed", "not installed", "partly (12 MB)".
pub(crate) fn state_label(state: Option<InstallState>) -> String {
    match state {
        None => "...".into(),
        Some(InstallState::Installed) => "installed".into(),
        Some(InstallState::Missing) => "not installed".into(),
        Some(InstallState::Partial(n)) => format!("partly ({})", human_bytes(n)),
    }
}
