//! The SAM engine's real loading and inference code, on a MobileSAM checkpoint with random
//! weights that the test writes itself (no model can be downloaded here). Random weights
//! give meaningless masks, so these tests check the plumbing: recognition of the
//! variant, shapes, full-resolution output, determinism, and clear errors.

mod common;

use std::process::Command;
use std::sync::Arc;

use aicut::engine::local::Abandoned;
use aicut::engine::sam::{self, EncoderConfig, SamModel, synthetic};
use aicut::engine::{Dot, Engine, EngineError, Prompt};
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
        SamModel::load(&model).unwrap().encoder(),
        &EncoderConfig::TinyVit
    );

    let engine = sam::engine_with_cache(&model, Default::default(), None).unwrap();
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

/// Reopening a photo reads the encoder's output from the disk cache instead of running
/// the encoder: proven by planting a different embedding under the photo's key, which the
/// next engine then uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_encoder_output_is_cached_on_disk_and_reused_by_the_next_engine() {
    use aicut::engine::embedding_cache::{CacheKey, EmbeddingCache};
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mobile_sam.safetensors");
    write_random_mobile_sam(&model);
    let cache_dir = dir.path().join("cache");
    let cache = || Some(EmbeddingCache::open(cache_dir.clone(), 64 << 20).unwrap());
    let (img, _, (cx, cy)) = blob_scene(160, 120);
    let image = Arc::new(LoadedImage::from_pixels(
        "s.png",
        DynamicImage::ImageRgb8(img.clone()).to_rgba8(),
    ));
    let one = Prompt {
        green: vec![Dot::new(cx, cy)],
        red: vec![],
    };
    let mask_of = |engine: aicut::engine::local::LocalEngine| {
        let image = image.clone();
        let one = one.clone();
        async move {
            let session = engine.initialize(image).await.unwrap();
            engine.segment(&session, &one, 1).await.unwrap()
        }
    };

    let first = mask_of(sam::engine_with_cache(&model, Default::default(), cache()).unwrap()).await;
    let entries = || {
        std::fs::read_dir(&cache_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "emb")
            })
            .count()
    };
    assert_eq!(entries(), 1, "the first open stores its embedding");
    let again = mask_of(sam::engine_with_cache(&model, Default::default(), cache()).unwrap()).await;
    assert!(first == again, "the cached embedding gives the same mask");

    let store = cache().unwrap();
    let key = CacheKey::new(
        &sam::cache_model_id(&store.model_digest(&model).unwrap()),
        &img,
    );
    assert!(
        store.get(&key).is_some(),
        "the entry is under the photo's key"
    );
    store
        .put(&key, &[1, 256, 64, 64], &vec![0.0; 256 * 64 * 64])
        .unwrap();
    let planted =
        mask_of(sam::engine_with_cache(&model, Default::default(), cache()).unwrap()).await;
    assert!(
        planted != first,
        "the next engine read the planted embedding"
    );
    assert_eq!(entries(), 1);
}

/// The ViT family differs in width, depth, heads and which blocks attend globally: all of
/// it is read from the file, so a checkpoint of any such shape loads as what it is.
#[test]
fn a_vit_checkpoint_is_recognised_from_its_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("small_vit.safetensors");
    let shape = EncoderConfig::vit(64, 3, 4, &[2]);
    synthetic::write_safetensors(&shape, &model).unwrap();
    let loaded = SamModel::load(&model).unwrap();
    assert_eq!(loaded.encoder(), &shape);
    assert_eq!(loaded.label(), "SAM ViT (64 wide, 3 blocks)");
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
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
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

/// An encode whose caller gave up stops at the encoder's next stage: one that ran to its
/// end would answer Ok (its result is simply not used), so `Cancelled` means it stopped.
#[test]
fn an_abandoned_encode_stops_early_with_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mobile_sam.safetensors");
    write_random_mobile_sam(&file);
    let model = Arc::new(SamModel::load(&file).unwrap());
    let (img, _, _) = blob_scene(300, 200);
    let abandoned = Abandoned::default();
    let watcher = std::thread::spawn({
        let (model, abandoned) = (model.clone(), abandoned.clone());
        move || {
            let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while model.encoding_progress().is_none() && std::time::Instant::now() < give_up {
                std::thread::yield_now();
            }
            abandoned.set();
        }
    });
    let result = model.prepare_image_unless(&img, &abandoned);
    watcher.join().unwrap();
    assert!(
        matches!(result, Err(EngineError::Cancelled)),
        "{:?}",
        result.err()
    );
    assert_eq!(model.encoding_progress(), None, "the encoder is idle again");
}
