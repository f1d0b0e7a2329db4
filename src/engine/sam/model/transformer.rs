//! The mask decoder's two-way transformer, computing what the reference's
//! `TwoWayTransformer` computes, arranged for a handful of prompt tokens against 4096 image
//! tokens (all tensors token-major: `(tokens, channels)`, one prompt at a time).
//!
//! Where the reference projects all 4096 image tokens to keys and values for every click,
//! the cross attentions here move the projections to the prompt side when that is smaller
//! (the products are associative): with `n` tokens and 8 heads, `8n` rows instead of the
//! 128 projected channels. The first layer's projections of the image tokens do not depend
//! on the prompt at all (up to the dense mask embedding, which is low rank): they are
//! computed once per image, in [`ImageCache`]. The decoder's share of a click drops about
//! threefold; the results differ from the reference only by float32 round-off.

use candle_core::{Result, Tensor};
use candle_nn::{LayerNorm, Linear, Module, VarBuilder, layer_norm};

use rayon::prelude::*;

use super::decoder_ops::{Strided, matmul_strided, plus, softmax_last_dim, sum};
use super::fast_ops::{Act, bias_act, softmax_rows};
use super::image_attention::{self, Folded};
use super::upscale::with_values;

/// `x W^T + b` for 2-D `x` (the bias added in place on the fresh product).
fn lin(x: &Tensor, l: &Linear) -> Result<Tensor> {
    let y = x.matmul(&l.weight().t()?)?;
    match l.bias() {
        Some(b) => bias_act(y, b, 1, Act::Identity),
        None => Ok(y),
    }
}

fn bias(l: &Linear) -> Result<&Tensor> {
    l.bias()
        .ok_or_else(|| candle_core::Error::Msg("attention projections have biases".into()))
}

/// `(n, heads * d)` to `(heads * n, heads * d)`: row `h * n + j` holds token `j`'s head-`h`
/// slice in head `h`'s columns and zeros elsewhere. A product with it computes every head's
/// own product in one matrix product.
fn block_diag(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (n, c) = x.dims2()?;
    let d = c / heads;
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; heads * n * c];
    for h in 0..heads {
        for j in 0..n {
            let at = (h * n + j) * c + h * d;
            out[at..at + d].copy_from_slice(&v[j * c + h * d..][..d]);
        }
    }
    Tensor::from_vec(out, (heads * n, c), x.device())
}

/// The inverse of [`block_diag`]: from `(heads * n, heads * d)`, each row's own head block.
fn diag_blocks(y: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, c) = y.dims2()?;
    let (n, d) = (rows / heads, c / heads);
    let v = y.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; n * c];
    for h in 0..heads {
        for j in 0..n {
            out[j * c + h * d..][..d].copy_from_slice(&v[(h * n + j) * c + h * d..][..d]);
        }
    }
    Tensor::from_vec(out, (n, c), y.device())
}

/// Each head's attention of queries `q` `(n, c)` (already scaled) over keys `k` and
/// values `v` `(rows, c)`, the heads' outputs side by side: `(n, c)`. Each head's products
/// read its own `c / heads` columns in place; the block-diagonal products that do all
/// heads at once would do `heads` times the work.
fn per_head_attention(q: &[f32], k: &[f32], v: &[f32], (heads, c): (usize, usize)) -> Vec<f32> {
    let (n, rows, d) = (q.len() / c, k.len() / c, c / heads);
    let outputs: Vec<Vec<f32>> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let mut scores = vec![0f32; n * rows];
            let q_h = Strided::new(&q[h * d..], (n, d), (c, 1));
            let k_h_t = Strided::new(&k[h * d..], (d, rows), (1, c));
            matmul_strided(&mut scores, rows, q_h, k_h_t);
            softmax_rows(&mut scores, rows);
            let mut out = vec![0f32; n * d];
            let p = Strided::new(&scores, (n, rows), (rows, 1));
            matmul_strided(&mut out, d, p, Strided::new(&v[h * d..], (rows, d), (c, 1)));
            out
        })
        .collect();
    let mut out = vec![0f32; n * c];
    for (h, head) in outputs.iter().enumerate() {
        for (j, row) in head.chunks_exact(d).enumerate() {
            out[j * c + h * d..][..d].copy_from_slice(row);
        }
    }
    out
}

