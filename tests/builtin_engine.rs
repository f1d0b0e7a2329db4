//! The built-in engine through the contract, on scenes the test paints itself.

mod common;

use std::sync::Arc;

use aicut::engine::{Dot, Engine, Prompt, builtin};
use aicut::imageio::LoadedImage;
use common::*;
use image::{DynamicImage, RgbImage};

fn loaded(img: &RgbImage) -> Arc<LoadedImage> {
    Arc::new(LoadedImage::from_pixels(
        "scene.png",
        DynamicImage::ImageRgb8(img.clone()).to_rgba8(),
    ))
}

#[tokio::test]
async fn one_click_selects_the_shape_over_a_textured_background() {
    let (img, truth, (cx, cy)) = blob_scene(320, 240);
    let engine = builtin::engine(Default::default());
    let session = engine.initialize(loaded(&img)).await.unwrap();
    let prompt = Prompt {
        green: vec![Dot::new(cx, cy)],
        red: vec![],
    };
    let mask = engine.segment(&session, &prompt, 1).await.unwrap();
    assert_eq!(mask.dimensions(), (320, 240), "mask at full resolution");
    let score = iou(&mask, &truth);
    assert!(score > 0.9, "IoU {score:.3}");
}

#[tokio::test]
async fn a_red_dot_carves_out_a_touching_region_of_another_colour() {
    let mut img = textured_background(300, 200, 3);
    // Two touching squares: blue on the left, orange on the right.
    let blue = paint(&mut img, [40, 60, 210], 5, |x, y| {
        (70.0..150.0).contains(&x) && (60.0..140.0).contains(&y)
    });
    let orange = paint(&mut img, [235, 140, 30], 6, |x, y| {
        (150.0..230.0).contains(&x) && (60.0..140.0).contains(&y)
    });
    let engine = builtin::engine(Default::default());
    let session = engine.initialize(loaded(&img)).await.unwrap();

    let both = Prompt {
        green: vec![Dot::new(110.0, 100.0), Dot::new(190.0, 100.0)],
        red: vec![],
    };
    let mask = engine.segment(&session, &both, 1).await.unwrap();
    let union = image::GrayImage::from_fn(300, 200, |x, y| {
        image::Luma([blue.get_pixel(x, y).0[0].max(orange.get_pixel(x, y).0[0])])
    });
    let score = iou(&mask, &union);
    assert!(score > 0.85, "both squares selected first: IoU {score:.3}");

    // The same session, no new initialize: a red dot on the orange square removes it.
    let carved = Prompt {
        green: vec![Dot::new(110.0, 100.0)],
        red: vec![Dot::new(190.0, 100.0)],
    };
    let mask = engine.segment(&session, &carved, 2).await.unwrap();
    let score = iou(&mask, &blue);
    assert!(score > 0.9, "only the blue square remains: IoU {score:.3}");
    let orange_left = mask
        .pixels()
        .zip(orange.pixels())
        .filter(|(m, o)| m.0[0] >= 128 && o.0[0] == 255)
        .count();
    assert!(
        orange_left < 200,
        "{orange_left} orange pixels still selected"
    );
}

#[tokio::test]
async fn alpha_is_soft_along_the_boundary_and_hard_inside() {
    let (img, _truth, (cx, cy)) = blob_scene(320, 240);
    let engine = builtin::engine(Default::default());
    let session = engine.initialize(loaded(&img)).await.unwrap();
    let prompt = Prompt {
        green: vec![Dot::new(cx, cy)],
        red: vec![],
    };
    let mask = engine.segment(&session, &prompt, 1).await.unwrap();
    assert_eq!(mask.get_pixel(cx as u32, cy as u32).0[0], 255);
    assert_eq!(mask.get_pixel(2, 2).0[0], 0);
    let soft = mask.pixels().filter(|p| p.0[0] > 0 && p.0[0] < 255).count();
    assert!(soft > 0, "no anti-aliased pixels along the boundary");
}

#[tokio::test]
async fn a_dot_outside_the_image_or_no_dot_is_refused_and_a_closed_session_is_not_found() {
    let (img, _, _) = blob_scene(64, 48);
    let engine = builtin::engine(Default::default());
    let session = engine.initialize(loaded(&img)).await.unwrap();
    let outside = Prompt {
        green: vec![Dot::new(64.0, 10.0)],
        red: vec![],
    };
    let err = engine.segment(&session, &outside, 1).await.unwrap_err();
    assert_eq!(err.http_status(), 400, "{err}");
    let none = Prompt::default();
    assert_eq!(
        engine
            .segment(&session, &none, 2)
            .await
            .unwrap_err()
            .http_status(),
        400
    );
    engine.close(&session).await;
    let ok = Prompt {
        green: vec![Dot::new(10.0, 10.0)],
        red: vec![],
    };
    let err = engine.segment(&session, &ok, 3).await.unwrap_err();
    assert_eq!(err.http_status(), 404, "{err}");
}
