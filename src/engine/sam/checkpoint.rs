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
        "safetensors" => read_safetensors(path)?,
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

/// Where a `.safetensors` header puts one tensor.
#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// A `.safetensors` file's tensors, read one at a time. candle's `safetensors::load` reads
/// the whole file into memory before making the tensors, so loading peaked at twice the
/// file: 5 GB for a ViT-H.
fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| e.to_string();
    let mut file = std::fs::File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| "not a safetensors file: too short".to_string())?;
    let len = u64::from_le_bytes(len);
    if len > file_len.saturating_sub(8) {
        return Err("not a safetensors file: its header runs past the end".into());
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("not a safetensors file: {e}"))?;
    let mut entries = Vec::new();
    for (name, value) in header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
    {
        let entry: Entry = serde_json::from_value(value).map_err(|e| format!("{name}: {e}"))?;
        entries.push((name, entry));
    }
    // In file order: one pass forward through the file.
    entries.sort_by_key(|(_, e)| e.data_offsets[0]);
    let base = 8 + len;
    let mut tensors = HashMap::with_capacity(entries.len());
    for (name, e) in entries {
        let [start, end] = e.data_offsets;
        if start > end || end > file_len - base {
            return Err(format!("{name}: its data lies outside the file"));
        }
        let dtype: DType = (e.dtype.to_ascii_lowercase().parse())
            .map_err(|_| format!("{name}: unsupported type {}", e.dtype))?;
        let mut data = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(base + start)).map_err(io)?;
        file.read_exact(&mut data).map_err(io)?;
        let tensor = Tensor::from_raw_buffer(&data, dtype, &e.shape, &Device::Cpu)
            .map_err(|err| format!("{name}: {err}"))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as the `safetensors` writer makes it, with f32 and f16 tensors.
    fn written(dir: &Path) -> (std::path::PathBuf, HashMap<String, Tensor>) {
        let dev = Device::Cpu;
        let a = Tensor::arange(0f32, 12.0, &dev)
            .unwrap()
            .reshape((3, 4))
            .unwrap();
        let b = Tensor::new(&[1.5f32, -2.0, 0.25], &dev).unwrap();
        let tensors = HashMap::from([
            ("a.weight".to_string(), a),
            ("b.half".to_string(), b.to_dtype(DType::F16).unwrap()),
        ]);
        let path = dir.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &path).unwrap();
        (path, tensors)
    }

    #[test]
    fn safetensors_read_one_tensor_at_a_time_hold_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let (path, written) = written(dir.path());
        let ours = read_safetensors(&path).unwrap();
        assert_eq!(ours.len(), written.len());
        for (name, t) in &written {
            assert_eq!(ours[name].dtype(), t.dtype(), "{name}");
            assert_eq!(ours[name].dims(), t.dims(), "{name}");
            let (x, y) = (ours[name].to_dtype(DType::F32), t.to_dtype(DType::F32));
            let diff = (x.unwrap() - y.unwrap()).unwrap().abs().unwrap();
            assert_eq!(diff.max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        }
    }

    #[test]
    fn a_cut_short_or_garbled_safetensors_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = written(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 4]).unwrap();
        let err = read_safetensors(&cut).unwrap_err();
        assert!(err.contains("outside the file"), "{err}");
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&cut, &huge).unwrap();
        let err = read_safetensors(&cut).unwrap_err();
        assert!(err.contains("header runs past the end"), "{err}");
        std::fs::write(&cut, b"tiny").unwrap();
        assert!(read_safetensors(&cut).unwrap_err().contains("too short"));
    }
}