/// The image side of a cross attention: the image tokens themselves, or their projections
/// already made (the first layer's, from the per-image cache).
#[derive(Clone, Copy)]
enum Image<'a> {
    /// `k_in` = tokens + positional encoding, `v_in` = tokens; each `(4096, C)`.
    Raw { k_in: &'a Tensor, v_in: &'a Tensor },
    /// Projected keys and values (or queries), each `(4096, C / 2)`, with a row `(1, C / 2)`
    /// to add to every row of each, where there is one: the first layer's constant dense
    /// prompt, folded in where it matters instead of added to 4096 rows per click.
    Projected {
        k: &'a Tensor,
        v: &'a Tensor,
        k_row: Option<&'a Tensor>,
        v_row: Option<&'a Tensor>,
    },
}

#[derive(Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
}

impl Attention {
    fn new(
        embedding_dim: usize,
        num_heads: usize,
        downsample_rate: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let internal_dim = embedding_dim / downsample_rate;
        let q_proj = candle_nn::linear(embedding_dim, internal_dim, vb.pp("q_proj"))?;
        let k_proj = candle_nn::linear(embedding_dim, internal_dim, vb.pp("k_proj"))?;
        let v_proj = candle_nn::linear(embedding_dim, internal_dim, vb.pp("v_proj"))?;
        let out_proj = candle_nn::linear(internal_dim, embedding_dim, vb.pp("out_proj"))?;
        Ok(Self {
            q_proj,
            k_proj,
            v_proj,
            out_proj,
            num_heads,
        })
    }

    fn internal_dim(&self) -> usize {
        self.q_proj.weight().dim(0).unwrap_or(0)
    }

    fn scale(&self) -> f64 {
        let head_dim = self.internal_dim() / self.num_heads;
        1.0 / (head_dim as f64).sqrt()
    }

    /// Attention among the prompt tokens (`(n, C)` each): small, done as the reference does.
    fn tokens_only(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let heads = |x: &Tensor| -> Result<Tensor> {
            let (n, c) = x.dims2()?;
            x.reshape((n, self.num_heads, c / self.num_heads))?
                .transpose(0, 1)?
                .contiguous()
        };
        let q = heads(&lin(q, &self.q_proj)?)?;
        let k = heads(&lin(k, &self.k_proj)?)?;
        let v = heads(&lin(v, &self.v_proj)?)?;
        let (_, n, d) = q.dims3()?;
        let attn = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
        let out = softmax_last_dim(attn)?.matmul(&v)?;
        lin(&out.transpose(0, 1)?.reshape((n, ()))?, &self.out_proj)
    }

    /// Prompt tokens `(n, C)` attending to the image: `(n, C)`.
    fn tokens_to_image(&self, q_in: &Tensor, image: Image) -> Result<Tensor> {
        let heads = self.num_heads;
        let q = lin(q_in, &self.q_proj)?;
        let n = q.dim(0)?;
        match image {
            // A row added to every key adds a constant to each row of scores, which the
            // softmax ignores: `k_row` drops out.
            Image::Projected { k, v, v_row, .. } => self.tokens_to_image_projected(&q, k, v, v_row),
            Image::Raw { k_in, v_in } if heads * n > self.internal_dim() => {
                let (k, v) = (lin(k_in, &self.k_proj)?, lin(v_in, &self.v_proj)?);
                self.tokens_to_image_projected(&q, &k, &v, None)
            }
            Image::Raw { k_in, v_in } => {
                let qbd = (block_diag(&q, heads)? * self.scale())?;
                // q (W_k x + b_k) = (q W_k) x + a constant per row, which softmax ignores.
                let scores = qbd.matmul(self.k_proj.weight())?.matmul(&k_in.t()?)?;
                let p = softmax_last_dim(scores)?;
                // p (W_v x + b_v)^T = (p x) W_v^T + b_v: each row of p sums to one.
                let mixed = p.matmul(v_in)?.matmul(&self.v_proj.weight().t()?)?;
                let out = diag_blocks(&mixed, heads)?.broadcast_add(bias(&self.v_proj)?)?;
                lin(&out, &self.out_proj)
            }
        }
    }

