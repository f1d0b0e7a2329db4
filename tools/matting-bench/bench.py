#!/usr/bin/env python3
"""Matting benchmark: aicut against pymatting (closed form, KNN), measured in one run.

Over the alphamatting.com low-resolution training set (27 images, Trimap1, ground truth),
prints per scenario and method the mean SAD and MSE and the median seconds per image.

Scenarios (each on the same trimap for every method):
  given    the data set's Trimap1
  coarse   Trimap1 with its unknown region widened by --widen pixels
  derived  the band aicut's own pipeline derives from a selection (the ground truth
           thresholded at 0.5) and the image: what users of `aicut cut --edges soft` get.
           'hard' is that selection itself, the hard edge.

Errors are measured over the union of Trimap1's unknown region and the scenario's
unknown region (SAD = sum |alpha - gt| / 1000, MSE = mean squared error x 1000; alpha in
0..1), so a method cannot gain by leaving pixels outside its band wrong.

aicut's time is the wall time of the whole `aicut matte` process (decode, solve, PNG);
pymatting's is the call alone, after a warm-up that compiles its numba kernels.
CPU seconds (user + system, all threads) are printed beside the wall time: on a shared
machine they are the steadier measure. 'call s' compares like with like: for aicut the
matting alone as `aicut matte` reports it (from the decoded image and trimap to the
alpha, as pymatting's call), for pymatting the call's wall time.
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

PYMATTING = ("cf", "knn")
# Seconds to wait after a pymatting call before anything else is timed.
SETTLE_S = 1.0


def load(path, grey=False):
    im = Image.open(path)
    im = im.convert("L" if grey else "RGB")
    return np.asarray(im)


def widen(trimap, px):
    """Unknown region grown by a (2px+1) square, as aicut matte --widen does."""
    unknown = (trimap > 25) & (trimap < 230)
    h, w = unknown.shape
    pad = np.pad(unknown, px)
    grown = np.zeros_like(unknown)
    for dy in range(2 * px + 1):
        row = pad[dy:dy + h]
        acc = np.zeros_like(unknown)
        for dx in range(2 * px + 1):
            acc |= row[:, dx:dx + w]
        grown |= acc
    out = trimap.copy()
    out[grown] = 128
    return out


def errors(alpha, gt, region):
    d = alpha[region] - gt[region]
    return np.abs(d).sum() / 1000.0, (d * d).mean() * 1000.0 if d.size else 0.0


def run_aicut(exe, image_path, second, out_dir, extra):
    alpha_path = os.path.join(out_dir, "alpha.png")
    start, cpu = time.perf_counter(), children_cpu()
    out = subprocess.run([exe, "matte", image_path, second, "-o", alpha_path] + extra,
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    seconds = time.perf_counter() - start
    call = float(re.search(r"alpha in ([0-9.]+) s", out).group(1))
    return load(alpha_path, grey=True) / 255.0, seconds, children_cpu() - cpu, call


def children_cpu():
    """User + system CPU seconds of finished child processes."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_pymatting(method, image, trimap):
    import pymatting
    fn = {"cf": pymatting.estimate_alpha_cf, "knn": pymatting.estimate_alpha_knn}[method]
    start, cpu = time.perf_counter(), time.process_time()
    alpha = fn(image.astype(np.float64) / 255.0, trimap.astype(np.float64) / 255.0)
    seconds = time.perf_counter() - start
    return np.clip(alpha, 0, 1), seconds, time.process_time() - cpu, seconds


