//! `aicut matte`: alpha matting of an image under a given trimap, for power users and the
//! matting benchmark (tools/matting-bench).

use std::path::PathBuf;
use std::time::Instant;

use clap::ValueEnum;
use clap::builder::PossibleValue;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use crate::imageio::{self, DecodeLimits};
use crate::matting::{self, Edges, trimap};

/// The edge names the command line accepts; here so the matting code knows nothing of clap.
impl ValueEnum for Edges {
    fn value_variants<'a>() -> &'a [Self] {
        &[Edges::Soft, Edges::Hard]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Edges::Soft => PossibleValue::new("soft")
                .help("Alpha matting in a band about the edge, with the subject's own colours"),
            Edges::Hard => PossibleValue::new("hard").help("The selection's edge as it is"),
        })
    }
}

/// The arguments of `aicut matte`.
#[derive(clap::Args, Debug)]
pub struct MatteArgs {
    /// The image.
    image: PathBuf,
    /// Its trimap, the image's size: 0 background, 255 foreground, anything else (128)
    /// unknown.
    trimap: PathBuf,
    /// Where to write the alpha matte (8-bit grey PNG).
    #[arg(long, short = 'o', value_name = "ALPHA.png")]
    output: PathBuf,
    /// Also write the cut-out (RGBA PNG, straight colour, the foreground's estimated
    /// colours in the unknown region).
    #[arg(long, value_name = "CUTOUT.png")]
    cutout: Option<PathBuf>,
    /// Widen the trimap's unknown region by PX pixels first (benchmarks of coarse trimaps).
    #[arg(long, value_name = "PX", default_value_t = 0)]
    widen: u32,
    /// TRIMAP is a selection (white = keep, as `aicut cut --mask` writes): derive the band
    /// from it and the image as `aicut cut --edges soft` does.
    #[arg(long)]
    from_selection: bool,
    /// With --from-selection: the band's half width on an ordinary edge.
    #[arg(long, value_name = "PX", default_value_t = crate::matting::pass::DEFAULT_BAND)]
    band: u32,
    /// Also write the trimap used (after --widen or --from-selection).
    #[arg(long, value_name = "TRIMAP.png")]
    write_trimap: Option<PathBuf>,
}

fn png(data: &[u8], w: u32, h: u32, color: ExtendedColorType) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(data, w, h, color)
        .map_err(|e| format!("could not encode the PNG: {e}"))?;
    Ok(out)
}

/// Runs `aicut matte` and prints one line: what was written and the solve's time.
pub fn run(args: MatteArgs) -> Result<(), String> {
    let limits = DecodeLimits::default();
    let image = imageio::load_file(&args.image, &limits).map_err(|e| e.to_string())?;
    let tri = imageio::load_file(&args.trimap, &limits).map_err(|e| e.to_string())?;
    let (w, h) = (image.width(), image.height());
    if tri.width() != w || tri.height() != h {
        return Err(format!(
            "the trimap is {}x{} but the image is {w}x{h}",
            tri.width(),
            tri.height()
        ));
    }
    let started = Instant::now();
    let (wu, hu) = (w as usize, h as usize);
    let mut tri: Vec<u8> = tri.pixels().pixels().map(|p| p.0[0]).collect();
    if args.from_selection {
        let band = args.band.min(matting::pass::MAX_BAND);
        tri = trimap::band_from_mask(image.pixels().as_raw(), &tri, wu, hu, band);
    }
    if args.widen > 0 {
        tri = trimap::widen_unknown(&tri, wu, hu, args.widen as usize);
    }
    let matte = matting::matte(image.pixels(), &tri);
    let alpha_s = started.elapsed().as_secs_f64();
    let alpha = matte.image();
    let protect = [args.image.as_path(), args.trimap.as_path()];
    let encoded = png(alpha.as_raw(), w, h, ExtendedColorType::L8)?;
    imageio::save_atomic(&args.output, &encoded, &protect).map_err(|e| e.to_string())?;
    if let Some(path) = &args.write_trimap {
        let encoded = png(&tri, w, h, ExtendedColorType::L8)?;
        imageio::save_atomic(path, &encoded, &protect).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &args.cutout {
        let started = Instant::now();
        let cut = matte.cut(image.pixels());
        println!(
            "foreground colours in {:.3} s",
            started.elapsed().as_secs_f64()
        );
        let px = imageio::compose_soft(image.pixels(), &cut);
        let encoded = png(px.as_raw(), w, h, ExtendedColorType::Rgba8)?;
        imageio::save_atomic(path, &encoded, &protect).map_err(|e| e.to_string())?;
    }
    let unknown = tri.iter().filter(|&&t| t > 25 && t < 230).count();
    println!(
        "wrote {} ({w}x{h}, {unknown} unknown pixels, alpha in {alpha_s:.3} s)",
        args.output.display()
    );
    Ok(())
}
