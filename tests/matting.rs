//! Soft edges on synthetic images whose alpha and foreground are known exactly: a soft disc
//! and hair-like strands over two backgrounds. Each test compares against the hard edge
//! (the selection as it is), which fails the same bounds.

use aicut::matting::{self, EdgeOptions, Edges, trimap};
use image::{GrayImage, Luma, Rgba, RgbaImage};

type Rgb = [f32; 3];

/// An image composited from known alpha, foreground and background (I = αF + (1−α)B).
struct Scene {
    image: RgbaImage,
    alpha: Vec<f32>,
    fg: Vec<Rgb>,
    w: u32,
    h: u32,
}

impl Scene {
    fn new(
        w: u32,
        h: u32,
        alpha: impl Fn(u32, u32) -> f32,
        fg: impl Fn(u32, u32) -> Rgb,
        bg: impl Fn(u32, u32) -> Rgb,
    ) -> Scene {
        let mut image = RgbaImage::new(w, h);
        let (mut alphas, mut fgs) = (Vec::new(), Vec::new());
        for y in 0..h {
            for x in 0..w {
                let (a, f, b) = (alpha(x, y), fg(x, y), bg(x, y));
                let c = |i: usize| ((a * f[i] + (1.0 - a) * b[i]) * 255.0).round() as u8;
                image.put_pixel(x, y, Rgba([c(0), c(1), c(2), 255]));
                alphas.push(a);
                fgs.push(f);
            }
        }
        Scene {
            image,
            alpha: alphas,
            fg: fgs,
            w,
            h,
        }
    }

    /// The selection an engine would give at best: alpha thresholded at one half.
    fn selection(&self) -> GrayImage {
        GrayImage::from_fn(self.w, self.h, |x, y| {
            Luma([if self.alpha[(y * self.w + x) as usize] >= 0.5 {
                255
            } else {
                0
            }])
        })
    }

    /// SAD (sum of |error|, in alpha units / 1000) and MSE (× 1000) of an 8-bit matte.
    fn errors(&self, matte: &GrayImage) -> (f64, f64) {
        let (mut sad, mut sq) = (0.0f64, 0.0f64);
        for (m, &a) in matte.as_raw().iter().zip(&self.alpha) {
            let d = (*m as f64 / 255.0 - a as f64).abs();
            sad += d;
            sq += d * d;
        }
        (sad / 1000.0, sq / self.alpha.len() as f64 * 1000.0)
    }

    /// Mean |colour − true foreground| (0..1 a channel) over pixels whose true alpha is
    /// clearly partial, where the old background shows through most.
    fn colour_error(&self, px: &RgbaImage) -> f64 {
        let (mut sum, mut n) = (0.0f64, 0usize);
        for (i, p) in px.pixels().enumerate() {
            if (0.3..=0.9).contains(&self.alpha[i]) {
                for c in 0..3 {
                    sum += (p.0[c] as f64 / 255.0 - self.fg[i][c] as f64).abs();
                }
                n += 3;
            }
        }
        assert!(n > 0, "the scene has partial alpha");
        sum / n as f64
    }
}

fn soft(band: u32) -> EdgeOptions {
    EdgeOptions {
        edges: Edges::Soft,
        band,
    }
}

/// A disc with a 12-pixel linear fall-off, orange over a blue that darkens downwards.
fn soft_disc() -> Scene {
    Scene::new(
        112,
        104,
        |x, y| {
            let d = ((x as f32 - 55.0).powi(2) + (y as f32 - 50.0).powi(2)).sqrt();
            ((34.0 - d) / 12.0).clamp(0.0, 1.0)
        },
        |x, _| [0.92, 0.45 + 0.2 * x as f32 / 112.0, 0.12],
        |_, y| [0.1, 0.3, 0.9 - 0.3 * y as f32 / 104.0],
    )
}

/// A brown head of hair ending in strands (a dense core and a fainter side each, lengths
/// varying) over a blue left half and a pale green right half.
fn strands() -> Scene {
    let alpha = |x: u32, y: u32| {
        if y < 30 {
            return 1.0;
        }
        let length = 18 + (x * 7) % 23;
        if y >= 30 + length {
            return 0.0;
        }
        match x % 6 {
            2 => 0.85,
            3 => 0.45,
            _ => 0.0,
        }
    };
    Scene::new(
        120,
        90,
        alpha,
        |_, _| [0.55, 0.35, 0.2],
        |x, _| {
            if x < 60 {
                [0.1, 0.2, 0.8]
            } else {
                [0.6, 0.9, 0.5]
            }
        },
    )
}

