//! The document: the open image, the dots placed on it with their history, and the newest
//! mask the engine returned for them. Plain data and rules, no egui, so the rules (what an
//! edit changes, which result may replace the one shown) are tested without a window.

use std::sync::Arc;

use crate::engine::{AlphaMask, Prompt};
use crate::imageio::LoadedImage;

use super::dots::{DotHistory, PlacedDot};

/// One change to the dots, as the canvas, the keyboard and the toolbar ask for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DotEdit {
    Add(PlacedDot),
    /// Moves the dot at `index` to pixel `to`.
    Move {
        index: usize,
        to: [u32; 2],
    },
    Remove(usize),
    Clear,
    Undo,
    Redo,
}

/// The mask on screen and the prompt it answers.
#[derive(Debug, Clone)]
struct ShownMask {
    mask: Arc<AlphaMask>,
    prompt: Prompt,
}

/// The open image and everything the user made of it.
pub struct Document {
    /// Which open produced this document; overlay pictures built for another are dropped.
    generation: u64,
    image: Arc<LoadedImage>,
    dots: DotHistory,
    /// The request number of the newest mask accepted: anything numbered up to it is stale.
    shown_request: u64,
    shown: Option<ShownMask>,
    /// Counts the masks accepted (the worker's request numbers restart with a new engine,
    /// this count does not), so overlay pictures can say which mask they show.
    mask_serial: u64,
    /// Pictures of masks up to this serial are stale: all green dots were removed since.
    cleared_serial: u64,
}

