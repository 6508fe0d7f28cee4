"""Harmonize for MSG-Net: PSNR of tiled against whole-image output, with and without the engine's
harmonize pass (thumbnail stylized with the same Gram), full band and low-pass (Gaussian, sigma =
image side / 32: the colour cast harmonize corrects).  A random MSG-Net (ngf 8, 2 blocks, seed 5)
whose last convolution is scaled to a 0..255 output (mean ~128, std 50: at initialisation the
output is ~0 +- 0.4, all black after clipping), photos from scikit-image, style coffee.

    python bench/msgnet_harmonize.py --sizes 1024 --tiles 512 --harmonize 256 512 --images astronaut chelsea
    python bench/msgnet_harmonize.py --sizes 2048 --tiles 1536 --harmonize 512 1024 --images astronaut coffee
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data

import deepshop_native as ds
from deepshop_export.families.msgnet.export import export_msgnet
from deepshop_export.families.msgnet.network import MSGNet


def _bgr(rgb):
    return torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1], dtype=np.float32)).permute(2, 0, 1)[None]


def scaled_random_msgnet() -> MSGNet:
    torch.manual_seed(5)
    net = MSGNet(ngf=8, n_blocks=2).eval()
    with torch.no_grad():
        y = net(_bgr(data.astronaut()[::2, ::2]), net.style_gram(_bgr(data.coffee()[::2, ::2])))
        k = 50.0 / y.std()
        net.model[-1].conv2d.weight.mul_(k)
        net.model[-1].conv2d.bias.mul_(k).add_(128.0)
    return net


def psnr(a, b) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[1024])
    p.add_argument("--tiles", nargs="+", type=int, default=[512])
    p.add_argument("--harmonize", nargs="+", type=int, default=[512])
    p.add_argument("--images", nargs="+", default=["astronaut"])
    p.add_argument("--overlap", type=int, default=64)
    args = p.parse_args()
    torch.set_num_threads(1)
    style = data.coffee()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "msg.onnx")
        export_msgnet(scaled_random_msgnet(), path, name="bench", provenance={"source": "bench"}, validate=False)
        print(f"load average {os.getloadavg()[0]:.1f}")
        print("| image | size | tile | tiles | harmonize | PSNR | low-pass PSNR | time |")
        print("|---|---|---|---|---|---|---|---|")
        for name in args.images:
            img = getattr(data, name)()
            for size in args.sizes:
                h, w = img.shape[:2]
                s = size / max(h, w)
                photo = np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.LANCZOS))
                t = time.perf_counter()
                whole = ds.StyleNet(path, device="cpu", tile=0).set_style(style)(photo).astype(np.float64)
                print(f"| {name} | {photo.shape[1]}x{photo.shape[0]} | whole | 1 | | | | "
                      f"{time.perf_counter() - t:.1f} s |", flush=True)
                sigma = size / 32
                low_whole = gaussian_filter(whole, (sigma, sigma, 0))
                for tile in args.tiles:
                    for hz in [0] + args.harmonize:
                        sn = ds.StyleNet(path, device="cpu", tile=tile, overlap=args.overlap, harmonize=hz)
                        plan = sn.plan(*photo.shape[:2])
                        sn.set_style(style)
                        t = time.perf_counter()
                        out = sn(photo).astype(np.float64)
                        dt = time.perf_counter() - t
                        low = psnr(gaussian_filter(out, (sigma, sigma, 0)), low_whole)
                        print(f"| {name} | {photo.shape[1]}x{photo.shape[0]} | {tile} | "
                              f"{plan['tiles_x'] * plan['tiles_y']} | {hz or 'off'} | {psnr(out, whole):.2f} dB | "
                              f"{low:.2f} dB | {dt:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
