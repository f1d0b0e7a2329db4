//! SAM-family models (MobileSAM, SAM ViT-B/L/H) through candle, for learned quality.
//!
//! The split matches the contract: `prepare` runs the image encoder once (the expensive
//! part: about a second for MobileSAM on a laptop CPU, much more for ViT-H); `segment`
//! runs only the prompt encoder and mask decoder on the cached embeddings. The model file
//! is a `.safetensors` or PyTorch `.pt`/`.pth`/`.bin` checkpoint with the original SAM
//! tensor names; the variant is recognised from its tensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::segment_anything::sam::{self, Sam};
use image::RgbImage;

use super::local::{LocalEngine, Model, Prepared};
use super::store::StoreConfig;
use super::{AlphaMask, EngineError, Prompt};

/// Which SAM architecture a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamVariant {
    /// MobileSAM: the TinyViT encoder, small and fast on a CPU.
    Mobile,
    /// The original ViT encoders.
    VitB,
    VitL,
    VitH,
}

impl SamVariant {
    fn label(self) -> &'static str {
        match self {
            SamVariant::Mobile => "MobileSAM",
            SamVariant::VitB => "SAM ViT-B",
            SamVariant::VitL => "SAM ViT-L",
            SamVariant::VitH => "SAM ViT-H",
        }
    }
}

/// A loaded SAM model, shared by all sessions of the engine.
pub struct SamModel {
    sam: Sam,
    variant: SamVariant,
    device: Device,
}

fn engine_err(what: &str) -> impl Fn(candle_core::Error) -> EngineError + '_ {
    move |e| EngineError::Engine(format!("{what}: {e}"))
}

/// Recognises the architecture from tensor names and the patch embedding's width.
fn detect_variant(tensors: &HashMap<String, Tensor>) -> Result<SamVariant, String> {
    if tensors
        .keys()
        .any(|k| k.starts_with("image_encoder.layers."))
    {
        return Ok(SamVariant::Mobile);
    }
    let embed = tensors
        .get("image_encoder.patch_embed.proj.weight")
        .map(|t| t.dims().first().copied().unwrap_or(0))
        .ok_or("it has no SAM image encoder (image_encoder.* tensors)")?;
    match embed {
        768 => Ok(SamVariant::VitB),
        1024 => Ok(SamVariant::VitL),
        1280 => Ok(SamVariant::VitH),
        other => Err(format!("its image encoder has an unknown width {other}")),
    }
}

impl SamModel {
    /// Loads a checkpoint. Slow for large models: call it off the UI thread.
    pub fn load(path: &Path) -> Result<SamModel, EngineError> {
        let name = path.display().to_string();
        let fail =
            |why: String| EngineError::Engine(format!("cannot load the SAM model {name}: {why}"));
        let device = Device::Cpu;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let tensors: HashMap<String, Tensor> = match ext.as_str() {
            "safetensors" => {
                let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
                candle_core::safetensors::load_buffer(&bytes, &device)
                    .map_err(|e| fail(e.to_string()))?
            }
            "pt" | "pth" | "bin" => candle_core::pickle::read_all(path)
                .map_err(|e| fail(e.to_string()))?
                .into_iter()
                .collect(),
            _ => return Err(fail("expected a .safetensors, .pt or .pth file".into())),
        };
        let variant = detect_variant(&tensors).map_err(|e| fail(e.to_string()))?;
        let tensors = tensors
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_dtype(DType::F32)?)))
            .collect::<candle_core::Result<HashMap<_, _>>>()
            .map_err(|e| fail(e.to_string()))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let sam = match variant {
            SamVariant::Mobile => Sam::new_tiny(vb),
            SamVariant::VitB => Sam::new(768, 12, 12, &[2, 5, 8, 11], vb),
            SamVariant::VitL => Sam::new(1024, 24, 16, &[5, 11, 17, 23], vb),
            SamVariant::VitH => Sam::new(1280, 32, 16, &[7, 15, 23, 31], vb),
        }
        .map_err(|e| fail(format!("it does not match {}: {e}", variant.label())))?;
        Ok(SamModel {
            sam,
            variant,
            device,
        })
    }

    pub fn variant(&self) -> SamVariant {
        self.variant
    }
}

/// The engine over a model file, with its own session store.
pub fn engine(path: &Path, config: StoreConfig) -> Result<LocalEngine, EngineError> {
    let model = Arc::new(SamModel::load(path)?);
    Ok(LocalEngine::new(Arc::new(SharedSam(model)), config))
}

/// The environment variable that names a default model file (read by the command line).
pub const MODEL_ENV: &str = "AICUT_SAM_MODEL";

struct SamPrepared {
    embeddings: Tensor,
    /// The image's size as the encoder saw it (long side 1024).
    resized: (usize, usize),
    /// The image's full size, the mask's size.
    full: (u32, u32),
    model: Arc<SamModel>,
}

/// `Model` for a shared SAM: sessions keep a handle to the model for their decoder runs.
pub struct SharedSam(pub Arc<SamModel>);

impl Model for SharedSam {
    fn name(&self) -> String {
        self.0.variant.label().into()
    }

    fn prepare(&self, image: &RgbImage) -> Result<Box<dyn Prepared>, EngineError> {
        let (w, h) = image.dimensions();
        let scale = sam::IMAGE_SIZE as f64 / w.max(h) as f64;
        let rw = ((w as f64 * scale).round() as u32).clamp(1, sam::IMAGE_SIZE as u32);
        let rh = ((h as f64 * scale).round() as u32).clamp(1, sam::IMAGE_SIZE as u32);
        let small = image::imageops::resize(image, rw, rh, image::imageops::FilterType::Triangle);
        let m = &self.0;
        let pixels = Tensor::from_vec(small.into_raw(), (rh as usize, rw as usize, 3), &m.device)
            .and_then(|t| t.permute((2, 0, 1)))
            .map_err(engine_err("preparing the image"))?;
        let embeddings = m
            .sam
            .embeddings(&pixels)
            .map_err(engine_err("running the image encoder"))?;
        Ok(Box::new(SamPrepared {
            embeddings,
            resized: (rw as usize, rh as usize),
            full: (w, h),
            model: m.clone(),
        }))
    }
}