impl Document {
    pub fn new(generation: u64, image: Arc<LoadedImage>) -> Self {
        Document {
            generation,
            image,
            dots: DotHistory::default(),
            shown_request: 0,
            shown: None,
            mask_serial: 0,
            cleared_serial: 0,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn image(&self) -> &Arc<LoadedImage> {
        &self.image
    }

    /// Width and height in pixels.
    pub fn size(&self) -> [u32; 2] {
        [self.image.width(), self.image.height()]
    }

    pub fn dots(&self) -> &[PlacedDot] {
        self.dots.dots()
    }

    pub fn can_undo(&self) -> bool {
        self.dots.can_undo()
    }

    pub fn can_redo(&self) -> bool {
        self.dots.can_redo()
    }

    /// Every dot, as the engine contract wants them.
    pub fn prompt(&self) -> Prompt {
        self.dots.prompt()
    }

    /// Applies an edit; returns whether the dots changed (then the engine needs the new
    /// prompt). With no green dot left nothing is selected, so the shown mask goes.
    pub fn edit(&mut self, edit: DotEdit) -> bool {
        let changed = match edit {
            DotEdit::Add(dot) => {
                self.dots.add(dot);
                true
            }
            DotEdit::Move { index, to } => self.dots.move_dot(index, to),
            DotEdit::Remove(index) => self.dots.remove(index),
            DotEdit::Clear => self.dots.clear(),
            DotEdit::Undo => self.dots.undo(),
            DotEdit::Redo => self.dots.redo(),
        };
        if changed && !self.has_green_dot() {
            self.shown = None;
            self.cleared_serial = self.mask_serial;
        }
        changed
    }

    /// Adds a stroke's dots as one undoable step; returns whether the dots changed.
    pub fn add_stroke(&mut self, dots: &[PlacedDot]) -> bool {
        self.dots.add_all(dots)
    }

    /// The dots with their history, to keep while another image of a batch is shown.
    pub fn history(&self) -> &DotHistory {
        &self.dots
    }

    /// Puts back the dots (and their history) this image had; the engine needs the prompt.
    pub fn restore(&mut self, history: DotHistory) {
        self.dots = history;
    }

    /// Shows another of the engine's answers to the prompt already shown (a candidate):
    /// same request, a new picture. Refused when nothing is shown or the size differs.
    pub fn replace_shown(&mut self, mask: Arc<AlphaMask>) -> bool {
        let fits = mask.dimensions() == (self.image.width(), self.image.height());
        match self.shown.as_mut() {
            Some(s) if fits => {
                s.mask = mask;
                self.mask_serial += 1;
                true
            }
            _ => false,
        }
    }

    fn has_green_dot(&self) -> bool {
        !self.dots.prompt().green.is_empty()
    }

    /// The mask on screen, if any.
    pub fn mask(&self) -> Option<&Arc<AlphaMask>> {
        self.shown.as_ref().map(|s| &s.mask)
    }

    /// The mask on screen with its request number and the prompt it answers.
    pub fn shown_mask(&self) -> Option<(u64, &Arc<AlphaMask>, &Prompt)> {
        self.shown
            .as_ref()
            .map(|s| (self.shown_request, &s.mask, &s.prompt))
    }

    pub fn shown_request(&self) -> u64 {
        self.shown_request
    }

    pub fn mask_serial(&self) -> u64 {
        self.mask_serial
    }

    /// Shows a mask from the engine if it is newer than the one shown (latest wins: the
    /// worker drops stale results too, this makes sure nothing older ever appears), fits
    /// the image, and answers dots that still select something. Returns whether it did.
    pub fn accept_mask(
        &mut self,
        request_number: u64,
        mask: Arc<AlphaMask>,
        prompt: Prompt,
    ) -> bool {
        let fits = mask.dimensions() == (self.image.width(), self.image.height());
        if request_number <= self.shown_request || !fits || !self.has_green_dot() {
            return false;
        }
        self.shown_request = request_number;
        self.mask_serial += 1;
        self.shown = Some(ShownMask { mask, prompt });
        true
    }

    /// A new worker numbers its requests from 1 again; the shown mask stays until the new
    /// worker's first result replaces it.
    pub fn restart_numbering(&mut self) {
        self.shown_request = 0;
    }

    /// Whether an overlay picture of the mask numbered `serial` (see `mask_serial`) may be
    /// shown: it is not newer than the shown mask, nor older than the last clearing.
    pub fn shows_serial(&self, serial: u64) -> bool {
        self.shown.is_some() && serial > self.cleared_serial && serial <= self.mask_serial
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::dots::DotKind;

    fn document(w: u32, h: u32) -> Document {
        let pixels = image::RgbaImage::new(w, h);
        Document::new(1, Arc::new(LoadedImage::from_pixels("test", pixels)))
    }

    fn green(x: u32, y: u32) -> PlacedDot {
        PlacedDot {
            kind: DotKind::Green,
            x,
            y,
        }
    }

    fn red(x: u32, y: u32) -> PlacedDot {
        PlacedDot {
            kind: DotKind::Red,
            x,
            y,
        }
    }

    fn mask(w: u32, h: u32) -> Arc<AlphaMask> {
        Arc::new(AlphaMask::new(w, h))
    }

    #[test]
    fn edits_add_move_and_remove_dots_and_undo_redo_walks_them_back_and_forth() {
        let mut d = document(20, 10);
        assert!(d.edit(DotEdit::Add(green(1, 1))));
        assert!(d.edit(DotEdit::Add(red(5, 5))));
        assert!(d.edit(DotEdit::Move {
            index: 0,
            to: [3, 4]
        }));
        assert!(d.edit(DotEdit::Remove(1)));
        assert_eq!(d.dots(), &[green(3, 4)]);
        assert!(d.edit(DotEdit::Undo));
        assert_eq!(d.dots(), &[green(3, 4), red(5, 5)]);
        assert!(d.edit(DotEdit::Undo));
        assert_eq!(d.dots(), &[green(1, 1), red(5, 5)]);
        assert!(d.edit(DotEdit::Redo));
        assert_eq!(d.dots(), &[green(3, 4), red(5, 5)]);
        assert!(d.can_undo() && d.can_redo());
        let p = d.prompt();
        assert_eq!((p.green.len(), p.red.len()), (1, 1));
    }

    #[test]
    fn edits_that_change_nothing_say_so() {
        let mut d = document(20, 10);
        assert!(!d.edit(DotEdit::Undo));
        assert!(!d.edit(DotEdit::Redo));
        assert!(!d.edit(DotEdit::Clear));
        assert!(!d.edit(DotEdit::Remove(0)));
        d.edit(DotEdit::Add(green(1, 1)));
        assert!(!d.edit(DotEdit::Move {
            index: 0,
            to: [1, 1]
        }));
        assert!(!d.edit(DotEdit::Move {
            index: 7,
            to: [2, 2]
        }));
    }

    #[test]
    fn only_a_result_newer_than_the_shown_one_is_accepted() {
        let mut d = document(20, 10);
        d.edit(DotEdit::Add(green(1, 1)));
        assert!(d.accept_mask(2, mask(20, 10), d.prompt()));
        assert!(!d.accept_mask(1, mask(20, 10), d.prompt()), "older");
        assert!(!d.accept_mask(2, mask(20, 10), d.prompt()), "the same");
        assert_eq!(d.shown_mask().map(|(n, _, _)| n), Some(2));
        assert!(d.accept_mask(3, mask(20, 10), d.prompt()));
        assert_eq!(d.shown_request(), 3);
        assert_eq!(d.mask_serial(), 2);
    }

    #[test]
    fn a_result_of_another_size_is_refused() {
        let mut d = document(20, 10);
        d.edit(DotEdit::Add(green(1, 1)));
        assert!(!d.accept_mask(1, mask(10, 20), d.prompt()));
        assert!(d.mask().is_none());
    }

    #[test]
    fn removing_every_green_dot_drops_the_mask_and_refuses_late_results() {
        let mut d = document(20, 10);
        d.edit(DotEdit::Add(green(1, 1)));
        d.edit(DotEdit::Add(red(2, 2)));
        assert!(d.accept_mask(1, mask(20, 10), d.prompt()));
        assert!(d.shows_serial(1));
        assert!(d.edit(DotEdit::Remove(0)));
        assert!(d.mask().is_none(), "red dots alone select nothing");
        assert!(!d.shows_serial(1), "pictures of the old mask are stale");
        assert!(
            !d.accept_mask(2, mask(20, 10), d.prompt()),
            "a late result for the removed dots is not shown"
        );
        // Undo brings the green dot back; the next result shows again.
        assert!(d.edit(DotEdit::Undo));
        assert!(d.accept_mask(3, mask(20, 10), d.prompt()));
        assert!(d.shows_serial(2));
        assert!(!d.shows_serial(1));
    }

    #[test]
    fn after_restart_numbering_the_new_workers_first_result_is_accepted() {
        let mut d = document(20, 10);
        d.edit(DotEdit::Add(green(1, 1)));
        assert!(d.accept_mask(5, mask(20, 10), d.prompt()));
        d.restart_numbering();
        assert!(d.mask().is_some(), "the old mask stays until replaced");
        assert!(d.accept_mask(1, mask(20, 10), d.prompt()));
        assert_eq!(d.mask_serial(), 2, "serials keep counting up");
    }
}
