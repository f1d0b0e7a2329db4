//! SAM-family models (MobileSAM, SAM ViT-B/L/H) through candle, for learned quality.
//!
//! The split matches the contract: `prepare` runs the image encoder once (the expensive
//! part), `segment` runs only the prompt encoder and mask decoder on the kept embeddings.
//! Each step computes what the reference predictor computes (`tests/sam_parity.rs` proves
//! it against PyTorch): Pillow's resize, clicks mapped into the 1024 frame, the network, the
//! two-step bilinear upscale. Refinement follows the reference demo: the first click takes
//! the most confident of three masks, each later click feeds the previous low-res logits
//! back as the mask prompt.
//!
//! - `checkpoint`: reading published checkpoint files, recognising the architecture.
//! - `model`: the network.
//! - `preprocess` / `postprocess`: into and out of the encoder's 1024 frame.
//! - `refine`: one answered click of the chain (the chain is `engine::history`).
//! - `synthetic`: reproducible weights and scenes shared with the reference script.

pub mod checkpoint;
pub mod model;
pub mod postprocess;
pub mod preprocess;
mod refine;
pub mod synthetic;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;

use super::embedding_cache::{self, CacheKey, EmbeddingCache};
use super::history::PromptHistory;
use super::local::{Abandoned, LocalEngine, Model, Prepared};
use super::store::StoreConfig;
use super::{AlphaMask, Dot, EngineError, Prompt};
pub use model::EncoderConfig;
use model::Sam;
use refine::Step;

/// The environment variable that names a default model file (read by the command line).
pub const MODEL_ENV: &str = "AICUT_SAM_MODEL";

fn engine_err(what: &str) -> impl Fn(candle_core::Error) -> EngineError + '_ {
    move |e| EngineError::Engine(format!("{what}: {e}"))
}

/// A loaded SAM model, shared by all sessions of the engine.
pub struct SamModel {
    sam: Sam,
    encoder: EncoderConfig,
    /// Encoder outputs kept on disk, with the model file's digest for their keys.
    cache: Option<(EmbeddingCache, String)>,
    /// The running encode's fraction done, as f32 bits; `IDLE` when none runs.
    progress: AtomicU32,
}

const IDLE: u32 = u32::MAX;
/// The encoder's stop message when the caller gave up (never shown: it becomes `Cancelled`).
const GAVE_UP: &str = "abandoned";

impl SamModel {
    /// Loads a checkpoint. Slow for large models: call it off the UI thread.
    pub fn load(path: &Path) -> Result<SamModel, EngineError> {
        keep_freed_memory();
        let name = path.display().to_string();
        let fail =
            |why: String| EngineError::Engine(format!("cannot load the SAM model {name}: {why}"));
        let tensors = checkpoint::read_tensors(path).map_err(fail)?;
        let encoder = checkpoint::detect_encoder(&tensors).map_err(fail)?;
        let vb = VarBuilder::from_tensors(tensors, candle_core::DType::F32, &Device::Cpu);
        Self::build(encoder, vb).map_err(|e| fail(e.to_string()))
    }

    /// A model on the given weights (tests build one on synthetic weights).
    pub fn build(encoder: EncoderConfig, vb: VarBuilder) -> Result<SamModel, EngineError> {
        let sam = Sam::new(&encoder, vb).map_err(|e| {
            EngineError::Engine(format!(
                "it does not match {}: {e}",
                checkpoint::label(&encoder)
            ))
        })?;
        Ok(SamModel {
            sam,
            encoder,
            cache: None,
            progress: AtomicU32::new(IDLE),
        })
    }

    /// Keeps encoder outputs in `cache`, keyed by the digest of the model file at `path`
    /// (hashed once, then memoised by the cache). A cache that fails is logged and skipped.
    pub fn with_cache(mut self, cache: EmbeddingCache, path: &Path) -> SamModel {
        match cache.model_digest(path) {
            Ok(digest) => self.cache = Some((cache, cache_model_id(&digest))),
            Err(e) => tracing::warn!("no embedding cache for {}: {e}", path.display()),
        }
        self
    }

    pub fn encoder(&self) -> &EncoderConfig {
        &self.encoder
    }

    pub fn label(&self) -> String {
        checkpoint::label(&self.encoder)
    }

    /// How far the image encoder has got, while it runs.
    pub fn encoding_progress(&self) -> Option<f32> {
        let bits = self.progress.load(Ordering::Relaxed);
        (bits != IDLE).then(|| f32::from_bits(bits))
    }

