//! Background work for the editor: decoding, display copies, overlay images, saving and
//! file dialogs. The UI thread only starts these and picks up their results each frame,
//! so a 12 MP photo never stalls a frame. Each task runs on its own short-lived thread and
//! reports over one channel, then wakes the UI.

use super::inbox::Inbox;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use egui::{Color32, ColorImage};
use image::{GrayImage, RgbaImage, imageops};

use crate::engine::AlphaMask;
use crate::imageio::{self, DecodeLimits, LoadedImage};

use super::clipboard::{ClipboardLink, ClipboardOpener, ClipboardResult};
use super::dots::PlacedDot;
use super::pictures::LayerJob;
use super::soft_memo::SoftMemo;

/// Native file dialogs, behind a trait so tests (and machines without a desktop portal)
/// can stand in for them. Called on a background thread, never the UI thread.
pub trait FileDialogs: Send + Sync {
    /// `Ok(Some(path))` picked, `Ok(None)` cancelled, `Err` no dialog could be shown.
    fn pick_image(&self, start_dir: Option<&Path>) -> Result<Option<PathBuf>, String>;
    /// Where to save (PNG or WebP); `proposed` is the suggested file.
    fn save_path(&self, proposed: &Path) -> Result<Option<PathBuf>, String>;
    /// A folder (a batch to open, or where a batch's cut-outs go).
    fn pick_folder(&self, _title: &str, _start: Option<&Path>) -> Result<Option<PathBuf>, String> {
        Err("no folder dialog is available here".into())
    }
}

/// The system's dialogs through rfd (the XDG desktop portal on Linux, zenity as its
/// fallback). rfd cannot tell "cancelled" from "no dialog could open", so a `None` that
/// comes back almost at once counts as "no dialog" and the editor offers its own path box.
pub struct NativeDialogs;

/// A dialog closed faster than this was never shown.
const NO_DIALOG_WITHIN: Duration = Duration::from_millis(400);

fn native_dialog_possible() -> Result<(), String> {
    if cfg!(target_os = "linux") {
        let has_bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
            || std::env::var_os("XDG_RUNTIME_DIR")
                .map(|d| Path::new(&d).join("bus").exists())
                .unwrap_or(false);
        let has_zenity = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("zenity").is_file()))
            .unwrap_or(false);
        if !has_bus && !has_zenity {
            return Err(
                "no desktop file dialog is available (no desktop portal, no zenity)".into(),
            );
        }
    }
    Ok(())
}

fn judged(start: Instant, picked: Option<PathBuf>) -> Result<Option<PathBuf>, String> {
    match picked {
        Some(p) => Ok(Some(p)),
        None if start.elapsed() < NO_DIALOG_WITHIN => {
            Err("the system file dialog did not open".into())
        }
        None => Ok(None),
    }
}

impl FileDialogs for NativeDialogs {
    fn pick_image(&self, start_dir: Option<&Path>) -> Result<Option<PathBuf>, String> {
        native_dialog_possible()?;
        let mut d = rfd::FileDialog::new()
            .set_title("Open an image")
            .add_filter("Images", imageio::IMAGE_EXTENSIONS);
        if let Some(dir) = start_dir {
            d = d.set_directory(dir);
        }
        let start = Instant::now();
        judged(start, d.pick_file())
    }

    fn save_path(&self, proposed: &Path) -> Result<Option<PathBuf>, String> {
        native_dialog_possible()?;
        let webp_first = proposed.extension().is_some_and(|e| e == "webp");
        let filters = [("PNG image", "png"), ("WebP image (lossless)", "webp")];
        let mut d = rfd::FileDialog::new().set_title("Save the cut-out");
        for i in [0, 1] {
            let (name, ext) = filters[if webp_first { 1 - i } else { i }];
            d = d.add_filter(name, &[ext]);
        }
        if let Some(dir) = proposed.parent().filter(|d| !d.as_os_str().is_empty()) {
            d = d.set_directory(dir);
        }
        if let Some(name) = proposed.file_name() {
            d = d.set_file_name(name.to_string_lossy());
        }
        let start = Instant::now();
        judged(start, d.save_file())
    }

    fn pick_folder(&self, title: &str, start: Option<&Path>) -> Result<Option<PathBuf>, String> {
        native_dialog_possible()?;
        let mut d = rfd::FileDialog::new().set_title(title);
        if let Some(dir) = start {
            d = d.set_directory(dir);
        }
        let start = Instant::now();
        judged(start, d.pick_folder())
    }
}

/// An image ready to show: the full-resolution pixels plus a copy the GPU can hold.
pub struct Decoded {
    pub image: Arc<LoadedImage>,
    pub display: ColorImage,
    /// The dots of the file's sidecar (see [`super::batch::sidecar_path`]), read with it.
    pub dots: Vec<PlacedDot>,
}

