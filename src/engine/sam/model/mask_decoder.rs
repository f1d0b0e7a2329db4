use candle_core::{IndexOp, Result, Tensor};
use candle_nn::{Module, VarBuilder};

use super::prompt_encoder::Dense;
use super::transformer::{ImageCache, TwoWayTransformer};
use super::upscale::{UpscaleWeights, upscaled_masks_tensor, with_values};

#[derive(Debug)]
struct MlpMaskDecoder {
    layers: Vec<candle_nn::Linear>,
    sigmoid_output: bool,
}

impl MlpMaskDecoder {
    fn new(
        input_dim: usize,
        hidden_dim: usize,
        output_dim: usize,
        num_layers: usize,
        sigmoid_output: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(num_layers);
        let vb = vb.pp("layers");
        for i in 0..num_layers {
            let in_dim = if i == 0 { input_dim } else { hidden_dim };
            let out_dim = if i + 1 == num_layers {
                output_dim
            } else {
                hidden_dim
            };
            let layer = super::linear(vb.pp(i), in_dim, out_dim, true)?;
            layers.push(layer)
        }
        Ok(Self {
            layers,
            sigmoid_output,
        })
    }
}

impl Module for MlpMaskDecoder {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            xs = layer.forward(&xs)?;
            if i + 1 < self.layers.len() {
                xs = xs.relu()?
            }
        }
        if self.sigmoid_output {
            candle_nn::ops::sigmoid(&xs)
        } else {
            Ok(xs)
        }
    }
}

/// A 2x2, stride-2 transposed convolution's weights for token-major input: the weight
/// `(cin, 4 * cout)` with columns in `(ky, kx, c)` order, the bias repeated four times.
/// Input pixel `p`'s row of the product holds its four output pixels' channels one after
/// the other, so the next step (a layer norm over channels) reads them contiguously; the
/// output is never interleaved until the masks are made.
fn upscale_conv(cin: usize, cout: usize, vb: VarBuilder) -> Result<(Vec<f32>, Vec<f32>)> {
    let w = vb.get((cin, cout, 2, 2), "weight")?;
    let b = vb.get(cout, "bias")?;
    let weight = w.permute((0, 2, 3, 1))?.flatten_all()?.to_vec1::<f32>()?;
    Ok((weight, Tensor::cat(&[&b, &b, &b, &b], 0)?.to_vec1::<f32>()?))
}

#[derive(Debug)]
pub struct MaskDecoder {
    iou_token: candle_nn::Embedding,
    mask_tokens: candle_nn::Embedding,
    iou_prediction_head: MlpMaskDecoder,
    /// The output upscaling (two transposed convolutions, a layer norm between), for the
    /// fused pass.
    upscale_weights: UpscaleWeights,
    num_mask_tokens: usize,
    output_hypernetworks_mlps: Vec<MlpMaskDecoder>,
    transformer: TwoWayTransformer,
}

/// One image's embeddings as the decoder reads them, prepared once per image.
pub struct DecoderImage {
    /// `(4096, C)`: the image tokens, row-major over the 64x64 grid.
    tokens: Tensor,
    cache: ImageCache,
}

impl DecoderImage {
    pub fn heap_bytes(&self) -> usize {
        4 * [&self.tokens, &self.cache.k, &self.cache.v, &self.cache.q]
            .iter()
            .map(|t| t.elem_count())
            .sum::<usize>()
    }
}

