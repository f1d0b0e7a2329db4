//! One delegating test engine: [`Wrapped`] passes every call to a real engine, and a
//! test's [`Hooks`] step in around only the calls it cares about (to count them, delay
//! them, fail them or answer differently). Tests write the hook, not the delegation.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

use aicut::engine::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use aicut::imageio::LoadedImage;
use async_trait::async_trait;

/// What a test changes about an engine; every call delegates to `inner` unless the test
/// overrides it.
#[async_trait]
pub trait Hooks: Send + Sync + 'static {
    fn name(&self, inner: &Arc<dyn Engine>) -> String {
        inner.name()
    }

    async fn initialize(
        &self,
        inner: &Arc<dyn Engine>,
        image: Arc<LoadedImage>,
    ) -> Result<SessionId, EngineError> {
        inner.initialize(image).await
    }

    async fn segment(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        number: u64,
    ) -> Result<AlphaMask, EngineError> {
        inner.segment(session, prompt, number).await
    }

    async fn candidates(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        number: u64,
    ) -> Result<Vec<AlphaMask>, EngineError> {
        inner.candidates(session, prompt, number).await
    }

    async fn choose(
        &self,
        inner: &Arc<dyn Engine>,
        session: &SessionId,
        prompt: &Prompt,
        index: usize,
    ) -> Result<(), EngineError> {
        inner.choose(session, prompt, index).await
    }

    async fn close(&self, inner: &Arc<dyn Engine>, session: &SessionId) {
        inner.close(session).await
    }
}

/// A real engine with a test's hooks around it; `hooks` holds what the test observes.
pub struct Wrapped<H> {
    pub inner: Arc<dyn Engine>,
    pub hooks: H,
}

impl<H: Hooks> Wrapped<H> {
    pub fn new(inner: Arc<dyn Engine>, hooks: H) -> Arc<Self> {
        Arc::new(Wrapped { inner, hooks })
    }

    /// The built-in engine with `hooks` around it.
    pub fn builtin(hooks: H) -> Arc<Self> {
        Self::new(
            Arc::new(aicut::engine::builtin::engine(Default::default())),
            hooks,
        )
    }
}

impl<H> std::ops::Deref for Wrapped<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.hooks
    }
}

#[async_trait]
impl<H: Hooks> Engine for Wrapped<H> {
    fn name(&self) -> String {
        self.hooks.name(&self.inner)
    }

    fn progress(&self) -> Option<f32> {
        self.inner.progress()
    }

    async fn initialize(&self, image: Arc<LoadedImage>) -> Result<SessionId, EngineError> {
        self.hooks.initialize(&self.inner, image).await
    }

    async fn segment(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        number: u64,
    ) -> Result<AlphaMask, EngineError> {
        self.hooks
            .segment(&self.inner, session, prompt, number)
            .await
    }

    async fn candidates(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        number: u64,
    ) -> Result<Vec<AlphaMask>, EngineError> {
        self.hooks
            .candidates(&self.inner, session, prompt, number)
            .await
    }

    async fn choose(
        &self,
        session: &SessionId,
        prompt: &Prompt,
        index: usize,
    ) -> Result<(), EngineError> {
        self.hooks.choose(&self.inner, session, prompt, index).await
    }

    async fn close(&self, session: &SessionId) {
        self.hooks.close(&self.inner, session).await
    }

    fn session_bytes(&self, session: &SessionId) -> Option<usize> {
        self.inner.session_bytes(session)
    }
}
