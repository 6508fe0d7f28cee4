"""How close the Gram of a large style image accumulated over encoder windows is to the whole
image's (relative Frobenius error), through the engine: StyleNet with style_tile=0 (the whole
image in one encoder run) against style_tile=T with each window's own instance-norm statistics
(style_statistics="off") and with the whole image's (exact; the encoder exported as a statistics
graph); with --thumbnail F also with the statistics of a 1/F-size thumbnail (the engine's
thumbnail mode, which StyleNet does not offer for styles: this measures why).  Networks: random weights (--ngf, --seed) or a checkpoint (--weights, any layout the
importers read).  Prints one row per (style, size, tile) and the times.

    python bench/msgnet_style_tiles.py --styles ../shared/styles/starry_night.jpg --sizes 1024 2048 \
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
from deepshop_native.stylenet import style_spans


def _resized(style: str, size: int) -> tuple:
    """The style image's size after StyleNet's resize (longer side ``size``, multiples of 4)."""
    from PIL import Image
    with Image.open(style) as im:
        w, h = im.size
    scale = size / max(h, w)
    return max(4, int(round(h * scale / 4)) * 4), max(4, int(round(w * scale / 4)) * 4)


def _thumbnail_gram(path: str, style: str, size: int, tile: int, factor: int) -> np.ndarray:
    """The windowed Gram with every window normalised with the statistics a box-averaged 1/factor
    thumbnail measured (its own, mix 0), through the statistics encoder."""
    from deepshop_native.stylenet import _box_resize, _style_pixels
    sn = ds.StyleNet(path, device="cpu", style_size=size, style_tile=tile, style_statistics="exact")
    pixels, _ = _style_pixels(style, size)
    h, w = pixels.shape[:2]
    thumb = _box_resize(pixels, h // factor // 4 * 4, w // factor // 4 * 4)
    total = int(sn._enc_stats["total_channels"])
    outs = sn._enc_stat_outputs
    r = sn._encoder.run(inputs=sn._window_inputs(thumb, None, (np.zeros(total, np.float32), np.ones(total, np.float32)),
                                                 0.0), outputs=[outs["count"], outs["mean"], outs["m2"]])
    count = np.repeat(r[outs["count"]][0], sn._enc_stat_channels)
    statistics = (r[outs["mean"]][0].astype(np.float32), (r[outs["m2"]][0] / count).astype(np.float32))
    sn._exact_style_statistics = lambda _pixels, _windows: statistics     # the windows' pass, those statistics
    return sn._encoded_gram(pixels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", nargs="+", required=True)
    p.add_argument("--sizes", nargs="+", type=int, default=[1024])
    p.add_argument("--tiles", nargs="+", type=int, default=[512])
    p.add_argument("--ngf", type=int, default=128)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--weights", default=None, help="a checkpoint instead of random weights")
    p.add_argument("--modes", nargs="+", default=["off", "exact"], choices=["off", "exact"])
    p.add_argument("--thumbnail", nargs="*", type=int, default=[], metavar="F",
                   help="also windows normalised with a 1/F-size thumbnail's statistics")
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
        print("| style | size | tile | windows | own statistics | exact statistics | time whole | own | exact |")
        print("|---|---|---|---|---|---|---|---|---|")
        for style in args.styles:
            for size in args.sizes:
                whole_net = ds.StyleNet(path, device="cpu", style_size=size, style_tile=0)
                t = time.perf_counter()
                whole = whole_net.style_gram(style).astype(np.float64)
                t_whole = time.perf_counter() - t
                for tile in args.tiles:
                    row, times = {}, {}
                    h, w = _resized(style, size)
                    kept = tile - 2 * whole_net._style_halo
                    windows = len(style_spans(h, kept, 4)) * len(style_spans(w, kept, 4))
                    for mode in args.modes:
                        sn = ds.StyleNet(path, device="cpu", style_size=size, style_tile=tile, style_statistics=mode)
                        t = time.perf_counter()
                        g = sn.style_gram(style).astype(np.float64)
                        times[mode] = time.perf_counter() - t
                        row[mode] = np.linalg.norm(g - whole) / np.linalg.norm(whole)
                    print(f"| {os.path.basename(style)} | {size} | {tile} | {windows} | {row.get('off', float('nan')):.2e} | "
                          f"{row.get('exact', float('nan')):.2e} | {t_whole:.1f} s | {times.get('off', 0):.1f} s | "
                          f"{times.get('exact', 0):.1f} s |", flush=True)
                    for factor in args.thumbnail:
                        g = _thumbnail_gram(path, style, size, tile, factor).astype(np.float64)
                        print(f"|   thumbnail 1/{factor} statistics | | | | "
                              f"{np.linalg.norm(g - whole) / np.linalg.norm(whole):.2e} | | | | |", flush=True)


if __name__ == "__main__":
    main()
