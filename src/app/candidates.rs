//! Candidates: where the engine sees several answers to the dots (SAM's multimask, the
//! built-in engine's scales), Tab switches among them without another click, and so does
//! a click on their thumbnails in the canvas's corner. The first Tab asks the worker for
//! them ([`Command::Candidates`]); each switch shows the chosen one at once and tells the
//! engine ([`Command::Choose`]) so that later dots refine it. Thumbnails are built off
//! the UI thread.

use std::sync::Arc;

use egui::{Align2, Color32, ColorImage, FontId, Painter, Rect, Sense, TextureHandle, Ui, vec2};
use image::imageops;

use crate::engine::{AlphaMask, EngineError, Prompt};
use crate::imageio::LoadedImage;
use crate::worker::Command;

use super::App;
use super::inbox::Inbox;
use super::tasks::cutout_image;

/// A thumbnail's longest side, in pixels and points.
const THUMB: u32 = 80;

/// The engine's answers to one prompt and the one shown.
pub(crate) struct CandidateList {
    prompt: Prompt,
    masks: Vec<Arc<AlphaMask>>,
    index: usize,
    /// Their thumbnails, once built.
    thumbs: Vec<TextureHandle>,
}

/// Thumbnails built for the candidates of `prompt`.
struct Thumbs {
    prompt: Prompt,
    images: Vec<ColorImage>,
}

pub(crate) struct Candidates {
    /// The prompt whose candidates were asked for (Tab was pressed).
    asked: Option<Prompt>,
    list: Option<CandidateList>,
    thumbs: Inbox<Thumbs>,
}

impl Candidates {
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        Candidates {
            asked: None,
            list: None,
            thumbs: Inbox::new(wake),
        }
    }

    pub fn reset(&mut self) {
        self.asked = None;
        self.list = None;
    }

    /// The list, if it answers `prompt`.
    fn for_prompt(&self, prompt: &Prompt) -> Option<&CandidateList> {
        self.list.as_ref().filter(|l| l.prompt == *prompt)
    }
}

impl App {
    /// Tab (forward) or Shift+Tab: shows the next of the engine's answers to the dots.
    pub(super) fn next_candidate(&mut self, forward: bool) {
        let Some(open) = self.open.as_ref() else {
            return;
        };
        let prompt = open.doc.prompt();
        let settled = open.doc.shown_mask().is_some_and(|(_, _, p)| *p == prompt);
        if !settled {
            if open.doc.mask().is_none() {
                self.toast(
                    "Click what to keep first; Tab then shows the alternatives.",
                    true,
                );
            }
            return;
        }
        let Some(list) = self.tools.candidates.for_prompt(&prompt) else {
            self.tools.candidates.asked = Some(prompt.clone());
            self.engine.send(Command::Candidates(prompt));
            return;
        };
        let n = list.masks.len();
        let index = if forward {
            (list.index + 1) % n
        } else {
            (list.index + n - 1) % n
        };
        self.show_candidate(index);
    }

