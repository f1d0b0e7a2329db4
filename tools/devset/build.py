#!/usr/bin/env python3
"""Rebuild the development set for the built-in engine (issue 11) from fetched snapshots.

The set is evaluation data only: it is written OUTSIDE the repository (default /work/devset)
and never committed. Two kinds of public snapshot are read, each given as a bare git
directory with an optional `@<commit>` (the files may live only in an old commit), or as a
plain directory:
- positional SOURCEs vendoring Open Images segmentation data (an image `<ImageID>.jpg` next
  to mask files `<ImageID>_<LabelName without slashes>_<BoxID>.png`);
- `--coco128` snapshots vendoring Ultralytics' coco128-seg (COCO train2017 images with
  YOLO-seg polygons; see coco128.py for the format and the choice of instance).

Everything is deterministic: sources are read in command-line order, files in sorted path
order, and the instance kept for an image is chosen by a fixed ranking (see `rank` and
coco128.choose). Images are copied byte for byte (published resolution, no EXIF rotation, no
re-encoding); Open Images masks are resized to the image size (they ship at the original
Flickr resolution, images at <= 1024 px), COCO polygons are rasterised at the image size;
masks are written as 8-bit 0/255 PNG.

Usage:
  build.py [--out DIR] [--manifest PATH] [--all-instances] [--coco128 SNAP[@COMMIT]] \
      [OI_SOURCE[@COMMIT] ...]
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

sys.dont_write_bytecode = True  # keep tools/devset free of __pycache__
import coco128  # noqa: E402

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


def contact_sheet(out, cols=4, rows=6):
    """All previews, `cols` x `rows` per page (preview/_sheet_NN.jpg), for a quick look."""
    prev = os.path.join(out, "preview")
    paths = sorted(p for p in os.listdir(prev) if not p.startswith("_"))
    per_page = cols * rows
    for page in range(-(-len(paths) // per_page)):
        tiles = [Image.open(os.path.join(prev, p))
                 for p in paths[page * per_page:(page + 1) * per_page]]
        for t in tiles:
            t.thumbnail((480, 240))
        w = max(t.size[0] for t in tiles)
        h = max(t.size[1] for t in tiles)
        sheet = Image.new("RGB", (cols * w, -(-len(tiles) // cols) * h), "white")
        for k, t in enumerate(tiles):
            sheet.paste(t, ((k % cols) * w, (k // cols) * h))
        sheet.save(os.path.join(prev, f"_sheet_{page + 1:02d}.jpg"), quality=85)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def oi_samples(per_image, all_instances):
    """Open Images candidates -> build-ready samples (one per image, or every instance)."""
    out = []
    for iid in sorted(per_image):
        entry = per_image[iid]
        chosen = entry["cands"] if all_instances else entry["cands"][:1]
        for c in chosen:
            out.append({
                "stem": f"oi_{iid}_{c['box']}", "src_label": entry["src"].label,
                "img_rel": entry["img_rel"], "img_bytes": entry["img_bytes"],
                "size": entry["size"], "mask": c["mask"], "image_id": iid,
                "annotation": c["mask_rel"], "label_id": c["mid"], "cls": c["cls"],
                "area": c["area"], "touches_border": c["touches_border"],
                "kind": "small" if c["area"] < coco128.SMALL_RANGE[1] else "large",
                "licence_image": IMAGE_LICENCE, "licence_mask": MASK_LICENCE,
            })
    return out


def write_set(samples, out):
    """Images byte for byte, masks as 0/255 PNG, previews; returns the manifest rows."""
    for sub in ("images", "masks", "preview"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        os.makedirs(os.path.join(out, sub))
    rows = []
    for s in sorted(samples, key=lambda s: s["stem"]):
        stem = s["stem"]
        with open(os.path.join(out, "images", stem + ".jpg"), "wb") as f:
            f.write(s["img_bytes"])
        buf = io.BytesIO()
        Image.fromarray(s["mask"].astype(np.uint8) * 255, "L").save(buf, "PNG")
        with open(os.path.join(out, "masks", stem + ".png"), "wb") as f:
            f.write(buf.getvalue())
        overlay(s["img_bytes"], s["mask"]).save(
            os.path.join(out, "preview", stem + ".jpg"), quality=85)
        w, h = s["size"]
        rows.append([stem, f"{s['src_label']}:{s['img_rel']}", s["image_id"], s["annotation"],
                     s["label_id"], s["cls"], s["kind"], f"{s['area']:.6f}",
                     str(s["touches_border"]), str(w), str(h), s["licence_image"],
                     s["licence_mask"], "unknown", sha256(s["img_bytes"]),
                     sha256(buf.getvalue())])
    return rows


HEADER = ["stem", "source", "image_id", "annotation", "label_id", "class", "kind", "area_frac",
          "touches_border", "width", "height", "licence_image", "licence_mask", "author",
          "sha256_image", "sha256_mask"]
COL = {name: k for k, name in enumerate(HEADER)}


def write_manifest(rows, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(HEADER) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")


def report(rows):
    """Counts, area histogram and classes, overall and per source kind."""
    print(f"\n{len(rows)} samples from {len({r[COL['source']] for r in rows})} distinct images")
    for prefix in ("oi_", "coco_"):
        part = [r for r in rows if r[0].startswith(prefix)]
        if part:
            kinds = {k: sum(r[COL["kind"]] == k for r in part) for k in ("small", "large")}
            print(f"  {prefix[:-1]}: {len(part)} samples ({kinds['small']} small, "
                  f"{kinds['large']} medium/large)")
    areas = [float(r[COL["area_frac"]]) for r in rows]
    lo = 0.0
    for hi in HIST_EDGES:
        n = sum(lo <= a < hi for a in areas)
        print(f"  area {lo*100:5.1f}% - {hi*100:5.1f}%: {'#' * n} {n}")
        lo = hi
    classes = {}
    for r in rows:
        classes[r[COL["class"]]] = classes.get(r[COL["class"]], 0) + 1
    print("  classes: " + ", ".join(f"{k} {v}" for k, v in
                                    sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))))
    print(f"  cut by the border: {sum(r[COL['touches_border']] == '1' for r in rows)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sources", nargs="*", help="Open Images snapshot: git dir[@commit] or directory")
    ap.add_argument("--coco128", action="append", default=[], metavar="SNAPSHOT[@COMMIT]",
                    help="a snapshot vendoring Ultralytics coco128-seg (repeatable)")
    ap.add_argument("--out", default="/work/devset")
    ap.add_argument("--manifest", help="also write the manifest here (e.g. tools/devset/manifest.tsv)")
    ap.add_argument("--all-instances", action="store_true",
                    help="Open Images: one sample per eligible instance instead of one per image")
    ap.add_argument("--min-area", type=float, default=0.001)
    ap.add_argument("--max-area", type=float, default=0.60)
    ap.add_argument("--min-side", type=int, default=300)
    args = ap.parse_args()

    samples = oi_samples(collect([Source(s) for s in args.sources], args.min_area,
                                 args.max_area, args.min_side), args.all_instances)
    seen = set()
    for spec in args.coco128:
        for s in coco128.samples(Source(spec), args.min_area, args.max_area, args.min_side):
            if s["image_id"] not in seen:  # an image met twice keeps its first source
                seen.add(s["image_id"])
                samples.append(s)
    if not samples:
        sys.exit("no image/mask pairs found in the given sources")
    rows = write_set(samples, args.out)
    contact_sheet(args.out)
    write_manifest(rows, os.path.join(args.out, "manifest.tsv"))
    if args.manifest:
        write_manifest(rows, args.manifest)
    report(rows)


if __name__ == "__main__":
    main()
