//! The built-in engine's object-level behaviour (issue 11), on scenes the test paints:
//! one click on a small object selects the object rather than the large region of
//! similar colour around it; corrections change the selection around the click and
//! leave the rest alone; runner-up candidates are offered and can be chosen.

mod common;

use std::sync::Arc;

use aicut::engine::{Dot, Engine, Prompt, builtin};
use aicut::imageio::LoadedImage;
use common::*;
use image::{DynamicImage, GrayImage, RgbImage};

fn loaded(img: &RgbImage) -> Arc<LoadedImage> {
    Arc::new(LoadedImage::from_pixels(
        "scene.png",
        DynamicImage::ImageRgb8(img.clone()).to_rgba8(),
    ))
}

fn prompt(green: &[(f64, f64)], red: &[(f64, f64)]) -> Prompt {
    Prompt {
        green: green.iter().map(|&(x, y)| Dot::new(x, y)).collect(),
        red: red.iter().map(|&(x, y)| Dot::new(x, y)).collect(),
    }
}

/// The built-in engine's answer to a single green click on `img`.
async fn one_click(img: &RgbImage, at: (f64, f64)) -> GrayImage {
    let engine = builtin::engine(Default::default());
    let session = engine.initialize(loaded(img)).await.unwrap();
    engine
        .segment(&session, &prompt(&[at], &[]), 1)
        .await
        .unwrap()
}

fn selected(mask: &GrayImage) -> usize {
    mask.pixels().filter(|p| p.0[0] >= 128).count()
}

/// A light table filling the picture (to every border) with a small, slightly darker
/// object on it: a knife-sized bar of about 0.4% of the picture. Colour alone barely
/// tells them apart; the object's edge does.
fn small_object_on_a_table() -> (RgbImage, GrayImage, (f64, f64)) {
    let (w, h) = (480, 360);
    let mut img = RgbImage::new(w, h);
    paint(&mut img, [205, 198, 186], 21, |_, _| true);
    let object = paint(&mut img, [170, 163, 150], 22, |x, y| {
        (200.0..260.0).contains(&x) && (170.0..182.0).contains(&y)
    });
    (img, object, (230.0, 176.0))
}

#[tokio::test]
async fn one_click_on_a_small_object_selects_it_not_the_table_around_it() {
    let (img, truth, (cx, cy)) = small_object_on_a_table();
    let mask = one_click(&img, (cx, cy)).await;
    let score = iou(&mask, &truth);
    assert!(
        score > 0.7,
        "IoU {score:.3}: {} pixels selected for an object of {}",
        selected(&mask),
        selected(&truth)
    );
}

/// A red disc on a busy background; returns the image, the disc and its centre/radius.
fn disc_scene() -> (RgbImage, GrayImage, (f64, f64, f64)) {
    let mut img = textured_background(360, 270, 31);
    let (cx, cy, r) = (170.0, 135.0, 70.0);
    let disc = paint(&mut img, [200, 45, 50], 32, |x, y| {
        (x - cx).hypot(y - cy) < r
    });
    (img, disc, (cx, cy, r))
}

#[tokio::test]
async fn a_red_click_just_outside_the_boundary_leaves_the_object_selected() {
    let (img, disc, (cx, cy, r)) = disc_scene();
    let engine = builtin::engine(Default::default());
    let session = engine.initialize(loaded(&img)).await.unwrap();
    let first = engine
        .segment(&session, &prompt(&[(cx, cy)], &[]), 1)
        .await
        .unwrap();
    let before = iou(&first, &disc);
    assert!(
        before > 0.9,
        "the first click selects the disc: IoU {before:.3}"
    );
    // Red dots hugging the boundary, one after another, on three sides.
    let mut reds = Vec::new();
    for (n, angle) in [0.3f64, 2.0, 4.0].into_iter().enumerate() {
        reds.push((cx + (r + 4.0) * angle.cos(), cy + (r + 4.0) * angle.sin()));
        let mask = engine
            .segment(&session, &prompt(&[(cx, cy)], &reds), n as u64 + 2)
            .await
            .unwrap();
        let after = iou(&mask, &disc);
        assert!(
            after > before - 0.05,
            "red dot {} beside the boundary: IoU {before:.3} -> {after:.3}",
            n + 1
        );
    }
}