/// Which picture a view mode draws for a mask. Only the one the current view needs is
/// built, so a 12 MP photo never holds both at once for every result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Tinted selection with its outline, drawn over the photo.
    Tint,
    /// The photo with the mask as alpha, drawn over a checkerboard.
    Cutout,
}

/// One overlay picture for one mask, at the display copy's size.
pub struct LayerImage {
    pub kind: LayerKind,
    pub image_gen: u64,
    /// The document's count of accepted masks when this one was built.
    pub serial: u64,
    pub request_number: u64,
    /// The edges it shows (see [`super::pictures::LayerJob::edges`]).
    pub edges: crate::matting::EdgeOptions,
    pub image: ColorImage,
}

/// What background tasks report.
pub enum TaskResult {
    Decoded {
        generation: u64,
        path: PathBuf,
        result: Result<Decoded, String>,
    },
    Layer(LayerImage),
    Picked {
        result: Result<Option<PathBuf>, String>,
    },
    SavePath {
        result: Result<Option<PathBuf>, String>,
    },
    Saved {
        path: PathBuf,
        result: Result<(), String>,
    },
    Clipboard(ClipboardResult),
}

/// Starts tasks and collects their results.
pub struct Tasks {
    inbox: Inbox<TaskResult>,
    dialogs: Arc<dyn FileDialogs>,
    /// A dialog is open (only one at a time).
    pub dialog_open: bool,
    /// Copy and paste, on the clipboard's own thread.
    pub clipboard: ClipboardLink,
    /// The soft-edge pass of the latest mask, shared by overlays, copies and saves.
    pub soft: SoftMemo,
}

impl Tasks {
    pub fn new(
        dialogs: Arc<dyn FileDialogs>,
        clipboard: ClipboardOpener,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        let inbox = Inbox::new(wake.clone());
        Tasks {
            clipboard: ClipboardLink::new(clipboard, inbox.sender(), wake),
            inbox,
            dialogs,
            dialog_open: false,
            soft: SoftMemo::default(),
        }
    }

    /// The dialogs, for work that asks its own questions off the UI thread (batches).
    pub fn dialogs(&self) -> Arc<dyn FileDialogs> {
        self.dialogs.clone()
    }

    pub fn try_result(&self) -> Option<TaskResult> {
        self.inbox.try_recv()
    }

    /// Runs `job` on its own thread (a failure to start is logged by the inbox).
    fn spawn(&self, name: &str, job: impl FnOnce() -> TaskResult + Send + 'static) {
        self.inbox.spawn(name, job);
    }

    /// Decodes a file and prepares a display copy no larger than `max_side`.
    pub fn decode(&self, generation: u64, path: PathBuf, max_side: usize) {
        self.spawn("decode", move || {
            let result = imageio::load_file(&path, &DecodeLimits::default())
                .map_err(|e| e.to_string())
                .map(|img| {
                    let display = display_copy(img.pixels(), max_side);
                    Decoded {
                        image: Arc::new(img),
                        display,
                        dots: super::batch::read_sidecar(&path),
                    }
                });
            // The absolute path for the recent-files list, resolved here, off the UI thread.
            let path = path.canonicalize().unwrap_or(path);
            TaskResult::Decoded {
                generation,
                path,
                result,
            }
        });
    }

    /// Builds one overlay picture for a mask at the display copy's size.
    pub fn layer(&self, job: LayerJob) {
        let soft = self.soft.clone();
        self.spawn("overlay", move || {
            let image = layer_image(&job, &soft);
            TaskResult::Layer(LayerImage {
                kind: job.kind,
                image_gen: job.image_gen,
                serial: job.serial,
                request_number: job.request_number,
                edges: job.edges,
                image,
            })
        });
    }

    pub fn pick_image(&mut self, start_dir: Option<PathBuf>) {
        if self.dialog_open {
            return;
        }
        self.dialog_open = true;
        let dialogs = self.dialogs.clone();
        self.spawn("dialog", move || TaskResult::Picked {
            result: dialogs.pick_image(start_dir.as_deref()),
        });
    }

    pub fn pick_save_path(&mut self, proposed: PathBuf) {
        if self.dialog_open {
            return;
        }
        self.dialog_open = true;
        let dialogs = self.dialogs.clone();
        self.spawn("dialog", move || TaskResult::SavePath {
            result: dialogs.save_path(&proposed),
        });
    }

    /// Composes, encodes and writes the full-resolution cut-out atomically.
    pub fn save(&self, job: SaveJob) {
        let soft = self.soft.clone();
        self.spawn("save", move || {
            let result = job.run(&soft);
            TaskResult::Saved {
                path: job.path,
                result,
            }
        });
    }
}

