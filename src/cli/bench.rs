//! `aicut bench`: its arguments; the measuring is in [`crate::bench`].

use std::path::PathBuf;

/// The arguments of `aicut bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Image files or folders of images.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// How many of them to also scale up to 2 MP and 12 MP (0: none).
    #[arg(long, default_value_t = 3)]
    large: usize,
}

/// Runs the benchmark and prints its table.
pub fn run(args: BenchArgs) -> Result<(), String> {
    print!("{}", crate::bench::run(&args.inputs, args.large)?);
    Ok(())
}
