//! `aicut cut`: one headless cut-out through the engine contract.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::{Dot, Engine, EngineError, Prompt};
use crate::imageio::{self, DecodeLimits};

/// What to cut and where to write it.
#[derive(Debug, Clone)]
pub struct CutRequest {
    pub input: PathBuf,
    pub output: PathBuf,
    pub green: Vec<Dot>,
    pub red: Vec<Dot>,
}

/// What a finished cut-out looked like, for the CLI's one-line report.
#[derive(Debug, Clone)]
pub struct CutReport {
    pub width: u32,
    pub height: u32,
    /// Share of pixels at least half selected.
    pub selected_fraction: f64,
}

/// Failures of `aicut cut`, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Save(#[from] imageio::SaveError),
    #[error("{0}")]
    Usage(String),
}

/// Checks that the output can be written before any expensive work starts.
fn check_output_path(output: &Path) -> Result<(), CutError> {
    if output.is_dir() {
        return Err(CutError::Usage(format!(
            "the output {} is a folder; give a file name such as {}/cutout.png",
            output.display(),
            output.display()
        )));
    }
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(CutError::Usage(format!(
            "cannot write {}: the folder {} does not exist",
            output.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Decodes the input, segments it with all dots in one call and saves the cut-out atomically.
pub async fn run_cut(engine: Arc<dyn Engine>, req: &CutRequest) -> Result<CutReport, CutError> {
    if req.green.is_empty() {
        return Err(CutError::Usage(
            "at least one --green X,Y dot is needed to say what to keep".into(),
        ));
    }
    check_output_path(&req.output)?;
    let input = req.input.clone();
    let image =
        tokio::task::spawn_blocking(move || imageio::load_file(&input, &DecodeLimits::default()))
            .await
            .map_err(|e| EngineError::Engine(e.to_string()))?
            .map_err(EngineError::from)?;
    let image = Arc::new(image);
    let prompt = Prompt {
        green: req.green.clone(),
        red: req.red.clone(),
    };
    prompt
        .validate(image.width(), image.height())
        .map_err(|e| CutError::Usage(format!("{}: {e}", image.name)))?;
    let session = engine.initialize(image.clone()).await?;
    let mask = engine.segment(&session, &prompt, 1).await;
    engine.close(&session).await;
    let mask = mask?;
    if mask.dimensions() != (image.width(), image.height()) {
        return Err(EngineError::Protocol(format!(
            "the mask is {}x{} but the image is {}x{}",
            mask.width(),
            mask.height(),
            image.width(),
            image.height()
        ))
        .into());
    }
    let selected = mask.pixels().filter(|p| p.0[0] >= 128).count();
    let report = CutReport {
        width: image.width(),
        height: image.height(),
        selected_fraction: selected as f64 / (mask.width() as f64 * mask.height() as f64),
    };
    let output = req.output.clone();
    let source = req.input.clone();
    tokio::task::spawn_blocking(move || -> Result<(), CutError> {
        let cutout = imageio::compose_cutout(image.pixels(), &mask);
        let png = imageio::encode_png(&cutout).map_err(EngineError::Engine)?;
        imageio::save_atomic(&output, &png, &[&source])?;
        Ok(())
    })
    .await
    .map_err(|e| EngineError::Engine(e.to_string()))??;
    Ok(report)
}
