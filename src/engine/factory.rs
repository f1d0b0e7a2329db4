//! The one place that turns a choice of engine into an engine.
//!
//! The editor, `aicut cut` and `aicut serve` all describe what they want as an
//! [`EngineSpec`] and call [`build_engine`]; only the hints in their error messages differ
//! (a command-line flag or a Settings field), so the factory reports *what* is missing and
//! each front door says *where* to give it.

use std::path::PathBuf;
use std::sync::Arc;

use super::remote::{RemoteConfig, RemoteEngine};
use super::store::StoreConfig;
use super::{Engine, EngineError, EngineKind, builtin, sam};

/// When a SAM model file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamLoading {
    /// At once, so a bad file stops the command before any work (CLI, server).
    Now,
    /// On the first image, inside the worker, so choosing it never blocks a UI thread.
    OnFirstImage,
}

/// Everything needed to build any engine.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub kind: EngineKind,
    /// The SAM model file (for [`EngineKind::Sam`]).
    pub sam_model: Option<PathBuf>,
    pub sam_loading: SamLoading,
    /// Address and key of the AI Cut API (for [`EngineKind::Api`]).
    pub api: RemoteConfig,
    /// Session expiry and memory cap of the local engines.
    pub store: StoreConfig,
}

impl EngineSpec {
    /// The built-in engine with default session limits.
    pub fn builtin() -> Self {
        EngineSpec {
            kind: EngineKind::Builtin,
            sam_model: None,
            sam_loading: SamLoading::Now,
            api: RemoteConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineSetupError {
    #[error("the SAM engine needs a model file (MobileSAM's mobile_sam.pt or a SAM checkpoint)")]
    NoModelFile,
    #[error("the AI Cut API needs a key")]
    NoApiKey,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Builds the engine `spec` asks for.
pub fn build_engine(spec: EngineSpec) -> Result<Arc<dyn Engine>, EngineSetupError> {
    match spec.kind {
        EngineKind::Builtin => Ok(Arc::new(builtin::engine(spec.store))),
        EngineKind::Sam => {
            let path = spec
                .sam_model
                .filter(|p| !p.as_os_str().is_empty())
                .ok_or(EngineSetupError::NoModelFile)?;
            Ok(match spec.sam_loading {
                SamLoading::Now => Arc::new(sam::engine(&path, spec.store)?),
                SamLoading::OnFirstImage => Arc::new(sam::LazySamEngine::new(path, spec.store)),
            })
        }
        EngineKind::Api => {
            let key = spec.api.api_key.as_deref().map(str::trim).unwrap_or("");
            if key.is_empty() {
                return Err(EngineSetupError::NoApiKey);
            }
            let config = RemoteConfig {
                api_key: Some(key.to_string()),
                ..spec.api
            };
            Ok(Arc::new(RemoteEngine::new(config)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_model_file_and_missing_key_are_named_before_any_work() {
        let sam = EngineSpec {
            kind: EngineKind::Sam,
            ..EngineSpec::builtin()
        };
        assert!(matches!(
            build_engine(sam),
            Err(EngineSetupError::NoModelFile)
        ));
        let api = EngineSpec {
            kind: EngineKind::Api,
            api: RemoteConfig {
                api_key: Some("  ".into()),
                ..RemoteConfig::default()
            },
            ..EngineSpec::builtin()
        };
        assert!(matches!(build_engine(api), Err(EngineSetupError::NoApiKey)));
    }

    #[test]
    fn a_missing_sam_file_fails_now_but_waits_for_the_first_image_when_lazy() {
        let spec = |loading| EngineSpec {
            kind: EngineKind::Sam,
            sam_model: Some("/nonexistent/mobile_sam.pt".into()),
            sam_loading: loading,
            ..EngineSpec::builtin()
        };
        assert!(build_engine(spec(SamLoading::Now)).is_err());
        assert!(build_engine(spec(SamLoading::OnFirstImage)).is_ok());
    }

    #[test]
    fn the_builtin_engine_needs_nothing() {
        let engine = build_engine(EngineSpec::builtin()).unwrap();
        assert_eq!(engine.name(), "built-in");
    }
}
