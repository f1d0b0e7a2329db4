#!/usr/bin/env python3
"""Rebuild the development set for the built-in engine (issue 11) from fetched snapshots.

The set is evaluation data only: it is written OUTSIDE the repository (default /work/devset)
and never committed. Input is one or more public snapshots that vendor Open Images
segmentation data (an image `<ImageID>.jpg` next to mask files
`<ImageID>_<LabelName without slashes>_<BoxID>.png`), given as a bare git directory with an
optional `@<commit>` (the files may live only in an old commit), or as a plain directory.

Everything is deterministic: sources are read in command-line order, files in sorted path
order, and the instance kept for an image is chosen by a fixed ranking (see `rank`).
Images are copied byte for byte (published resolution, no EXIF rotation, no re-encoding);
masks are the published human masks, resized to the image size (Open Images ships masks at
the original Flickr resolution, images at <= 1024 px) and written as 8-bit 0/255 PNG.

Usage:
  build.py [--out DIR] [--manifest PATH] [--all-instances] SOURCE[@COMMIT] [SOURCE ...]
"""

import argparse
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

IMAGE_RE = re.compile(r"(?:^|/)([0-9a-f]{16})\.jpe?g$")
MASK_RE = re.compile(r"(?:^|/)([0-9a-f]{16})_([mg][0-9a-z_]+)_([0-9a-f]{8})\.png$")
CLASS_CSV_RE = re.compile(r"(?:^|/)(?:oidv[67]-)?class-descriptions(?:-boxable)?\.csv$")

# Label names for the MIDs met so far; a class-descriptions CSV in a source overrides these.
KNOWN_MIDS = {"/m/0bt9lr": "Dog", "/m/0663v": "Pizza", "/m/0pg52": "Taxi"}

IMAGE_LICENCE = "CC BY 2.0 (as listed by Open Images; per-image author not in source)"
MASK_LICENCE = "CC BY 4.0 (Open Images annotations, Google LLC)"

# Area-fraction buckets for the printed histogram (upper bounds, fraction of the picture).
HIST_EDGES = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.10, 0.30, 0.60]


class Source:
    """Read-only view of a snapshot: a git dir at a commit, or a plain directory."""

    def __init__(self, spec):
        path, _, commit = spec.partition("@")
        self.path = os.path.abspath(path)
        self.is_git = os.path.exists(os.path.join(self.path, "HEAD")) or bool(commit)
        if self.is_git:
            self.commit = self._git("rev-parse", (commit or "HEAD") + "^{commit}").decode().strip()
            self.label = f"{self._repo_name()}@{self.commit}"
        else:
            self.commit = None
            self.label = self.path

    def _git(self, *args):
        return subprocess.run(["git", "--git-dir", self.path, *args], check=True,
                              capture_output=True).stdout

    def _repo_name(self):
        # Mirrors are laid out as /work/.mirror/<owner>+<name>/repo.
        parent = os.path.basename(os.path.dirname(self.path))
        return parent.replace("+", "/", 1) if "+" in parent else self.path

    def files(self):
        if self.is_git:
            out = self._git("ls-tree", "-r", "-z", "--name-only", self.commit)
            return sorted(p for p in out.decode().split("\0") if p)
        found = []
        for root, _, names in os.walk(self.path):
            for n in names:
                found.append(os.path.relpath(os.path.join(root, n), self.path))
        return sorted(found)

    def read(self, rel):
        if self.is_git:
            return self._git("cat-file", "blob", f"{self.commit}:{rel}")
        with open(os.path.join(self.path, rel), "rb") as f:
            return f.read()


def label_name(mid_token):
    """'m0bt9lr' -> '/m/0bt9lr' (Open Images drops the slashes in mask file names)."""
    return "/" + mid_token[0] + "/" + mid_token[1:]


def load_class_names(src, files):
    names = dict(KNOWN_MIDS)
    for rel in files:
        if CLASS_CSV_RE.search(rel):
            for line in src.read(rel).decode("utf-8", "replace").splitlines():
                parts = line.split(",", 1)
                if len(parts) == 2 and parts[0].startswith(("/m/", "/g/")):
                    names[parts[0]] = parts[1].strip().strip('"')
    return names


def fit_mask(png_bytes, size):
    """Published mask -> boolean array at the image size (bilinear, threshold at half)."""
    m = Image.open(io.BytesIO(png_bytes)).convert("L")
    m = m.point(lambda v: 255 if v else 0)
    if m.size != size:
        m = m.resize(size, Image.BILINEAR)
    return np.asarray(m) >= 128


def rank(c):
    """Prefer instances not cut by the border, then small ones (0.2-5 %), then file name."""
    small = 0 if 0.002 <= c["area"] <= 0.05 else 1
    return (c["touches_border"], small, c["mask_rel"])


