//! The built-in engine: classic click-seeded segmentation that needs no model weights and
//! no network, so it is the default on first launch.
//!
//! `prepare` does the per-image work once (working-resolution features, edge weights);
//! `segment` runs a cut on that and refines the boundary at full resolution.
//! The algorithm lives in [`classic`]; this file adapts it to the engine contract.

pub mod classic;

use std::sync::{Arc, Mutex};

use image::RgbImage;

use super::history::{Click, PromptHistory};
use super::local::{Abandoned, LocalEngine, Model, Prepared};
use super::store::StoreConfig;
use super::{AlphaMask, EngineError, Prompt};

/// Answered prompts kept per image: enough for a long editing session's undo.
const KEEP: usize = 32;

/// The built-in engine behind the contract, with its own session store.
pub fn engine(config: StoreConfig) -> LocalEngine {
    LocalEngine::new(Arc::new(BuiltinModel), config)
}

/// The classic segmenter as a [`Model`].
pub struct BuiltinModel;

impl Model for BuiltinModel {
    fn name(&self) -> String {
        "built-in".into()
    }

    /// Quick enough (a fraction of a second) not to look at `abandoned`.
    fn prepare(
        &self,
        image: &RgbImage,
        _abandoned: &Abandoned,
    ) -> Result<Box<dyn Prepared>, EngineError> {
        Ok(Box::new(BuiltinPrepared {
            image: classic::PreparedImage::prepare(image),
            history: Mutex::new(PromptHistory::new(KEEP)),
            offered: Mutex::new(None),
        }))
    }
}

/// One image: its precomputation and the chain of answers so far, each click a
/// correction of the answer before it.
struct BuiltinPrepared {
    image: classic::PreparedImage,
    /// Working-resolution labels per answered prompt.
    history: Mutex<PromptHistory<Vec<u8>>>,
    /// The candidates last offered, and for which prompt, so a choice needs no new cut.
    offered: Mutex<Option<(Prompt, Vec<Vec<u8>>)>>,
}

fn poisoned<T>(_: T) -> EngineError {
    EngineError::Engine("an earlier segmentation failed".into())
}

impl BuiltinPrepared {
    /// The working-resolution labels for `prompt`, built click by click on the history.
    fn labels(&self, prompt: &Prompt) -> Result<Arc<Vec<u8>>, EngineError> {
        let mut history = self.history.lock().map_err(poisoned)?;
        let answer = history.answer(prompt, |so_far, click: Click, previous| {
            let (green, red) = (to_points(&so_far.green), to_points(&so_far.red));
            let correction = previous.map(|labels| classic::Correction {
                previous: labels,
                at: [click.dot.x as f32, click.dot.y as f32],
                include: click.include,
            });
            Ok::<_, EngineError>(match correction {
                None => {
                    let mut candidates = self.image.first_click(&green, &red, false);
                    candidates.swap_remove(0)
                }
                Some(_) => self.image.labels(&green, &red, correction),
            })
        });
        answer.unwrap_or_else(|| Err(EngineError::BadRequest("a prompt needs a dot".into())))
    }
}

fn to_points(dots: &[super::Dot]) -> Vec<[f32; 2]> {
    dots.iter().map(|d| [d.x as f32, d.y as f32]).collect()
}

impl Prepared for BuiltinPrepared {
    fn segment(&self, prompt: &Prompt) -> Result<AlphaMask, EngineError> {
        let labels = self.labels(prompt)?;
        Ok(self.image.render(&labels))
    }

    /// A first click offers the cut of the whole picture, the object it is a part of
    /// (where one is found) and the cuts of the boxes around the click that hold a closed
    /// object; later prompts have one answer.
    fn candidates(&self, prompt: &Prompt) -> Result<Vec<AlphaMask>, EngineError> {
        if !(prompt.green.len() == 1 && prompt.red.is_empty()) {
            return Ok(vec![self.segment(prompt)?]);
        }
        let chosen = self.labels(prompt)?;
        let green = to_points(&prompt.green);
        let mut all = self.image.first_click(&green, &[], true);
        // The answer already given (perhaps a choice made before) comes first.
        all.retain(|c| c != chosen.as_ref());
        all.insert(0, chosen.as_ref().clone());
        let masks = all.iter().map(|l| self.image.render(l)).collect();
        *self.offered.lock().map_err(poisoned)? = Some((prompt.clone(), all));
        Ok(masks)
    }

    fn choose(&self, prompt: &Prompt, index: usize) -> Result<(), EngineError> {
        let offered = self.offered.lock().map_err(poisoned)?;
        let labels = match offered.as_ref() {
            Some((p, all)) if p == prompt && index < all.len() => all[index].clone(),
            _ if index == 0 => return Ok(()),
            _ => {
                return Err(EngineError::BadRequest(format!(
                    "no candidate {index} was offered for these dots"
                )));
            }
        };
        drop(offered);
        self.history
            .lock()
            .map_err(poisoned)?
            .replace(prompt, labels);
        Ok(())
    }

    fn heap_bytes(&self) -> usize {
        let history = self.history.lock().map_or(0, |h| {
            h.answers()
                .map(|(p, labels)| labels.capacity() + (p.green.len() + p.red.len()) * 16)
                .sum()
        });
        self.image.heap_bytes() + history
    }
}
