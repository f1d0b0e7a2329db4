"""Reproducible, non-degenerate SAM weights and test scenes, shared bit for bit with Rust.

Every value here is also computed by `src/engine/sam/synthetic.rs`; keep the two in step.
Weights: a SplitMix64 stream seeded by the FNV-1a hash of the tensor's name gives, per
element, u = (next >> 40) / 2^24 and v = 2u - 1 (exact in f32); the value is
`centre + amplitude * v` in f32, with centre and amplitude chosen by the tensor's role so
that activations stay near unit scale through the network.
"""

import math

import numpy as np

MASK64 = (1 << 64) - 1
EMBEDDING_LIKE = ("point_embeddings", "not_a_point_embed", "no_mask_embed", "iou_token", "mask_tokens")


def fnv1a64(text: str) -> int:
    h = 0xCBF29CE484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


def splitmix64_stream(seed: int, n: int) -> np.ndarray:
    """n outputs of SplitMix64 as uint64, vectorised (state_i = seed + (i+1) * gamma)."""
    gamma = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + gamma * np.arange(1, n + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def role(name: str, shape) -> tuple:
    """(centre, amplitude) for a tensor, by its name and shape."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 1.0, 0.25
    if leaf == "running_mean":
        return 0.0, 0.1
    if leaf == "attention_biases":
        return 0.0, 0.5
    if leaf in ("rel_pos_h", "rel_pos_w", "pos_embed"):
        return 0.0, 0.1
    if leaf == "positional_encoding_gaussian_matrix" or any(e in name for e in EMBEDDING_LIKE):
        return 0.0, 1.7
    if leaf == "bias":
        return 0.0, 0.1
    if len(shape) <= 1:  # norm scales
        return 1.0, 0.1
    fan_in = int(np.prod(shape[1:]))
    return 0.0, math.sqrt(3.0 / fan_in)


def tensor(name: str, shape) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    u = (splitmix64_stream(fnv1a64(name), n) >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)
    v = np.float32(2.0) * u - np.float32(1.0)
    centre, amplitude = role(name, shape)
    return (np.float32(centre) + np.float32(amplitude) * v).astype(np.float32).reshape(shape)


def fill_state_dict(model) -> None:
    """Overwrites every floating-point parameter and buffer of a torch module in place."""
    import torch

    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.from_numpy(tensor(name, tuple(t.shape))))


def scene(width: int, height: int) -> np.ndarray:
    """An RGB test picture from integer arithmetic only: a gradient, a disc and a bar."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    img = np.zeros((height, width, 3), dtype=np.int64)
    img[..., 0] = 30 + (x * 200) // width
    img[..., 1] = 40 + (y * 180) // height
    img[..., 2] = 128 + ((x + y) % 64)
    cx, cy, r = (width * 2) // 5, height // 2, min(width, height) // 4
    disc = (x - cx) ** 2 + (y - cy) ** 2 < r * r
    img[disc] = (220, 60, 40)
    bar = (x >= (width * 13) // 20) & (x < (width * 17) // 20) & (y >= height // 5) & (y < (height * 3) // 5)
    img[bar] = (30, 90, 200)
    return img.astype(np.uint8)


def clicks(width: int, height: int) -> list:
    """Three clicks in original pixels: green on the disc, red on the bar, green on the background."""
    return [
        ((width * 2) // 5, height // 2, 1),
        ((width * 3) // 4, (height * 2) // 5, 0),
        (width // 10, (height * 9) // 10, 1),
    ]
