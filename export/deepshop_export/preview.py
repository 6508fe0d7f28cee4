"""Look at a trained TransformerNet before exporting it: run a ``.pth`` (or a training
checkpoint) with torch on one image and write the result, optionally side by side with the
photo.  ``python -m deepshop_export.preview model.pth photo.jpg out.png --max-side 512``.

The whole image goes through the network at once (no tiling), so instance-norm statistics are
the whole image's; at large sizes this needs memory in proportion to the area (2048x2048 takes
about 4 GB)."""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image

from deepshop_native.core.errors import OutputError
from deepshop_native.core.files import atomic_write, check_not_an_input, output_exists_message

from .checkpoint import load_checkpoint
from .families.transformer_net.network import STRIDE_MULTIPLE, TransformerNet


def stylize(net: TransformerNet, img: Image.Image) -> Image.Image:
    """Stylize an RGB image; its size is padded (reflect) to a multiple of 4 and cropped back."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    h, w = a.shape[:2]
    ph, pw = (-h) % STRIDE_MULTIPLE, (-w) % STRIDE_MULTIPLE
    x = torch.from_numpy(a).permute(2, 0, 1)[None]
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
    with torch.inference_mode():
        y = net(x)[0, :, :h, :w].clamp(0, 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(y)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m deepshop_export.preview", description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("image")
    p.add_argument("out")
    p.add_argument("--max-side", type=int, default=None, help="resize the photo so its longer side is this first")
    p.add_argument("--side-by-side", action="store_true", help="photo on the left, result on the right")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    try:   # never the photo or the model, whatever --overwrite says
        check_not_an_input(a.out, [a.image, a.model])
    except OutputError as e:
        print(f"preview: error: {e}", file=sys.stderr)
        return 1
    if os.path.exists(a.out) and not a.overwrite:
        print(output_exists_message(a.out), file=sys.stderr)
        return 1
    try:
        net = load_checkpoint(a.model)
        with Image.open(a.image) as im:
            img = im.convert("RGB")
    except (OSError, ValueError) as e:
        print(f"preview: error: {e}", file=sys.stderr)
        return 1
    if a.max_side and max(img.size) != a.max_side:
        s = a.max_side / max(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    out = stylize(net, img)
    if a.side_by_side:
        both = Image.new("RGB", (img.width * 2 + 8, img.height), "white")
        both.paste(img, (0, 0))
        both.paste(out, (img.width + 8, 0))
        out = both
    fmt = "JPEG" if a.out.lower().endswith((".jpg", ".jpeg")) else "PNG"
    atomic_write(a.out, lambda f: out.save(f, format=fmt, quality=90), a.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
