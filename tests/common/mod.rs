//! Synthetic images shared by the integration tests: generated, never downloaded.
#![allow(dead_code)] // each test binary uses a different subset

use image::{GrayImage, Luma, Rgb, RgbImage};

pub mod broken;

/// A tiny deterministic PRNG (xorshift) so textures are the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
    /// Uniform in [-amp, amp].
    pub fn jitter(&mut self, amp: i32) -> i32 {
        (self.next_u32() % (2 * amp as u32 + 1)) as i32 - amp
    }
}

fn clamp8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// A busy, multi-coloured background: blotches of green/brown/grey plus pixel noise.
pub fn textured_background(w: u32, h: u32, seed: u64) -> RgbImage {
    let mut rng = Rng::new(seed);
    let palette = [
        [70, 110, 60],
        [120, 100, 70],
        [90, 90, 95],
        [60, 80, 50],
        [140, 130, 110],
    ];
    let cell = 12;
    let cols = w.div_ceil(cell);
    let rows = h.div_ceil(cell);
    let cells: Vec<[i32; 3]> = (0..cols * rows)
        .map(|_| palette[(rng.next_u32() % palette.len() as u32) as usize])
        .collect();
    RgbImage::from_fn(w, h, |x, y| {
        let c = cells[((y / cell) * cols + x / cell) as usize];
        Rgb([
            clamp8(c[0] + rng.jitter(18)),
            clamp8(c[1] + rng.jitter(18)),
            clamp8(c[2] + rng.jitter(18)),
        ])
    })
}

/// Paints `color` (with light noise) wherever `inside(x, y)` holds; returns the true mask.
pub fn paint(
    img: &mut RgbImage,
    color: [i32; 3],
    seed: u64,
    inside: impl Fn(f64, f64) -> bool,
) -> GrayImage {
    let mut rng = Rng::new(seed);
    let mut mask = GrayImage::new(img.width(), img.height());
    for (x, y, px) in img.enumerate_pixels_mut() {
        if inside(x as f64 + 0.5, y as f64 + 0.5) {
            *px = Rgb([
                clamp8(color[0] + rng.jitter(10)),
                clamp8(color[1] + rng.jitter(10)),
                clamp8(color[2] + rng.jitter(10)),
            ]);
            mask.put_pixel(x, y, Luma([255]));
        }
    }
    mask
}

/// IoU of two masks thresholded at half.
pub fn iou(a: &GrayImage, b: &GrayImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let (mut inter, mut union) = (0u64, 0u64);
    for (p, q) in a.pixels().zip(b.pixels()) {
        let (p, q) = (p.0[0] >= 128, q.0[0] >= 128);
        inter += (p && q) as u64;
        union += (p || q) as u64;
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// A red star-ish blob (not a disc, so a disc around the click would fail) on texture.
pub fn blob_scene(w: u32, h: u32) -> (RgbImage, GrayImage, (f64, f64)) {
    let mut img = textured_background(w, h, 7);
    let (cx, cy) = (w as f64 * 0.5, h as f64 * 0.5);
    let r = w.min(h) as f64 * 0.3;
    let mask = paint(&mut img, [200, 40, 45], 11, |x, y| {
        let (dx, dy) = (x - cx, y - cy);
        let a = dy.atan2(dx);
        let radius = r * (0.75 + 0.25 * (3.0 * a).cos());
        (dx * dx + dy * dy).sqrt() < radius
    });
    (img, mask, (cx, cy))
}

/// PNG bytes of an image.
pub fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A real `aicut serve` process on a free loopback port; killed on drop.
pub struct ServeProcess {
    child: std::process::Child,
    pub url: String,
}

impl ServeProcess {
    pub fn start(extra_args: &[&str]) -> ServeProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aicut"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(extra_args)
            .env_remove("AICUT_REDIS_URL")
            .env_remove("AICUT_SERVE_API_KEYS")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // It prints the URL it listens on to stderr once bound.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut url = None;
        for _ in 0..50 {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(rest) = line.split("AI Cut API on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_string);
                break;
            }
        }
        std::thread::spawn(move || for _ in stderr.lines() {}); // keep the pipe drained
        ServeProcess {
            child,
            url: url.expect("aicut serve printed its URL"),
        }
    }

    /// kill -9: no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`TERM`, `INT`) with `kill`.
    pub fn signal(&self, name: &str) {
        let _ = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
    }

    /// SIGTERM, as a service manager stops it; returns once it has exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.child.wait().unwrap()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal little-endian TIFF/Exif block holding only the orientation tag.
pub fn exif_with_orientation(o: u16) -> Vec<u8> {
    let mut v = b"II*\0".to_vec();
    v.extend_from_slice(&8u32.to_le_bytes()); // first IFD at offset 8
    v.extend_from_slice(&1u16.to_le_bytes()); // one entry
    v.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    v.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    v.extend_from_slice(&1u32.to_le_bytes()); // count
    v.extend_from_slice(&o.to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    v
}

/// Writes a MobileSAM checkpoint with synthetic weights: real tensors and names,
/// meaningless masks. No weights can be downloaded in tests.
pub fn write_random_mobile_sam(path: &std::path::Path) {
    use aicut::engine::sam::{EncoderConfig, synthetic};
    synthetic::write_safetensors(&EncoderConfig::TinyVit, path).unwrap();
}

/// A clock that moves only when the test says: handed to the server (its session and
/// download expiry, its rate limits) so tests skip time instead of sleeping through it.
#[derive(Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<std::time::Instant>>);

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock(std::sync::Arc::new(std::sync::Mutex::new(
            std::time::Instant::now(),
        )))
    }
}

impl ManualClock {
    pub fn advance(&self, by: std::time::Duration) {
        *self.0.lock().unwrap() += by;
    }

    /// The clock in the form the server's config takes.
    pub fn clock(&self) -> aicut::engine::store::Clock {
        let now = self.0.clone();
        std::sync::Arc::new(move || *now.lock().unwrap())
    }
}
