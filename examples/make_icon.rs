//! Renders assets/icon.png (256 px), the raster twin of assets/icon.svg:
//! `cargo run --example make_icon`. A checkerboard (transparency) in a rounded square,
//! an orange subject with the selection outline, a green dot on it and a red dot beside.

use image::{Rgba, RgbaImage};

const S: u32 = 256;

/// Coverage of a pixel by a shape given as a signed distance (negative inside).
fn cover(d: f32) -> f32 {
    (0.5 - d).clamp(0.0, 1.0)
}

fn blend(px: &mut Rgba<u8>, c: [u8; 3], a: f32) {
    let inv = 1.0 - a;
    for (dst, src) in px.0.iter_mut().zip(c) {
        *dst = (src as f32 * a + *dst as f32 * inv).round() as u8;
    }
    px.0[3] = ((a * 255.0) + px.0[3] as f32 * inv).round().min(255.0) as u8;
}

fn rounded_rect(x: f32, y: f32, half: f32, r: f32) -> f32 {
    let qx = (x - 128.0).abs() - (half - r);
    let qy = (y - 128.0).abs() - (half - r);
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
    outside + qx.max(qy).min(0.0) - r
}

fn circle(x: f32, y: f32, cx: f32, cy: f32, r: f32) -> f32 {
    ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - r
}

fn main() {
    let mut img = RgbaImage::new(S, S);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let bg = cover(rounded_rect(fx, fy, 120.0, 40.0));
        if bg > 0.0 {
            let light = ((x / 32) + (y / 32)) % 2 == 0;
            let c = if light {
                [226, 230, 236]
            } else {
                [176, 184, 196]
            };
            blend(px, c, bg);
        }
        // The subject: an orange disc with a yellow selection ring.
        let d = circle(fx, fy, 118.0, 122.0, 70.0);
        blend(px, [245, 140, 40], cover(d) * bg);
        blend(px, [255, 214, 0], cover(d.abs() - 5.0) * bg);
        // Green dot on the subject, red dot on the background; white rims, dark edges.
        for (cx, cy, c) in [(108.0, 112.0, [40, 200, 70]), (200.0, 200.0, [235, 50, 50])] {
            blend(px, [20, 20, 20], cover(circle(fx, fy, cx, cy, 22.0)));
            blend(px, [255, 255, 255], cover(circle(fx, fy, cx, cy, 19.0)));
            blend(px, c, cover(circle(fx, fy, cx, cy, 14.0)));
        }
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/icon.png");
    img.save(&out).expect("writes assets/icon.png");
    println!("wrote {}", out.display());
}
