//! The SAM network itself: image encoder (ViT or MobileSAM's TinyViT), prompt encoder and
//! mask decoder, computing what Meta's `segment_anything` and MobileSAM's `mobile_sam`
//! compute (the parity suite in `tests/sam_parity.rs` holds it to that).
//!
//! The layer code started from candle-transformers' `segment_anything` (MIT/Apache-2.0,
//! Copyright the candle authors), changed where it departed from the reference: exact
//! (erf) GELU everywhere the reference uses `nn.GELU`, mask prompts, and no panic on a
//! checkpoint with an unexpected relative-position table.

mod conv;
mod decoder_ops;
mod depthwise;
mod fast_ops;
mod image_attention;
mod image_encoder;
mod mask_decoder;
mod prompt_encoder;
mod tiny_vit;
mod transformer;
mod upscale;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use image_encoder::ImageEncoderViT;
pub use mask_decoder::DecoderImage;
use mask_decoder::MaskDecoder;
use prompt_encoder::PromptEncoder;
use tiny_vit::TinyViT;

/// The encoder's input square: images are resized so their long side is this, then padded.
pub const IMAGE_SIZE: usize = 1024;
/// The mask decoder's output: low-resolution logits over the padded square.
pub const LOW_RES_SIZE: usize = 256;
const PROMPT_EMBED_DIM: usize = 256;
const VIT_PATCH_SIZE: usize = 16;
const EMBEDDING_SIZE: usize = IMAGE_SIZE / VIT_PATCH_SIZE;
const PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
const PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// Which image encoder, with its shape. ViT-B/L/H differ only in these numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncoderConfig {
    /// MobileSAM's TinyViT-5M.
    TinyVit,
    /// The original ViT with windowed attention, global attention at the given blocks.
    Vit {
        embed_dim: usize,
        depth: usize,
        num_heads: usize,
        global_attn_indexes: Vec<usize>,
    },
}

impl EncoderConfig {
    pub fn vit_b() -> Self {
        Self::vit(768, 12, 12, &[2, 5, 8, 11])
    }
    pub fn vit_l() -> Self {
        Self::vit(1024, 24, 16, &[5, 11, 17, 23])
    }
    pub fn vit_h() -> Self {
        Self::vit(1280, 32, 16, &[7, 15, 23, 31])
    }
    pub fn vit(embed_dim: usize, depth: usize, num_heads: usize, global: &[usize]) -> Self {
        EncoderConfig::Vit {
            embed_dim,
            depth,
            num_heads,
            global_attn_indexes: global.to_vec(),
        }
    }
}

enum ImageEncoder {
    Vit(Box<ImageEncoderViT>),
    Tiny(Box<TinyViT>),
}

/// What the mask decoder returns for one prompt.
pub struct Decoded {
    /// Low-resolution logits, `(masks, 256, 256)`, covering the padded 1024 square.
    pub low_res: Tensor,
    /// The predicted IoU of each mask.
    pub iou: Vec<f32>,
}

/// A loaded SAM network.
pub struct Sam {
    image_encoder: ImageEncoder,
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
    device: Device,
}

impl Sam {
    pub fn new(encoder: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let vb_enc = vb.pp("image_encoder");
        let image_encoder = match encoder {
            EncoderConfig::TinyVit => ImageEncoder::Tiny(Box::new(tiny_vit::tiny_vit_5m(vb_enc)?)),
            EncoderConfig::Vit {
                embed_dim,
                depth,
                num_heads,
                global_attn_indexes,
            } => ImageEncoder::Vit(Box::new(ImageEncoderViT::new(
                IMAGE_SIZE,
                VIT_PATCH_SIZE,
                3,
                *embed_dim,
                *depth,
                *num_heads,
                PROMPT_EMBED_DIM,
                /* qkv_bias */ true,
                /* use_rel_pos */ true,
                /* use_abs_pos */ true,
                /* window_size */ 14,
                global_attn_indexes,
                vb_enc,
            )?)),
        };
        let prompt_encoder = PromptEncoder::new(
            PROMPT_EMBED_DIM,
            (EMBEDDING_SIZE, EMBEDDING_SIZE),
            (IMAGE_SIZE, IMAGE_SIZE),
            16,
            vb.pp("prompt_encoder"),
        )?;
        let mask_decoder = MaskDecoder::new(PROMPT_EMBED_DIM, 3, 3, 256, vb.pp("mask_decoder"))?;
        Ok(Sam {
            image_encoder,
            prompt_encoder,
            mask_decoder,
            device: vb.device().clone(),
        })
    }

    /// Image embeddings `(1, 256, 64, 64)` of an RGB image already resized so its long side
    /// is 1024 (`pixels` row-major, 3 bytes a pixel): normalise, pad, encode. `progress`
    /// hears the fraction done as the encoder's stages finish, and stops it with an error.
    pub fn embed(
        &self,
        pixels: &[u8],
        width: usize,
        height: usize,
        progress: &dyn Fn(f32) -> Result<()>,
    ) -> Result<Tensor> {
        if width > IMAGE_SIZE || height > IMAGE_SIZE || pixels.len() != width * height * 3 {
            candle_core::bail!("the encoder takes at most {IMAGE_SIZE}x{IMAGE_SIZE} RGB pixels");
        }
        let mut planes = vec![0f32; 3 * IMAGE_SIZE * IMAGE_SIZE];
        for (i, px) in pixels.chunks_exact(3).enumerate() {
            let (x, y) = (i % width, i / width);
            for c in 0..3 {
                planes[(c * IMAGE_SIZE + y) * IMAGE_SIZE + x] =
                    (px[c] as f32 - PIXEL_MEAN[c]) / PIXEL_STD[c];
            }
        }
        let input = Tensor::from_vec(planes, (1, 3, IMAGE_SIZE, IMAGE_SIZE), &self.device)?;
        match &self.image_encoder {
            ImageEncoder::Vit(vit) => vit.forward_with_progress(&input, progress),
            ImageEncoder::Tiny(tiny) => tiny.forward_with_progress(&input, progress),
        }
    }