/// One save: what to write, where, and how.
pub struct SaveJob {
    pub image: Arc<LoadedImage>,
    pub mask: Arc<AlphaMask>,
    pub path: PathBuf,
    pub format: imageio::ExportFormat,
    pub options: imageio::ExportOptions,
    /// Set by Cancel: the job stops before it writes (encoding is the long part).
    pub cancel: Arc<AtomicBool>,
}

/// The error of a save stopped by Cancel before anything was written.
pub const SAVE_CANCELLED: &str = "cancelled";

impl SaveJob {
    fn run(&self, soft: &SoftMemo) -> Result<(), String> {
        let cancelled = || self.cancel.load(Ordering::SeqCst);
        if cancelled() {
            return Err(SAVE_CANCELLED.into());
        }
        let soft = soft.get(&self.image, &self.mask, self.options.edges);
        if cancelled() {
            return Err(SAVE_CANCELLED.into());
        }
        let (image, mask) = (&self.image, &self.mask);
        let bytes = imageio::export_cut(image, mask, soft.as_deref(), self.format, self.options)?;
        if cancelled() {
            return Err(SAVE_CANCELLED.into());
        }
        let protected: Vec<&Path> = self.image.path.as_deref().into_iter().collect();
        imageio::save_atomic(&self.path, &bytes, &protected).map_err(|e| e.to_string())
    }
}

/// The size of the display copy of a `w` x `h` image under a texture limit.
pub fn display_size(w: u32, h: u32, max_side: usize) -> [usize; 2] {
    let max_side = max_side.max(64) as f64;
    let longest = w.max(h) as f64;
    if longest <= max_side {
        return [w as usize, h as usize];
    }
    let s = max_side / longest;
    [
        ((w as f64 * s).floor() as usize).max(1),
        ((h as f64 * s).floor() as usize).max(1),
    ]
}

/// The photo as a texture-sized `ColorImage` (downscaled when it exceeds `max_side`).
pub fn display_copy(pixels: &RgbaImage, max_side: usize) -> ColorImage {
    let [w, h] = display_size(pixels.width(), pixels.height(), max_side);
    if [w, h] == [pixels.width() as usize, pixels.height() as usize] {
        ColorImage::from_rgba_unmultiplied([w, h], pixels.as_raw())
    } else {
        let small = imageops::resize(pixels, w as u32, h as u32, imageops::FilterType::Triangle);
        ColorImage::from_rgba_unmultiplied([w, h], small.as_raw())
    }
}

/// The tint colour of the selection and of its outline.
const TINT: [u8; 3] = [40, 130, 255];
const OUTLINE: Color32 = Color32::from_rgb(255, 214, 0);

/// `img` at `size` (borrowed when it already has that size).
fn at_size<P: image::Pixel + 'static>(
    img: &image::ImageBuffer<P, Vec<P::Subpixel>>,
    [w, h]: [usize; 2],
) -> std::borrow::Cow<'_, image::ImageBuffer<P, Vec<P::Subpixel>>> {
    if [w, h] == [img.width() as usize, img.height() as usize] {
        std::borrow::Cow::Borrowed(img)
    } else {
        let f = imageops::FilterType::Triangle;
        std::borrow::Cow::Owned(imageops::resize(img, w as u32, h as u32, f))
    }
}

/// The tinted selection with its outline, at `size`.
pub fn tint_image(mask: &GrayImage, size: [usize; 2]) -> ColorImage {
    let [w, h] = size;
    let mask = at_size(mask, size);
    let m = mask.as_raw();
    let inside = |x: usize, y: usize| m[y * w + x] >= 128;
    // A thicker outline on big images, so it survives being shown smaller (about one
    // screen pixel when a photo is fitted to a window).
    let r = (w.max(h) / 1000).clamp(1, 6);
    let mut tint = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let a = m[y * w + x];
            let here = inside(x, y);
            let edge = (1..=r).any(|d| {
                (x >= d && inside(x - d, y) != here)
                    || (x + d < w && inside(x + d, y) != here)
                    || (y >= d && inside(x, y - d) != here)
                    || (y + d < h && inside(x, y + d) != here)
            });
            tint.push(if edge && here {
                OUTLINE
            } else {
                Color32::from_rgba_unmultiplied(TINT[0], TINT[1], TINT[2], (a as u16 * 3 / 8) as u8)
            });
        }
    }
    ColorImage::new([w, h], tint)
}

/// The picture of a layer job: with soft edges, of the matted alpha and (for the cut-out)
/// the foreground's estimated colours, as a save would write them.
fn layer_image(job: &LayerJob, soft: &SoftMemo) -> ColorImage {
    let pixels = job.image.pixels();
    match job.kind {
        // The tint shows the alpha only: no colours to estimate (yet).
        LayerKind::Tint => match soft.alpha(&job.image, &job.mask, job.edges) {
            Some(alpha) => tint_image(&alpha, job.display_size),
            None => tint_image(&job.mask, job.display_size),
        },
        LayerKind::Cutout => match soft.get(&job.image, &job.mask, job.edges) {
            Some(s) => cutout_image(&s.painted(pixels), &s.alpha, job.display_size),
            None => cutout_image(pixels, &job.mask, job.display_size),
        },
    }
}

