"""A grid of photos painted by several models, one row per photo, the photo first: the comparison
pictures of docs/results/training.md.

    python tools/side_by_side.py --photos a.jpg b.jpg --models X.onnx Y.onnx@swirls \
        --labels "HED" "VGG19" --size 384 -o docs/images/compare.jpg

A model is a file, or FILE@STYLE for a model that takes a built-in style by name or number.  Each
photo is resized to --size on its longer side and painted at that size (working size 0: the
network sees exactly this image); the grid is written as a JPEG (quality 85) through the atomic
writer, never over an existing file without --overwrite.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image, ImageDraw

GAP, LABEL_HEIGHT = 4, 18


def fit(img: Image.Image, side: int) -> Image.Image:
    s = side / max(img.size)
    w, h = max(4, round(img.width * s / 4) * 4), max(4, round(img.height * s / 4) * 4)
    return img.resize((w, h), Image.LANCZOS)


def paint(spec: str, photo: np.ndarray) -> np.ndarray:
    import deepshop_native as ds
    path, _, style = spec.partition("@")
    return ds.stylize(photo, model=path, style=style or None, device="cpu", working_size=0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", nargs="+", required=True)
    p.add_argument("--models", nargs="+", required=True, help="model files, FILE@STYLE for a built-in style")
    p.add_argument("--labels", nargs="+", help="a column title per model (default: the file names)")
    p.add_argument("--size", type=int, default=384, help="longer side of each cell (default 384)")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    labels = args.labels or [m.rsplit("/", 1)[-1] for m in args.models]
    if len(labels) != len(args.models):
        raise SystemExit("side_by_side: one --labels entry per model")
    rows = []
    for photo_path in args.photos:
        photo = np.asarray(fit(Image.open(photo_path).convert("RGB"), args.size))
        rows.append([photo] + [paint(m, photo) for m in args.models])
    cols = len(rows[0])
    width = max(r[0].shape[1] for r in rows)
    grid = Image.new("RGB", (cols * width + (cols - 1) * GAP,
                             LABEL_HEIGHT + sum(r[0].shape[0] for r in rows) + (len(rows) - 1) * GAP), "white")
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(["photo"] + labels):
        draw.text((c * (width + GAP) + 4, 3), title, fill="black")
    y = LABEL_HEIGHT
    for row in rows:
        for c, cell in enumerate(row):
            grid.paste(Image.fromarray(cell), (c * (width + GAP), y))
        y += row[0].shape[0] + GAP
    from deepshop_native.core.files import atomic_write
    atomic_write(args.out, lambda f: grid.save(f, format="JPEG", quality=85), args.overwrite)
    print(f"wrote {args.out} ({grid.width} x {grid.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
