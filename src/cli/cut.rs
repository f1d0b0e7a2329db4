//! `aicut cut`: its arguments, and the run that builds an engine and calls [`crate::cut`].

use std::path::PathBuf;

use crate::cut::{CutRequest, run_cut};
use crate::engine::factory::{EngineSpec, SamLoading, build_engine};
use crate::engine::{Dot, EngineKind};
use crate::imageio::ExportOptions;

use super::{ApiArgs, EdgeArgs, ModelArgs, parse_dot, setup_error_message};

/// The arguments of `aicut cut`.
#[derive(clap::Args, Debug)]
pub struct CutArgs {
    /// The image to cut: JPEG (also CMYK), PNG (8/16-bit), WebP, TIFF (8/16-bit), BMP, GIF.
    image: PathBuf,
    /// A point to include, as X,Y in image pixels from the top-left corner. Repeatable.
    #[arg(long = "green", short = 'g', value_name = "X,Y", value_parser = parse_dot, required = true, allow_hyphen_values = true)]
    green: Vec<Dot>,
    /// A point to exclude, as X,Y in image pixels. Repeatable.
    #[arg(long = "red", short = 'r', value_name = "X,Y", value_parser = parse_dot, allow_hyphen_values = true)]
    red: Vec<Dot>,
    /// Where to write the cut-out (never over the input): .png (16-bit for 16-bit
    /// sources, with the source's colour profile) or .webp (lossless, with alpha).
    #[arg(long, short = 'o', value_name = "OUT.png|OUT.webp")]
    output: PathBuf,
    /// Crop to the selected subject plus MARGIN pixels on each side (default 0).
    #[arg(long, value_name = "MARGIN", num_args = 0..=1, require_equals = true, default_missing_value = "0")]
    trim: Option<u32>,
    /// Write the selection itself as a grey image (white = keep) instead of the cut-out.
    #[arg(long)]
    mask: bool,
    #[command(flatten)]
    edges: EdgeArgs,
    /// Which engine segments the image.
    #[arg(long, value_enum, default_value_t = EngineKind::Builtin)]
    engine: EngineKind,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// With --engine api: if the session expires, start a new one (costs 1 credit).
    #[arg(long)]
    reinitialize: bool,
}

/// Runs `aicut cut` and prints its one-line report.
pub fn run(args: CutArgs) -> Result<(), String> {
    let engine = build_engine(EngineSpec {
        kind: args.engine,
        sam_model: args.model.file_for(args.engine)?,
        sam_loading: SamLoading::Now,
        api: args.api.remote_config(),
        ..EngineSpec::builtin()
    })
    .map_err(setup_error_message)?;
    let req = CutRequest {
        input: args.image,
        output: args.output,
        green: args.green,
        red: args.red,
        reinitialize: args.reinitialize,
        options: ExportOptions {
            trim: args.trim,
            mask_only: args.mask,
            edges: args.edges.options(crate::matting::Edges::Soft),
        },
    };
    let report = run_cut(engine, &req).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({}x{}, {:.1}% selected)",
        req.output.display(),
        report.out_width,
        report.out_height,
        report.selected_fraction * 100.0
    );
    Ok(())
}
