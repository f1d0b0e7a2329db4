// Adapted from:
// https://github.com/ChaoningZhang/MobileSAM/blob/master/mobile_sam/modeling/tiny_vit_sam.py
use super::fast_ops::{Act, add_act, bias_act, linear_act, scaled_bias_softmax};
use candle_core::{D, IndexOp, Result, Tensor};
use candle_nn::{Conv2dConfig, Module, VarBuilder};

const MBCONV_EXPAND_RATIO: usize = 4;
const MLP_RATIO: usize = 4;
const LOCAL_CONV_SIZE: usize = 3;
const IMG_SIZE: usize = 1024;
const IN_CHANNELS: usize = 3;

/// How a [`Conv2dBN`] runs on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvKind {
    /// One filter per channel: our depthwise kernel.
    Depthwise,
    /// 1x1, stride 1: one matrix product on the NCHW tensor as it lies.
    Pointwise,
    /// Anything else: candle's convolution.
    General,
}

/// A convolution followed by inference-mode batch norm, folded into one convolution with
/// bias when loaded (scale = gamma / sqrt(var + eps)).
#[derive(Debug)]
struct Conv2dBN {
    weight: Tensor,
    bias: Tensor,
    cfg: Conv2dConfig,
    kind: ConvKind,
}

impl Conv2dBN {
    fn new(in_: usize, out: usize, ks: usize, cfg: Conv2dConfig, vb: VarBuilder) -> Result<Self> {
        let weight = vb.pp("c").get((out, in_ / cfg.groups, ks, ks), "weight")?;
        let bn = vb.pp("bn");
        let gamma = bn.get(out, "weight")?;
        let beta = bn.get(out, "bias")?;
        let mean = bn.get(out, "running_mean")?;
        let var = bn.get(out, "running_var")?;
        let scale = (gamma / (var + 1e-5)?.sqrt()?)?;
        let kind = if cfg.groups > 1 && cfg.groups == in_ && in_ == out {
            ConvKind::Depthwise
        } else if ks == 1 && cfg.stride == 1 && cfg.padding == 0 && cfg.groups == 1 {
            ConvKind::Pointwise
        } else {
            ConvKind::General
        };
        Ok(Self {
            weight: weight.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?,
            bias: (beta - (mean * &scale)?)?,
            cfg,
            kind,
        })
    }

    /// The convolution, its bias and then `act`, with the bias and activation fused.
    fn forward_act(&self, xs: &Tensor, act: Act) -> Result<Tensor> {
        let Conv2dConfig {
            padding, stride, ..
        } = self.cfg;
        let cpu = xs.device().is_cpu();
        match self.kind {
            ConvKind::Depthwise if cpu => super::depthwise::depthwise_conv2d(
                xs,
                &self.weight,
                &self.bias,
                (stride, padding),
                act,
            ),
            ConvKind::Pointwise => {
                let (b, c, h, w) = xs.dims4()?;
                let out = self.weight.dim(0)?;
                let ys = self
                    .weight
                    .reshape((out, c))?
                    .broadcast_left(b)?
                    .matmul(&xs.contiguous()?.reshape((b, c, h * w))?)?;
                bias_act(ys, &self.bias, h * w, act)?.reshape((b, out, h, w))
            }
            _ => {
                let ys = super::conv::conv2d(xs, &self.weight, &self.cfg)?;
                let (_, _, h, w) = ys.dims4()?;
                bias_act(ys, &self.bias, h * w, act)
            }
        }
    }
}

impl Module for Conv2dBN {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_act(xs, Act::Identity)
    }
}

#[derive(Debug)]
struct PatchEmbed {
    conv1: Conv2dBN,
    conv2: Conv2dBN,
}

impl PatchEmbed {
    fn new(in_chans: usize, embed_dim: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = candle_nn::Conv2dConfig {
            stride: 2,
            padding: 1,
            ..Default::default()
        };
        let conv1 = Conv2dBN::new(in_chans, embed_dim / 2, 3, cfg, vb.pp("seq.0"))?;
        let conv2 = Conv2dBN::new(embed_dim / 2, embed_dim, 3, cfg, vb.pp("seq.2"))?;
        Ok(Self { conv1, conv2 })
    }
}

