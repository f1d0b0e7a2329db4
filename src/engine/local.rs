//! Engines that run in this process: a [`Model`] behind a [`SessionStore`].
//!
//! A model splits its work the way the contract does: `prepare` once per image (run on a
//! blocking thread, it may take a second), then `segment` per prompt (cheap). The built-in
//! engine and SAM-family models are both models; `LocalEngine` gives them the contract.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use image::RgbImage;

use super::store::{SessionStore, StoreConfig};
use super::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use crate::imageio::LoadedImage;

/// Per-image precomputation of a model.
pub trait Prepared: Send + Sync {
    /// The mask for every dot so far, at the image's full resolution.
    fn segment(&self, prompt: &Prompt) -> Result<AlphaMask, EngineError>;
    /// Approximate heap bytes held, for the store's memory cap.
    fn heap_bytes(&self) -> usize;
    /// Every answer for `prompt`, best first (see [`Engine::candidates`]).
    fn candidates(&self, prompt: &Prompt) -> Result<Vec<AlphaMask>, EngineError> {
        Ok(vec![self.segment(prompt)?])
    }
    /// Makes candidate `index` the answer to `prompt` (see [`Engine::choose`]).
    fn choose(&self, _prompt: &Prompt, index: usize) -> Result<(), EngineError> {
        super::only_first_candidate(index)
    }
}

/// Set once nobody waits for a `prepare` any more (the image was closed or its opening
/// cancelled): slow models look at it between steps and stop early.
#[derive(Clone, Default)]
pub struct Abandoned(Arc<AtomicBool>);

impl Abandoned {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Sets the flag when dropped: held by the call that waits, so dropping that call (the
/// worker aborts it) tells the blocking thread to stop.
struct SetWhenDropped(Abandoned);

impl Drop for SetWhenDropped {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// A segmentation method that needs no server.
pub trait Model: Send + Sync {
    fn name(&self) -> String;
    /// The per-image work; may return [`EngineError::Cancelled`] once `abandoned` is set.
    fn prepare(
        &self,
        image: &RgbImage,
        abandoned: &Abandoned,
    ) -> Result<Box<dyn Prepared>, EngineError>;
    /// The fraction of a running `prepare` done, for models slow enough to show it.
    fn progress(&self) -> Option<f32> {
        None
    }
}

/// What a local session keeps: the image (to check dots against) and the model's state.
pub struct LocalSession {
    pub image: Arc<LoadedImage>,
    pub prepared: Box<dyn Prepared>,
}

/// The contract over a local model.
pub struct LocalEngine {
    model: Arc<dyn Model>,
    sessions: Arc<SessionStore<LocalSession>>,
}

impl LocalEngine {
    pub fn new(model: Arc<dyn Model>, config: StoreConfig) -> Self {
        LocalEngine {
            model,
            sessions: Arc::new(SessionStore::new(config)),
        }
    }

    pub fn sessions(&self) -> &Arc<SessionStore<LocalSession>> {
        &self.sessions
    }

    /// Runs `work` on a session's model state with a prompt checked against its image,
    /// off the async threads: what every per-prompt call shares.
    async fn on_session<R: Send + 'static>(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        work: impl FnOnce(&dyn Prepared, &Prompt) -> Result<R, EngineError> + Send + 'static,
    ) -> Result<R, EngineError> {
        let s = self.sessions.require(session)?;
        prompt.validate(s.image.width(), s.image.height())?;
        let prompt = prompt.clone();
        blocking(move || work(s.prepared.as_ref(), &prompt)).await
    }
}

/// Runs CPU-heavy work off the async threads; a panic inside becomes an engine error.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, EngineError> + Send + 'static,
) -> Result<R, EngineError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(EngineError::Engine(format!("internal failure: {e}"))),
    }
}

#[async_trait]
impl Engine for LocalEngine {
    fn name(&self) -> String {
        self.model.name()
    }

    fn progress(&self) -> Option<f32> {
        self.model.progress()
    }

    async fn initialize(&self, image: Arc<LoadedImage>) -> Result<SessionId, EngineError> {
        let model = self.model.clone();
        let sessions = self.sessions.clone();
        let abandoned = Abandoned::default();
        let _waiting = SetWhenDropped(abandoned.clone());
        blocking(move || {
            let rgb = image.to_rgb();
            let prepared = model.prepare(&rgb, &abandoned)?;
            let bytes = prepared.heap_bytes() + image.heap_bytes();
            sessions.insert(LocalSession { image, prepared }, bytes)
        })
        .await
    }

    async fn segment(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        _request_number: u64,
    ) -> Result<AlphaMask, EngineError> {
        self.on_session(session, prompt, |p, prompt| p.segment(prompt))
            .await
    }

    async fn candidates(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        _request_number: u64,
    ) -> Result<Vec<AlphaMask>, EngineError> {
        self.on_session(session, prompt, |p, prompt| p.candidates(prompt))
            .await
    }

    async fn choose(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        index: usize,
    ) -> Result<(), EngineError> {
        self.on_session(session, prompt, move |p, prompt| p.choose(prompt, index))
            .await
    }

    async fn close(&self, session: &SessionId) {
        self.sessions.remove(session);
    }

    fn session_bytes(&self, session: &SessionId) -> Option<usize> {
        self.sessions.bytes_of(session)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, mpsc};
    use std::time::{Duration, Instant};

    use super::*;

    /// A model whose `prepare` runs until it is abandoned, then says so.
    struct UntilAbandoned {
        started: Mutex<mpsc::Sender<()>>,
        saw_abandoned: Mutex<mpsc::Sender<bool>>,
    }

    impl Model for UntilAbandoned {
        fn name(&self) -> String {
            "slow".into()
        }

        fn prepare(
            &self,
            _image: &RgbImage,
            abandoned: &Abandoned,
        ) -> Result<Box<dyn Prepared>, EngineError> {
            self.started.lock().unwrap().send(()).unwrap();
            let give_up = Instant::now() + Duration::from_secs(60);
            while !abandoned.is_set() && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = self.saw_abandoned.lock().unwrap().send(abandoned.is_set());
            Err(EngineError::Cancelled)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_an_initialize_tells_the_models_prepare_to_stop() {
        let (started, on_start) = mpsc::channel();
        let (saw, on_saw) = mpsc::channel();
        let model = UntilAbandoned {
            started: Mutex::new(started),
            saw_abandoned: Mutex::new(saw),
        };
        let engine = Arc::new(LocalEngine::new(Arc::new(model), StoreConfig::default()));
        let image = Arc::new(LoadedImage::from_pixels(
            "x.png",
            image::RgbaImage::new(8, 8),
        ));
        let task = tokio::spawn({
            let engine = engine.clone();
            async move { engine.initialize(image).await }
        });
        tokio::task::spawn_blocking(move || on_start.recv().unwrap())
            .await
            .unwrap();
        task.abort();
        let saw = tokio::task::spawn_blocking(move || on_saw.recv().unwrap());
        assert!(
            saw.await.unwrap(),
            "prepare ran on after its caller was gone"
        );
    }
}