    /// Queries `q` `(n, C / 2)` over projected keys and values `(4096, C / 2)`, `v_row`
    /// added to every value row (each head's probabilities sum to one, so it is added to
    /// the mixed values once).
    fn tokens_to_image_projected(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        v_row: Option<&Tensor>,
    ) -> Result<Tensor> {
        let q = (q * self.scale())?;
        let c = q.dim(1)?;
        let out = with_values(&q, |q| {
            with_values(k, |k| {
                with_values(v, |v| per_head_attention(q, k, v, (self.num_heads, c)))
            })
        });
        let out = out.flatten().flatten().ok_or_else(|| {
            candle_core::Error::Msg("the decoder's attention needs contiguous f32 tensors".into())
        })?;
        let mut out = Tensor::from_vec(out, q.shape(), q.device())?;
        if let Some(row) = v_row {
            out = out.broadcast_add(row)?;
        }
        lin(&out, &self.out_proj)
    }

    /// The image `(4096, C)` attending to the prompt tokens `k_in`, `v_in` (`(n, C)`):
    /// `(4096, C)`. `image` gives the queries: `k_in` of [`Image::Raw`] (tokens plus
    /// positional encoding), or `k` of [`Image::Projected`] (already projected).
    fn image_to_tokens(&self, image: Image, k_in: &Tensor, v_in: &Tensor) -> Result<Tensor> {
        let heads = self.num_heads;
        let k = lin(k_in, &self.k_proj)?;
        let v = lin(v_in, &self.v_proj)?;
        let n = k.dim(0)?;
        let kbd = (block_diag(&k, heads)? * self.scale())?;
        let folded = heads * n <= self.internal_dim();
        let scores = match image {
            Image::Projected { k: q, k_row, .. } => {
                let scores = q.matmul(&kbd.t()?)?;
                match k_row {
                    Some(row) => scores.broadcast_add(&row.matmul(&kbd.t()?)?)?,
                    None => scores,
                }
            }
            Image::Raw { k_in: q_in, .. } if !folded => {
                lin(q_in, &self.q_proj)?.matmul(&kbd.t()?)?
            }
            Image::Raw { k_in: q_in, .. } => {
                // (W_q x + b_q) k = x (W_q^T k) + b_q k.
                let g = kbd.matmul(self.q_proj.weight())?;
                let r = kbd.matmul(&bias(&self.q_proj)?.unsqueeze(1)?)?;
                bias_act(q_in.matmul(&g.t()?)?, &r.flatten_all()?, 1, Act::Identity)?
            }
        };
        let rows = scores.dim(0)?;
        let p = softmax_last_dim(scores.reshape((rows, heads, n))?)?.reshape((rows, heads * n))?;
        let vbd = block_diag(&v, heads)?;
        if folded {
            // (p v) W_o^T = p (v W_o^T): 8n inner products per pixel instead of 128.
            let u = lin(&vbd, &self.out_proj)?.broadcast_sub(bias(&self.out_proj)?)?;
            bias_act(p.matmul(&u)?, bias(&self.out_proj)?, 1, Act::Identity)
        } else {
            lin(&p.matmul(&vbd)?, &self.out_proj)
        }
    }