    /// Shows candidate `index` of the current list, and makes it the engine's answer.
    pub(super) fn show_candidate(&mut self, index: usize) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let prompt = open.doc.prompt();
        let Some(list) = self.tools.candidates.list.as_mut() else {
            return;
        };
        if list.prompt != prompt || index >= list.masks.len() || index == list.index {
            return;
        }
        if open.doc.replace_shown(list.masks[index].clone()) {
            list.index = index;
            self.engine.send(Command::Choose { prompt, index });
        }
    }

    /// The worker's candidates: kept if they answer the dots on screen; the next one is
    /// shown at once (that is what Tab asked for).
    pub(super) fn candidates_arrived(
        &mut self,
        prompt: Prompt,
        result: Result<Vec<Arc<AlphaMask>>, EngineError>,
    ) {
        let c = &mut self.tools.candidates;
        if c.asked.as_ref() != Some(&prompt) {
            return;
        }
        c.asked = None;
        let current = self.open.as_ref().map(|o| o.doc.prompt());
        if current.as_ref() != Some(&prompt) {
            return;
        }
        match result {
            Ok(masks) if masks.len() > 1 => {
                if let Some(open) = self.open.as_ref() {
                    let (image, masks, prompt) =
                        (open.doc.image().clone(), masks.clone(), prompt.clone());
                    c.thumbs.spawn("thumbnails", move || Thumbs {
                        images: thumbnails(&image, &masks),
                        prompt,
                    });
                }
                c.list = Some(CandidateList {
                    prompt,
                    masks,
                    index: 0,
                    thumbs: Vec::new(),
                });
                self.show_candidate(1);
            }
            Ok(_) => self.toast("The engine sees no other answer for these dots.", false),
            Err(e) => self.toast(format!("No alternatives: {e}."), true),
        }
    }

    /// Which candidate is shown and how many there are, when the engine offered several
    /// for the dots on screen.
    pub fn candidate(&self) -> Option<(usize, usize)> {
        let open = self.open.as_ref()?;
        let list = self.tools.candidates.for_prompt(&open.doc.prompt())?;
        Some((list.index, list.masks.len()))
    }

    /// How many thumbnails of the current candidates are on screen.
    pub fn candidate_thumbnails(&self) -> usize {
        let Some(open) = self.open.as_ref() else {
            return 0;
        };
        let list = self.tools.candidates.for_prompt(&open.doc.prompt());
        list.map_or(0, |l| l.thumbs.len())
    }

    /// "Answer 2 of 3 (Tab)" in the canvas's corner while candidates are known.
    pub(super) fn draw_candidate_badge(&self, painter: &Painter, canvas: Rect) {
        let Some((index, n)) = self.candidate() else {
            return;
        };
        let r = Rect::from_min_size(canvas.left_top() + vec2(10.0, 10.0), vec2(190.0, 26.0));
        painter.rect_filled(r, 6.0, Color32::from_black_alpha(170));
        painter.text(
            r.center(),
            Align2::CENTER_CENTER,
            format!("Answer {} of {n} (Tab: next)", index + 1),
            FontId::proportional(14.0),
            Color32::WHITE,
        );
    }

    /// Takes in finished thumbnails (of the current list only) as textures.
    pub(super) fn receive_candidate_thumbs(&mut self, ctx: &egui::Context) {
        let c = &mut self.tools.candidates;
        while let Some(t) = c.thumbs.try_recv() {
            if let Some(list) = c.list.as_mut().filter(|l| l.prompt == t.prompt) {
                list.thumbs = t
                    .images
                    .into_iter()
                    .map(|img| ctx.load_texture("candidate", img, egui::TextureOptions::LINEAR))
                    .collect();
            }
        }
    }

    /// Draws the candidates' thumbnails along the canvas's bottom; the one clicked, if any.
    pub(super) fn candidate_strip(&self, ui: &mut Ui, canvas: Rect) -> Option<usize> {
        let open = self.open.as_ref()?;
        let list = self.tools.candidates.for_prompt(&open.doc.prompt())?;
        let side = THUMB as f32 + 8.0;
        let mut picked = None;
        for (i, t) in list.thumbs.iter().enumerate() {
            let min = canvas.left_bottom() + vec2(10.0 + i as f32 * (side + 6.0), -10.0 - side);
            let r = Rect::from_min_size(min, vec2(side, side));
            let response = ui.interact(r, egui::Id::unique(("aicut-candidate", i)), Sense::click());
            response.widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::Button, true, format!("Answer {}", i + 1))
            });
            if response.clicked() {
                picked = Some(i);
            }
            let painter = ui.painter_at(canvas);
            painter.rect_filled(r, 4.0, Color32::from_gray(60));
            let fit = Rect::from_center_size(
                r.center(),
                t.size_vec2() * (THUMB as f32 / t.size_vec2().max_elem()),
            );
            let uv = Rect::from_min_max(egui::Pos2::ZERO, egui::pos2(1.0, 1.0));
            painter.image(t.id(), fit, uv, Color32::WHITE);
            let (width, colour) = if i == list.index {
                (3.0, Color32::from_rgb(0, 160, 255))
            } else {
                (1.0, Color32::from_gray(150))
            };
            let stroke = egui::Stroke::new(width, colour);
            painter.rect_stroke(r, 4.0, stroke, egui::StrokeKind::Inside);
        }
        picked
    }
}

/// Small cut-outs of each candidate, the longest side [`THUMB`] pixels.
fn thumbnails(image: &LoadedImage, masks: &[Arc<AlphaMask>]) -> Vec<ColorImage> {
    let (w, h) = (image.width().max(1), image.height().max(1));
    let s = THUMB as f32 / w.max(h) as f32;
    let size = [
        ((w as f32 * s) as u32).max(1),
        ((h as f32 * s) as u32).max(1),
    ];
    let small = imageops::resize(
        image.pixels(),
        size[0],
        size[1],
        imageops::FilterType::Triangle,
    );
    let size = [size[0] as usize, size[1] as usize];
    masks
        .iter()
        .map(|m| cutout_image(&small, m, size))
        .collect()
}