def collect(sources, min_area, max_area, min_side):
    """All eligible (image, instance) candidates, grouped per image id, first source wins."""
    per_image, seen = {}, set()
    for src in sources:
        files = src.files()
        names = load_class_names(src, files)
        images = {m.group(1): rel for rel in files if (m := IMAGE_RE.search(rel))}
        masks = {}
        for rel in files:
            m = MASK_RE.search(rel)
            if m:
                masks.setdefault(m.group(1), []).append((rel, m.group(2), m.group(3)))
        for iid in sorted(images):
            if iid in seen or iid not in masks:
                continue
            seen.add(iid)
            img_bytes = src.read(images[iid])
            im = Image.open(io.BytesIO(img_bytes))
            orientation = im.getexif().get(274)
            if max(im.size) < min_side or orientation not in (None, 1):
                print(f"skip {iid}: size {im.size}, EXIF orientation {orientation}")
                continue
            cands = []
            for rel, mid_tok, box in sorted(masks[iid]):
                mask = fit_mask(src.read(rel), im.size)
                area = float(mask.mean())
                if not (min_area <= area <= max_area):
                    continue
                border = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
                mid = label_name(mid_tok)
                cands.append({"mask": mask, "area": area, "touches_border": int(border),
                              "mask_rel": rel, "mid": mid, "cls": names.get(mid, mid), "box": box})
            if cands:
                per_image[iid] = {"src": src, "img_rel": images[iid], "img_bytes": img_bytes,
                                  "size": im.size, "cands": sorted(cands, key=rank)}
    return per_image


def overlay(img_bytes, mask):
    rgb = np.asarray(Image.open(io.BytesIO(img_bytes)).convert("RGB")).astype(np.float32)
    tint = rgb.copy()
    tint[mask] = rgb[mask] * 0.45 + np.array([255, 0, 0], np.float32) * 0.55
    edge = mask ^ np.roll(mask, 1, 0) | mask ^ np.roll(mask, 1, 1)
    tint[edge] = (255, 255, 0)
    side = np.concatenate([rgb, tint], axis=1).astype(np.uint8)
    out = Image.fromarray(side)
    out.thumbnail((1400, 700))
    return out


def contact_sheet(out, cols=3):
    """All previews on one page, for a quick look at every sample."""
    paths = sorted(p for p in os.listdir(os.path.join(out, "preview")) if p.startswith("oi_"))
    tiles = [Image.open(os.path.join(out, "preview", p)) for p in paths]
    for t in tiles:
        t.thumbnail((700, 350))
    w = max(t.size[0] for t in tiles)
    h = max(t.size[1] for t in tiles)
    sheet = Image.new("RGB", (cols * w, -(-len(tiles) // cols) * h), "white")
    for k, t in enumerate(tiles):
        sheet.paste(t, ((k % cols) * w, (k // cols) * h))
    sheet.save(os.path.join(out, "preview", "_sheet.jpg"), quality=85)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def write_set(per_image, out, all_instances):
    for sub in ("images", "masks", "preview"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        os.makedirs(os.path.join(out, sub))
    rows = []
    for iid in sorted(per_image):
        entry = per_image[iid]
        chosen = entry["cands"] if all_instances else entry["cands"][:1]
        for c in chosen:
            stem = f"oi_{iid}_{c['box']}"
            with open(os.path.join(out, "images", stem + ".jpg"), "wb") as f:
                f.write(entry["img_bytes"])
            buf = io.BytesIO()
            Image.fromarray(c["mask"].astype(np.uint8) * 255, "L").save(buf, "PNG")
            with open(os.path.join(out, "masks", stem + ".png"), "wb") as f:
                f.write(buf.getvalue())
            overlay(entry["img_bytes"], c["mask"]).save(
                os.path.join(out, "preview", stem + ".jpg"), quality=85)
            w, h = entry["size"]
            rows.append([stem, f"{entry['src'].label}:{entry['img_rel']}", iid, c["mask_rel"],
                         c["mid"], c["cls"], f"{c['area']:.6f}", str(c["touches_border"]),
                         str(w), str(h), IMAGE_LICENCE, MASK_LICENCE, "unknown",
                         sha256(entry["img_bytes"]), sha256(buf.getvalue())])
    return rows


HEADER = ["stem", "source", "oi_image_id", "mask_file", "label_mid", "class", "area_frac",
          "touches_border", "width", "height", "licence_image", "licence_mask", "author",
          "sha256_image", "sha256_mask"]


def write_manifest(rows, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(HEADER) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")


def report(rows):
    print(f"\n{len(rows)} samples from {len({r[2] for r in rows})} distinct images")
    areas = [float(r[6]) for r in rows]
    lo = 0.0
    for hi in HIST_EDGES:
        n = sum(lo <= a < hi for a in areas)
        print(f"  area {lo*100:5.1f}% - {hi*100:5.1f}%: {'#' * n} {n}")
        lo = hi
    classes = {}
    for r in rows:
        classes[r[5]] = classes.get(r[5], 0) + 1
    print("  classes: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
    print(f"  cut by the border: {sum(r[7] == '1' for r in rows)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sources", nargs="+", help="snapshot git dir[@commit] or plain directory")
    ap.add_argument("--out", default="/work/devset")
    ap.add_argument("--manifest", help="also write the manifest here (e.g. tools/devset/manifest.tsv)")
    ap.add_argument("--all-instances", action="store_true",
                    help="one sample per eligible instance instead of one per image")
    ap.add_argument("--min-area", type=float, default=0.001)
    ap.add_argument("--max-area", type=float, default=0.60)
    ap.add_argument("--min-side", type=int, default=300)
    args = ap.parse_args()

    sources = [Source(s) for s in args.sources]
    per_image = collect(sources, args.min_area, args.max_area, args.min_side)
    if not per_image:
        sys.exit("no Open Images image/mask pairs found in the given sources")
    rows = write_set(per_image, args.out, args.all_instances)
    contact_sheet(args.out)
    write_manifest(rows, os.path.join(args.out, "manifest.tsv"))
    if args.manifest:
        write_manifest(rows, args.manifest)
    report(rows)


if __name__ == "__main__":
    main()
