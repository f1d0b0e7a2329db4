//! `aicut bench`: its arguments; the measuring is in [`crate::bench`].

use std::path::PathBuf;

use super::ModelArgs;
use crate::engine::EngineKind;

/// The arguments of `aicut bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Image files or folders of images.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// How many of them to also scale up to 2 MP and 12 MP (0: none).
    #[arg(long, default_value_t = 3)]
    large: usize,
    /// Which engine to measure: builtin, or sam with --model.
    #[arg(long, default_value = "builtin")]
    engine: EngineKind,
    #[command(flatten)]
    model: ModelArgs,
}

/// Runs the benchmark and prints its table.
pub fn run(args: BenchArgs) -> Result<(), String> {
    let table = match args.engine {
        EngineKind::Builtin => crate::bench::run(&args.inputs, args.large)?,
        EngineKind::Sam => {
            let model = args.model.file_for(EngineKind::Sam)?.ok_or_else(|| {
                super::setup_error_message(crate::engine::factory::EngineSetupError::NoModelFile)
            })?;
            let photos = crate::bench::load_images(&args.inputs);
            crate::bench::sam::run(&model, &photos)?
        }
        EngineKind::Api => return Err("aicut bench measures local engines: builtin or sam".into()),
    };
    print!("{table}");
    Ok(())
}