    /// `norm(keys + image_to_tokens(image, k_in, v_in))`: in one tiled pass
    /// ([`image_attention`]) when the projections fold to the prompt side.
    fn image_to_tokens_normed(
        &self,
        image: Image,
        (k_in, v_in): (&Tensor, &Tensor),
        keys: &Tensor,
        norm: &LayerNorm,
    ) -> Result<Tensor> {
        if self.num_heads * k_in.dim(0)? <= self.internal_dim()
            && let Some(out) = self.image_to_tokens_fused(image, (k_in, v_in), keys, norm)?
        {
            return Ok(out);
        }
        let attn_out = self.image_to_tokens(image, k_in, v_in)?;
        norm.forward(&plus(keys, attn_out)?)
    }

    /// The folded attention, residual and norm fused; `None` where a tensor is not a
    /// contiguous f32 CPU tensor (the caller then takes the plain steps).
    fn image_to_tokens_fused(
        &self,
        image: Image,
        (k_in, v_in): (&Tensor, &Tensor),
        keys: &Tensor,
        norm: &LayerNorm,
    ) -> Result<Option<Tensor>> {
        let heads = self.num_heads;
        let n = k_in.dim(0)?;
        let kbd = (block_diag(&lin(k_in, &self.k_proj)?, heads)? * self.scale())?;
        let (x, g, r) = match image {
            Image::Projected { k: q, k_row, .. } => {
                let r = match k_row {
                    Some(row) => row.matmul(&kbd.t()?)?.flatten_all()?,
                    None => kbd.zeros_like()?.sum(1)?,
                };
                (q, kbd.clone(), r)
            }
            Image::Raw { k_in: q_in, .. } => {
                let r = kbd.matmul(&bias(&self.q_proj)?.unsqueeze(1)?)?;
                (q_in, kbd.matmul(self.q_proj.weight())?, r.flatten_all()?)
            }
        };
        // (p v) W_o^T = p (v W_o^T): 8n inner products per pixel instead of 128.
        let vbd = block_diag(&lin(v_in, &self.v_proj)?, heads)?;
        let u = vbd.matmul(&self.out_proj.weight().t()?)?;
        let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let norm_params = match norm.bias() {
            Some(b) => Tensor::cat(&[norm.weight(), b], 0)?,
            None => return Ok(None),
        };
        let (g, r, u) = (values(&g)?, values(&r)?, values(&u)?);
        let (out_bias, norm_params) = (values(bias(&self.out_proj)?)?, values(&norm_params)?);
        let folded = Folded {
            g: &g,
            r: &r,
            n,
            u: &u,
            out_bias: &out_bias,
            norm: &norm_params,
            eps: norm.eps() as f32,
        };
        let d = x.dim(1)?;
        let out = with_values(x, |x| {
            with_values(keys, |k| image_attention::image_to_tokens(x, d, k, &folded))
        });
        match out.flatten() {
            Some(out) => Ok(Some(Tensor::from_vec(out, keys.shape(), keys.device())?)),
            None => Ok(None),
        }
    }
}

/// The first layer's projections of one image's tokens (with the positional encoding where
/// the layer adds it), before any prompt: keys and values of the token-to-image attention,
/// queries of the image-to-token attention. The dense prompt embedding is added later
/// through [`DenseTerm`], as its own (cheap) projection.
pub struct ImageCache {
    pub k: Tensor,
    pub v: Tensor,
    pub q: Tensor,
}

/// Projects the dense prompt embedding (a constant or a low-rank map) through a linear
/// layer without its bias: `(1 or 4096, C / 2)` to add to a cached projection.
pub trait DenseTerm {
    fn project(&self, weight: &Tensor) -> Result<Tensor>;
    /// Whether the embedding is one row for every image token (no mask prompt): then
    /// [`DenseTerm::project`] gives that row, `(1, C / 2)`.
    fn is_constant(&self) -> bool;
}

/// The first layer's image projections for one prompt: the cached ones with the dense
/// prompt added, or, where it is constant, the cached ones as they are and the rows still
/// to add (to the values of the token-to-image attention, to the queries of the
/// image-to-token attention; the keys' row drops out of the softmax).
struct FirstLayer {
    k: Tensor,
    v: Tensor,
    q: Tensor,
    v_row: Option<Tensor>,
    q_row: Option<Tensor>,
}