impl Module for PatchEmbed {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.conv1.forward_act(xs, Act::Gelu)?;
        self.conv2.forward_act(&xs, Act::Identity)
    }
}

#[derive(Debug)]
struct MBConv {
    conv1: Conv2dBN,
    conv2: Conv2dBN,
    conv3: Conv2dBN,
}

impl MBConv {
    fn new(in_: usize, out: usize, expand_ratio: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = in_ * expand_ratio;
        let cfg2 = candle_nn::Conv2dConfig {
            padding: 1,
            groups: hidden,
            ..Default::default()
        };
        let conv1 = Conv2dBN::new(in_, hidden, 1, Default::default(), vb.pp("conv1"))?;
        let conv2 = Conv2dBN::new(hidden, hidden, 3, cfg2, vb.pp("conv2"))?;
        let conv3 = Conv2dBN::new(hidden, out, 1, Default::default(), vb.pp("conv3"))?;
        Ok(Self {
            conv1,
            conv2,
            conv3,
        })
    }
}

impl Module for MBConv {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let shortcut = xs;
        let xs = self.conv1.forward_act(xs, Act::Gelu)?;
        let xs = self.conv2.forward_act(&xs, Act::Gelu)?;
        let xs = self.conv3.forward_act(&xs, Act::Identity)?;
        add_act(xs, shortcut, Act::Gelu)
    }
}

#[derive(Debug)]
struct PatchMerging {
    conv1: Conv2dBN,
    conv2: Conv2dBN,
    conv3: Conv2dBN,
    input_resolution: (usize, usize),
}

impl PatchMerging {
    fn new(
        input_resolution: (usize, usize),
        dim: usize,
        out: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let stride = if [320, 448, 576].contains(&out) { 1 } else { 2 };
        let cfg2 = candle_nn::Conv2dConfig {
            padding: 1,
            stride,
            groups: out,
            ..Default::default()
        };
        let conv1 = Conv2dBN::new(dim, out, 1, Default::default(), vb.pp("conv1"))?;
        let conv2 = Conv2dBN::new(out, out, 3, cfg2, vb.pp("conv2"))?;
        let conv3 = Conv2dBN::new(out, out, 1, Default::default(), vb.pp("conv3"))?;
        Ok(Self {
            conv1,
            conv2,
            conv3,
            input_resolution,
        })
    }
}

impl Module for PatchMerging {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = if xs.rank() == 3 {
            let (h, w) = self.input_resolution;
            let b = xs.dim(0)?;
            xs.reshape((b, h, w, ()))?.permute((0, 3, 1, 2))?
        } else {
            xs.clone()
        };
        let xs = self.conv1.forward_act(&xs, Act::Gelu)?;
        let xs = self.conv2.forward_act(&xs, Act::Gelu)?;
        self.conv3
            .forward_act(&xs, Act::Identity)?
            .flatten_from(2)?
            .transpose(1, 2)
    }
}

/// A stage of TinyViT: its blocks, then an optional downsampling to the next width.
#[derive(Debug)]
struct Stage<B> {
    blocks: Vec<B>,
    downsample: Option<PatchMerging>,
}

impl<B> Stage<B> {
    fn new(
        blocks: Vec<B>,
        downsample: bool,
        (input_resolution, dim, out): ((usize, usize), usize, usize),
        vb: &VarBuilder,
    ) -> Result<Self> {
        let downsample = match downsample {
            true => Some(PatchMerging::new(
                input_resolution,
                dim,
                out,
                vb.pp("downsample"),
            )?),
            false => None,
        };
        Ok(Self { blocks, downsample })
    }
}

impl<B: Module> Module for Stage<B> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.clone();
        for block in self.blocks.iter() {
            xs = block.forward(&xs)?
        }
        match &self.downsample {
            None => Ok(xs),
            Some(downsample) => downsample.forward(&xs),
        }
    }
}

/// The first stage: MBConv blocks.
type ConvLayer = Stage<MBConv>;