/// The photo with the mask as alpha, at `size`.
pub fn cutout_image(pixels: &RgbaImage, mask: &GrayImage, size: [usize; 2]) -> ColorImage {
    let mask = at_size(mask, size);
    let photo = at_size(pixels, size);
    let mut cut = Vec::with_capacity(size[0] * size[1]);
    for (px, a) in photo.pixels().zip(mask.as_raw()) {
        let alpha = ((px.0[3] as u16 * *a as u16 + 127) / 255) as u8;
        cut.push(Color32::from_rgba_unmultiplied(
            px.0[0], px.0[1], px.0[2], alpha,
        ));
    }
    ColorImage::new(size, cut)
}

/// The file that holds the API key, readable by its owner only.
pub fn key_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("io.github", "aicut", "aicut")
        .map(|d| d.config_dir().join("api-key"))
}

pub fn read_key(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Writes the key with owner-only permissions (0600), created that way from the start.
pub fn write_key(path: &Path, key: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if key.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let f = opts.open(path)?;
        // An older file may have had wider permissions.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        use std::io::Write;
        let mut f = f;
        f.write_all(key.as_bytes())?;
        f.sync_all()
    }
    #[cfg(not(unix))]
    {
        use std::io::Write;
        opts.open(path)?.write_all(key.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_copy_fits_the_texture_limit() {
        assert_eq!(display_size(4000, 3000, 2048), [2048, 1536]);
        assert_eq!(display_size(100, 50, 2048), [100, 50]);
        let img = RgbaImage::from_pixel(300, 100, image::Rgba([10, 20, 30, 255]));
        let d = display_copy(&img, 128);
        assert_eq!(d.size, [128, 42]);
    }

    #[test]
    fn overlay_marks_selection_and_outline() {
        let img = RgbaImage::from_pixel(10, 10, image::Rgba([200, 100, 50, 255]));
        let mut mask = GrayImage::new(10, 10);
        for y in 2..8 {
            for x in 2..8 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        let tint = tint_image(&mask, [10, 10]);
        let cut = cutout_image(&img, &mask, [10, 10]);
        assert_eq!(tint.pixels[2 * 10 + 2], OUTLINE);
        assert_eq!(tint.pixels[0].a(), 0);
        assert!(tint.pixels[5 * 10 + 5].a() > 0);
        assert_eq!(cut.pixels[0].a(), 0);
        assert_eq!(cut.pixels[5 * 10 + 5].a(), 255);
    }

    #[test]
    fn with_soft_edges_the_overlay_and_cutout_show_the_matted_alpha() {
        // A vertical edge blurred over eight pixels, selected as one hard step.
        let ramp = |x: u32| ((x as f32 - 12.0) / 8.0).clamp(0.0, 1.0);
        let img = RgbaImage::from_fn(32, 16, |x, _| {
            let v = (40.0 + 180.0 * ramp(x)) as u8;
            image::Rgba([v, v / 2, 255 - v, 255])
        });
        let mask = GrayImage::from_fn(32, 16, |x, _| image::Luma([if x >= 16 { 255 } else { 0 }]));
        let job = |kind, band| LayerJob {
            kind,
            image_gen: 1,
            serial: 1,
            request_number: 1,
            image: Arc::new(LoadedImage::from_pixels("ramp", img.clone())),
            mask: Arc::new(mask.clone()),
            display_size: [32, 16],
            edges: crate::matting::EdgeOptions {
                edges: crate::matting::Edges::Soft,
                band,
            },
        };
        let partial = |c: &ColorImage| {
            (0..32)
                .filter(|&x| (20..235).contains(&c.pixels[8 * 32 + x].a()))
                .count()
        };
        let cut = layer_image(&job(LayerKind::Cutout, 4), &SoftMemo::default());
        let hard = cutout_image(&img, &mask, [32, 16]);
        assert_eq!(partial(&hard), 0);
        assert!(partial(&cut) >= 4, "the ramp shows as partial alpha");
        let tint = layer_image(&job(LayerKind::Tint, 4), &SoftMemo::default());
        let hard_tint = tint_image(&mask, [32, 16]);
        assert_ne!(
            tint.pixels, hard_tint.pixels,
            "the tint follows the soft alpha"
        );
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("api-key");
        write_key(&path, "secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read_key(&path).as_deref(), Some("secret"));
        write_key(&path, "").unwrap();
        assert!(!path.exists());
    }
}
