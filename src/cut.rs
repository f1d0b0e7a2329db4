//! `aicut cut`: one headless cut-out through the engine contract and the shared worker,
//! so scripts get the same retries, backoff and expiry handling as the editor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Dot, Engine, EngineError, Prompt};
use crate::imageio::{self, DecodeLimits, ExportFormat, ExportOptions};
use crate::worker::{self, Command, Event, WorkerPolicy};

/// What to cut and where to write it.
#[derive(Debug, Clone)]
pub struct CutRequest {
    pub input: PathBuf,
    pub output: PathBuf,
    pub green: Vec<Dot>,
    pub red: Vec<Dot>,
    /// Start a new session if the old one expires (costs a credit on the hosted service).
    pub reinitialize: bool,
    /// Trim and mask; the format follows the output's extension.
    pub options: ExportOptions,
}

/// What a finished cut-out looked like, for the CLI's one-line report.
#[derive(Debug, Clone)]
pub struct CutReport {
    pub width: u32,
    pub height: u32,
    /// The size written: smaller than the image when trimmed.
    pub out_width: u32,
    pub out_height: u32,
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
fn check_output_path(output: &Path) -> Result<ExportFormat, CutError> {
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
    ExportFormat::from_path(output).map_err(CutError::Usage)
}

/// Decodes the input, segments it with all dots and saves the cut-out atomically.
/// Blocking: call it from a plain thread (the CLI's main), not from async code.
pub fn run_cut(engine: Arc<dyn Engine>, req: &CutRequest) -> Result<CutReport, CutError> {
    if req.green.is_empty() {
        return Err(CutError::Usage(
            "at least one --green X,Y dot is needed to say what to keep".into(),
        ));
    }
    let format = check_output_path(&req.output)?;
    let started = std::time::Instant::now();
    let image = Arc::new(
        imageio::load_file(&req.input, &DecodeLimits::default()).map_err(EngineError::from)?,
    );
    // Phase timings for `AICUT_LOG=info`, as the README's measurements use them.
    tracing::info!("decoded {} in {:?}", image.name, started.elapsed());
    let started = std::time::Instant::now();
    let prompt = Prompt {
        green: req.green.clone(),
        red: req.red.clone(),
    };
    prompt
        .validate(image.width(), image.height())
        .map_err(|e| CutError::Usage(format!("{}: {e}", image.name)))?;

    let policy = WorkerPolicy {
        auto_reinitialize: req.reinitialize,
        ..WorkerPolicy::default()
    };
    let worker = worker::spawn(engine, policy, Arc::new(|| {}));
    worker.send(Command::Open(image.clone()));
    worker.send(Command::Prompt(prompt));
    let mask = loop {
        match worker.wait_event(Duration::from_secs(900)) {
            Some(Event::Mask { mask, .. }) => break mask,
            Some(Event::Failed { error, .. }) => return Err(error.into()),
            Some(Event::SessionExpired { .. }) => {
                return Err(CutError::Usage(
                    "the session expired; run again with --reinitialize to start a new one (costs a credit)".into(),
                ));
            }
            Some(Event::Retrying { after, error, .. }) => {
                tracing::warn!("{error}; retrying in {:.1} s", after.as_secs_f64());
            }
            Some(_) => {}
            None => return Err(EngineError::Transport("no answer from the engine".into()).into()),
        }
    };
    worker.send(Command::Close);
    tracing::info!("segmented in {:?}", started.elapsed());
    let started = std::time::Instant::now();
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
    let (out_width, out_height) = match req.options.trim {
        Some(margin) => imageio::trim_bounds(&mask, margin).map_or((0, 0), |b| (b.2, b.3)),
        None => mask.dimensions(),
    };
    let bytes =
        imageio::export_cutout(&image, &mask, format, req.options).map_err(CutError::Usage)?;
    drop(image);
    imageio::save_atomic(&req.output, &bytes, &[&req.input])?;
    tracing::info!("exported and saved in {:?}", started.elapsed());
    Ok(CutReport {
        width: mask.width(),
        height: mask.height(),
        out_width,
        out_height,
        selected_fraction: selected as f64 / (mask.width() as f64 * mask.height() as f64),
    })
}
