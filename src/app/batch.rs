//! Batches: a folder or several files opened at once. PageDown and PageUp move through
//! them; each image keeps its dots (with their undo history) while the app runs, and in a
//! sidecar file beside it (`photo.jpg.aicut.json`) when the user saves the project
//! (Ctrl+Shift+S), read back when the folder is opened again. A single photo saves and
//! gets back its dots the same way, through the same sidecar. Save writes each cut-out
//! into one chosen folder, named after its source, without asking again. Listing the
//! folder, reading and writing sidecars and the folder dialog run off the UI thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::imageio;

use super::App;
use super::dots::{DotHistory, DotKind, PlacedDot};
use super::inbox::Inbox;
use super::tasks::FileDialogs;
use crate::worker::Command;

/// One image of the batch.
pub(crate) struct BatchItem {
    pub path: PathBuf,
    /// Its dots and their history, once it was shown or had a sidecar.
    pub dots: Option<DotHistory>,
    /// Its cut-out was saved this run.
    pub done: bool,
}

/// The images of a batch and where the user is in it.
pub(crate) struct Batch {
    pub items: Vec<BatchItem>,
    pub index: usize,
    /// Where Save writes the cut-outs, once chosen.
    pub out_dir: Option<PathBuf>,
    /// The item whose save is running.
    saving: Option<usize>,
}

impl Batch {
    fn position(&self, path: &Path) -> Option<usize> {
        self.items.iter().position(|i| i.path == path)
    }

    pub fn done(&self) -> usize {
        self.items.iter().filter(|i| i.done).count()
    }
}

/// What the batch's background work reports.
enum Report {
    Scanned(Result<Vec<(PathBuf, Vec<PlacedDot>)>, String>),
    Folder(Result<Option<PathBuf>, String>),
    ProjectSaved(Result<usize, String>),
}

/// The batch, if one is open, and its background work.
pub(crate) struct Batches {
    pub batch: Option<Batch>,
    reports: Inbox<Report>,
    /// A folder dialog is open.
    picking: bool,
}

/// A sidecar file's contents.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Sidecar {
    /// The image it belongs to (its file name), for people reading it.
    image: String,
    dots: Vec<SidecarDot>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct SidecarDot {
    keep: bool,
    x: u32,
    y: u32,
}

/// The sidecar beside `image`: `photo.jpg` keeps its dots in `photo.jpg.aicut.json`.
pub fn sidecar_path(image: &Path) -> PathBuf {
    let mut name = image.file_name().unwrap_or_default().to_os_string();
    name.push(".aicut.json");
    image.with_file_name(name)
}

/// The dots of `image`'s sidecar; none when it has no (readable) sidecar.
pub(super) fn read_sidecar(image: &Path) -> Vec<PlacedDot> {
    let Ok(text) = std::fs::read_to_string(sidecar_path(image)) else {
        return Vec::new();
    };
    match serde_json::from_str::<Sidecar>(&text) {
        Ok(s) => s
            .dots
            .iter()
            .map(|d| PlacedDot {
                kind: if d.keep { DotKind::Green } else { DotKind::Red },
                x: d.x,
                y: d.y,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, image = %image.display(), "an unreadable sidecar is ignored");
            Vec::new()
        }
    }
}

fn write_sidecar(image: &Path, dots: &[PlacedDot]) -> Result<(), String> {
    let sidecar = Sidecar {
        image: imageio::display_name(image),
        dots: dots
            .iter()
            .map(|d| SidecarDot {
                keep: d.kind == DotKind::Green,
                x: d.x,
                y: d.y,
            })
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&sidecar).map_err(|e| e.to_string())?;
    imageio::save_atomic(&sidecar_path(image), &json, &[image]).map_err(|e| e.to_string())
}

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        imageio::IMAGE_EXTENSIONS.contains(&e)
            || imageio::IMAGE_EXTENSIONS.contains(&e.to_lowercase().as_str())
    })
}

/// The images `paths` name: files as given, folders' images sorted by name; with the
/// dots of their sidecars.
fn scan(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<PlacedDot>)>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err("no images there (JPEG, PNG, WebP, BMP, TIFF or GIF)".into());
    }
    Ok(files
        .into_iter()
        .map(|p| {
            let p = p.canonicalize().unwrap_or(p);
            let dots = read_sidecar(&p);
            (p, dots)
        })
        .collect())
}

impl Batches {
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        Batches {
            batch: None,
            reports: Inbox::new(wake),
            picking: false,
        }
    }

    fn spawn(&self, job: impl FnOnce() -> Report + Send + 'static) {
        self.reports.spawn("batch", job);
    }
}

impl App {
    /// Opens a batch of files and folders (listed off the UI thread).
    pub(super) fn open_batch(&mut self, paths: Vec<PathBuf>) {
        self.tools
            .batches
            .spawn(move || Report::Scanned(scan(&paths)));
    }

