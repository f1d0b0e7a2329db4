//! The built-in engine: classic click-seeded segmentation that needs no model weights and
//! no network, so it is the default on first launch.
//!
//! `prepare` does the per-image work once (working-resolution features, edge weights);
//! `segment` runs a cut on that and refines the boundary at full resolution.
//! The algorithm lives in [`classic`]; this file adapts it to the engine contract.

pub mod classic;

use std::sync::Arc;

use image::RgbImage;

use super::local::{LocalEngine, Model, Prepared};
use super::store::StoreConfig;
use super::{AlphaMask, EngineError, Prompt};

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

    fn prepare(&self, image: &RgbImage) -> Result<Box<dyn Prepared>, EngineError> {
        Ok(Box::new(BuiltinPrepared(classic::PreparedImage::prepare(
            image,
        ))))
    }
}

struct BuiltinPrepared(classic::PreparedImage);

fn to_points(dots: &[super::Dot]) -> Vec<[f32; 2]> {
    dots.iter().map(|d| [d.x as f32, d.y as f32]).collect()
}

impl Prepared for BuiltinPrepared {
    fn segment(&self, prompt: &Prompt) -> Result<AlphaMask, EngineError> {
        Ok(self
            .0
            .segment(&to_points(&prompt.green), &to_points(&prompt.red)))
    }

    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
}
