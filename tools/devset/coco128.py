"""COCO train2017 images with Ultralytics YOLO-seg polygons (coco128-seg) -> one mask each.

Layout read: `.../images/train2017/<12-digit id>.jpg` next to
`.../labels/train2017/<same id>.txt`, one instance per line: `<class> x1 y1 x2 y2 ...`,
coordinates normalised to the image size, class ids in Ultralytics' COCO-80 order.
Ultralytics' converter joins the parts of a multi-part COCO polygon into one outline with
zero-width bridges, so one line is one whole instance; crowd regions are not converted.

One instance is kept per image, by a fixed rule (no randomness), so that about two thirds of
the samples are small or thin objects, the kind the built-in engine struggles with, and about
a third are medium or large objects so the set is not one-sided (see `choose`).
"""

import io
import re

import numpy as np
from PIL import Image, ImageDraw

IMAGE_RE = re.compile(r"(?:^|/)images/train2017/([0-9]{12})\.jpe?g$")
LABEL_RE = re.compile(r"(?:^|/)labels/train2017/([0-9]{12})\.txt$")

# Ultralytics' COCO-80 class order (ultralytics/cfg/datasets/coco128-seg.yaml `names`).
NAMES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
]

# Small or thin targets, most wanted first: the failure cases (a knife on a table, a
# traffic light against the sky, skis, a bat), then other small handheld or far objects.
SMALL_PREFERRED = [
    "knife", "fork", "spoon", "scissors", "toothbrush", "baseball bat", "skis",
    "tennis racket", "traffic light", "remote", "cell phone", "bottle", "wine glass", "cup",
    "kite", "bird", "umbrella", "handbag", "tie", "surfboard", "skateboard", "snowboard",
    "sports ball", "frisbee", "mouse", "clock", "vase", "toaster", "baseball glove",
    "backpack", "book", "banana", "carrot", "donut", "apple", "orange", "sandwich",
    "hot dog", "bicycle", "stop sign", "fire hydrant", "parking meter", "potted plant",
    "teddy bear", "bowl",
]

# Medium/large whole objects, most wanted first.
LARGE_PREFERRED = [
    "dog", "cat", "horse", "car", "person", "giraffe", "zebra", "elephant", "bear", "cow",
    "sheep", "bird", "motorcycle", "bicycle", "bus", "truck", "train", "airplane", "boat",
    "teddy bear", "pizza", "cake", "bowl", "vase", "potted plant", "chair", "couch", "bed",
    "toilet", "tv", "laptop", "umbrella", "kite", "surfboard", "suitcase", "broccoli",
    "sandwich", "clock", "refrigerator", "oven", "microwave", "sink",
]

# Classes whose mask legitimately fills little of its bounding box (long, diagonal or
# skeletal shapes): exempt from the occlusion test on the box fill ratio.
THIN = {
    "knife", "fork", "spoon", "scissors", "toothbrush", "baseball bat", "skis", "snowboard",
    "tennis racket", "surfboard", "skateboard", "tie", "kite", "umbrella", "bicycle",
    "motorcycle", "chair", "bench", "giraffe", "person", "bird", "traffic light", "handbag",
}

SMALL_RANGE = (0.002, 0.05)   # area fraction of a "small" target
LARGE_RANGE = (0.05, 0.60)    # area fraction of a "medium/large" target
MIN_FILL = 0.15               # mask / bounding-box area below this = likely occluded or split
SUPERSAMPLE = 4

IMAGE_LICENCE = ("unknown: COCO train2017 Flickr photo under its own licence; the per-image "
                 "licence (COCO instances_train2017.json) is not available here")
MASK_LICENCE = "CC BY 4.0 (COCO Consortium annotations; polygons as converted by Ultralytics)"


def rasterise(coords, size):
    """Normalised polygon -> boolean mask, pixel (i, j) covering [i, i+1) x [j, j+1).

    Drawn at 4x and box-averaged, a pixel is inside when at least half of it is covered, so
    the mask follows the polygon's area rather than PIL's centre-sampling of edges.
    """
    w, h = size
    s = SUPERSAMPLE
    pts = [(x * w * s - 0.5, y * h * s - 0.5) for x, y in zip(coords[0::2], coords[1::2])]
    big = Image.new("L", (w * s, h * s), 0)
    ImageDraw.Draw(big).polygon(pts, fill=1)
    cover = np.asarray(big, np.float32).reshape(h, s, w, s).mean(axis=(1, 3))
    return cover >= 0.5


def parse_labels(text):
    """(line index, class id, flat coordinate list) for each well-formed line."""
    out = []
    for k, line in enumerate(text.splitlines()):
        parts = line.split()
        if len(parts) < 7 or len(parts) % 2 == 0:
            continue
        cls = int(parts[0])
        if 0 <= cls < len(NAMES):
            out.append((k, cls, [float(v) for v in parts[1:]]))
    return out


