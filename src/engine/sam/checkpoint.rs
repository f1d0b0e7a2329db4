//! Reading SAM checkpoints as they are published: `torch.save`'s zip pickle of a state dict
//! (`mobile_sam.pt`, `sam_vit_*.pth`) or a `.safetensors` conversion, with the original
//! tensor names. The architecture is read from the tensors themselves, so any depth or
//! width of the ViT family loads without a table of known files.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::model::EncoderConfig;

/// The tensors of a checkpoint, as f32 on the CPU.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let tensors: HashMap<String, Tensor> = match ext.as_str() {
        "safetensors" => {
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| e.to_string())?
        }
        "pt" | "pth" | "bin" => candle_core::pickle::read_all(path)
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect(),
        _ => return Err("expected a .safetensors, .pt or .pth file".into()),
    };
    tensors
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_dtype(DType::F32)?)))
        .collect::<candle_core::Result<_>>()
        .map_err(|e| e.to_string())
}

/// The image encoder a checkpoint holds: MobileSAM's TinyViT, or a ViT whose width, depth,
/// heads and global-attention blocks are read from its tensors (a windowed block's
/// relative-position table spans a 14-token window, a global block's the 64-token side).
pub fn detect_encoder(tensors: &HashMap<String, Tensor>) -> Result<EncoderConfig, String> {
    if tensors
        .keys()
        .any(|k| k.starts_with("image_encoder.layers."))
    {
        return Ok(EncoderConfig::TinyVit);
    }
    let embed_dim = tensors
        .get("image_encoder.patch_embed.proj.weight")
        .map(|t| t.dims()[0])
        .ok_or("it has no SAM image encoder (image_encoder.* tensors)")?;
    let rel_pos =
        |block: usize| tensors.get(&format!("image_encoder.blocks.{block}.attn.rel_pos_h"));
    let depth = (0..).take_while(|&b| rel_pos(b).is_some()).count();
    if depth == 0 {
        return Err("its image encoder has no attention blocks".into());
    }
    let head_dim = rel_pos(0).map_or(0, |t| t.dims().get(1).copied().unwrap_or(0));
    if head_dim == 0 || embed_dim % head_dim != 0 {
        return Err(format!(
            "its attention heads do not divide the width {embed_dim}"
        ));
    }
    let global: Vec<usize> = (0..depth)
        .filter(|&b| rel_pos(b).is_some_and(|t| t.dims()[0] > 2 * 14 - 1))
        .collect();
    Ok(EncoderConfig::vit(
        embed_dim,
        depth,
        embed_dim / head_dim,
        &global,
    ))
}

/// A readable name for an encoder.
pub fn label(encoder: &EncoderConfig) -> String {
    match encoder {
        EncoderConfig::TinyVit => "MobileSAM".into(),
        EncoderConfig::Vit {
            embed_dim: 768,
            depth: 12,
            ..
        } => "SAM ViT-B".into(),
        EncoderConfig::Vit {
            embed_dim: 1024,
            depth: 24,
            ..
        } => "SAM ViT-L".into(),
        EncoderConfig::Vit {
            embed_dim: 1280,
            depth: 32,
            ..
        } => "SAM ViT-H".into(),
        EncoderConfig::Vit {
            embed_dim, depth, ..
        } => format!("SAM ViT ({embed_dim} wide, {depth} blocks)"),
    }
}