impl Prepared for SamPrepared {
    fn segment(&self, prompt: &Prompt) -> Result<AlphaMask, EngineError> {
        let (fw, fh) = self.full;
        if prompt.green.is_empty() {
            return Ok(AlphaMask::new(fw, fh));
        }
        let (rw, rh) = self.resized;
        let points: Vec<(f64, f64, bool)> = prompt
            .green
            .iter()
            .map(|d| (d, true))
            .chain(prompt.red.iter().map(|d| (d, false)))
            .map(|(d, positive)| ((d.x + 0.5) / fw as f64, (d.y + 0.5) / fh as f64, positive))
            .collect();
        // One dot is ambiguous (part or whole?): ask for three masks and keep the most
        // confident, as SAM's authors recommend.
        let multimask = points.len() == 1;
        let sam = &self.model.sam;
        let (masks, iou) = sam
            .forward_for_embeddings(&self.embeddings, rh, rw, &points, multimask)
            .map_err(engine_err("running the mask decoder"))?;
        let best = if multimask {
            let scores: Vec<f32> = iou
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .map_err(engine_err("reading scores"))?;
            scores
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i)
        } else {
            0
        };
        let logits = masks
            .i((0, best))
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(engine_err("reading the mask"))?;
        Ok(upsample_logits(&logits, (rw, rh), (fw, fh)))
    }

    fn heap_bytes(&self) -> usize {
        self.embeddings.elem_count() * 4 + 64
    }
}

/// Low-resolution mask logits (covering the padded 1024 square) to a soft full-size mask:
/// bilinear interpolation, as SAM's own post-processing does, then a steep sigmoid so
/// the edge is anti-aliased rather than blurred.
fn upsample_logits(logits: &[Vec<f32>], resized: (usize, usize), full: (u32, u32)) -> AlphaMask {
    let lh = logits.len();
    let lw = logits.first().map_or(0, |r| r.len());
    let (fw, fh) = full;
    if lw == 0 || lh == 0 {
        return AlphaMask::new(fw, fh);
    }
    let cell = sam::IMAGE_SIZE as f64 / lw as f64; // encoder pixels per logit
    let sx = resized.0 as f64 / fw as f64;
    let sy = resized.1 as f64 / fh as f64;
    let gain = (2.0 * fw.max(fh) as f64 / resized.0.max(resized.1) as f64).max(2.0);
    AlphaMask::from_fn(fw, fh, |x, y| {
        let u = (((x as f64 + 0.5) * sx) / cell - 0.5).clamp(0.0, (lw - 1) as f64);
        let v = (((y as f64 + 0.5) * sy) / cell - 0.5).clamp(0.0, (lh - 1) as f64);
        let (x0, y0) = (u.floor() as usize, v.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(lw - 1), (y0 + 1).min(lh - 1));
        let (fx, fy) = (u - x0 as f64, v - y0 as f64);
        let l = |yy: usize, xx: usize| logits[yy][xx] as f64;
        let top = l(y0, x0) * (1.0 - fx) + l(y0, x1) * fx;
        let bottom = l(y1, x0) * (1.0 - fx) + l(y1, x1) * fx;
        let logit = top * (1.0 - fy) + bottom * fy;
        let a = 1.0 / (1.0 + (-logit * gain).exp());
        image::Luma([(a * 255.0).round() as u8])
    })
}

/// A SAM engine that loads its model file on first use, inside the worker, so choosing
/// it in the editor never blocks the UI. A failed load is reported as an engine error
/// and tried again on the next initialize (the user may fix the file meanwhile).
pub struct LazySamEngine {
    path: PathBuf,
    config: StoreConfig,
    loaded: tokio::sync::OnceCell<LocalEngine>,
}

impl LazySamEngine {
    pub fn new(path: PathBuf, config: StoreConfig) -> Self {
        LazySamEngine {
            path,
            config,
            loaded: tokio::sync::OnceCell::new(),
        }
    }
}

#[async_trait::async_trait]
impl super::Engine for LazySamEngine {
    fn name(&self) -> String {
        match self.loaded.get() {
            Some(e) => e.name(),
            None => format!("SAM ({})", crate::imageio::display_name(&self.path)),
        }
    }

    async fn initialize(
        &self,
        image: Arc<crate::imageio::LoadedImage>,
    ) -> Result<super::SessionId, EngineError> {
        let engine = self
            .loaded
            .get_or_try_init(|| async {
                let (path, config) = (self.path.clone(), self.config);
                tokio::task::spawn_blocking(move || engine(&path, config))
                    .await
                    .map_err(|e| EngineError::Engine(e.to_string()))?
            })
            .await?;
        engine.initialize(image).await
    }

    async fn segment(
        &self,
        session: &super::SessionId,
        prompt: &Prompt,
        request_number: u64,
    ) -> Result<AlphaMask, EngineError> {
        match self.loaded.get() {
            Some(e) => e.segment(session, prompt, request_number).await,
            None => Err(EngineError::SessionNotFound(
                "the model is not loaded".into(),
            )),
        }
    }

    async fn close(&self, session: &super::SessionId) {
        if let Some(e) = self.loaded.get() {
            e.close(session).await;
        }
    }
}
