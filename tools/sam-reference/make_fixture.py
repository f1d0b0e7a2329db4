"""Runs the reference SAM predictors on synthetic weights and writes the parity fixture.

    python make_fixture.py [--out ../../tests/fixtures/sam_parity]   # the fixture
    python make_fixture.py --bench                                     # PyTorch timings

See README.md. Needs the reference packages (segment_anything, mobile_sam), not CI.
"""

import argparse
import collections
import json
import os
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

import synthetic  # noqa: E402

EMBEDDING_STRIDE = 997
LOW_RES_GRID = (4, 16)  # start, step of the sampled rows and columns of 256x256 logits


def build(variant: str):
    if variant == "mobile":
        from mobile_sam import SamPredictor, sam_model_registry

        model = sam_model_registry["vit_t"]()
    else:
        from segment_anything import SamPredictor
        from segment_anything.build_sam import _build_sam, sam_model_registry

        if variant == "vit_b":
            model = sam_model_registry["vit_b"]()
        elif variant == "vit_h_2":  # ViT-H's width and heads, two blocks (windowed, global)
            model = _build_sam(1280, 2, 16, [1], None)
        else:
            raise ValueError(variant)
    synthetic.fill_state_dict(model)
    model.eval()
    return SamPredictor(model)


CASES = {
    # name: (width, height) of a synthetic scene, or a file written by exif_photo()
    "landscape": (1280, 853),
    "portrait": (600, 900),
    "small": (400, 300),
    "twelve_mp": (4000, 3000),
    "exif_rotated": "exif_rotated.jpg",
}
VARIANT_CASES = {
    "mobile": list(CASES),
    "vit_b": ["landscape", "exif_rotated"],
    "vit_h_2": ["small"],
}


def exif_photo(out: Path) -> Path:
    """A 480x640 portrait stored as 640x480 pixels with EXIF orientation 6 (rotate 90 CW)."""
    shown = Image.fromarray(synthetic.scene(480, 640))
    stored = shown.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = out / CASES["exif_rotated"]
    stored.save(path, quality=95, subsampling=0, exif=exif.tobytes())
    return path


def load_case(name: str, out: Path) -> np.ndarray:
    spec = CASES[name]
    if isinstance(spec, str):
        with Image.open(out / spec) as im:
            return np.array(ImageOps.exif_transpose(im).convert("RGB"))
    return synthetic.scene(*spec)


def summary(a: np.ndarray) -> dict:
    a = a.astype(np.float64)
    return {"mean": a.mean(), "std": a.std(), "min": a.min(), "max": a.max()}


def run_case(predictor, name: str, image: np.ndarray, out: Path, prefix: str) -> dict:
    h, w = image.shape[:2]
    t0 = time.perf_counter()
    predictor.set_image(image)
    encode_s = time.perf_counter() - t0
    features = predictor.features.detach().numpy()
    resized = predictor.transform.apply_image(image).astype(np.int64).reshape(-1)
    record = {
        "case": name,
        # The encoder's input bytes: their sum, and a sum weighted by position (mod 251).
        "resized": [int(resized.sum()), int((resized * (np.arange(resized.size) % 251)).sum())],
        "original_size": [h, w],
        "input_size": list(predictor.input_size),
        "image_sum": int(image.astype(np.int64).sum()),
        "encode_seconds": encode_s,
        "embedding": {
            "shape": list(features.shape),
            **summary(features),
            "stride": EMBEDDING_STRIDE,
            "samples": features.reshape(-1)[::EMBEDDING_STRIDE].tolist(),
        },
        "steps": [],
    }
    clicks = synthetic.clicks(w, h)
    previous = None
    for n in range(1, len(clicks) + 1):
        coords = np.array([[x, y] for x, y, _ in clicks[:n]], dtype=np.float64)
        labels = np.array([label for _, _, label in clicks[:n]])
        multimask = previous is None
        masks, iou, low_res = predictor.predict(
            point_coords=coords,
            point_labels=labels,
            mask_input=previous,
            multimask_output=multimask,
            return_logits=True,
        )
        best = int(np.argmax(iou)) if multimask else 0
        start, step = LOW_RES_GRID
        mask = masks[best] > 0.0
        png = f"{prefix}_{name}_step{n}.png"
        Image.fromarray((mask * 255).astype(np.uint8)).save(out / png, optimize=True)
        record["steps"].append(
            {
                "clicks": [list(c) for c in clicks[:n]],
                "multimask": multimask,
                "iou_predictions": iou.tolist(),
                "best": best,
                "low_res": [
                    {**summary(m), "samples": m[start::step, start::step].reshape(-1).tolist()}
                    for m in low_res
                ],
                "mask_png": png,
                "mask_fraction": float(mask.mean()),
            }
        )
        previous = low_res[best][None, :, :]
    return record