    /// Ctrl+Shift+O: a folder to open as a batch.
    pub(super) fn open_folder_dialog(&mut self) {
        let dialogs: Arc<dyn FileDialogs> = self.files.tasks.dialogs();
        let start = self
            .settings
            .recent
            .first()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        self.tools.batches.spawn(move || {
            match dialogs.pick_folder("Open a folder of photos", start.as_deref()) {
                Ok(Some(dir)) => Report::Scanned(scan(&[dir])),
                Ok(None) => Report::Scanned(Err(String::new())),
                Err(e) => Report::Scanned(Err(e)),
            }
        });
    }

    /// Takes in the batch's background reports.
    pub(super) fn poll_batch(&mut self) {
        while let Some(report) = self.tools.batches.reports.try_recv() {
            match report {
                Report::Scanned(Ok(found)) => self.batch_scanned(found),
                Report::Scanned(Err(e)) if e.is_empty() => {}
                Report::Scanned(Err(e)) => {
                    self.toast(format!("Could not open the batch: {e}."), true)
                }
                Report::Folder(result) => {
                    self.tools.batches.picking = false;
                    match result {
                        Ok(Some(dir)) => {
                            if let Some(b) = self.tools.batches.batch.as_mut() {
                                b.out_dir = Some(dir);
                            }
                            self.batch_save();
                        }
                        Ok(None) => {}
                        Err(e) => self.toast(format!("{e}."), true),
                    }
                }
                Report::ProjectSaved(Ok(n)) => {
                    let (s, them) = if n == 1 { ("", "it") } else { ("s", "them") };
                    self.toast(
                        format!("Saved the dots of {n} image{s} beside {them}"),
                        false,
                    )
                }
                Report::ProjectSaved(Err(e)) => self.toast(format!("{e}."), true),
            }
        }
    }

    fn batch_scanned(&mut self, found: Vec<(PathBuf, Vec<PlacedDot>)>) {
        let items = found
            .into_iter()
            .map(|(path, dots)| {
                let mut history = DotHistory::default();
                let had = history.add_all(&dots);
                BatchItem {
                    path,
                    dots: had.then_some(history),
                    done: false,
                }
            })
            .collect::<Vec<_>>();
        let first = items[0].path.clone();
        self.tools.batches.batch = Some(Batch {
            items,
            index: 0,
            out_dir: None,
            saving: None,
        });
        self.open_path(first);
    }

    /// Keeps the open image's dots in its batch item.
    fn stash_dots(&mut self) {
        let (Some(open), Some(b)) = (self.open.as_ref(), self.tools.batches.batch.as_mut()) else {
            return;
        };
        let Some(path) = open.doc.image().path.as_deref() else {
            return;
        };
        if let Some(i) = b.position(path) {
            b.items[i].dots = Some(open.doc.history().clone());
        }
    }

    /// PageDown (+1) and PageUp (-1): the next or previous image of the batch.
    pub(super) fn batch_step(&mut self, delta: isize) {
        self.stash_dots();
        let Some(b) = self.tools.batches.batch.as_mut() else {
            return;
        };
        let to = b.index as isize + delta;
        if to < 0 || to >= b.items.len() as isize {
            return;
        }
        b.index = to as usize;
        let path = b.items[b.index].path.clone();
        self.open_path(path);
    }

    /// A new image was decoded: if it is in the batch, it becomes the current item and
    /// gets its dots back (the engine gets them at once).
    pub(super) fn batch_opened(&mut self, path: Option<&Path>) {
        let (Some(b), Some(path)) = (self.tools.batches.batch.as_mut(), path) else {
            return;
        };
        let Some(i) = b.position(path) else {
            return;
        };
        b.index = i;
        let Some(history) = b.items[i].dots.clone() else {
            return;
        };
        if let Some(open) = self.open.as_mut() {
            open.doc.restore(history);
            self.engine.send(Command::Prompt(open.doc.prompt()));
        }
    }

    /// Save in a batch: into the chosen folder (asked once), named after the source.
    /// Returns false when the open image is not part of a batch.
    pub(super) fn batch_save(&mut self) -> bool {
        let Some(source) = self.open.as_ref().and_then(|o| o.doc.image().path.clone()) else {
            return false;
        };
        let batches = &mut self.tools.batches;
        let Some(b) = batches.batch.as_mut() else {
            return false;
        };
        let Some(i) = b.position(&source) else {
            return false;
        };
        let Some(dir) = b.out_dir.clone() else {
            if !batches.picking {
                batches.picking = true;
                let dialogs = self.files.tasks.dialogs();
                let start = source.parent().map(Path::to_path_buf);
                batches.spawn(move || {
                    Report::Folder(dialogs.pick_folder("Save the cut-outs into", start.as_deref()))
                });
            }
            return true;
        };
        let proposed = self.settings.save.proposed_path(&source);
        let name = proposed.file_name().unwrap_or_default();
        let target = dir.join(name);
        self.save_to(target);
        // Counted as done when this save reports (it may not have started: a bad name).
        if self.files.saving
            && let Some(b) = self.tools.batches.batch.as_mut()
        {
            b.saving = Some(i);
        }
        true
    }

