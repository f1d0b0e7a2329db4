use candle_core::{IndexOp, Result, Tensor};
use candle_nn::{Module, VarBuilder};

use super::decoder_ops::bias_norm_gelu;
use super::fast_ops::{Act, bias_act};
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

/// A 2x2, stride-2 transposed convolution for token-major input: `weight` `(cin, 4 * cout)`
/// with columns in `(ky, kx, c)` order, `bias` `(1, 4 * cout)`. Input pixel `p`'s row of the
/// product holds its four output pixels' channels one after the other, so the next step
/// (a layer norm over channels) reads them contiguously; the output is never interleaved
/// until the masks are made.
#[derive(Debug)]
struct Upscale {
    weight: Tensor,
    bias: Tensor,
    cout: usize,
}

impl Upscale {
    fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        let w = vb.get((cin, cout, 2, 2), "weight")?;
        let b = vb.get(cout, "bias")?;
        Ok(Self {
            weight: w
                .permute((0, 2, 3, 1))?
                .reshape((cin, 4 * cout))?
                .contiguous()?,
            bias: Tensor::cat(&[&b, &b, &b, &b], 0)?.unsqueeze(0)?,
            cout,
        })
    }

    /// `(pixels, cin)` to `(pixels, 4 * cout)` without the bias: each input pixel's 2x2
    /// block, `(ky, kx)`, one after the other in its row.
    fn product(&self, xs: &Tensor) -> Result<Tensor> {
        xs.matmul(&self.weight)
    }

    /// `(pixels, cin)` to `(4 * pixels, cout)`, the bias added (the plain composition).
    #[cfg(test)]
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let out = self.product(xs)?.broadcast_add(&self.bias)?;
        out.reshape(((), self.cout))
    }
}

#[derive(Debug)]
pub struct MaskDecoder {
    iou_token: candle_nn::Embedding,
    mask_tokens: candle_nn::Embedding,
    iou_prediction_head: MlpMaskDecoder,
    output_upscaling_conv1: Upscale,
    /// The upscaling's layer norm: its weight, then its bias.
    output_upscaling_ln: Tensor,
    output_upscaling_conv2: Upscale,
    /// The same upscaling as plain values, for the fused pass.
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
        let output_upscaling_conv1 = Upscale::new(
            transformer_dim,
            transformer_dim / 4,
            vb.pp("output_upscaling.0"),
        )?;
        let ln = vb.pp("output_upscaling.1");
        let output_upscaling_ln = Tensor::cat(
            &[
                ln.get(transformer_dim / 4, "weight")?,
                ln.get(transformer_dim / 4, "bias")?,
            ],
            0,
        )?;
        let output_upscaling_conv2 = Upscale::new(
            transformer_dim / 4,
            transformer_dim / 8,
            vb.pp("output_upscaling.3"),
        )?;
        let upscale_weights = upscale_weights(
            &output_upscaling_conv1,
            &output_upscaling_ln,
            &output_upscaling_conv2,
        )?;
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
            output_upscaling_conv1,
            output_upscaling_ln,
            output_upscaling_conv2,
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
    /// hypernetwork outputs `(m, C / 8)`: the fused tiled pass on CPU tensors, the plain
    /// steps otherwise.
    fn masks(&self, src: &Tensor, hyper_in: &Tensor, hw: (usize, usize)) -> Result<Tensor> {
        let hyper = hyper_in.flatten_all()?.to_vec1::<f32>()?;
        let dev = src.device();
        let wts = &self.upscale_weights;
        match with_values(src, |s| {
            upscaled_masks_tensor(s, hw, wts, &hyper, 1e-6, dev)
        }) {
            Some(masks) => masks,
            None => masks_from(&self.upscale(src)?, hyper_in, hw),
        }
    }

    /// The upscaled mask embedding of the image tokens `(4096, C)`, in the blocks order of
    /// [`Upscale`]: `(4096 * 16, C / 8)`.
    /// Bias, layer norm (eps 1e-6, as the reference's `LayerNorm2d`) and GELU run fused,
    /// in place on each product.
    fn upscale(&self, src: &Tensor) -> Result<Tensor> {
        let (conv1, conv2) = (&self.output_upscaling_conv1, &self.output_upscaling_conv2);
        let up = conv1.product(src)?;
        let up = bias_norm_gelu(up, &conv1.bias, &self.output_upscaling_ln, 1e-6)?;
        let up = conv2.product(&up.reshape(((), conv1.cout))?)?;
        bias_act(up, &conv2.bias, 1, Act::Gelu)?.reshape(((), conv2.cout))
    }
}

