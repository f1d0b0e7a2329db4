//! The system clipboard: Copy puts the cut-out there with its transparency, Paste opens an
//! image (or a copied image file) from it. All of it runs on one long-lived thread that
//! owns the clipboard: on X11 a copied image lives only as long as the clipboard object
//! that offers it, and encoding or decoding a 12 MP clipboard image would stall a frame.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};

use crate::engine::AlphaMask;
use crate::imageio::{self, DecodeLimits, ExportOptions, LoadedImage};
use crate::matting::SoftCut;

use super::soft_memo::SoftMemo;
use super::tasks::{Decoded, TaskResult, display_copy};

/// What aicut needs of a clipboard; the system one is [`system`], tests bring their own.
pub trait ClipboardBackend {
    fn set_image(&mut self, width: usize, height: usize, rgba: Vec<u8>) -> Result<(), String>;
    /// An RGBA image: (width, height, pixels).
    fn get_image(&mut self) -> Result<(usize, usize, Vec<u8>), String>;
    /// Files copied in a file manager.
    fn get_files(&mut self) -> Result<Vec<PathBuf>, String>;
    fn get_text(&mut self) -> Result<String, String>;
}

/// Opens the clipboard, on the clipboard thread (some platforms want it used where it was
/// made); an `Err` says why there is none, e.g. no display.
pub type ClipboardOpener = Arc<dyn Fn() -> Result<Box<dyn ClipboardBackend>, String> + Send + Sync>;

/// The system clipboard through arboard.
pub fn system() -> ClipboardOpener {
    Arc::new(|| {
        arboard::Clipboard::new()
            .map(|c| Box::new(System(c)) as Box<dyn ClipboardBackend>)
            .map_err(|e| e.to_string())
    })
}

struct System(arboard::Clipboard);

impl ClipboardBackend for System {
    fn set_image(&mut self, width: usize, height: usize, rgba: Vec<u8>) -> Result<(), String> {
        let image = arboard::ImageData {
            width,
            height,
            bytes: rgba.into(),
        };
        self.0.set_image(image).map_err(|e| e.to_string())
    }

    fn get_image(&mut self) -> Result<(usize, usize, Vec<u8>), String> {
        let i = self.0.get_image().map_err(|e| e.to_string())?;
        Ok((i.width, i.height, i.bytes.into_owned()))
    }

    fn get_files(&mut self) -> Result<Vec<PathBuf>, String> {
        self.0.get().file_list().map_err(|e| e.to_string())
    }

    fn get_text(&mut self) -> Result<String, String> {
        self.0.get_text().map_err(|e| e.to_string())
    }
}

/// What the clipboard thread is asked to do.
enum Request {
    Copy {
        image: Arc<LoadedImage>,
        mask: Arc<AlphaMask>,
        options: ExportOptions,
        soft: SoftMemo,
    },
    /// Open what the clipboard holds; `max_side` bounds the display copy.
    Paste { generation: u64, max_side: usize },
    /// Text for the focused text field.
    PasteText,
}

/// What the clipboard thread reports.
pub enum ClipboardResult {
    Copied(Result<(u32, u32), String>),
    Pasted {
        generation: u64,
        result: Result<Pasted, String>,
    },
    Text(Result<String, String>),
}

/// A pasted image, or a copied file to open like a dropped one.
pub enum Pasted {
    Image(Decoded),
    File(PathBuf),
}

