"""The README picture of the learned edges:

    python -m deepshop_export.families.hed.figure OUT.jpg PHOTO [--height 256] [--model M]

PHOTO scaled to ``--height``, its auto-Canny edges and its HED edges (thinned, threshold 0.5),
side by side, both as dark lines on white.  Everything runs through the runtime API (ds.edges).
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image


def main(argv=None) -> int:
    import deepshop_native as ds
    from deepshop_native.core.files import atomic_write
    from deepshop_native.pipelines.hed import HedEdges

    p = argparse.ArgumentParser(prog="python -m deepshop_export.families.hed.figure")
    p.add_argument("out")
    p.add_argument("photo")
    p.add_argument("--model", help="HED .onnx (default: the models folder's)")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--threshold", type=float, default=0.5)
    a = p.parse_args(argv)
    im = Image.open(a.photo).convert("RGB")
    im = im.resize((round(im.width * a.height / im.height), a.height), Image.BICUBIC)
    rgb = np.asarray(im)
    canny = ds.edges(rgb, invert=True)
    hed = ds.edges(rgb, method="hed", model=HedEdges(a.model), threshold=a.threshold, invert=True)
    w = rgb.shape[1]
    grid = Image.new("RGB", (3 * w + 8, a.height), "white")
    for i, part in enumerate((rgb, canny, hed)):
        grid.paste(Image.fromarray(part).convert("RGB"), (i * (w + 4), 0))
    atomic_write(a.out, lambda f: grid.save(f, format="JPEG", quality=85), overwrite=True)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