#[tokio::test]
async fn a_green_click_on_a_missed_part_adds_that_part_and_nothing_far_away() {
    // A disc with a second, differently coloured lobe that one click does not take;
    // far away, a patch of the lobe's colour that must stay out.
    let mut img = textured_background(400, 300, 41);
    let body = paint(&mut img, [200, 45, 50], 42, |x, y| {
        (x - 150.0).hypot(y - 150.0) < 60.0
    });
    let lobe = paint(&mut img, [230, 200, 40], 43, |x, y| {
        (x - 222.0).hypot(y - 150.0) < 30.0 && (x - 150.0).hypot(y - 150.0) >= 60.0
    });
    let decoy = paint(&mut img, [230, 200, 40], 44, |x, y| {
        (x - 350.0).hypot(y - 60.0) < 25.0
    });
    let truth = GrayImage::from_fn(400, 300, |x, y| {
        image::Luma([body.get_pixel(x, y).0[0].max(lobe.get_pixel(x, y).0[0])])
    });
    let engine = builtin::engine(Default::default());
    let session = engine.initialize(loaded(&img)).await.unwrap();
    let one = engine
        .segment(&session, &prompt(&[(150.0, 150.0)], &[]), 1)
        .await
        .unwrap();
    let two = engine
        .segment(&session, &prompt(&[(150.0, 150.0), (232.0, 150.0)], &[]), 2)
        .await
        .unwrap();
    let (a, b) = (iou(&one, &truth), iou(&two, &truth));
    assert!(
        b > 0.88 && b >= a,
        "the lobe is added: IoU {a:.3} -> {b:.3}"
    );
    let decoy_taken = decoy
        .enumerate_pixels()
        .filter(|(x, y, p)| p.0[0] >= 128 && two.get_pixel(*x, *y).0[0] >= 128)
        .count();
    assert_eq!(decoy_taken, 0, "the far patch of the same colour stays out");
}

#[tokio::test]
async fn a_first_click_offers_runner_ups_and_a_choice_is_what_later_clicks_refine() {
    // A small object on a table: the object is the answer, and the engine also offers
    // other readings of the click. Choosing one makes it the answer.
    let (img, truth, (cx, cy)) = small_object_on_a_table();
    let engine = builtin::engine(Default::default());
    let session = engine.initialize(loaded(&img)).await.unwrap();
    let first = prompt(&[(cx, cy)], &[]);
    let answer = engine.segment(&session, &first, 1).await.unwrap();
    let candidates = engine.candidates(&session, &first, 2).await.unwrap();
    assert!(candidates.len() >= 2, "{} candidates", candidates.len());
    assert_eq!(
        candidates[0].as_raw(),
        answer.as_raw(),
        "the answer comes first"
    );
    for pair in candidates.windows(2) {
        assert!(iou(&pair[0], &pair[1]) < 0.95, "candidates differ");
    }
    engine.choose(&session, &first, 1).await.unwrap();
    let chosen = engine.segment(&session, &first, 3).await.unwrap();
    assert_eq!(chosen.as_raw(), candidates[1].as_raw());
    // Undoing the choice is a choice of candidate 0.
    engine.choose(&session, &first, 0).await.unwrap();
    let back = engine.segment(&session, &first, 4).await.unwrap();
    assert!(iou(&back, &truth) > 0.7);
    let err = engine.choose(&session, &first, 9).await.unwrap_err();
    assert!(err.to_string().contains("no candidate 9"), "{err}");
}

/// A round lamp hanging from a thin cable of its own colour that runs across a plain
/// wall from one side of the picture to the other.
fn lamp_on_a_cable() -> (RgbImage, GrayImage, (f64, f64)) {
    let (w, h) = (480, 360);
    let mut img = RgbImage::new(w, h);
    paint(&mut img, [215, 205, 185], 41, |_, _| true);
    let dark = [45, 42, 45];
    paint(&mut img, dark, 42, |_, y| (90.0..94.0).contains(&y));
    paint(&mut img, dark, 43, |x, y| {
        (238.0..242.0).contains(&x) && (92.0..135.0).contains(&y)
    });
    let (cx, cy) = (240.0, 180.0);
    let lamp = paint(&mut img, dark, 44, |x, y| (x - cx).hypot(y - cy) < 50.0);
    (img, lamp, (cx, cy))
}

#[tokio::test]
async fn one_click_on_a_hanging_lamp_selects_the_lamp_not_the_cable_across_the_picture() {
    let (img, lamp, (cx, cy)) = lamp_on_a_cable();
    let mask = one_click(&img, (cx, cy)).await;
    // The cable's far ends, beyond any box around the lamp.
    let ends = mask
        .enumerate_pixels()
        .filter(|(x, _, p)| (*x < 40 || *x >= 440) && p.0[0] >= 128)
        .count();
    let score = iou(&mask, &lamp);
    assert!(
        ends == 0 && score > 0.8,
        "IoU {score:.3}, {ends} pixels selected at the cable's ends"
    );
}