impl ConvLayer {
    fn convolutional(
        dim: usize,
        out: usize,
        input_resolution: (usize, usize),
        depth: usize,
        conv_expand_ratio: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb_b = vb.pp("blocks");
        let blocks = (0..depth)
            .map(|i| MBConv::new(dim, dim, conv_expand_ratio, vb_b.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Stage::new(blocks, true, (input_resolution, dim, out), &vb)
    }
}

#[derive(Debug)]
struct Mlp {
    norm: candle_nn::LayerNorm,
    fc1: candle_nn::Linear,
    fc2: candle_nn::Linear,
}

impl Mlp {
    fn new(in_: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let norm = candle_nn::layer_norm(in_, 1e-5, vb.pp("norm"))?;
        let fc1 = super::linear(vb.pp("fc1"), in_, hidden, true)?;
        let fc2 = super::linear(vb.pp("fc2"), hidden, in_, true)?;
        Ok(Self { norm, fc1, fc2 })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = linear_act(&self.fc1, &xs.apply(&self.norm)?, Act::Gelu)?;
        hidden.apply(&self.fc2)
    }
}

#[derive(Debug)]
struct Attention {
    norm: candle_nn::LayerNorm,
    qkv: candle_nn::Linear,
    proj: candle_nn::Linear,
    ab: Tensor,
    key_dim: usize,
    num_heads: usize,
    d: usize,
    dh: usize,
    scale: f64,
}

impl Attention {
    fn new(
        dim: usize,
        key_dim: usize,
        num_heads: usize,
        attn_ratio: usize,
        resolution: (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        let d = attn_ratio * key_dim;
        let dh = d * num_heads;
        let nh_kd = key_dim * num_heads;
        let h = dh + nh_kd * 2;
        let norm = candle_nn::layer_norm(dim, 1e-5, vb.pp("norm"))?;
        let qkv = super::linear(vb.pp("qkv"), dim, h, true)?;
        let proj = super::linear(vb.pp("proj"), dh, dim, true)?;

        let points = (0..resolution.0)
            .flat_map(|x| (0..resolution.1).map(move |y| (x as i64, y as i64)))
            .collect::<Vec<_>>();
        let mut idxs = Vec::with_capacity(points.len() * points.len());
        let mut attention_offsets = std::collections::HashMap::new();
        for &(x1, y1) in points.iter() {
            for &(x2, y2) in points.iter() {
                let offset = ((x2 - x1).abs(), (y2 - y1).abs());
                let l = attention_offsets.len();
                let idx = attention_offsets.entry(offset).or_insert(l);
                idxs.push(*idx as u32)
            }
        }
        let attention_biases = vb.get((num_heads, attention_offsets.len()), "attention_biases")?;
        let idxs = Tensor::new(idxs, attention_biases.device())?;
        let ab =
            attention_biases
                .index_select(&idxs, 1)?
                .reshape(((), points.len(), points.len()))?;
        Ok(Self {
            norm,
            qkv,
            proj,
            ab,
            key_dim,
            num_heads,
            d,
            dh,
            scale: 1f64 / (key_dim as f64).sqrt(),
        })
    }
}

impl Module for Attention {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, n, _) = xs.dims3()?;
        let xs = xs.apply(&self.norm)?;
        let qkv = xs.apply(&self.qkv)?.reshape((b, n, self.num_heads, ()))?;
        let q = qkv
            .narrow(D::Minus1, 0, self.key_dim)?
            .permute((0, 2, 1, 3))?
            .contiguous()?;
        let k = qkv
            .narrow(D::Minus1, self.key_dim, self.key_dim)?
            .permute((0, 2, 1, 3))?
            .contiguous()?;
        let v = qkv
            .narrow(D::Minus1, 2 * self.key_dim, self.d)?
            .permute((0, 2, 1, 3))?
            .contiguous()?;
        let attn = scaled_bias_softmax(q.matmul(&k.t()?)?, &self.ab, self.scale)?;
        let attn = attn.matmul(&v)?;
        attn.transpose(1, 2)?
            .reshape((b, n, self.dh))?
            .apply(&self.proj)
    }
}

#[derive(Debug)]
struct TinyViTBlock {
    attn: Attention,
    local_conv: Conv2dBN,
    mlp: Mlp,
    window_size: usize,
    input_resolution: (usize, usize),
}

impl TinyViTBlock {
    fn new(
        dim: usize,
        input_resolution: (usize, usize),
        num_heads: usize,
        window_size: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let head_dim = dim / num_heads;
        let attn = Attention::new(
            dim,
            head_dim,
            num_heads,
            1,
            (window_size, window_size),
            vb.pp("attn"),
        )?;
        let mlp = Mlp::new(dim, dim * MLP_RATIO, vb.pp("mlp"))?;
        let cfg = candle_nn::Conv2dConfig {
            padding: LOCAL_CONV_SIZE / 2,
            groups: dim,
            ..Default::default()
        };
        let local_conv = Conv2dBN::new(dim, dim, LOCAL_CONV_SIZE, cfg, vb.pp("local_conv"))?;
        Ok(Self {
            attn,
            local_conv,
            mlp,
            window_size,
            input_resolution,
        })
    }
}

impl Module for TinyViTBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (h, w) = self.input_resolution;
        let (b, l, c) = xs.dims3()?;
        let res_x = xs;
        let xs = if h == self.window_size && w == self.window_size {
            self.attn.forward(xs)?
        } else {
            let xs = xs.reshape((b, h, w, c))?;
            let pad_b = (self.window_size - h % self.window_size) % self.window_size;
            let pad_r = (self.window_size - w % self.window_size) % self.window_size;

            let xs = if pad_b > 0 {
                xs.pad_with_zeros(1, 0, pad_b)?
            } else {
                xs
            };
            let xs = if pad_r > 0 {
                xs.pad_with_zeros(2, 0, pad_r)?
            } else {
                xs
            };
            let (p_h, p_w) = (h + pad_b, w + pad_r);
            let n_h = p_h / self.window_size;
            let n_w = p_w / self.window_size;
            let xs = xs
                .reshape((b, n_h, self.window_size, n_w, self.window_size, c))?
                .transpose(2, 3)?
                .reshape((b * n_h * n_w, self.window_size * self.window_size, c))?;
            let xs = self.attn.forward(&xs)?;
            let xs = xs
                .reshape((b, n_h, n_w, self.window_size, self.window_size, c))?
                .transpose(2, 3)?
                .reshape((b, p_h, p_w, c))?;
            let xs = if pad_r > 0 {
                xs.i((.., .., ..w))?.contiguous()?
            } else {
                xs
            };
            let xs = if pad_b > 0 {
                xs.i((.., ..h, ..))?.contiguous()?
            } else {
                xs
            };
            xs.reshape((b, l, c))?
        };
        let xs = add_act(xs, res_x, Act::Identity)?;
        let xs = xs
            .transpose(1, 2)?
            .reshape((b, c, h, w))?
            .apply(&self.local_conv)?
            .reshape((b, c, l))?
            .transpose(1, 2)?;
        add_act(self.mlp.forward(&xs)?, &xs, Act::Identity)
    }
}