    /// What the mask decoder keeps of an image's embeddings `(1, 256, 64, 64)` for all its
    /// prompts (computed once per image).
    pub fn prepare_decoder(&self, embeddings: &Tensor) -> Result<DecoderImage> {
        self.mask_decoder
            .prepare(embeddings, self.prompt_encoder.dense_pe())
    }

    /// Runs the prompt encoder and mask decoder. `points` are in the 1024 frame (the
    /// reference's `apply_coords` output) with labels 1 (include) or 0 (exclude);
    /// `mask_input` is a previous `(256, 256)` low-res logit map to refine.
    pub fn decode(
        &self,
        image: &DecoderImage,
        points: &[(f32, f32, f32)],
        mask_input: Option<&Tensor>,
        multimask: bool,
    ) -> Result<Decoded> {
        // On a pool thread: from outside the pool each of the decoder's dozens of parallel
        // passes queues a job, wakes the workers and sleeps this thread until it is done
        // (about 2 ms a run, 7%, measured alternating). The encoder is left outside: its
        // element-wise ops run on candle's own spinning pool, which the idle rayon worker
        // then fights for the cores (measured 3-15% slower).
        rayon::scope(|_| self.decode_on_pool(image, points, mask_input, multimask))
    }

    fn decode_on_pool(
        &self,
        image: &DecoderImage,
        points: &[(f32, f32, f32)],
        mask_input: Option<&Tensor>,
        multimask: bool,
    ) -> Result<Decoded> {
        let coords: Vec<f32> = points.iter().flat_map(|p| [p.0, p.1]).collect();
        let labels: Vec<f32> = points.iter().map(|p| p.2).collect();
        let n = points.len();
        let coords = Tensor::from_vec(coords, (1, n, 2), &self.device)?;
        let labels = Tensor::from_vec(labels, (1, n), &self.device)?;
        let mask_input = match mask_input {
            Some(m) => Some(m.reshape((1, 1, LOW_RES_SIZE, LOW_RES_SIZE))?),
            None => None,
        };
        let points = (n > 0).then_some((&coords, &labels));
        let (sparse, dense) = self
            .prompt_encoder
            .forward(points, None, mask_input.as_ref())?;
        let (masks, iou) = self.mask_decoder.forward(
            image,
            self.prompt_encoder.dense_pe(),
            &sparse,
            &dense,
            multimask,
        )?;
        Ok(Decoded {
            low_res: masks.to_dtype(DType::F32)?,
            iou: iou.to_dtype(DType::F32)?.to_vec1()?,
        })
    }
}

fn linear(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
    if bias {
        candle_nn::linear(in_dim, out_dim, vb)
    } else {
        candle_nn::linear_no_bias(in_dim, out_dim, vb)
    }
}

/// Layer norm over the channel axis of an NCHW tensor, as the reference's `LayerNorm2d`.
#[derive(Debug)]
struct LayerNorm2d {
    weight: Tensor,
    bias: Tensor,
    num_channels: usize,
    eps: f64,
}

impl LayerNorm2d {
    fn new(num_channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(num_channels, "weight")?,
            bias: vb.get(num_channels, "bias")?,
            num_channels,
            eps,
        })
    }
}

impl Module for LayerNorm2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if xs.device().is_cpu() && xs.dtype() == DType::F32 {
            // Channels last, candle's fused last-axis layer norm, channels first again:
            // much faster than reductions across the channel axis of an NCHW tensor.
            let nhwc = xs.permute((0, 2, 3, 1))?.contiguous()?;
            let eps = self.eps as f32;
            let normed = candle_nn::ops::layer_norm(&nhwc, &self.weight, &self.bias, eps)?;
            return normed.permute((0, 3, 1, 2))?.contiguous();
        }
        let u = xs.mean_keepdim(1)?;
        let xs = xs.broadcast_sub(&u)?;
        let s = xs.sqr()?.mean_keepdim(1)?;
        let xs = xs.broadcast_div(&(s + self.eps)?.sqrt()?)?;
        xs.broadcast_mul(&self.weight.reshape((1, self.num_channels, 1, 1))?)?
            .broadcast_add(&self.bias.reshape((1, self.num_channels, 1, 1))?)
    }
}

/// Linear, activation, linear.
#[derive(Debug)]
struct MlpBlock {
    lin1: Linear,
    lin2: Linear,
    activation: candle_nn::Activation,
}

impl MlpBlock {
    fn new(
        embedding_dim: usize,
        mlp_dim: usize,
        activation: candle_nn::Activation,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            lin1: linear(vb.pp("lin1"), embedding_dim, mlp_dim, true)?,
            lin2: linear(vb.pp("lin2"), mlp_dim, embedding_dim, true)?,
            activation,
        })
    }
}

impl Module for MlpBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = match self.activation {
            candle_nn::Activation::Gelu => {
                fast_ops::linear_act(&self.lin1, xs, fast_ops::Act::Gelu)?
            }
            other => xs.apply(&self.lin1)?.apply(&other)?,
        };
        hidden.apply(&self.lin2)
    }
}

/// The largest absolute difference between two tensors of one shape (tests).
#[cfg(test)]
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).and_then(|d| d.abs()).and_then(|d| d.flatten_all());
    d.and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar())
        .unwrap()
}