#[derive(Debug)]
struct TwoWayAttentionBlock {
    self_attn: Attention,
    norm1: LayerNorm,
    cross_attn_token_to_image: Attention,
    norm2: LayerNorm,
    mlp: super::MlpBlock,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_attn_image_to_token: Attention,
    skip_first_layer_pe: bool,
}

impl TwoWayAttentionBlock {
    fn new(
        embedding_dim: usize,
        num_heads: usize,
        mlp_dim: usize,
        skip_first_layer_pe: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let norm = |name: &str| layer_norm(embedding_dim, 1e-5, vb.pp(name));
        let cross = |name: &str| Attention::new(embedding_dim, num_heads, 2, vb.pp(name));
        let mlp = super::MlpBlock::new(
            embedding_dim,
            mlp_dim,
            candle_nn::Activation::Relu,
            vb.pp("mlp"),
        )?;
        Ok(Self {
            self_attn: Attention::new(embedding_dim, num_heads, 1, vb.pp("self_attn"))?,
            norm1: norm("norm1")?,
            cross_attn_image_to_token: cross("cross_attn_image_to_token")?,
            norm2: norm("norm2")?,
            mlp,
            norm3: norm("norm3")?,
            norm4: norm("norm4")?,
            cross_attn_token_to_image: cross("cross_attn_token_to_image")?,
            skip_first_layer_pe,
        })
    }

    /// `cached`: this layer's image projections with the dense term to add (first layer).
    fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
        cached: Option<(&ImageCache, &dyn DenseTerm)>,
    ) -> Result<(Tensor, Tensor)> {
        // Self attention block
        let queries = if self.skip_first_layer_pe {
            self.self_attn.tokens_only(queries, queries, queries)?
        } else {
            let q = (queries + query_pe)?;
            (queries + self.self_attn.tokens_only(&q, &q, queries)?)?
        };
        let queries = self.norm1.forward(&queries)?;

        let t2i = &self.cross_attn_token_to_image;
        let i2t = &self.cross_attn_image_to_token;
        let projected = match cached {
            Some((c, dense)) if dense.is_constant() => Some(FirstLayer {
                k: c.k.clone(),
                v: c.v.clone(),
                q: c.q.clone(),
                v_row: Some(dense.project(t2i.v_proj.weight())?),
                q_row: Some(dense.project(i2t.q_proj.weight())?),
            }),
            Some((c, dense)) => Some(FirstLayer {
                k: plus(&c.k, dense.project(t2i.k_proj.weight())?)?,
                v: plus(&c.v, dense.project(t2i.v_proj.weight())?)?,
                q: plus(&c.q, dense.project(i2t.q_proj.weight())?)?,
                v_row: None,
                q_row: None,
            }),
            None => None,
        };
        let keys_pe = match projected {
            Some(_) => None,
            None => Some(sum(keys, key_pe)?),
        };
        let (image, image_queries) = match (&projected, &keys_pe) {
            (Some(p), _) => (
                // The keys' row is left out: softmax ignores it (see `tokens_to_image`).
                Image::Projected {
                    k: &p.k,
                    v: &p.v,
                    k_row: None,
                    v_row: p.v_row.as_ref(),
                },
                Image::Projected {
                    k: &p.q,
                    v: &p.q,
                    k_row: p.q_row.as_ref(),
                    v_row: None,
                },
            ),
            (None, Some(k_in)) => {
                let raw = Image::Raw { k_in, v_in: keys };
                (raw, raw)
            }
            (None, None) => unreachable!("one of the two is set"),
        };

        // Cross attention block, tokens attending to image embedding
        let q = (&queries + query_pe)?;
        let attn_out = t2i.tokens_to_image(&q, image)?;
        let queries = self.norm2.forward(&(&queries + attn_out)?)?;

        // MLP block
        let mlp_out = self.mlp.forward(&queries)?;
        let queries = self.norm3.forward(&(queries + mlp_out)?)?;

        // Cross attention block, image embedding attending to tokens
        let q = (&queries + query_pe)?;
        let keys = i2t.image_to_tokens_normed(image_queries, (&q, &queries), keys, &self.norm4)?;

        Ok((queries, keys))
    }
}

