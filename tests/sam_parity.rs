//! aicut's SAM computes what the reference code computes. The fixture in
//! `tests/fixtures/sam_parity/` was written by `tools/sam-reference/make_fixture.py`, which
//! runs Meta's `segment_anything` and MobileSAM's `mobile_sam` predictors (PyTorch) on
//! synthetic weights that `aicut::engine::sam::synthetic` reproduces bit for bit. For every
//! case (landscape, portrait, smaller than 1024, 12 MP, an EXIF-rotated JPEG) and every step
//! of a three-click chain with mask feedback, this test checks:
//!
//! - the encoder's input bytes (Pillow's resize) exactly, for the synthetic scenes;
//! - the image embedding's statistics and ~1000 sampled values;
//! - the predicted IoUs and which mask is chosen;
//! - the low-res logits' statistics and a 16x16 grid of samples of every mask;
//! - the full-resolution mask: IoU >= 0.99 with the reference's.
//!
//! Tolerances are absolute, in the units of each quantity, sized from float32 round-off
//! through the network (measured differences are printed on every run). A tanh GELU in
//! place of the exact one, a click shifted by half a pixel, or another resize filter each
//! exceed them (tried by hand; see tools/sam-reference/README.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aicut::engine::local::Prepared;
use aicut::engine::sam::{EncoderConfig, SamImage, SamModel, synthetic};
use aicut::engine::{Dot, Prompt};
use candle_core::IndexOp;
use serde::Deserialize;

/// How far aicut may be from the reference: absolute, in each quantity's units.
#[derive(Clone, Copy)]
struct Tolerance {
    /// Image embeddings (values of order 1): sampled values and statistics.
    embedding: f64,
    /// Low-res logits (spread over several units): sampled values and statistics.
    logits: f64,
    /// Predicted IoU.
    iou: f64,
}

/// The same input bytes: only float32 round-off differs (measured up to 6e-6 in the
/// embeddings and 2e-5 in the logits).
const SAME_INPUT: Tolerance = Tolerance {
    embedding: 1e-4,
    logits: 2e-4,
    iou: 1e-4,
};
/// A JPEG decoded by the image crate rather than by Pillow's libjpeg-turbo: a few pixel
/// values differ by rounding, which moves the embeddings by up to about 3e-3.
const OTHER_DECODER: Tolerance = Tolerance {
    embedding: 1e-2,
    logits: 5e-2,
    iou: 5e-3,
};
/// The full-resolution masks' agreement, whatever the input.
const MIN_MASK_IOU: f64 = 0.99;

#[derive(Deserialize)]
struct Reference {
    torch: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Summary {
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
    samples: Vec<f64>,
}

#[derive(Deserialize)]
struct Embedding {
    stride: usize,
    #[serde(flatten)]
    summary: Summary,
}

#[derive(Deserialize)]
struct Step {
    clicks: Vec<(u32, u32, u8)>,
    iou_predictions: Vec<f64>,
    best: usize,
    low_res: Vec<Summary>,
    mask_png: String,
}

#[derive(Deserialize)]
struct Case {
    case: String,
    variant: String,
    /// `[height, width]`, as the reference reports sizes.
    original_size: [u32; 2],
    input_size: [u32; 2],
    image_sum: i64,
    resized: [i64; 2],
    embedding: Embedding,
    steps: Vec<Step>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sam_parity")
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixture_dir().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The case's picture as aicut sees it: a synthetic scene, or a file through the real
/// decoder (which applies EXIF orientation).
fn picture(case: &Case) -> image::RgbImage {
    let [h, w] = case.original_size;
    match case.case.as_str() {
        "exif_rotated" => {
            let path = fixture_dir().join("exif_rotated.jpg");
            let limits = aicut::imageio::DecodeLimits::default();
            aicut::imageio::load_file(&path, &limits).unwrap().to_rgb()
        }
        _ => synthetic::scene(w, h),
    }
}

fn sums(bytes: &[u8]) -> [i64; 2] {
    let plain = bytes.iter().map(|&b| b as i64).sum();
    let weighted = bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| b as i64 * (i % 251) as i64)
        .sum();
    [plain, weighted]
}

/// Checks a map's statistics against the reference's.
fn compare(what: &str, ours: &[f32], theirs: &Summary, tolerance: f64) {
    let n = ours.len() as f64;
    let mean = ours.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (ours.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let (min, max) = ours.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| {
        (lo.min(v as f64), hi.max(v as f64))
    });
    for (name, a, b) in [
        ("mean", mean, theirs.mean),
        ("std", std, theirs.std),
        ("min", min, theirs.min),
        ("max", max, theirs.max),
    ] {
        assert!((a - b).abs() <= tolerance, "{what}: {name} {a} vs {b}");
    }
}

/// The largest absolute difference between two lists of samples, checked.
fn max_difference(what: &str, ours: &[f64], theirs: &[f64], tolerance: f64) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "{what}: sample counts");
    let worst = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tolerance,
        "{what}: samples differ by up to {worst}"
    );
    worst
}