impl MaskDecoder {
    pub fn new(
        transformer_dim: usize,
        num_multimask_outputs: usize,
        iou_head_depth: usize,
        iou_head_hidden_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let num_mask_tokens = num_multimask_outputs + 1;
        let iou_prediction_head = MlpMaskDecoder::new(
            transformer_dim,
            iou_head_hidden_dim,
            num_mask_tokens,
            iou_head_depth,
            false,
            vb.pp("iou_prediction_head"),
        )?;
        let iou_token = candle_nn::embedding(1, transformer_dim, vb.pp("iou_token"))?;
        let mask_tokens =
            candle_nn::embedding(num_mask_tokens, transformer_dim, vb.pp("mask_tokens"))?;
        let upscale_weights = upscale_weights(transformer_dim, vb.pp("output_upscaling"))?;
        let mut output_hypernetworks_mlps = Vec::with_capacity(num_mask_tokens);
        let vb_o = vb.pp("output_hypernetworks_mlps");
        for i in 0..num_mask_tokens {
            let mlp = MlpMaskDecoder::new(
                transformer_dim,
                transformer_dim,
                transformer_dim / 8,
                3,
                false,
                vb_o.pp(i),
            )?;
            output_hypernetworks_mlps.push(mlp)
        }
        let transformer = TwoWayTransformer::new(
            /* depth */ 2,
            /* embedding_dim */ transformer_dim,
            /* num_heads */ 8,
            /* mlp_dim */ 2048,
            vb.pp("transformer"),
        )?;
        Ok(Self {
            iou_token,
            mask_tokens,
            iou_prediction_head,
            upscale_weights,
            num_mask_tokens,
            output_hypernetworks_mlps,
            transformer,
        })
    }

    /// Prepares image embeddings `(1, C, 64, 64)` for any number of prompts; `image_pe`
    /// is the token-major positional encoding `(4096, C)`.
    pub fn prepare(&self, image_embeddings: &Tensor, image_pe: &Tensor) -> Result<DecoderImage> {
        let (_, c, h, w) = image_embeddings.dims4()?;
        let tokens = image_embeddings.reshape((c, h * w))?.t()?.contiguous()?;
        let cache = self.transformer.cache_image(&tokens, image_pe)?;
        Ok(DecoderImage { tokens, cache })
    }

    /// Low-res logits `(masks, 256, 256)` and predicted IoUs `(masks)` for one prompt:
    /// the three multimask outputs, or the single one.
    pub fn forward(
        &self,
        image: &DecoderImage,
        image_pe: &Tensor,
        sparse_prompt_embeddings: &Tensor,
        dense: &Dense,
        multimask_output: bool,
    ) -> Result<(Tensor, Tensor)> {
        let outputs = if multimask_output {
            1..self.num_mask_tokens
        } else {
            0..1
        };
        let tokens = Tensor::cat(
            &[
                self.iou_token.embeddings(),
                self.mask_tokens.embeddings(),
                &sparse_prompt_embeddings.squeeze(0)?,
            ],
            0,
        )?;
        let src = dense.add_to(&image.tokens)?;
        let (hs, src) = self.transformer.forward(
            &src,
            &image.cache,
            dense,
            image_pe,
            &tokens,
            1 + self.num_mask_tokens,
        )?;
        let iou_pred = self
            .iou_prediction_head
            .forward(&hs.i(0..1)?)?
            .i((.., outputs.clone()))?;

        let mut hyper_in = Vec::with_capacity(outputs.len());
        for i in outputs {
            let token = hs.i(1 + i..2 + i)?;
            hyper_in.push(self.output_hypernetworks_mlps[i].forward(&token)?);
        }
        let hyper_in = Tensor::cat(&hyper_in, 0)?;
        let masks = self.masks(&src, &hyper_in, (64, 64))?;
        Ok((masks, iou_pred.squeeze(0)?))
    }

    /// The masks `(m, 4h, 4w)` from the transformer's image tokens `(h * w, C)` and the
    /// hypernetwork outputs `(m, C / 8)`, in one fused tiled pass.
    fn masks(&self, src: &Tensor, hyper_in: &Tensor, hw: (usize, usize)) -> Result<Tensor> {
        let hyper = hyper_in.flatten_all()?.to_vec1::<f32>()?;
        let wts = &self.upscale_weights;
        with_values(src, |s| {
            upscaled_masks_tensor(s, hw, wts, &hyper, 1e-6, src.device())
        })
        .ok_or_else(|| {
            candle_core::Error::Msg("the decoder's upscaling needs contiguous f32 tensors".into())
        })?
    }
}

/// The output upscaling's weights (`output_upscaling.{0,1,3}`) as plain values, for a
/// transformer of width `c`: `c` to `c / 4` to `c / 8` channels.
fn upscale_weights(c: usize, vb: VarBuilder) -> Result<UpscaleWeights> {
    let (w1, b1) = upscale_conv(c, c / 4, vb.pp("0"))?;
    let (w2, b2) = upscale_conv(c / 4, c / 8, vb.pp("3"))?;
    let ln = vb.pp("1");
    let ln = Tensor::cat(&[ln.get(c / 4, "weight")?, ln.get(c / 4, "bias")?], 0)?;
    Ok(UpscaleWeights {
        w1,
        b1,
        ln: ln.to_vec1::<f32>()?,
        w2,
        b2,
    })
}

