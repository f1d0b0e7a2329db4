//! Candidates: where the engine sees several answers to the dots (SAM's multimask, the
//! built-in engine's scales), Tab switches among them without another click. The first
//! Tab asks the worker for them ([`Command::Candidates`]); each switch shows the chosen
//! one at once and tells the engine ([`Command::Choose`]) so that later dots refine it.

use std::sync::Arc;

use egui::{Align2, Color32, FontId, Painter, Rect, vec2};

use crate::engine::{AlphaMask, EngineError, Prompt};
use crate::worker::Command;

use super::App;

/// The engine's answers to one prompt and the one shown.
pub(crate) struct CandidateList {
    prompt: Prompt,
    masks: Vec<Arc<AlphaMask>>,
    index: usize,
}

#[derive(Default)]
pub(crate) struct Candidates {
    /// The prompt whose candidates were asked for, and whether to move on to the next one
    /// when they arrive (Tab was pressed).
    asked: Option<Prompt>,
    list: Option<CandidateList>,
}

impl Candidates {
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
                c.list = Some(CandidateList {
                    prompt,
                    masks,
                    index: 0,
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
}