/// The upscaling's weights as plain values.
fn upscale_weights(conv1: &Upscale, ln: &Tensor, conv2: &Upscale) -> Result<UpscaleWeights> {
    let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    Ok(UpscaleWeights {
        w1: values(&conv1.weight)?,
        b1: values(&conv1.bias)?,
        ln: values(ln)?,
        w2: values(&conv2.weight)?,
        b2: values(&conv2.bias)?,
    })
}

/// The masks `(m, 4h, 4w)` from the upscaled embedding (rows in the order of two nested
/// [`Upscale`] blocks over the `h x w` grid) and the hypernetwork outputs `(m, C / 8)`.
fn masks_from(upscaled: &Tensor, hyper_in: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
    let m = hyper_in.dim(0)?;
    // (16hw, m): pixel-major products, then scattered to their places.
    let flat = upscaled
        .matmul(&hyper_in.t()?)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let (ow, plane) = (4 * w, 16 * h * w);
    let mut out = vec![0f32; m * plane];
    for (r, values) in flat.chunks_exact(m).enumerate() {
        // r = ((((y * w + x) * 2 + ky) * 2 + kx) * 2 + ky2) * 2 + kx2
        let (kx2, ky2, kx, ky) = (r & 1, (r >> 1) & 1, (r >> 2) & 1, (r >> 3) & 1);
        let p = r >> 4;
        let (y, x) = (p / w, p % w);
        let at = (4 * y + 2 * ky + ky2) * ow + 4 * x + 2 * kx + kx2;
        for (k, v) in values.iter().enumerate() {
            out[k * plane + at] = *v;
        }
    }
    Tensor::from_vec(out, (m, 4 * h, 4 * w), hyper_in.device())
}

#[cfg(test)]
mod tests {
    use super::super::max_diff;
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    #[test]
    fn two_upscales_and_the_hypernetwork_product_match_transposed_convolutions() {
        let dev = Device::Cpu;
        let (c, h, w) = (16, 3, 5);
        let mut ts = HashMap::new();
        for (name, (cin, cout)) in [("a", (c, c / 4)), ("b", (c / 4, c / 8))] {
            let weight = Tensor::randn(0f32, 1.0, (cin, cout, 2, 2), &dev).unwrap();
            ts.insert(format!("{name}.weight"), weight);
            ts.insert(
                format!("{name}.bias"),
                Tensor::randn(0f32, 1.0, cout, &dev).unwrap(),
            );
        }
        let vb = VarBuilder::from_tensors(ts.clone(), DType::F32, &dev);
        let a = Upscale::new(c, c / 4, vb.pp("a")).unwrap();
        let b = Upscale::new(c / 4, c / 8, vb.pp("b")).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, c, h, w), &dev).unwrap();
        let hyper = Tensor::randn(0f32, 1.0, (3, c / 8), &dev).unwrap();

        let tokens = x
            .reshape((c, h * w))
            .unwrap()
            .t()
            .unwrap()
            .contiguous()
            .unwrap();
        let up = b.forward(&a.forward(&tokens).unwrap()).unwrap();
        let ours = masks_from(&up, &hyper, (h, w)).unwrap();

        let conv = |x: &Tensor, name: &str| {
            let bias = ts[&format!("{name}.bias")].reshape((1, (), 1, 1)).unwrap();
            let weight = &ts[&format!("{name}.weight")];
            let y = x.conv_transpose2d(weight, 0, 0, 2, 1).unwrap();
            y.broadcast_add(&bias).unwrap()
        };
        let up = conv(&conv(&x, "a"), "b");
        let theirs = hyper
            .matmul(&up.reshape((c / 8, 16 * h * w)).unwrap())
            .unwrap()
            .reshape((3, 4 * h, 4 * w))
            .unwrap();
        let diff = max_diff(&ours, &theirs);
        assert!(diff < 1e-4, "{diff}");
    }

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
            let vb = VarBuilder::from_tensors(ts.clone(), DType::F32, &dev);
            let a = Upscale::new(c, c / 4, vb.pp("a")).unwrap();
            let b = Upscale::new(c / 4, c / 8, vb.pp("b")).unwrap();
            let ln = Tensor::cat(&[&ts["ln.weight"], &ts["ln.bias"]], 0).unwrap();
            let wts = upscale_weights(&a, &ln, &b).unwrap();
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