    /// Runs the image encoder on a photo, or reads its output from the cache.
    pub fn prepare_image(self: &Arc<Self>, image: &RgbImage) -> Result<SamImage, EngineError> {
        self.prepare_image_unless(image, &Abandoned::default())
    }

    /// [`Self::prepare_image`], stopping between the encoder's stages once `abandoned` is
    /// set ([`EngineError::Cancelled`]).
    pub fn prepare_image_unless(
        self: &Arc<Self>,
        image: &RgbImage,
        abandoned: &Abandoned,
    ) -> Result<SamImage, EngineError> {
        let full = image.dimensions();
        let encoder_size = preprocess::encoder_size(full.0, full.1);
        let key = self
            .cache
            .as_ref()
            .map(|(cache, digest)| (cache, CacheKey::new(digest, image)));
        let cached = key.as_ref().and_then(|(cache, key)| cache.get(key));
        let embeddings =
            match cached.and_then(|c| Tensor::from_vec(c.data, c.dims, &Device::Cpu).ok()) {
                Some(t) => t,
                None => {
                    let small = preprocess::resize_for_encoder(image);
                    let report = |f: f32| {
                        self.progress.store(f.to_bits(), Ordering::Relaxed);
                        match abandoned.is_set() {
                            true => Err(candle_core::Error::Msg(GAVE_UP.into())),
                            false => Ok(()),
                        }
                    };
                    report(0.0).map_err(|_| EngineError::Cancelled)?;
                    let t = self.sam.embed(
                        small.as_raw(),
                        encoder_size.0 as usize,
                        encoder_size.1 as usize,
                        &report,
                    );
                    self.progress.store(IDLE, Ordering::Relaxed);
                    let t = t.map_err(|e| match abandoned.is_set() {
                        true => EngineError::Cancelled,
                        false => engine_err("running the image encoder")(e),
                    })?;
                    if let Some((cache, key)) = &key {
                        store(cache, key, &t);
                    }
                    t
                }
            };
        let decoder = self
            .sam
            .prepare_decoder(&embeddings)
            .map_err(engine_err("preparing the mask decoder"))?;
        Ok(SamImage {
            decoder,
            embeddings,
            encoder_size,
            full,
            model: self.clone(),
            history: Mutex::new(PromptHistory::new(refine::KEEP)),
            offered: Mutex::new(None),
        })
    }
}

/// Gives candle its thread count in `RAYON_NUM_THREADS` (rayon's own default, so the pool
/// is unchanged) where the user has not set it.
///
/// Without it candle works the count out again on every matrix product through
/// `num_cpus::get_physical`, which opens and parses `/proc/cpuinfo`: about 90 reads per
/// mask decoder run, some 5-10% of a click's time (`strace`, `perf`).
///
/// # Safety
/// Changes the process environment: call it before any other thread starts (first thing
/// in `main`).
pub unsafe fn set_thread_count_for_candle() {
    const VAR: &str = "RAYON_NUM_THREADS";
    if std::env::var_os(VAR).is_none() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: the caller guarantees that no other thread runs yet.
        unsafe { std::env::set_var(VAR, threads.to_string()) };
    }
}

