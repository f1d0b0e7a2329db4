//! `aicut bench --engine sam --model FILE`: a SAM model's load, encoder, decoder and
//! click-to-mask times and peak memory, on the given photos and a 12 MP version of the
//! first. `tools/sam-reference/make_fixture.py --bench` prints PyTorch's encoder and
//! decoder times on the same machine for the side-by-side table.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;

use super::median;
use crate::engine::sam::{SamImage, SamModel};
use crate::engine::{Dot, Prompt};
use crate::imageio::LoadedImage;

/// Encoder runs per photo and decoder runs per click, for the medians.
const ENCODER_RUNS: usize = 3;
const DECODER_RUNS: usize = 10;

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// CPU time used so far by all of the process's threads: on a shared machine it moves
/// less with other processes' load than wall time does.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn process_cpu() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn process_cpu() -> Option<Duration> {
    None
}

/// The process's peak resident memory in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Clicks that grow like a user's: the middle, then alternately red and green around it.
fn clicks(w: u32, h: u32) -> Vec<Prompt> {
    let (w, h) = (w as f64, h as f64);
    let mut p = Prompt {
        green: vec![Dot::new(w * 0.5, h * 0.5)],
        red: vec![],
    };
    let mut out = vec![p.clone()];
    for i in 0..DECODER_RUNS - 1 {
        let t = i as f64 / DECODER_RUNS as f64;
        let dot = Dot::new(w * (0.2 + 0.6 * t), h * (0.8 - 0.6 * t));
        if i % 2 == 0 {
            p.red.push(dot);
        } else {
            p.green.push(dot);
        }
        out.push(p.clone());
    }
    out
}

/// Median time of each new click (one decoder run plus the full-resolution mask).
fn click_to_mask(image: &SamImage, w: u32, h: u32) -> Result<Duration, String> {
    let mut times = Vec::new();
    for prompt in clicks(w, h) {
        let t = Instant::now();
        image.predict(&prompt).map_err(|e| e.to_string())?;
        times.push(t.elapsed());
    }
    Ok(median(times))
}

struct Measured {
    encoder: Duration,
    decoder: Duration,
    /// CPU time per decoder run (all threads), the mean over the runs, where known.
    decoder_cpu: Option<Duration>,
    click_to_mask: Duration,
}

fn measure(model: &Arc<SamModel>, photo: &RgbImage) -> Result<Measured, String> {
    let mut encodes = Vec::new();
    let mut image = None;
    for _ in 0..ENCODER_RUNS {
        let t = Instant::now();
        image = Some(model.prepare_image(photo).map_err(|e| e.to_string())?);
        encodes.push(t.elapsed());
    }
    let image = image.ok_or("no encoder run")?;
    let one = &clicks(photo.width(), photo.height())[0];
    let mut decodes = Vec::new();
    let cpu = process_cpu();
    for _ in 0..DECODER_RUNS {
        let t = Instant::now();
        image.run_decoder(one).map_err(|e| e.to_string())?;
        decodes.push(t.elapsed());
    }
    let decoder_cpu = match (cpu, process_cpu()) {
        (Some(start), Some(end)) => Some((end - start) / DECODER_RUNS as u32),
        _ => None,
    };
    Ok(Measured {
        encoder: median(encodes),
        decoder: median(decodes),
        decoder_cpu,
        click_to_mask: click_to_mask(&image, photo.width(), photo.height())?,
    })
}

/// Runs the benchmark on a model file and photos; returns a Markdown table.
pub fn run(model_path: &Path, photos: &[Arc<LoadedImage>]) -> Result<String, String> {
    let first = photos.first().ok_or("no readable images")?;
    let file_mib = std::fs::metadata(model_path)
        .map(|m| m.len() as f64 / (1024.0 * 1024.0))
        .map_err(|e| format!("{}: {e}", model_path.display()))?;
    let t = Instant::now();
    let model = Arc::new(SamModel::load(model_path).map_err(|e| e.to_string())?);
    let load = t.elapsed();
    let twelve_mp = image::imageops::resize(
        &first.to_rgb(),
        4000,
        3000,
        image::imageops::FilterType::Triangle,
    );
    let mut out = format!(
        "{} ({file_mib:.0} MiB), loaded in {} ms, {} threads\n\n\
         | photo | size | encoder ms | decoder ms | decoder CPU ms | click-to-mask ms |\n\
         |---|---|---|---|---|---|\n",
        model.label(),
        ms(load),
        rayon::current_num_threads(),
    );
    let mut rows: Vec<(String, RgbImage)> = photos
        .iter()
        .take(3)
        .map(|p| (p.name.clone(), p.to_rgb()))
        .collect();
    rows.push(("first, scaled to 12 MP".into(), twelve_mp));
    for (name, photo) in rows {
        let m = measure(&model, &photo)?;
        out += &format!(
            "| {name} | {}x{} | {} | {} | {} | {} |\n",
            photo.width(),
            photo.height(),
            ms(m.encoder),
            ms(m.decoder),
            m.decoder_cpu.map_or("n/a".into(), ms),
            ms(m.click_to_mask)
        );
    }
    if let Some(peak) = peak_rss_mib() {
        out += &format!(
            "\npeak memory {peak:.0} MiB = {:.2}x the model file\n",
            peak / file_mib
        );
    }
    Ok(out)
}
