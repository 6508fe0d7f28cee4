"""How close the Gram of a large style image accumulated over encoder windows is to the whole
image's (relative Frobenius error), through the engine: StyleNet with style_tile=0 (the whole
image in one encoder run) against style_tile=T with each window's own instance-norm statistics
(style_statistics="off") and with the whole image's (exact; the encoder exported as a statistics
graph).  Networks: random weights (--ngf, --seed) or a checkpoint (--weights, any layout the
importers read).  Prints one row per (style, size, tile) and the times.

    python bench/msgnet_style_tiles.py --styles STYLES/starry_night.jpg --sizes 1024 2048 \
        --tiles 512 1024 --ngf 128
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

import deepshop_native as ds
from deepshop_export.families.msgnet.export import export_msgnet
from deepshop_export.families.msgnet.network import MSGNet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", nargs="+", required=True)
    p.add_argument("--sizes", nargs="+", type=int, default=[1024])
    p.add_argument("--tiles", nargs="+", type=int, default=[512])
    p.add_argument("--ngf", type=int, default=128)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--weights", default=None, help="a checkpoint instead of random weights")
    p.add_argument("--modes", nargs="+", default=["off", "exact"], choices=["off", "exact"])
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.weights:
        from deepshop_export.importers.msgnet import load_msgnet_file
        net, label = load_msgnet_file(args.weights), os.path.basename(args.weights)
    else:
        torch.manual_seed(args.seed)
        net, label = MSGNet(ngf=args.ngf), f"random ngf={args.ngf} seed={args.seed}"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "msg.onnx")
        export_msgnet(net.eval(), path, name="bench", provenance={"source": "bench"}, validate=False,
                      encoder_statistics=True)
        print(f"network: {label}; load average {os.getloadavg()[0]:.1f}")
        print("| style | size | tile | own statistics | exact statistics | time whole | own | exact |")
        print("|---|---|---|---|---|---|---|---|")
        for style in args.styles:
            for size in args.sizes:
                whole_net = ds.StyleNet(path, device="cpu", style_size=size, style_tile=0)
                t = time.perf_counter()
                whole = whole_net.style_gram(style).astype(np.float64)
                t_whole = time.perf_counter() - t
                for tile in args.tiles:
                    row, times = {}, {}
                    for mode in args.modes:
                        sn = ds.StyleNet(path, device="cpu", style_size=size, style_tile=tile, style_statistics=mode)
                        t = time.perf_counter()
                        g = sn.style_gram(style).astype(np.float64)
                        times[mode] = time.perf_counter() - t
                        row[mode] = np.linalg.norm(g - whole) / np.linalg.norm(whole)
                    print(f"| {os.path.basename(style)} | {size} | {tile} | {row.get('off', float('nan')):.2e} | "
                          f"{row.get('exact', float('nan')):.2e} | {t_whole:.1f} s | {times.get('off', 0):.1f} s | "
                          f"{times.get('exact', 0):.1f} s |", flush=True)


if __name__ == "__main__":
    main()