fn mask_iou(ours: &image::GrayImage, png: &Path) -> f64 {
    let theirs = image::open(png).unwrap().to_luma8();
    assert_eq!(ours.dimensions(), theirs.dimensions(), "{}", png.display());
    let (mut inter, mut union) = (0u64, 0u64);
    for (a, b) in ours.as_raw().iter().zip(theirs.as_raw()) {
        let (a, b) = (*a >= 128, *b >= 128);
        inter += (a && b) as u64;
        union += (a || b) as u64;
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

fn prompt(clicks: &[(u32, u32, u8)]) -> Prompt {
    let dot = |c: &(u32, u32, u8)| Dot::new(c.0 as f64, c.1 as f64);
    Prompt {
        green: clicks.iter().filter(|c| c.2 == 1).map(dot).collect(),
        red: clicks.iter().filter(|c| c.2 == 0).map(dot).collect(),
    }
}

fn check_embedding(case: &Case, image: &SamImage, tol: Tolerance) {
    let values: Vec<f32> = image
        .embeddings()
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .unwrap();
    let what = format!("{} {} embedding", case.variant, case.case);
    compare(&what, &values, &case.embedding.summary, tol.embedding);
    let ours: Vec<f64> = values
        .iter()
        .step_by(case.embedding.stride)
        .map(|&v| v as f64)
        .collect();
    let worst = max_difference(&what, &ours, &case.embedding.summary.samples, tol.embedding);
    println!("{what}: largest sample difference {worst:.2e}");
}

fn check_step(case: &Case, image: &SamImage, n: usize, step: &Step, tol: Tolerance) {
    let what = format!("{} {} step {n}", case.variant, case.case);
    let prediction = image.predict(&prompt(&step.clicks)).unwrap();
    let ious: Vec<f64> = prediction.iou.iter().map(|&v| v as f64).collect();
    max_difference(
        &format!("{what} IoU"),
        &ious,
        &step.iou_predictions,
        tol.iou,
    );
    assert_eq!(prediction.best, step.best, "{what}: chosen mask");
    let mut worst = 0.0f64;
    for (m, theirs) in step.low_res.iter().enumerate() {
        let map: Vec<f32> = prediction
            .low_res
            .i(m)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .unwrap();
        let what = format!("{what} mask {m} logits");
        compare(&what, &map, theirs, tol.logits);
        let ours: Vec<f64> = (0..16)
            .flat_map(|r| (0..16).map(move |c| (4 + 16 * r) * 256 + 4 + 16 * c))
            .map(|i| map[i] as f64)
            .collect();
        worst = worst.max(max_difference(&what, &ours, &theirs.samples, tol.logits));
    }
    let iou = mask_iou(&prediction.mask, &fixture_dir().join(&step.mask_png));
    println!("{what}: largest logit difference {worst:.2e}, mask IoU {iou:.5}");
    assert!(iou >= MIN_MASK_IOU, "{what}: mask IoU {iou}");
}

fn check_variant(variant: &str, encoder: EncoderConfig) {
    let reference = reference();
    let model = Arc::new(SamModel::build(encoder, synthetic::var_builder()).unwrap());
    let cases: Vec<&Case> = reference
        .cases
        .iter()
        .filter(|c| c.variant == variant)
        .collect();
    assert!(!cases.is_empty(), "no {variant} cases in the fixture");
    println!("reference: PyTorch {}", reference.torch);
    for case in cases {
        let picture = picture(case);
        let [h, w] = case.original_size;
        assert_eq!(picture.dimensions(), (w, h), "{}: oriented size", case.case);
        let decoded_exactly = sums(picture.as_raw())[0] == case.image_sum;
        let image = model.prepare_image(&picture).unwrap();
        let [ih, iw] = case.input_size;
        assert_eq!(
            image.encoder_size(),
            (iw, ih),
            "{}: encoder size",
            case.case
        );
        let tol = if decoded_exactly {
            let resized = aicut::engine::sam::preprocess::resize_for_encoder(&picture);
            assert_eq!(
                sums(resized.as_raw()),
                case.resized,
                "{}: resize",
                case.case
            );
            SAME_INPUT
        } else {
            assert!(case.case.ends_with("exif_rotated"), "{}: pixels", case.case);
            println!("{}: JPEG decoded pixels differ from Pillow's", case.case);
            OTHER_DECODER
        };
        check_embedding(case, &image, tol);
        for (n, step) in case.steps.iter().enumerate() {
            check_step(case, &image, n + 1, step, tol);
        }
    }
}

#[test]
fn mobile_sam_matches_the_reference() {
    check_variant("mobile", EncoderConfig::TinyVit);
}

#[test]
fn sam_vit_b_matches_the_reference() {
    check_variant("vit_b", EncoderConfig::vit_b());
}

/// ViT-L and ViT-H run the ViT-B code with other widths, head counts and global blocks:
/// ViT-H's width and heads over two blocks (one windowed, one global) cover what differs.
#[test]
fn a_vit_h_shaped_encoder_matches_the_reference() {
    check_variant("vit_h_2", EncoderConfig::vit(1280, 2, 16, &[1]));
}

/// SAM's multimask output is offered as candidates, the chosen mask first; choosing one
/// makes it the answer and the mask prompt of the next click, and choosing the first back
/// gives the reference's chain again.
#[test]
fn candidates_are_the_multimask_outputs_and_a_choice_feeds_the_next_click() {
    let reference = reference();
    let case = (reference.cases.iter())
        .find(|c| c.variant == "mobile" && c.case == "small")
        .expect("the fixture's small MobileSAM case");
    let model =
        Arc::new(SamModel::build(EncoderConfig::TinyVit, synthetic::var_builder()).unwrap());
    let image = model.prepare_image(&picture(case)).unwrap();
    let first = prompt(&case.steps[0].clicks);
    let offered = image.candidates(&first).unwrap();
    assert_eq!(offered.len(), 3, "three masks for one click");
    assert!(
        offered[0] == image.predict(&first).unwrap().mask,
        "the answer first"
    );
    assert!(
        offered[1] != offered[0],
        "a runner-up differs from the answer"
    );

    image.choose(&first, 1).unwrap();
    assert!(
        image.segment(&first).unwrap() == offered[1],
        "the choice is the answer"
    );
    let second = prompt(&case.steps[1].clicks);
    let refined = image.predict(&second).unwrap();
    let moved = (refined.iou[0] as f64 - case.steps[1].iou_predictions[0]).abs();
    assert!(
        moved > SAME_INPUT.iou,
        "the next click refines the choice (IoU moved {moved})"
    );

    image.choose(&first, 0).unwrap();
    check_step(case, &image, 2, &case.steps[1], SAME_INPUT);
    let never = image.choose(&first, 3).unwrap_err();
    assert_eq!(never.http_status(), 400, "{never}");
}

/// Checkpoints as `torch.save` writes them (a zip pickle of an OrderedDict state dict with
/// an int64 counter, a non-contiguous view, a storage shared at an offset and float16) and
/// as `.safetensors`, written by the reference script, read back to the same values.
#[test]
fn published_checkpoint_formats_read_back_exactly() {
    let base = synthetic::values("extra.base", &[6, 10]);
    for file in ["tiny_state.pt", "tiny_state.safetensors"] {
        let tensors = aicut::engine::sam::checkpoint::read_tensors(&fixture_dir().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(tensors.len(), 9, "{file}: {:?}", tensors.keys());
        for (name, tensor) in &tensors {
            let dims = tensor.dims().to_vec();
            let ours: Vec<f32> = tensor.flatten_all().and_then(|t| t.to_vec1()).unwrap();
            let (expected, tolerance): (Vec<f32>, f32) = match name.as_str() {
                "extra.transposed" => {
                    assert_eq!(dims, [10, 6]);
                    let t = (0..60).map(|i| base[(i % 6) * 10 + i / 6]).collect();
                    (t, 0.0)
                }
                "extra.row_slice" => (base[20..40].to_vec(), 0.0),
                // float16 keeps 11 significant bits.
                "extra.half" => (synthetic::values(name, &dims), 5e-4),
                n if n.ends_with("num_batches_tracked") => (vec![0.0], 0.0),
                _ => (synthetic::values(name, &dims), 0.0),
            };
            assert_eq!(ours.len(), expected.len(), "{file} {name}");
            for (a, b) in ours.iter().zip(&expected) {
                assert!(
                    (a - b).abs() <= tolerance * b.abs(),
                    "{file} {name}: {a} vs {b}"
                );
            }
        }
    }
}