#[test]
fn a_soft_disc_gets_its_fall_off_back_where_the_hard_edge_loses_it() {
    let scene = soft_disc();
    let selection = scene.selection();
    let (hard_sad, hard_mse) = scene.errors(&selection);
    let cut = matting::soft_cut(&scene.image, &selection, soft(4)).expect("soft edges");
    let (sad, mse) = scene.errors(&cut.alpha);
    assert!(
        sad < 0.4 * hard_sad && mse < 0.15 * hard_mse,
        "soft SAD {sad:.3} MSE {mse:.3}; hard SAD {hard_sad:.3} MSE {hard_mse:.3}"
    );
    assert!(sad < 0.25, "soft SAD {sad:.3}");
    // Far inside and far outside stay exactly opaque and transparent.
    assert_eq!(cut.alpha.get_pixel(55, 50).0[0], 255);
    assert_eq!(cut.alpha.get_pixel(2, 2).0[0], 0);
}

#[test]
fn hair_like_strands_over_two_backgrounds_keep_their_partial_alpha() {
    let scene = strands();
    let selection = scene.selection();
    let (hard_sad, hard_mse) = scene.errors(&selection);
    let cut = matting::soft_cut(&scene.image, &selection, soft(4)).expect("soft edges");
    let (sad, mse) = scene.errors(&cut.alpha);
    assert!(
        sad < 0.35 * hard_sad && mse < 0.2 * hard_mse,
        "soft SAD {sad:.3} MSE {mse:.3}; hard SAD {hard_sad:.3} MSE {hard_mse:.3}"
    );
}

#[test]
fn decontaminated_colours_match_the_true_foreground_not_the_old_background() {
    for (name, scene) in [("disc", soft_disc()), ("strands", strands())] {
        let selection = scene.selection();
        let raw = scene.colour_error(&scene.image);
        let cut = aicut::imageio::compose_edges(&scene.image, &selection, soft(4));
        let cleaned = scene.colour_error(&cut);
        assert!(
            cleaned < 0.06 && cleaned < 0.3 * raw,
            "{name}: colour error {cleaned:.3} after, {raw:.3} in the image"
        );
        // Straight colour: a partial pixel's colour is not darkened by its alpha.
        let (i, _) = scene
            .alpha
            .iter()
            .enumerate()
            .find(|(_, a)| (0.4..0.6).contains(*a))
            .unwrap();
        let p = cut.as_raw()[i * 4..i * 4 + 4].to_vec();
        assert!(p[3] > 60 && p[3] < 200, "partial alpha {p:?}");
        assert!(p[0] as f32 / 255.0 > 0.9 * scene.fg[i][0], "{p:?}");
    }
}

/// Large photos are matted at a working level (blocks of s×s) and brought back to full
/// size: the strands, one pixel wide, are finer than a block, yet their alpha and colours
/// come back from the full-size image.
#[test]
fn a_working_level_coarser_than_the_strands_still_recovers_them() {
    for (name, scene) in [("disc", soft_disc()), ("strands", strands())] {
        let selection = scene.selection();
        let (w, h) = (scene.w as usize, scene.h as usize);
        let tri = trimap::band_from_mask(scene.image.as_raw(), selection.as_raw(), w, h, 4);
        let (hard_sad, _) = scene.errors(&selection);
        let (full_sad, _) = scene.errors(&matting::matte_at(&scene.image, &tri, 1).image());
        let raw = scene.colour_error(&scene.image);
        for s in [2, 3] {
            let matte = matting::matte_at(&scene.image, &tri, s);
            let (sad, _) = scene.errors(&matte.image());
            assert!(
                sad < 0.2 * hard_sad && sad < 2.0 * full_sad + 0.02,
                "{name} at 1/{s}: SAD {sad:.3}; full size {full_sad:.3}, hard {hard_sad:.3}"
            );
            let cut = aicut::imageio::compose_soft(&scene.image, &matte.cut(&scene.image));
            let cleaned = scene.colour_error(&cut);
            assert!(
                cleaned < 0.04 && cleaned < 0.25 * raw,
                "{name} at 1/{s}: colour error {cleaned:.3} after, {raw:.3} in the image"
            );
        }
    }
}