    /// A save finished: a batch item counts as done once its cut-out is written.
    pub(super) fn batch_saved(&mut self, ok: bool) {
        if let Some(b) = self.tools.batches.batch.as_mut()
            && let Some(i) = b.saving.take()
            && ok
        {
            b.items[i].done = true;
        }
    }

    /// Ctrl+Shift+S: writes every batch image's dots to its sidecar (or the single open
    /// photo's), off the UI thread.
    pub(super) fn save_project(&mut self) {
        self.stash_dots();
        let Some(b) = self.tools.batches.batch.as_ref() else {
            return self.save_single_project();
        };
        let work: Vec<(PathBuf, Vec<PlacedDot>)> = b
            .items
            .iter()
            // Images never given dots get no sidecar; cleared ones get an empty one.
            .filter_map(|i| i.dots.as_ref().map(|d| (i, d)))
            .filter(|(_, d)| !d.dots().is_empty() || d.can_undo())
            .map(|(i, d)| (i.path.clone(), d.dots().to_vec()))
            .collect();
        self.tools.batches.spawn(move || {
            let n = work.len();
            let result = work
                .iter()
                .try_for_each(|(p, dots)| write_sidecar(p, dots))
                .map(|()| n);
            Report::ProjectSaved(result)
        });
    }

    /// Save project for a photo opened alone: its dots go to its sidecar.
    fn save_single_project(&mut self) {
        let open = self.open.as_ref();
        let Some(path) = open.and_then(|o| o.doc.image().path.clone()) else {
            return self.toast(
                "Save project keeps the dots beside the photo: open a photo file first.",
                true,
            );
        };
        let dots = open.map(|o| o.doc.dots().to_vec()).unwrap_or_default();
        self.tools
            .batches
            .spawn(move || Report::ProjectSaved(write_sidecar(&path, &dots).map(|()| 1)));
    }

    /// A photo opened alone (not in the batch) gets back the dots of its sidecar.
    pub(super) fn sidecar_opened(&mut self, path: Option<&Path>, mut dots: Vec<PlacedDot>) {
        // A hand-edited sidecar may name pixels the photo does not have.
        let [w, h] = self.open.as_ref().map_or([0, 0], |o| o.doc.size());
        dots.retain(|d| d.x < w && d.y < h);
        let in_batch = self
            .tools
            .batches
            .batch
            .as_ref()
            .is_some_and(|b| path.is_some_and(|p| b.position(p).is_some()));
        if in_batch || dots.is_empty() {
            return;
        }
        let mut history = DotHistory::default();
        history.add_all(&dots);
        if let Some(open) = self.open.as_mut() {
            open.doc.restore(history);
            self.engine.send(Command::Prompt(open.doc.prompt()));
        }
        let n = dots.len();
        let s = if n == 1 { "" } else { "s" };
        self.toast(
            format!("Restored {n} dot{s} from the photo's project file"),
            false,
        );
    }

    /// An open in the batch was cancelled: the current item is the image still shown.
    pub(super) fn batch_back_to_shown(&mut self) {
        let shown = self.open.as_ref().and_then(|o| o.doc.image().path.clone());
        if let (Some(b), Some(p)) = (self.tools.batches.batch.as_mut(), shown)
            && let Some(i) = b.position(&p)
        {
            b.index = i;
        }
    }

    /// "Batch 3 of 12, 2 done, 10 to go" for the status bar.
    pub(super) fn batch_status(&self) -> Option<String> {
        let b = self.tools.batches.batch.as_ref()?;
        let n = b.items.len();
        let done = b.done();
        Some(format!(
            "Batch {} of {n}: {done} done, {} to go (PageDown/PageUp)",
            b.index + 1,
            n - done
        ))
    }

    /// The batch's images, which is current, and how many are done, for tests.
    pub fn batch(&self) -> Option<(Vec<PathBuf>, usize, usize)> {
        let b = self.tools.batches.batch.as_ref()?;
        let paths = b.items.iter().map(|i| i.path.clone()).collect();
        Some((paths, b.index, b.done()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_go_to_a_sidecar_and_come_back_from_a_folder_scan() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.png", "a.jpg", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let a = dir.path().join("a.jpg").canonicalize().unwrap();
        let dots = [
            PlacedDot {
                kind: DotKind::Green,
                x: 3,
                y: 4,
            },
            PlacedDot {
                kind: DotKind::Red,
                x: 5,
                y: 6,
            },
        ];
        write_sidecar(&a, &dots).unwrap();
        assert!(dir.path().join("a.jpg.aicut.json").is_file());
        let found = scan(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|(p, _)| imageio::display_name(p))
            .collect();
        assert_eq!(names, ["a.jpg", "b.png"], "images only, sorted");
        assert_eq!(found[0].1, dots);
        assert!(found[1].1.is_empty());
        let empty = tempfile::tempdir().unwrap();
        assert!(scan(&[empty.path().to_path_buf()]).is_err());
    }
}
