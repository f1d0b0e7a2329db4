//! The SAM engine's real loading and inference code, on a MobileSAM checkpoint with random
//! weights that the test writes itself (no model can be downloaded here). Random weights
//! give meaningless masks, so these tests check the plumbing: recognition of the
//! variant, shapes, full-resolution output, determinism, and clear errors.

mod common;

use std::process::Command;
use std::sync::Arc;

use aicut::engine::sam::{self, SamModel, SamVariant};
use aicut::engine::{Dot, Engine, Prompt};
use aicut::imageio::LoadedImage;
use candle_core::{DType, Device};
use common::*;
use image::DynamicImage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mobile_sam_checkpoint_is_recognised_and_segments_deterministically_at_full_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mobile_sam.safetensors");
    write_random_mobile_sam(&model);
    assert_eq!(
        SamModel::load(&model).unwrap().variant(),
        SamVariant::Mobile
    );

    let engine = sam::engine(&model, Default::default()).unwrap();
    assert_eq!(engine.name(), "MobileSAM");
    let (img, _, (cx, cy)) = blob_scene(300, 200);
    let image = Arc::new(LoadedImage::from_pixels(
        "s.png",
        DynamicImage::ImageRgb8(img).to_rgba8(),
    ));
    let session = engine.initialize(image).await.unwrap();
    let one = Prompt {
        green: vec![Dot::new(cx, cy)],
        red: vec![],
    };
    let a = engine.segment(&session, &one, 1).await.unwrap();
    assert_eq!(a.dimensions(), (300, 200));
    let b = engine.segment(&session, &one, 2).await.unwrap();
    assert!(a == b, "the same prompt gives the same mask");
    let two = Prompt {
        green: vec![Dot::new(cx, cy)],
        red: vec![Dot::new(5.0, 5.0), Dot::new(290.0, 190.0)],
    };
    let c = engine.segment(&session, &two, 3).await.unwrap();
    assert_eq!(c.dimensions(), (300, 200));
    let outside = Prompt {
        green: vec![Dot::new(300.0, 5.0)],
        red: vec![],
    };
    assert_eq!(
        engine
            .segment(&session, &outside, 4)
            .await
            .unwrap_err()
            .http_status(),
        400
    );
}

#[test]
fn broken_or_foreign_model_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"definitely not safetensors").unwrap();
    let err = SamModel::load(&junk).err().unwrap().to_string();
    assert!(
        err.contains("cannot load the SAM model") && err.contains("junk.safetensors"),
        "{err}"
    );

    let foreign = dir.path().join("other.safetensors");
    let t = candle_core::Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("fc.weight".to_string(), t)]),
        &foreign,
    )
    .unwrap();
    let err = SamModel::load(&foreign).err().unwrap().to_string();
    assert!(err.contains("no SAM image encoder"), "{err}");

    let text = dir.path().join("model.txt");
    std::fs::write(&text, "x").unwrap();
    assert!(
        SamModel::load(&text)
            .err()
            .unwrap()
            .to_string()
            .contains(".safetensors")
    );
    let missing = dir.path().join("missing.pt");
    assert!(SamModel::load(&missing).is_err());
}

#[test]
fn aicut_cut_runs_on_a_sam_model_file_and_asks_for_one_when_none_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    write_random_mobile_sam(&model);
    let (img, _, _) = blob_scene(120, 90);
    let input = dir.path().join("in.png");
    img.save(&input).unwrap();
    let out = dir.path().join("out.png");
    let o = Command::new(env!("CARGO_BIN_EXE_aicut"))
        .args([
            "cut",
            input.to_str().unwrap(),
            "--green",
            "60,45",
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--engine", "sam", "--model", model.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = image::open(&out).unwrap();
    assert_eq!((png.width(), png.height()), (120, 90));
    assert!(png.color().has_alpha());

    let o = Command::new(env!("CARGO_BIN_EXE_aicut"))
        .args([
            "cut",
            input.to_str().unwrap(),
            "--green",
            "60,45",
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--engine", "sam"])
        .env_remove(sam::MODEL_ENV)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--model"));
}