#[cfg(test)]
mod tests {
    use super::super::max_diff;
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// The plain steps: transposed convolution, layer norm over channels, exact GELU,
    /// transposed convolution, exact GELU, then the product with `hyper` per pixel.
    fn plain_masks(ts: &HashMap<String, Tensor>, x: &Tensor, hyper: &Tensor) -> Tensor {
        let conv = |x: &Tensor, name: &str| {
            let bias = ts[&format!("{name}.bias")].reshape((1, (), 1, 1)).unwrap();
            let weight = &ts[&format!("{name}.weight")];
            let y = x.conv_transpose2d(weight, 0, 0, 2, 1).unwrap();
            y.broadcast_add(&bias).unwrap()
        };
        let up = conv(x, "a");
        let (_, c1, h, w) = up.dims4().unwrap();
        let pixels = up.reshape((c1, h * w)).unwrap().t().unwrap();
        let normed = candle_nn::ops::layer_norm(
            &pixels.contiguous().unwrap(),
            &ts["ln.weight"],
            &ts["ln.bias"],
            1e-6,
        )
        .unwrap();
        let up = normed.gelu_erf().unwrap().t().unwrap();
        let up = up.contiguous().unwrap().reshape((1, c1, h, w)).unwrap();
        let up = conv(&up, "b").gelu_erf().unwrap();
        let (_, c2, h, w) = up.dims4().unwrap();
        hyper
            .matmul(&up.reshape((c2, h * w)).unwrap())
            .unwrap()
            .reshape(((), h, w))
            .unwrap()
    }

    #[test]
    fn the_fused_upscaling_matches_the_plain_steps() {
        let dev = Device::Cpu;
        // 64 channels: eight-lane products; 40: a remainder of five.
        for (c, h, w, m) in [(64, 3, 5, 3), (40, 2, 7, 1)] {
            let mut ts = HashMap::new();
            for (name, (cin, cout)) in [("a", (c, c / 4)), ("b", (c / 4, c / 8))] {
                let weight = Tensor::randn(0f32, 0.3, (cin, cout, 2, 2), &dev).unwrap();
                ts.insert(format!("{name}.weight"), weight);
                let bias = Tensor::randn(0f32, 1.0, cout, &dev).unwrap();
                ts.insert(format!("{name}.bias"), bias);
            }
            let ln_weight = Tensor::randn(1f32, 0.2, c / 4, &dev).unwrap();
            ts.insert("ln.weight".into(), ln_weight);
            ts.insert(
                "ln.bias".into(),
                Tensor::randn(0f32, 0.5, c / 4, &dev).unwrap(),
            );
            let named = ts.iter().map(|(name, t)| {
                let layer = match &name[..1] {
                    "a" => "0",
                    "b" => "3",
                    _ => "1",
                };
                (
                    format!("{layer}.{}", name.split_once('.').unwrap().1),
                    t.clone(),
                )
            });
            let vb = VarBuilder::from_tensors(named.collect(), DType::F32, &dev);
            let wts = upscale_weights(c, vb).unwrap();
            let x = Tensor::randn(0f32, 1.0, (1, c, h, w), &dev).unwrap();
            let hyper = Tensor::randn(0f32, 1.0, (m, c / 8), &dev).unwrap();

            let tokens = x.reshape((c, h * w)).unwrap().t().unwrap();
            let tokens: Vec<f32> = tokens.flatten_all().unwrap().to_vec1().unwrap();
            let hyper_values: Vec<f32> = hyper.flatten_all().unwrap().to_vec1().unwrap();
            let ours =
                upscaled_masks_tensor(&tokens, (h, w), &wts, &hyper_values, 1e-6, &dev).unwrap();
            let theirs = plain_masks(&ts, &x, &hyper);
            assert_eq!(ours.dims(), [m, 4 * h, 4 * w]);
            let diff = max_diff(&ours, &theirs);
            assert!(diff < 1e-4, "{c} channels: {diff}");
        }
    }
}
