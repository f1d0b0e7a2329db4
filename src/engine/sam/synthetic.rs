//! Reproducible, non-degenerate SAM weights and test scenes, bit for bit the same as
//! `tools/sam-reference/synthetic.py`, so the parity suite can compare aicut with the
//! reference code without committing a model file. Keep the two in step.
//!
//! Per tensor, a SplitMix64 stream seeded by the FNV-1a hash of its name gives, per
//! element, `u = (next >> 40) / 2^24` and `v = 2u - 1` (exact in f32); the value is
//! `centre + amplitude * v` in f32, with centre and amplitude chosen by the tensor's role so
//! that activations stay near unit scale through the network.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use super::model::{EncoderConfig, Sam};

const EMBEDDING_LIKE: [&str; 5] = [
    "point_embeddings",
    "not_a_point_embed",
    "no_mask_embed",
    "iou_token",
    "mask_tokens",
];

fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

/// The `i`-th (from 0) output of SplitMix64 seeded with `seed`.
fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `(centre, amplitude)` for a tensor, by its name and shape.
fn role(name: &str, dims: &[usize]) -> (f32, f32) {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    match leaf {
        "running_var" => (1.0, 0.25),
        "running_mean" => (0.0, 0.1),
        "attention_biases" => (0.0, 0.5),
        "rel_pos_h" | "rel_pos_w" | "pos_embed" => (0.0, 0.1),
        _ if leaf == "positional_encoding_gaussian_matrix"
            || EMBEDDING_LIKE.iter().any(|e| name.contains(e)) =>
        {
            (0.0, 1.7)
        }
        "bias" => (0.0, 0.1),
        _ if dims.len() <= 1 => (1.0, 0.1),
        _ => {
            let fan_in: usize = dims[1..].iter().product();
            (0.0, (3.0 / fan_in as f64).sqrt() as f32)
        }
    }
}

/// The values of the tensor `name` with the given dimensions, row-major.
pub fn values(name: &str, dims: &[usize]) -> Vec<f32> {
    let seed = fnv1a64(name);
    let (centre, amplitude) = role(name, dims);
    let n: usize = dims.iter().product();
    (0..n as u64)
        .map(|i| {
            let u = (splitmix64(seed, i) >> 40) as f32 * (2f32).powi(-24);
            centre + amplitude * (2.0 * u - 1.0)
        })
        .collect()
}

/// A weight source that makes every tensor on request, whatever the model asks for, and
/// remembers what it made (to write a checkpoint file).
#[derive(Default)]
struct SyntheticWeights {
    made: std::sync::Mutex<HashMap<String, Tensor>>,
}

impl SimpleBackend for SyntheticWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let t = Tensor::from_vec(values(name, s.dims()), s, dev)?.to_dtype(dtype)?;
        if let Ok(mut made) = self.made.lock() {
            made.insert(name.to_string(), t.clone());
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("synthetic weights need a shape for {name}")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// A `VarBuilder` over synthetic weights, for building any SAM variant.
pub fn var_builder() -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::<SyntheticWeights>::default(), DType::F32, Device::Cpu)
}

/// Every tensor a SAM with this encoder reads, with synthetic values by name.
pub fn tensors(encoder: &EncoderConfig) -> Result<HashMap<String, Tensor>> {
    let weights = std::sync::Arc::new(SyntheticWeights::default());
    let vb = VarBuilder::from_backend(Box::new(Shared(weights.clone())), DType::F32, Device::Cpu);
    Sam::new(encoder, vb)?;
    let made = weights
        .made
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
    Ok(made.clone())
}

/// Writes a checkpoint of synthetic weights as `.safetensors`.
pub fn write_safetensors(encoder: &EncoderConfig, path: &std::path::Path) -> Result<()> {
    candle_core::safetensors::save(&tensors(encoder)?, path)
}

struct Shared(std::sync::Arc<SyntheticWeights>);

impl SimpleBackend for Shared {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        d: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        self.0.get(s, name, h, d, dev)
    }
    fn get_unchecked(&self, name: &str, d: DType, dev: &Device) -> Result<Tensor> {
        self.0.get_unchecked(name, d, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

/// An RGB test picture from integer arithmetic only: a gradient, a disc and a bar.
pub fn scene(width: u32, height: u32) -> image::RgbImage {
    let (w, h) = (width as i64, height as i64);
    let (cx, cy, r) = (w * 2 / 5, h / 2, w.min(h) / 4);
    image::RgbImage::from_fn(width, height, |x, y| {
        let (x, y) = (x as i64, y as i64);
        let in_disc = (x - cx).pow(2) + (y - cy).pow(2) < r * r;
        let in_bar = x >= w * 13 / 20 && x < w * 17 / 20 && y >= h / 5 && y < h * 3 / 5;
        image::Rgb(if in_disc {
            [220, 60, 40]
        } else if in_bar {
            [30, 90, 200]
        } else {
            [
                (30 + x * 200 / w) as u8,
                (40 + y * 180 / h) as u8,
                (128 + (x + y) % 64) as u8,
            ]
        })
    })
}

/// Three clicks in original pixels as `(x, y, include)`: green on the disc, red on the
/// bar, green on the background.
pub fn clicks(width: u32, height: u32) -> [(u32, u32, bool); 3] {
    let (w, h) = (width, height);
    [
        (w * 2 / 5, h / 2, true),
        (w * 3 / 4, h * 2 / 5, false),
        (w / 10, h * 9 / 10, true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_match_the_python_reference() {
        // Known values from tools/sam-reference/synthetic.py:
        // fnv1a64("a") and the first SplitMix64 output for seed 0.
        assert_eq!(fnv1a64("a"), 0xAF63_DC4C_8601_EC8C);
        assert_eq!(splitmix64(0, 0), 0xE220_A839_7B1D_CDAF);
        let v = values("x.bias", &[4]);
        let python = [-0.08385787, -0.09350347, 0.0102609, -0.01705495];
        for (a, b) in v.iter().zip(python) {
            assert!((a - b).abs() < 1e-7, "{v:?}");
        }
        let norm = values("x.norm.weight", &[4]);
        assert!(norm.iter().all(|x| (0.9..=1.1).contains(x)));
    }
}