def describe(mask, name):
    """Area fraction, border contact and the box fill ratio used as an occlusion hint."""
    ys, xs = np.nonzero(mask)
    area = float(mask.mean())
    if not len(ys):
        return {"area": 0.0, "touches_border": 0, "fill": 0.0, "thin": name in THIN}
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    border = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    return {"area": area, "touches_border": int(border), "fill": float(len(ys) / box),
            "thin": name in THIN}


def eligible(c, min_area, max_area):
    if not (min_area <= c["area"] <= max_area):
        return False
    return c["thin"] or c["fill"] >= MIN_FILL


def small_key(c):
    """Inside 0.2-5 % (0.1-0.2 % only as a fallback), border, preferred class, line."""
    in_range = SMALL_RANGE[0] <= c["area"] <= SMALL_RANGE[1]
    if c["cls"] == "person":  # in most COCO photos: only when nothing else is small
        pref = len(SMALL_PREFERRED) + 1
    elif c["cls"] in SMALL_PREFERRED:
        pref = SMALL_PREFERRED.index(c["cls"])
    else:
        pref = len(SMALL_PREFERRED)
    return (0 if in_range else 1, c["touches_border"], pref, c["line"])


def large_key(c):
    pref = LARGE_PREFERRED.index(c["cls"]) if c["cls"] in LARGE_PREFERRED else len(LARGE_PREFERRED)
    return (c["touches_border"], pref, c["line"])


def options(cands):
    """Best small candidate and best medium/large candidate of one image (either may be None)."""
    small = [c for c in cands if c["area"] < SMALL_RANGE[1]]
    large = [c for c in cands if LARGE_RANGE[0] <= c["area"] <= LARGE_RANGE[1]]
    return (min(small, key=small_key) if small else None,
            min(large, key=large_key) if large else None)


def choose(per_image, large_share=1 / 3):
    """One instance per image: small by default; large where there is no small one, and on
    evenly spaced images (by id) among those offering both, until about `large_share` of the
    images have a medium/large target."""
    ids = sorted(per_image)
    opts = {i: options(per_image[i]["cands"]) for i in ids}
    ids = [i for i in ids if opts[i] != (None, None)]
    forced = [i for i in ids if opts[i][0] is None]
    both = [i for i in ids if opts[i][0] is not None and opts[i][1] is not None]
    need = max(0, round(len(ids) * large_share) - len(forced))
    switch = set()
    if need and both:
        step = len(both) / min(need, len(both))
        switch = {both[int(k * step)] for k in range(min(need, len(both)))}
    picked = {}
    for i in ids:
        small, large = opts[i]
        c = large if (small is None or i in switch) else small
        picked[i] = dict(c, kind="small" if c is small else "large")
    return picked


def collect(src, min_area, max_area, min_side):
    """{image id: {img_rel, img_bytes, size, label_rel, cands}} for one snapshot."""
    files = src.files()
    images = {m.group(1): rel for rel in files if (m := IMAGE_RE.search(rel))}
    labels = {m.group(1): rel for rel in files if (m := LABEL_RE.search(rel))}
    per_image = {}
    for iid in sorted(images):
        if iid not in labels:
            continue
        img_bytes = src.read(images[iid])
        im = Image.open(io.BytesIO(img_bytes))
        orientation = im.getexif().get(274)
        if max(im.size) < min_side or orientation not in (None, 1):
            print(f"skip coco {iid}: size {im.size}, EXIF orientation {orientation}")
            continue
        cands = []
        for line, cls, coords in parse_labels(src.read(labels[iid]).decode("utf-8", "replace")):
            mask = rasterise(coords, im.size)
            c = dict(describe(mask, NAMES[cls]), mask=mask, cls=NAMES[cls], cls_id=cls, line=line)
            if eligible(c, min_area, max_area):
                cands.append(c)
        if cands:
            per_image[iid] = {"img_rel": images[iid], "img_bytes": img_bytes, "size": im.size,
                              "label_rel": labels[iid], "cands": cands}
    return per_image


def samples(src, min_area, max_area, min_side):
    """Build-ready samples (see build.write_set) from one coco128-seg snapshot."""
    per_image = collect(src, min_area, max_area, min_side)
    out = []
    for iid, c in sorted(choose(per_image).items()):
        e = per_image[iid]
        out.append({
            "stem": f"coco_{iid}_{c['line']:02d}", "src_label": src.label,
            "img_rel": e["img_rel"], "img_bytes": e["img_bytes"], "size": e["size"],
            "mask": c["mask"], "image_id": str(int(iid)),
            "annotation": f"{e['label_rel']}#line{c['line'] + 1}",
            "label_id": f"coco80:{c['cls_id']}", "cls": c["cls"], "area": c["area"],
            "touches_border": c["touches_border"], "kind": c["kind"],
            "licence_image": IMAGE_LICENCE, "licence_mask": MASK_LICENCE,
        })
    return out
