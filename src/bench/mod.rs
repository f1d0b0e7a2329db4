//! `aicut bench`: the built-in engine's speed and memory at several image sizes; `sam`
//! measures a SAM model.
//!
//! A segment call is timed the way `aicut serve` answers it: the engine's mask, the
//! cut-out composed and encoded as PNG. Each image gets a fixed click sequence, so runs
//! are comparable. Timings are medians; the machine's other load shows up in them.

pub mod sam;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::imageops::FilterType;

use crate::engine::builtin;
use crate::engine::{Dot, Engine, Prompt};
use crate::imageio::{self, DecodeLimits, LoadedImage};

/// One row of the report.
#[derive(Debug, Clone)]
pub struct BenchRow {
    pub label: String,
    pub images: usize,
    pub megapixels: f64,
    pub init_median: Duration,
    /// The engine's mask alone: what the editor waits for before it shows the overlay.
    pub mask_median: Duration,
    pub segment_median: Duration,
    pub segment_max: Duration,
    pub session_mb: f64,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// A fixed sequence of prompts that grows like a user's: a click in the middle, a red
/// dot near a corner, then more green dots around the first.
fn prompts(w: u32, h: u32) -> Vec<Prompt> {
    let (w, h) = (w as f64, h as f64);
    let c = Dot::new(w * 0.5, h * 0.5);
    let mut p = Prompt {
        green: vec![c],
        red: vec![],
    };
    let mut out = vec![p.clone()];
    p.red.push(Dot::new(w * 0.05, h * 0.05));
    out.push(p.clone());
    p.green.push(Dot::new(w * 0.45, h * 0.6));
    out.push(p.clone());
    p.red.push(Dot::new(w * 0.95, h * 0.9));
    out.push(p.clone());
    p.green.push(Dot::new(w * 0.55, h * 0.4));
    out.push(p);
    out
}

/// Times initialize and every prompt on each image; returns one row.
pub fn bench_images(
    label: &str,
    images: &[Arc<LoadedImage>],
    rt: &tokio::runtime::Runtime,
) -> BenchRow {
    let engine = builtin::engine(Default::default());
    let (mut inits, mut masks, mut segs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut mem, mut mp) = (Vec::new(), 0.0);
    for img in images {
        mp += img.width() as f64 * img.height() as f64 / 1e6;
        let t = Instant::now();
        let Ok(session) = rt.block_on(engine.initialize(img.clone())) else {
            continue;
        };
        inits.push(t.elapsed());
        mem.push(engine.sessions().total_bytes() as f64 / (1024.0 * 1024.0));
        for (n, prompt) in prompts(img.width(), img.height()).iter().enumerate() {
            let t = Instant::now();
            let Ok(mask) = rt.block_on(engine.segment(&session, prompt, n as u64 + 1)) else {
                continue;
            };
            masks.push(t.elapsed());
            let png = imageio::encode_png(&imageio::compose_cutout(img.pixels(), &mask));
            std::hint::black_box(png.map(|p| p.len()).unwrap_or(0));
            segs.push(t.elapsed());
        }
        rt.block_on(engine.close(&session));
    }
    BenchRow {
        label: label.to_string(),
        images: inits.len(),
        megapixels: if images.is_empty() {
            0.0
        } else {
            mp / images.len() as f64
        },
        init_median: median(inits),
        mask_median: median(masks),
        segment_max: segs.iter().max().copied().unwrap_or_default(),
        segment_median: median(segs),
        session_mb: mem.iter().cloned().fold(0.0, f64::max),
    }
}

fn resized(img: &LoadedImage, w: u32, h: u32) -> Arc<LoadedImage> {
    let px = image::imageops::resize(img.pixels(), w, h, FilterType::Triangle);
    Arc::new(LoadedImage::from_pixels(
        format!("{}@{w}x{h}", img.name),
        px,
    ))
}

/// Loads the images of a folder (or the given files) that decode.
pub fn load_images(paths: &[PathBuf]) -> Vec<Arc<LoadedImage>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for p in paths {
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                v.sort();
                files.extend(v);
            }
        } else {
            files.push(p.clone());
        }
    }
    files
        .iter()
        .filter_map(|f| imageio::load_file(f, &DecodeLimits::default()).ok())
        .map(Arc::new)
        .collect()
}

/// Runs the whole benchmark: the images as they are, then a few scaled up to 2 MP and
/// 12 MP (4000x3000). Returns a Markdown table.
pub fn run(inputs: &[PathBuf], large: usize) -> Result<String, String> {
    let images = load_images(inputs);
    if images.is_empty() {
        return Err(format!("no readable images in {}", display_list(inputs)));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = vec![bench_images("as given", &images, &rt)];
    // `--large 0` measures the images as given only.
    let picks: Vec<&Arc<LoadedImage>> = images.iter().take(large).collect();
    if !picks.is_empty() {
        let two_mp: Vec<_> = picks.iter().map(|i| resized(i, 1632, 1224)).collect();
        let twelve_mp: Vec<_> = picks.iter().map(|i| resized(i, 4000, 3000)).collect();
        rows.push(bench_images("2 MP (1632x1224)", &two_mp, &rt));
        rows.push(bench_images("12 MP (4000x3000)", &twelve_mp, &rt));
    }
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
    let mut out = String::from(
        "| images | count | avg MP | initialize median ms | mask median ms | segment+PNG median ms | segment+PNG max ms | session MB |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {:.2} | {} | {} | {} | {} | {:.0} |\n",
            r.label,
            r.images,
            r.megapixels,
            ms(r.init_median),
            ms(r.mask_median),
            ms(r.segment_median),
            ms(r.segment_max),
            r.session_mb
        );
    }
    Ok(out)
}

fn display_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bench_row_counts_every_image_and_its_session_memory() {
        let px = image::RgbaImage::from_fn(96, 64, |x, y| {
            if (30..66).contains(&x) && (16..48).contains(&y) {
                image::Rgba([220, 30, 30, 255])
            } else {
                image::Rgba([40, 90, 40, 255])
            }
        });
        let img = Arc::new(LoadedImage::from_pixels("t.png", px));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let row = bench_images("t", &[img.clone(), img], &rt);
        assert_eq!(row.images, 2);
        assert!(row.session_mb > 0.0);
        assert!(row.segment_max >= row.segment_median);
        assert!(row.segment_median > Duration::ZERO);
        assert!(row.mask_median > Duration::ZERO && row.mask_median <= row.segment_max);
    }
}
