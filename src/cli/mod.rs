//! The command line's pieces that are not argument dispatch: each subcommand's arguments
//! and runner, and the clap glue for library types. `main.rs` only parses and dispatches.

pub mod bench;
pub mod cut;
pub mod matte;
pub mod model;
pub mod serve;

use std::path::PathBuf;

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::engine::factory::EngineSetupError;
use crate::engine::remote::{DEFAULT_API_URL, RemoteConfig};
use crate::engine::{Dot, EngineKind};

/// The engine names the command line accepts. Kept here so the engine contract knows
/// nothing about clap.
impl ValueEnum for EngineKind {
    fn value_variants<'a>() -> &'a [Self] {
        &EngineKind::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            EngineKind::Builtin => PossibleValue::new("builtin")
                .help("The built-in engine: no model weights, no network"),
            EngineKind::Sam => PossibleValue::new("sam")
                .help("A SAM-family model file (MobileSAM, SAM ViT-B/L/H), run locally"),
            EngineKind::Api => {
                PossibleValue::new("api").help("The hosted AI Cut service (needs a key)")
            }
        })
    }
}

/// Where the AI Cut API engine connects.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// Base URL of the AI Cut API (any `aicut serve` works too).
    #[arg(long, value_name = "URL", default_value = DEFAULT_API_URL)]
    pub api_url: String,
    /// The API key (or set AICUT_API_KEY). Sent only to the API URL.
    #[arg(long, env = "AICUT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl ApiArgs {
    pub fn remote_config(&self) -> RemoteConfig {
        RemoteConfig {
            base_url: self.api_url.clone(),
            api_key: self.api_key.clone(),
            ..RemoteConfig::default()
        }
    }
}

/// How the cut-out's edge is made: `--edges soft|hard`, `--band PX`.
#[derive(clap::Args, Debug, Clone)]
pub struct EdgeArgs {
    /// soft: alpha matting in a band about the selection's edge (hair, fur) with the
    /// subject's own colours there; hard: the selection's edge as it is. Default: soft for
    /// `aicut cut` (a finished cut-out), hard for `aicut serve` (one cut-out per click, where
    /// the soft pass would add its time to every click).
    #[arg(long, value_enum)]
    pub edges: Option<crate::matting::Edges>,
    /// With --edges soft: the band's half width in pixels on an ordinary edge (crisp
    /// edges get half of it, fine ones such as hair up to three times).
    #[arg(long, value_name = "PX", default_value_t = crate::matting::pass::DEFAULT_BAND,
          value_parser = clap::value_parser!(u32).range(1..=crate::matting::pass::MAX_BAND as i64))]
    pub band: u32,
}

impl EdgeArgs {
    /// The options asked for, with `default` edges when none were named.
    pub fn options(&self, default: crate::matting::Edges) -> crate::matting::EdgeOptions {
        crate::matting::EdgeOptions {
            edges: self.edges.unwrap_or(default),
            band: self.band,
        }
    }
}

/// The SAM model: `--model FILE|NAME` or `AICUT_SAM_MODEL`.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// With --engine sam: the model file (.safetensors, .pt or .pth), or the name of an
    /// installed model (mobile-sam, sam-vit-b, sam-vit-l, sam-vit-h; see aicut model list).
    #[arg(long, value_name = "FILE|NAME", env = crate::engine::sam::MODEL_ENV)]
    pub model: Option<PathBuf>,
}

impl ModelArgs {
    /// The model file the engine `kind` loads: a model's name becomes its installed file
    /// (or an error saying how to fetch it). Other engines take no model file.
    pub fn file_for(&self, kind: EngineKind) -> Result<Option<PathBuf>, String> {
        match (&self.model, kind) {
            (Some(arg), EngineKind::Sam) => crate::models::resolve_model_arg(arg).map(Some),
            _ => Ok(None),
        }
    }
}

/// An engine set-up failure, with the flag that fixes it.
pub fn setup_error_message(e: EngineSetupError) -> String {
    match e {
        EngineSetupError::NoModelFile => format!(
            "{e}: pass --model FILE, or fetch one and name it (aicut model fetch mobile-sam, \
             then --model mobile-sam), or set {}",
            crate::engine::sam::MODEL_ENV
        ),
        EngineSetupError::NoApiKey => format!("{e}: pass --api-key KEY or set AICUT_API_KEY"),
        EngineSetupError::Engine(e) => e.to_string(),
    }
}

/// Parses "X,Y" into a dot.
pub fn parse_dot(s: &str) -> Result<Dot, String> {
    let (x, y) = s
        .split_once(',')
        .ok_or_else(|| format!("'{s}' is not X,Y (for example 250,300)"))?;
    let num = |v: &str| -> Result<f64, String> {
        let n: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("'{v}' in '{s}' is not a number"))?;
        if n.is_finite() {
            Ok(n)
        } else {
            Err(format!("'{v}' in '{s}' is not a finite number"))
        }
    };
    Ok(Dot::new(num(x)?, num(y)?))
}

/// A multi-threaded runtime for the commands that run async code from a plain `main`.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_parse_as_x_comma_y_and_reject_anything_else() {
        assert_eq!(parse_dot("250,300.5"), Ok(Dot::new(250.0, 300.5)));
        assert_eq!(parse_dot(" -3 , 4 "), Ok(Dot::new(-3.0, 4.0)));
        assert!(parse_dot("250").unwrap_err().contains("X,Y"));
        assert!(parse_dot("a,1").unwrap_err().contains("not a number"));
        assert!(parse_dot("inf,1").unwrap_err().contains("finite"));
    }

    #[test]
    fn every_engine_kind_has_a_command_line_name() {
        let names: Vec<_> = EngineKind::ALL
            .iter()
            .map(|k| k.to_possible_value().unwrap().get_name().to_string())
            .collect();
        assert_eq!(names, ["builtin", "sam", "api"]);
        assert_eq!(EngineKind::from_str("sam", true), Ok(EngineKind::Sam));
    }
}