#[derive(Debug)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayAttentionBlock>,
    final_attn_token_to_image: Attention,
    norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    pub fn new(
        depth: usize,
        embedding_dim: usize,
        num_heads: usize,
        mlp_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb_l = vb.pp("layers");
        let mut layers = Vec::with_capacity(depth);
        for i in 0..depth {
            let layer =
                TwoWayAttentionBlock::new(embedding_dim, num_heads, mlp_dim, i == 0, vb_l.pp(i))?;
            layers.push(layer)
        }
        let final_attn_token_to_image = Attention::new(
            embedding_dim,
            num_heads,
            2,
            vb.pp("final_attn_token_to_image"),
        )?;
        let norm_final_attn = layer_norm(embedding_dim, 1e-5, vb.pp("norm_final_attn"))?;
        Ok(Self {
            layers,
            final_attn_token_to_image,
            norm_final_attn,
        })
    }

    /// The first layer's prompt-independent projections of an image's tokens `(4096, C)`
    /// with their positional encoding `pe`.
    pub fn cache_image(&self, image: &Tensor, pe: &Tensor) -> Result<ImageCache> {
        let first = &self.layers[0];
        let with_pe = (image + pe)?;
        Ok(ImageCache {
            k: lin(&with_pe, &first.cross_attn_token_to_image.k_proj)?,
            v: lin(image, &first.cross_attn_token_to_image.v_proj)?,
            q: lin(&with_pe, &first.cross_attn_image_to_token.q_proj)?,
        })
    }

    /// `src`: the image tokens plus the dense prompt embedding `(4096, C)`, whose
    /// projections without `dense` are `cache`; `image_pe` `(4096, C)`; `point_embedding`
    /// `(n, C)`. Returns the first `read` tokens `(read, C)` and the image tokens
    /// `(4096, C)`.
    ///
    /// Only the first `read` tokens' outputs are computed by the final attention (the
    /// reference computes all `n` and the decoder reads the IoU and mask tokens, which come
    /// first): the click tokens' rows cost as much as the others and are thrown away.
    pub fn forward(
        &self,
        src: &Tensor,
        cache: &ImageCache,
        dense: &dyn DenseTerm,
        image_pe: &Tensor,
        point_embedding: &Tensor,
        read: usize,
    ) -> Result<(Tensor, Tensor)> {
        let mut queries = point_embedding.clone();
        let mut keys = src.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let cached = (i == 0).then_some((cache, dense));
            (queries, keys) = layer.forward(&queries, &keys, point_embedding, image_pe, cached)?
        }
        let queries = queries.narrow(0, 0, read)?;
        let q = (&queries + point_embedding.narrow(0, 0, read)?)?;
        let k = sum(&keys, image_pe)?;
        let image = Image::Raw {
            k_in: &k,
            v_in: &keys,
        };
        let attn_out = self.final_attn_token_to_image.tokens_to_image(&q, image)?;
        let queries = (queries + attn_out)?.apply(&self.norm_final_attn)?;
        Ok((queries, keys))
    }
}

#[cfg(test)]
mod tests {
    use super::super::max_diff;
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    fn random_attention(c: usize, downsample: usize) -> Attention {
        let dev = Device::Cpu;
        let ci = c / downsample;
        let mut ts = HashMap::new();
        for (name, (o, i)) in [
            ("q_proj", (ci, c)),
            ("k_proj", (ci, c)),
            ("v_proj", (ci, c)),
            ("out_proj", (c, ci)),
        ] {
            let w = Tensor::randn(0f32, 0.2, (o, i), &dev).unwrap();
            ts.insert(format!("{name}.weight"), w);
            ts.insert(
                format!("{name}.bias"),
                Tensor::randn(0f32, 0.5, o, &dev).unwrap(),
            );
        }
        let vb = VarBuilder::from_tensors(ts, DType::F32, &dev);
        Attention::new(c, 8, downsample, vb).unwrap()
    }

