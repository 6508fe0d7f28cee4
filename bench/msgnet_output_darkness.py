"""How dark MSG-Net checkpoints' outputs are (the sand-painting users' fine-tune "mostly black
outputs" collapse): for each checkpoint (any layout the importers read), the photos of a folder
(longer side 256) stylised with one style in torch, and the mean luma (BT.601, 0..255) and the
share of pixels with luma below 16 over all of them.

    python bench/msgnet_output_darkness.py --style export/deepshop_export/styles/sand_painting.png \
        --photos photos/ runs/pre/model.pth runs/tune-frozen/model.pth runs/tune-all/model.pth
"""
from __future__ import annotations

import argparse
import glob
import os

import numpy as np
import torch
from PIL import Image

from deepshop_export.importers.msgnet import load_msgnet_file


def _bgr(rgb):
    return torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1], dtype=np.float32)).permute(2, 0, 1)[None]


def _load(path: str, side: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = side / max(w, h)
        return np.asarray(im.resize((max(4, int(w * s) // 4 * 4), max(4, int(h * s) // 4 * 4)), Image.LANCZOS))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--style", required=True)
    p.add_argument("--photos", required=True)
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args()
    torch.set_num_threads(1)
    style = _load(args.style, args.size)
    photos = [_load(f, args.size) for f in sorted(glob.glob(os.path.join(args.photos, "*")))
              if f.lower().endswith((".png", ".jpg", ".jpeg"))]
    for ckpt in args.checkpoints:
        net = load_msgnet_file(ckpt).eval()
        with torch.no_grad():
            g = net.style_gram(_bgr(style))
            outs = [net(_bgr(ph), g)[0].clamp(0, 255).permute(1, 2, 0).numpy()[..., ::-1] for ph in photos]
        luma = np.concatenate([(o @ np.array([0.299, 0.587, 0.114])).ravel() for o in outs])
        print(f"{ckpt}: {len(photos)} photos, mean luma {luma.mean():.1f}, luma < 16: {100 * np.mean(luma < 16):.1f} %")


if __name__ == "__main__":
    main()