def warm_up(methods):
    rng = np.random.default_rng(0)
    img = rng.random((40, 40, 3)) * 255
    tri = np.full((40, 40), 128, np.uint8)
    tri[:10] = 0
    tri[-10:] = 255
    for m in methods:
        run_pymatting(m, img, tri)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/datasets/matting")
    ap.add_argument("--aicut", default="target/release/aicut")
    ap.add_argument("--baseline", help="another aicut binary, run as method 'base' "
                    "(before/after comparisons in one run)")
    ap.add_argument("--scenarios", default="given,coarse,derived")
    ap.add_argument("--methods", default="aicut,cf,knn",
                    help="comma list of aicut, base (with --baseline), cf, knn")
    ap.add_argument("--knn-scenarios", default="given",
                    help="scenarios KNN runs in (it takes ~20 s an image)")
    ap.add_argument("--widen", type=int, default=10, help="coarse: pixels added")
    ap.add_argument("--band", type=int, default=4, help="derived: aicut --band")
    ap.add_argument("--images", type=int, default=27, help="first N images only")
    args = ap.parse_args()

    methods = args.methods.split(",")
    scenarios = args.scenarios.split(",")
    warm_up([m for m in methods if m in PYMATTING])
    names = sorted(os.listdir(os.path.join(args.data, "image")))[: args.images]
    results = {}  # (scenario, method) -> list of (sad, mse, seconds, cpu, call seconds)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            image_path = os.path.join(args.data, "image", name)
            image = load(image_path)
            trimap1 = load(os.path.join(args.data, "trimap", name), grey=True)
            gt = load(os.path.join(args.data, "alpha", name), grey=True) / 255.0
            unknown1 = (trimap1 > 25) & (trimap1 < 230)
            for scenario in scenarios:
                tri_path = os.path.join(tmp, "trimap.png")
                if scenario == "given":
                    trimap = trimap1
                elif scenario == "coarse":
                    trimap = widen(trimap1, args.widen)
                else:
                    sel_path = os.path.join(tmp, "selection.png")
                    Image.fromarray(((gt >= 0.5) * 255).astype(np.uint8)).save(sel_path)
                    subprocess.run([args.aicut, "matte", image_path, sel_path,
                                    "--from-selection", "--band", str(args.band),
                                    "-o", os.path.join(tmp, "a.png"),
                                    "--write-trimap", tri_path],
                                   check=True, stdout=subprocess.DEVNULL)
                    trimap = load(tri_path, grey=True)
                Image.fromarray(trimap).save(tri_path)
                region = unknown1 | ((trimap > 25) & (trimap < 230))
                runs = []
                if scenario == "derived":
                    runs.append(("hard", (gt >= 0.5).astype(np.float64), 0.0, 0.0, 0.0))
                for m in methods:
                    if m in ("aicut", "base"):
                        exe = args.aicut if m == "aicut" else args.baseline
                        if scenario == "derived":
                            extra = ["--from-selection", "--band", str(args.band)]
                            run = run_aicut(exe, image_path, sel_path, tmp, extra)
                        else:
                            run = run_aicut(exe, image_path, tri_path, tmp, [])
                    elif m == "knn" and scenario not in args.knn_scenarios.split(","):
                        continue
                    else:
                        run = run_pymatting(m, image, trimap)
                        # Its worker threads spin on after the call (about 0.1 CPU s in
                        # the next second here): let them settle before the next method is
                        # timed, so that one does not share the cores with them.
                        time.sleep(SETTLE_S)
                    runs.append((m, *run))
                for m, a, s, c, call in runs:
                    sad, mse = errors(a, gt, region)
                    results.setdefault((scenario, m), []).append((sad, mse, s, c, call))
                    print(f"{name} {scenario:8} {m:6} SAD {sad:7.2f} MSE {mse:7.2f} "
                          f"{s:6.2f} s {c:6.2f} cpu s {call:6.2f} call s",
                          file=sys.stderr, flush=True)

    print(f"\n{len(names)} images; load average at the end: "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{'scenario':9} {'method':7} {'mean SAD':>9} {'mean MSE':>9} {'median s':>9} "
          f"{'median cpu s':>13} {'median call s':>14}")
    for (scenario, m), rows in results.items():
        sad = statistics.mean(r[0] for r in rows)
        mse = statistics.mean(r[1] for r in rows)
        sec = statistics.median(r[2] for r in rows)
        cpu = statistics.median(r[3] for r in rows)
        call = statistics.median(r[4] for r in rows)
        print(f"{scenario:9} {m:7} {sad:9.2f} {mse:9.2f} {sec:9.3f} {cpu:13.3f} {call:14.3f}")


if __name__ == "__main__":
    main()