def tiny_checkpoints(out: Path) -> None:
    """Small files in the published formats: torch.save's zip pickle of a state dict (an
    OrderedDict with _metadata, an int64 counter, a non-contiguous view, a shared storage,
    float16), and the same tensors as .safetensors."""
    from safetensors.torch import save_file

    predictor = build("mobile")
    full = predictor.model.state_dict()
    keep = [
        "prompt_encoder.point_embeddings.0.weight",
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        "image_encoder.patch_embed.seq.0.bn.running_var",
        "image_encoder.patch_embed.seq.0.bn.num_batches_tracked",
        "image_encoder.layers.1.blocks.0.attn.attention_biases",
        "mask_decoder.iou_token.weight",
    ]
    state = collections.OrderedDict((k, full[k]) for k in keep)
    state._metadata = getattr(full, "_metadata", None)
    base = torch.from_numpy(synthetic.tensor("extra.base", (6, 10)))
    state["extra.transposed"] = base.t()  # a non-contiguous view
    state["extra.row_slice"] = base[2:4]  # shares base's storage at an offset
    state["extra.half"] = torch.from_numpy(synthetic.tensor("extra.half", (3, 5))).half()
    torch.save(state, out / "tiny_state.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "tiny_state.safetensors"))


def write_fixture(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    exif_photo(out)
    tiny_checkpoints(out)
    records = []
    for variant, cases in VARIANT_CASES.items():
        predictor = build(variant)
        for name in cases:
            image = load_case(name, out)
            rec = run_case(predictor, name, image, out, variant)
            rec["variant"] = variant
            fractions = [s["mask_fraction"] for s in rec["steps"]]
            print(f"{variant:8} {name:13} encode {rec['encode_seconds']:.2f}s masks {fractions}")
            records.append(rec)
    (out / "reference.json").write_text(json.dumps({"torch": torch.__version__, "cases": records}))


def bench() -> None:
    image = synthetic.scene(1024, 768)
    coords, labels = np.array([[400.0, 380.0]]), np.array([1])
    print(f"PyTorch {torch.__version__} on {torch.get_num_threads()} threads, image 1024x768")
    for variant in ("mobile", "vit_b"):
        predictor = build(variant)
        with torch.inference_mode():
            predictor.set_image(image)  # warm-up
            t0 = time.perf_counter()
            for _ in range(3):
                predictor.set_image(image)
            enc = (time.perf_counter() - t0) / 3
            predictor.predict(coords, labels)
            t0 = time.perf_counter()
            for _ in range(20):
                predictor.predict(coords, labels)
            dec = (time.perf_counter() - t0) / 20
        print(f"{variant:8} encoder {enc * 1000:8.0f} ms   decoder {dec * 1000:6.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    here = Path(__file__).resolve().parent
    parser.add_argument("--out", type=Path, default=here / "../../tests/fixtures/sam_parity")
    parser.add_argument("--bench", action="store_true")
    # The CPUs this process may use (taskset, containers), not all the machine has.
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench() if args.bench else write_fixture(args.out.resolve())