/// Keeps memory the allocator gets back for reuse instead of returning it to the system.
///
/// The encoder allocates and frees tensors of tens of megabytes a layer. glibc serves those
/// with fresh `mmap`s and unmaps them on free (and trims the heap's top), so every layer
/// faulted in new zeroed pages: `perf` put the kernel's page clearing at 20-25% of
/// MobileSAM's encoder time (13 s of system time in one `aicut bench` run, 1.3 s with
/// this). The process's resident size stays at its high-water mark instead, which the
/// encoder reaches anyway. Only glibc has these knobs; elsewhere this does nothing.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only sets allocator parameters; it is thread-safe in glibc.
        unsafe {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

/// The model part of an embedding's cache key: the file's digest and the version of the
/// input pipeline (a change to `preprocess` must change it, or old entries would be served).
pub fn cache_model_id(model_digest: &str) -> String {
    format!("{model_digest}+pillow-bilinear-v1")
}

/// Writes an embedding to the cache; a failure (full disk, read-only folder) only logs.
fn store(cache: &EmbeddingCache, key: &CacheKey, embeddings: &Tensor) {
    let data = embeddings.flatten_all().and_then(|t| t.to_vec1::<f32>());
    match data.map(|d| cache.put(key, embeddings.dims(), &d)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("embedding not cached: {e}"),
        Err(e) => tracing::warn!("embedding not cached: {e}"),
    }
}

/// The engine over a model file, with its own session store and the user's embedding
/// cache (`$XDG_CACHE_HOME/aicut/embeddings` on Linux).
pub fn engine(path: &Path, config: StoreConfig) -> Result<LocalEngine, EngineError> {
    let cache = EmbeddingCache::default_dir()
        .map(|dir| EmbeddingCache::open(dir, embedding_cache::DEFAULT_CAP_BYTES));
    let cache = match cache {
        Some(Ok(cache)) => Some(cache),
        Some(Err(e)) => {
            tracing::warn!("no embedding cache: {e}");
            None
        }
        None => None,
    };
    engine_with_cache(path, config, cache)
}

/// The engine over a model file with the given embedding cache, or none.
pub fn engine_with_cache(
    path: &Path,
    config: StoreConfig,
    cache: Option<EmbeddingCache>,
) -> Result<LocalEngine, EngineError> {
    let mut model = SamModel::load(path)?;
    if let Some(cache) = cache {
        model = model.with_cache(cache, path);
    }
    Ok(LocalEngine::new(
        Arc::new(SharedSam(Arc::new(model))),
        config,
    ))
}

/// One photo after the image encoder, with the clicks already answered.
pub struct SamImage {
    embeddings: Tensor,
    /// The embeddings as the mask decoder reads them, with its per-image projections.
    decoder: model::DecoderImage,
    /// The photo's size in the encoder's 1024 frame.
    encoder_size: (u32, u32),
    /// The photo's full size, the mask's size.
    full: (u32, u32),
    model: Arc<SamModel>,
    history: Mutex<PromptHistory<Step>>,
    /// The last candidates offered: their prompt and, in offered order, the mask indices.
    offered: Mutex<Option<(Prompt, Vec<usize>)>>,
}

/// The decoder's answer to a prompt, before and after upscaling.
pub struct Prediction {
    /// Low-res logits of every mask the decoder returned, `(masks, 256, 256)`.
    pub low_res: Tensor,
    /// Predicted IoU of each.
    pub iou: Vec<f32>,
    /// The mask chosen (the most confident of three for one click, else the only one).
    pub best: usize,
    /// The chosen mask at full resolution, anti-aliased.
    pub mask: AlphaMask,
}

impl SamImage {
    pub fn embeddings(&self) -> &Tensor {
        &self.embeddings
    }

    pub fn encoder_size(&self) -> (u32, u32) {
        self.encoder_size
    }

    /// One decoder run on a prompt's dots with no mask prompt and nothing remembered (for
    /// timing the decoder alone).
    pub fn run_decoder(&self, prompt: &Prompt) -> Result<(), EngineError> {
        let clicks: Vec<(Dot, bool)> = (prompt.green.iter().map(|d| (*d, true)))
            .chain(prompt.red.iter().map(|d| (*d, false)))
            .collect();
        self.decode(&clicks, None)?;
        Ok(())
    }

    /// One decoder run: clicks mapped into the encoder frame; several masks when there is
    /// no mask prompt to refine (a first click is ambiguous), one otherwise.
    fn decode(
        &self,
        clicks: &[(Dot, bool)],
        mask_input: Option<&Tensor>,
    ) -> Result<model::Decoded, EngineError> {
        let points: Vec<(f32, f32, f32)> = clicks
            .iter()
            .map(|(d, include)| {
                let (x, y) = preprocess::to_encoder_frame(d.x, d.y, self.full);
                (x, y, if *include { 1.0 } else { 0.0 })
            })
            .collect();
        self.model
            .sam
            .decode(&self.decoder, &points, mask_input, mask_input.is_none())
            .map_err(engine_err("running the mask decoder"))
    }

    /// The decoder's answer for every dot so far, refining the answer to the dots before.
    pub fn predict(&self, prompt: &Prompt) -> Result<Prediction, EngineError> {
        let step = self.answer(prompt)?;
        Ok(Prediction {
            mask: self.full_mask(&step, step.best)?,
            low_res: step.low_res.clone(),
            iou: step.iou.clone(),
            best: step.best,
        })
    }

    /// The answered step for `prompt`, running the decoder for each click not yet answered
    /// with the parent's chosen logits as its mask prompt.
    fn answer(&self, prompt: &Prompt) -> Result<Arc<Step>, EngineError> {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let answered = history.answer(prompt, |so_far, _click, parent| {
            let clicks: Vec<(Dot, bool)> = (so_far.green.iter().map(|d| (*d, true)))
                .chain(so_far.red.iter().map(|d| (*d, false)))
                .collect();
            let mask_input = parent.map(Step::chosen).transpose()?;
            Ok(Step::choose(self.decode(&clicks, mask_input.as_ref())?))
        });
        answered.unwrap_or_else(|| {
            Err(EngineError::BadRequest(
                "a prompt needs at least one dot".into(),
            ))
        })
    }

    /// Mask `index` of a step at the photo's full resolution, anti-aliased.
    fn full_mask(&self, step: &Step, index: usize) -> Result<AlphaMask, EngineError> {
        let logits = step.logits(index)?;
        Ok(postprocess::alpha_mask(
            &logits,
            self.encoder_size,
            self.full,
        ))
    }
}

/// `Model` for a shared SAM: sessions keep a handle to the model for their decoder runs.
pub struct SharedSam(pub Arc<SamModel>);

impl Model for SharedSam {
    fn name(&self) -> String {
        self.0.label()
    }

    fn prepare(
        &self,
        image: &RgbImage,
        abandoned: &Abandoned,
    ) -> Result<Box<dyn Prepared>, EngineError> {
        Ok(Box::new(self.0.prepare_image_unless(image, abandoned)?))
    }

    fn progress(&self) -> Option<f32> {
        self.0.encoding_progress()
    }
}

impl Prepared for SamImage {
    fn segment(&self, prompt: &Prompt) -> Result<AlphaMask, EngineError> {
        let (fw, fh) = self.full;
        if prompt.green.is_empty() {
            return Ok(AlphaMask::new(fw, fh));
        }
        Ok(self.predict(prompt)?.mask)
    }

    /// The decoder's masks for the prompt's last click, the chosen one first: three for a
    /// first click (SAM's multimask output), one for a refining click.
    fn candidates(&self, prompt: &Prompt) -> Result<Vec<AlphaMask>, EngineError> {
        if prompt.green.is_empty() {
            return Ok(vec![self.segment(prompt)?]);
        }
        let step = self.answer(prompt)?;
        let order = step.ranked();
        let masks = order
            .iter()
            .map(|&i| self.full_mask(&step, i))
            .collect::<Result<Vec<_>, _>>()?;
        *self.offered.lock().unwrap_or_else(|e| e.into_inner()) = Some((prompt.clone(), order));
        Ok(masks)
    }

    /// The chosen mask becomes the answer, and the logits later clicks refine.
    fn choose(&self, prompt: &Prompt, index: usize) -> Result<(), EngineError> {
        let offered = self.offered.lock().unwrap_or_else(|e| e.into_inner());
        let mask = match offered.as_ref() {
            Some((p, order)) if p == prompt && index < order.len() => order[index],
            _ if index == 0 => return Ok(()),
            _ => {
                return Err(EngineError::BadRequest(format!(
                    "no candidate {index} was offered for these dots"
                )));
            }
        };
        drop(offered);
        let step = self.answer(prompt)?;
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(prompt, step.with_best(mask));
        Ok(())
    }

    fn heap_bytes(&self) -> usize {
        let history = self.history.lock().map_or(0, |h| {
            h.answers()
                .map(|(p, s)| s.heap_bytes(p.green.len() + p.red.len()))
                .sum()
        });
        self.embeddings.elem_count() * 4 + self.decoder.heap_bytes() + history + 64
    }
}

/// A SAM engine that loads its model file on first use, inside the worker, so choosing
/// it in the editor never blocks the UI. A failed load is reported as an engine error
/// and tried again on the next initialize (the user may fix the file meanwhile).
pub struct LazySamEngine {
    path: PathBuf,
    config: StoreConfig,
    /// Whether encoder outputs go to the user's embedding cache.
    user_cache: bool,
    loaded: tokio::sync::OnceCell<LocalEngine>,
}

impl LazySamEngine {
    pub fn new(path: PathBuf, config: StoreConfig) -> Self {
        LazySamEngine {
            path,
            config,
            user_cache: true,
            loaded: tokio::sync::OnceCell::new(),
        }
    }

    /// Runs the encoder for every image, never touching the user's cache (tests).
    pub fn without_cache(self) -> Self {
        LazySamEngine {
            user_cache: false,
            ..self
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
                let (path, config, user_cache) = (self.path.clone(), self.config, self.user_cache);
                tokio::task::spawn_blocking(move || match user_cache {
                    true => engine(&path, config),
                    false => engine_with_cache(&path, config, None),
                })
                .await
                .map_err(|e| EngineError::Engine(e.to_string()))?
            })
            .await?;
        engine.initialize(image).await
    }

    fn progress(&self) -> Option<f32> {
        self.loaded.get().and_then(|e| e.progress())
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
