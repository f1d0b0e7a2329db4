//! Clicks as a chain of refinements, as in the reference demo: the first click asks for
//! three masks and keeps the most confident; each later click runs with the previous
//! step's low-res logits as the mask prompt.
//!
//! The contract sends every dot on each call, green and red in separate lists, so the
//! chain is rebuilt from what was already answered: the longest answered prompt whose
//! green and red lists both begin the new ones is the parent, and the dots after it are
//! added one at a time (greens first). Undo and repeats are answered from the history.

use std::collections::VecDeque;

use candle_core::{IndexOp, Tensor};

use super::model::Decoded;
use crate::engine::{Dot, EngineError, Prompt};

/// Answered prompts kept per image: enough for a long editing session's undo.
const KEEP: usize = 32;

/// One answered prompt.
pub struct Step {
    /// `(masks, 256, 256)` low-res logits.
    pub low_res: Tensor,
    pub iou: Vec<f32>,
    pub best: usize,
}

impl Step {
    /// Keeps the most confident mask when the decoder offered several.
    pub fn choose(decoded: Decoded) -> Step {
        let best = decoded
            .iou
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        Step {
            low_res: decoded.low_res,
            iou: decoded.iou,
            best,
        }
    }

    fn chosen(&self) -> candle_core::Result<Tensor> {
        self.low_res.i(self.best)
    }
}

/// The answered prompts of one image, most recent last.
#[derive(Default)]
pub struct History {
    answered: VecDeque<(Prompt, Step)>,
}

/// What a decoder run gets: the clicks so far (dot, include) and the parent's logits.
pub type Clicks = [(Dot, bool)];

impl History {
    /// The answer to `prompt`, running `decode` for each click not yet answered.
    pub fn answer(
        &mut self,
        prompt: &Prompt,
        mut decode: impl FnMut(&Clicks, Option<&Tensor>) -> Result<Step, EngineError>,
    ) -> Result<&Step, EngineError> {
        if prompt.green.is_empty() && prompt.red.is_empty() {
            return Err(EngineError::BadRequest(
                "a prompt needs at least one dot".into(),
            ));
        }
        if let Some(i) = self.answered.iter().position(|(p, _)| p == prompt) {
            let entry = self.answered.remove(i).expect("index from position");
            self.answered.push_back(entry);
            return Ok(&self.answered.back().expect("just pushed").1);
        }
        let parent = self
            .answered
            .iter()
            .filter(|(p, _)| prompt.green.starts_with(&p.green) && prompt.red.starts_with(&p.red))
            .max_by_key(|(p, _)| p.green.len() + p.red.len());
        let (mut partial, mut logits) = match parent {
            Some((p, step)) => (p.clone(), Some(step.chosen().map_err(read_err)?)),
            None => (Prompt::default(), None),
        };
        let missing_green = prompt.green[partial.green.len()..]
            .iter()
            .map(|d| (*d, true));
        let missing_red = prompt.red[partial.red.len()..].iter().map(|d| (*d, false));
        let missing: Vec<(Dot, bool)> = missing_green.chain(missing_red).collect();
        for (dot, include) in missing {
            if include {
                partial.green.push(dot);
            } else {
                partial.red.push(dot);
            }
            let clicks: Vec<(Dot, bool)> = (partial.green.iter().map(|d| (*d, true)))
                .chain(partial.red.iter().map(|d| (*d, false)))
                .collect();
            let step = decode(&clicks, logits.as_ref())?;
            logits = Some(step.chosen().map_err(read_err)?);
            self.remember(partial.clone(), step);
        }
        Ok(&self
            .answered
            .back()
            .expect("the prompt has at least one dot")
            .1)
    }

    fn remember(&mut self, prompt: Prompt, step: Step) {
        if self.answered.len() == KEEP {
            self.answered.pop_front();
        }
        self.answered.push_back((prompt, step));
    }

    pub fn heap_bytes(&self) -> usize {
        self.answered
            .iter()
            .map(|(p, s)| {
                s.low_res.elem_count() * 4 + (p.green.len() + p.red.len()) * size_of::<Dot>()
            })
            .sum()
    }
}

fn read_err(e: candle_core::Error) -> EngineError {
    EngineError::Engine(format!("reading the mask: {e}"))
}