#[test]
fn hard_edges_leave_the_selection_and_colours_as_they_are() {
    let scene = soft_disc();
    let selection = scene.selection();
    assert!(matting::soft_cut(&scene.image, &selection, EdgeOptions::HARD).is_none());
    let cut = aicut::imageio::compose_edges(&scene.image, &selection, EdgeOptions::HARD);
    for (c, (p, m)) in cut.pixels().zip(selection.pixels()).enumerate() {
        assert_eq!(p.0[3], m.0[0], "pixel {c}");
        assert_eq!(&p.0[..3], &scene.image.as_raw()[c * 4..c * 4 + 3]);
    }
}

#[test]
fn the_closed_form_solve_recovers_the_disc_under_an_exact_trimap() {
    let scene = soft_disc();
    let tri: Vec<u8> = scene
        .alpha
        .iter()
        .map(|&a| match a {
            0.0 => trimap::BACKGROUND,
            1.0 => trimap::FOREGROUND,
            _ => trimap::UNKNOWN,
        })
        .collect();
    let img = matting::to_float(scene.image.as_raw());
    let alpha = matting::solve_alpha(&img, &tri, scene.w as usize, scene.h as usize);
    let worst = alpha
        .iter()
        .zip(&scene.alpha)
        .map(|(a, t)| (a - t).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 0.06, "largest alpha error {worst:.3}");
}

#[test]
fn the_band_is_wider_on_strands_than_on_a_crisp_edge() {
    // Left half: one crisp step; right half: strands. Same selection edge (y = 40).
    let scene = Scene::new(
        160,
        100,
        |x, y| {
            if y < 40 || (x >= 80 && x % 5 == 1 && y < 70) {
                1.0
            } else {
                0.0
            }
        },
        |_, _| [0.8, 0.6, 0.3],
        |_, _| [0.1, 0.1, 0.4],
    );
    let selection = GrayImage::from_fn(160, 100, |_, y| Luma([if y < 40 { 255 } else { 0 }]));
    let tri = trimap::band_from_mask(scene.image.as_raw(), selection.as_raw(), 160, 100, 8);
    let width_at = |x: usize| {
        (0..100)
            .filter(|&y| tri[y * 160 + x] == trimap::UNKNOWN)
            .count()
    };
    let (crisp, fine) = (width_at(30), width_at(130));
    assert!((4..=12).contains(&crisp), "crisp edge band {crisp}");
    assert!(fine >= 2 * crisp, "strand band {fine} vs crisp {crisp}");
}

#[test]
fn aicut_matte_writes_the_alpha_of_an_image_under_a_trimap() {
    let dir = tempfile::tempdir().unwrap();
    let scene = soft_disc();
    let (image, tri, out) = (
        dir.path().join("disc.png"),
        dir.path().join("trimap.png"),
        dir.path().join("alpha.png"),
    );
    scene.image.save(&image).unwrap();
    let trimap = GrayImage::from_fn(scene.w, scene.h, |x, y| {
        Luma([match scene.alpha[(y * scene.w + x) as usize] {
            0.0 => 0,
            1.0 => 255,
            _ => 128,
        }])
    });
    trimap.save(&tri).unwrap();
    let run = |args: &[&std::path::Path]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aicut"))
            .arg("matte")
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&[&image, &tri, "-o".as_ref(), &out]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let matte = image::open(&out).unwrap().into_luma8();
    let (sad, _) = scene.errors(&matte);
    let (hard_sad, _) = scene.errors(&scene.selection());
    assert!(sad < 0.2 * hard_sad, "SAD {sad:.3} vs hard {hard_sad:.3}");

    // A trimap of another size is refused with a message, not a panic.
    GrayImage::new(10, 10).save(&tri).unwrap();
    let o = run(&[&image, &tri, "-o".as_ref(), &out]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("the trimap is 10x10"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
