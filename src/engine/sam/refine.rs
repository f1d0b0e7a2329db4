//! One answered click of SAM's chain of refinements, as in the reference demo: the first
//! click asks for three masks and keeps the most confident; each later click runs with the
//! chosen mask's low-res logits as the mask prompt. The chain itself (which answered
//! prompt is the parent of a new one) is [`crate::engine::history::PromptHistory`].

use candle_core::{IndexOp, Tensor};

use super::model::Decoded;
use crate::engine::{Dot, EngineError};

/// Answered prompts kept per image: enough for a long editing session's undo.
pub const KEEP: usize = 32;

/// One answered prompt: every mask the decoder returned and which one is the answer.
#[derive(Clone)]
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

    /// The chosen mask's logits, the mask prompt of the next click.
    pub fn chosen(&self) -> Result<Tensor, EngineError> {
        self.low_res.i(self.best).map_err(read_err)
    }

    /// One mask's low-res logits as a flat row-major list.
    pub fn logits(&self, index: usize) -> Result<Vec<f32>, EngineError> {
        self.low_res
            .i(index)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(read_err)
    }

    /// Mask indices as offered to the user: the chosen one, then the rest by predicted IoU.
    pub fn ranked(&self) -> Vec<usize> {
        let mut rest: Vec<usize> = (0..self.iou.len()).filter(|&i| i != self.best).collect();
        rest.sort_by(|&a, &b| self.iou[b].total_cmp(&self.iou[a]));
        std::iter::once(self.best).chain(rest).collect()
    }

    /// The same answer with another of its masks chosen.
    pub fn with_best(&self, best: usize) -> Step {
        Step {
            best,
            ..self.clone()
        }
    }

    pub fn heap_bytes(&self, dots: usize) -> usize {
        self.low_res.elem_count() * 4 + dots * size_of::<Dot>()
    }
}

fn read_err(e: candle_core::Error) -> EngineError {
    EngineError::Engine(format!("reading the mask: {e}"))
}