    /// The reference's attention: project, split heads, scaled dot product, recombine.
    fn naive(a: &Attention, q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let heads = |x: Tensor| {
            let (n, c) = x.dims2().unwrap();
            x.reshape((n, 8, c / 8)).unwrap().transpose(0, 1).unwrap()
        };
        let q = heads(q.apply(&a.q_proj).unwrap()).contiguous().unwrap();
        let k = heads(k.apply(&a.k_proj).unwrap()).contiguous().unwrap();
        let v = heads(v.apply(&a.v_proj).unwrap()).contiguous().unwrap();
        let d = q.dim(2).unwrap() as f64;
        let attn = (q.matmul(&k.t().unwrap()).unwrap() / d.sqrt()).unwrap();
        let out = candle_nn::ops::softmax_last_dim(&attn)
            .unwrap()
            .matmul(&v)
            .unwrap();
        let n = out.dim(1).unwrap();
        out.transpose(0, 1)
            .unwrap()
            .reshape((n, ()))
            .unwrap()
            .apply(&a.out_proj)
            .unwrap()
    }

    fn randn(shape: (usize, usize)) -> Tensor {
        Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn block_diag_and_diag_blocks_are_inverse() {
        let x = randn((3, 16));
        let bd = block_diag(&x, 4).unwrap();
        assert_eq!(bd.dims(), [12, 16]);
        let row: Vec<f32> = bd.get(4).unwrap().to_vec1().unwrap();
        assert_eq!(&row[..4], &[0.0; 4]);
        assert_eq!(max_diff(&diag_blocks(&bd, 4).unwrap(), &x), 0.0);
    }

    #[test]
    fn cross_attentions_compute_the_references_attention_folded_or_not() {
        let a = random_attention(64, 2);
        let image = randn((300, 64));
        let image_pe = (&image + randn((300, 64))).unwrap();
        // 3 tokens: projections moved to the prompt side; 20: the image side projected.
        for n in [3, 20] {
            let tokens = randn((n, 64));
            let tokens_pe = (&tokens + randn((n, 64))).unwrap();
            let raw = Image::Raw {
                k_in: &image_pe,
                v_in: &image,
            };
            let ours = a.tokens_to_image(&tokens_pe, raw).unwrap();
            let theirs = naive(&a, &tokens_pe, &image_pe, &image);
            assert!(max_diff(&ours, &theirs) < 1e-4, "t2i, {n} tokens");
            let (k, v) = (
                lin(&image_pe, &a.k_proj).unwrap(),
                lin(&image, &a.v_proj).unwrap(),
            );
            let ours = a.tokens_to_image(&tokens_pe, projected(&k, &v)).unwrap();
            assert!(max_diff(&ours, &theirs) < 1e-4, "t2i projected, {n} tokens");

            let theirs = naive(&a, &image_pe, &tokens_pe, &tokens);
            let ours = a.image_to_tokens(raw, &tokens_pe, &tokens).unwrap();
            assert!(max_diff(&ours, &theirs) < 1e-4, "i2t, {n} tokens");
            let q = lin(&image_pe, &a.q_proj).unwrap();
            let ours = a
                .image_to_tokens(projected(&q, &q), &tokens_pe, &tokens)
                .unwrap();
            assert!(max_diff(&ours, &theirs) < 1e-4, "i2t projected, {n} tokens");
        }
    }

    fn projected<'a>(k: &'a Tensor, v: &'a Tensor) -> Image<'a> {
        Image::Projected {
            k,
            v,
            k_row: None,
            v_row: None,
        }
    }

    /// The first layer with a constant dense prompt: the cached projections as they are,
    /// the dense row's projections folded in afterwards.
    #[test]
    fn a_constant_row_folded_in_equals_the_row_added_to_every_image_token() {
        let a = random_attention(64, 2);
        let image = randn((300, 64));
        let pe = randn((300, 64));
        let dense = randn((1, 64));
        let with_dense = image.broadcast_add(&dense).unwrap();
        let with_dense_pe = (&with_dense + &pe).unwrap();
        let image_pe = (&image + &pe).unwrap();
        let row = |l: &Linear| dense.matmul(&l.weight().t().unwrap()).unwrap();
        let (v_row, q_row) = (row(&a.v_proj), row(&a.q_proj));
        let k = lin(&image_pe, &a.k_proj).unwrap();
        let v = lin(&image, &a.v_proj).unwrap();
        let q = lin(&image_pe, &a.q_proj).unwrap();
        let keys = randn((300, 64));
        let norm = LayerNorm::new(
            randn((1, 64)).squeeze(0).unwrap(),
            randn((1, 64)).squeeze(0).unwrap(),
            1e-5,
        );
        for n in [3, 20] {
            let tokens = randn((n, 64));
            let tokens_pe = (&tokens + randn((n, 64))).unwrap();
            let theirs = naive(&a, &tokens_pe, &with_dense_pe, &with_dense);
            let folded = Image::Projected {
                k: &k,
                v: &v,
                k_row: None,
                v_row: Some(&v_row),
            };
            let ours = a.tokens_to_image(&tokens_pe, folded).unwrap();
            let diff = max_diff(&ours, &theirs);
            assert!(diff < 1e-4, "t2i, {n} tokens: {diff}");

            let attn = naive(&a, &with_dense_pe, &tokens_pe, &tokens);
            let queries = Image::Projected {
                k: &q,
                v: &q,
                k_row: Some(&q_row),
                v_row: None,
            };
            let ours = a.image_to_tokens(queries, &tokens_pe, &tokens).unwrap();
            let diff = max_diff(&ours, &attn);
            assert!(diff < 1e-4, "i2t, {n} tokens: {diff}");
            let theirs = norm.forward(&(&keys + attn).unwrap()).unwrap();
            let ours = a
                .image_to_tokens_normed(queries, (&tokens_pe, &tokens), &keys, &norm)
                .unwrap();
            let diff = max_diff(&ours, &theirs);
            assert!(diff < 1e-4, "i2t with norm, {n} tokens: {diff}");
        }
    }

    #[test]
    fn self_attention_is_the_references() {
        let a = random_attention(64, 1);
        let t = randn((7, 64));
        let diff = max_diff(&a.tokens_only(&t, &t, &t).unwrap(), &naive(&a, &t, &t, &t));
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn fused_image_to_tokens_with_norm_matches_the_plain_steps() {
        let a = random_attention(64, 2);
        let image = randn((300, 64));
        let image_pe = (&image + randn((300, 64))).unwrap();
        let keys = randn((300, 64));
        let norm = LayerNorm::new(
            randn((1, 64)).squeeze(0).unwrap().affine(0.2, 1.0).unwrap(),
            randn((1, 64)).squeeze(0).unwrap(),
            1e-5,
        );
        let q = lin(&image_pe, &a.q_proj).unwrap();
        let raw = Image::Raw {
            k_in: &image_pe,
            v_in: &image,
        };
        // 3 tokens: the fused pass; 20: more head rows than channels, the plain steps.
        for n in [3, 20] {
            let tokens = randn((n, 64));
            let tokens_pe = (&tokens + randn((n, 64))).unwrap();
            let attn = naive(&a, &image_pe, &tokens_pe, &tokens);
            let theirs = norm.forward(&(&keys + attn).unwrap()).unwrap();
            for (name, image) in [("raw", raw), ("projected", projected(&q, &q))] {
                let ours = a
                    .image_to_tokens_normed(image, (&tokens_pe, &tokens), &keys, &norm)
                    .unwrap();
                let diff = max_diff(&ours, &theirs);
                assert!(diff < 1e-4, "{name}, {n} tokens: {diff}");
            }
        }
    }
}