/// The later stages: attention blocks.
type BasicLayer = Stage<TinyViTBlock>;

impl BasicLayer {
    #[allow(clippy::too_many_arguments)]
    fn attention(
        dim: usize,
        input_resolution: (usize, usize),
        depth: usize,
        num_heads: usize,
        window_size: usize,
        downsample: bool,
        out: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb_b = vb.pp("blocks");
        let blocks = (0..depth)
            .map(|i| TinyViTBlock::new(dim, input_resolution, num_heads, window_size, vb_b.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Stage::new(blocks, downsample, (input_resolution, dim, out), &vb)
    }
}

#[derive(Debug)]
pub struct TinyViT {
    patch_embed: PatchEmbed,
    layer0: ConvLayer,
    layers: Vec<BasicLayer>,
    // norm_head: candle_nn::LayerNorm,
    // head: candle_nn::Linear,
    neck_conv1: candle_nn::Conv2d,
    neck_ln1: super::LayerNorm2d,
    neck_conv2: candle_nn::Conv2d,
    neck_ln2: super::LayerNorm2d,
}

impl TinyViT {
    pub fn new(
        embed_dims: &[usize],
        depths: &[usize],
        num_heads: &[usize],
        window_sizes: &[usize],
        _num_classes: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let patch_embed = PatchEmbed::new(IN_CHANNELS, embed_dims[0], vb.pp("patch_embed"))?;
        let patches_resolution = IMG_SIZE / 4;

        let vb_l = vb.pp("layers");
        let layer0 = ConvLayer::convolutional(
            /* dim */ embed_dims[0],
            /* out */ embed_dims[1],
            /* input_resolution */ (patches_resolution, patches_resolution),
            /* depth */ depths[0],
            /* conv_expand_ratio */ MBCONV_EXPAND_RATIO,
            vb_l.pp(0),
        )?;

        let num_layers = embed_dims.len();
        let mut layers = Vec::with_capacity(num_layers - 1);
        for i_layer in 1..num_layers {
            let patches_resolution = patches_resolution / (1 << usize::min(i_layer, 2));
            let layer = BasicLayer::attention(
                /* dim */ embed_dims[i_layer],
                /* input_resolution */ (patches_resolution, patches_resolution),
                /* depth */ depths[i_layer],
                /* num_heads */ num_heads[i_layer],
                /* window_size */ window_sizes[i_layer],
                /* downsample */ i_layer < num_layers - 1,
                /* out */ embed_dims[usize::min(i_layer + 1, num_layers - 1)],
                vb_l.pp(i_layer),
            )?;
            layers.push(layer)
        }

        let last_embed_dim = embed_dims[embed_dims.len() - 1];
        // let norm_head = candle_nn::layer_norm(last_embed_dim, 1e-5, vb.pp("norm_head"))?;
        // let head = candle_nn::linear(last_embed_dim, num_classes, vb.pp("head"))?;
        let neck_conv1 =
            candle_nn::conv2d_no_bias(last_embed_dim, 256, 1, Default::default(), vb.pp("neck.0"))?;
        let neck_ln1 = super::LayerNorm2d::new(256, 1e-6, vb.pp("neck.1"))?;
        let cfg = candle_nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let neck_conv2 = candle_nn::conv2d_no_bias(256, 256, 3, cfg, vb.pp("neck.2"))?;
        let neck_ln2 = super::LayerNorm2d::new(256, 1e-6, vb.pp("neck.3"))?;

        Ok(Self {
            patch_embed,
            layer0,
            layers,
            neck_conv1,
            neck_ln1,
            neck_conv2,
            neck_ln2,
        })
    }
}

impl TinyViT {
    /// The forward pass, reporting the fraction done after each stage; an error from
    /// `progress` (the caller gave up) stops it there.
    pub fn forward_with_progress(
        &self,
        xs: &Tensor,
        progress: &dyn Fn(f32) -> Result<()>,
    ) -> Result<Tensor> {
        let stages = self.layers.len() as f32 + 2.0;
        let xs = self.patch_embed.forward(xs)?;
        let mut xs = self.layer0.forward(&xs)?;
        progress(1.0 / stages)?;
        for (i, layer) in self.layers.iter().enumerate() {
            xs = layer.forward(&xs)?;
            progress((i as f32 + 2.0) / stages)?;
        }
        let (b, _, c) = xs.dims3()?;
        let xs = xs
            .reshape((b, 64, 64, c))?
            .permute((0, 3, 1, 2))?
            .apply(&self.neck_conv1)?
            .apply(&self.neck_ln1)?;
        super::conv::apply(&xs, &self.neck_conv2)?.apply(&self.neck_ln2)
    }
}

pub(super) fn tiny_vit_5m(vb: VarBuilder) -> Result<TinyViT> {
    TinyViT::new(
        /* embed_dims */ &[64, 128, 160, 320],
        /* depths */ &[2, 2, 6, 2],
        /* num_heads */ &[2, 4, 5, 10],
        /* window_sizes */ &[7, 7, 14, 7],
        /* num_classes */ 1000,
        vb,
    )
}