/// The editor's end of the clipboard thread, started on first use.
pub struct ClipboardLink {
    opener: ClipboardOpener,
    requests: Option<Sender<Request>>,
    report: Sender<TaskResult>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl ClipboardLink {
    pub fn new(
        opener: ClipboardOpener,
        report: Sender<TaskResult>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        ClipboardLink {
            opener,
            requests: None,
            report,
            wake,
        }
    }

    /// Puts the cut-out (trimmed as the save options say) on the clipboard.
    /// `soft` shares the soft-edge pass with the view and the save. A copy is always the
    /// cut-out, never the mask alone: only the edges and the trim of `options` apply.
    pub fn copy(
        &mut self,
        image: Arc<LoadedImage>,
        mask: Arc<AlphaMask>,
        options: ExportOptions,
        soft: SoftMemo,
    ) {
        self.send(Request::Copy {
            image,
            mask,
            options,
            soft,
        });
    }

    pub fn paste(&mut self, generation: u64, max_side: usize) {
        self.send(Request::Paste {
            generation,
            max_side,
        });
    }

    pub fn paste_text(&mut self) {
        self.send(Request::PasteText);
    }

    fn send(&mut self, request: Request) {
        let request = match &self.requests {
            None => request,
            Some(tx) => match tx.send(request) {
                Ok(()) => return,
                // The thread ended (it never should); start another.
                Err(e) => e.0,
            },
        };
        let (tx, rx) = channel::<Request>();
        let (opener, report, wake) = (self.opener.clone(), self.report.clone(), self.wake.clone());
        let started = std::thread::Builder::new()
            .name("aicut-clipboard".into())
            .spawn(move || {
                let mut clipboard = opener();
                for request in rx {
                    let result = serve(&mut clipboard, request);
                    let _ = report.send(TaskResult::Clipboard(result));
                    wake();
                }
            });
        match started {
            Ok(_) => {
                let _ = tx.send(request);
                self.requests = Some(tx);
            }
            Err(e) => tracing::error!(error = %e, "could not start the clipboard thread"),
        }
    }
}

fn unavailable(why: &str) -> String {
    format!("The clipboard is not available ({why})")
}

/// Carries out one request on the clipboard thread.
fn serve(
    clipboard: &mut Result<Box<dyn ClipboardBackend>, String>,
    request: Request,
) -> ClipboardResult {
    let board = clipboard.as_mut().map_err(|e| unavailable(e));
    match request {
        Request::Copy {
            image,
            mask,
            options,
            soft,
        } => ClipboardResult::Copied(board.and_then(|b| {
            let soft = soft.get(&image, &mask, options.edges);
            copy(b.as_mut(), &image, &mask, soft.as_deref(), options.trim)
        })),
        Request::Paste {
            generation,
            max_side,
        } => ClipboardResult::Pasted {
            generation,
            result: board.and_then(|b| paste(b.as_mut(), max_side)),
        },
        Request::PasteText => {
            ClipboardResult::Text(board.and_then(|b| b.get_text().map_err(|e| unavailable(&e))))
        }
    }
}

fn copy(
    board: &mut dyn ClipboardBackend,
    image: &LoadedImage,
    mask: &AlphaMask,
    soft: Option<&SoftCut>,
    trim: Option<u32>,
) -> Result<(u32, u32), String> {
    // Trimmed by the alpha that is copied, as a save trims: soft edges may reach further.
    let alpha = soft.map_or(mask, |s| &s.alpha);
    let region = match trim {
        Some(margin) => imageio::trim_bounds(alpha, margin)
            .ok_or("Nothing is selected, so there is nothing to copy")?,
        None => (0, 0, image.width(), image.height()),
    };
    let (w, h) = (region.2, region.3);
    let cut = match soft {
        Some(soft) => imageio::compose_cutout_region(&soft.painted(image.pixels()), alpha, region),
        None => imageio::compose_cutout_region(image.pixels(), alpha, region),
    };
    board
        .set_image(w as usize, h as usize, cut.into_raw())
        .map_err(|e| format!("Could not copy the cut-out: {e}"))?;
    Ok((w, h))
}

/// An image on the clipboard, else a copied image file, else a path typed as text.
fn paste(board: &mut dyn ClipboardBackend, max_side: usize) -> Result<Pasted, String> {
    if let Ok((w, h, rgba)) = board.get_image() {
        let limits = DecodeLimits::default();
        let (w32, h32) = (u32::try_from(w).ok(), u32::try_from(h).ok());
        let fits = matches!((w32, h32), (Some(a), Some(b)) if a > 0 && b > 0
            && a <= limits.max_side && b <= limits.max_side
            && (a as u64) * (b as u64) <= limits.max_pixels);
        if !fits {
            return Err(format!(
                "The image on the clipboard is {w}x{h} pixels; aicut opens up to {} megapixels",
                limits.max_pixels / 1_000_000
            ));
        }
        let pixels = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
            .ok_or("The image on the clipboard is malformed")?;
        let display = display_copy(&pixels, max_side);
        let image = Arc::new(LoadedImage::from_pixels("pasted.png", pixels));
        return Ok(Pasted::Image(Decoded {
            image,
            display,
            dots: Vec::new(),
        }));
    }
    if let Some(file) = board.get_files().ok().and_then(|f| f.into_iter().next()) {
        return Ok(Pasted::File(file));
    }
    let text = board.get_text().unwrap_or_default();
    let text = text.trim();
    let path = PathBuf::from(text.strip_prefix("file://").unwrap_or(text));
    if !text.is_empty() && !text.contains('\n') && path.is_file() {
        return Ok(Pasted::File(path));
    }
    Err("The clipboard holds no image to paste".into())
}
