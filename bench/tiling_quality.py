"""How far tiled output is from whole-image output, for instance-norm style networks.

    python bench/tiling_quality.py [--model M.onnx] [--sizes 1024 2048] [--tiles 512 768 1024 1536]
                                   [--statistics off thumbnail exact] [--statistics-size 1024]

Each tile of an instance-norm network is normalised with its own statistics, which shifts
colours from tile to tile; blending hides the seams, but not the shift.  This prints the PSNR
(dB) of the tiled result against one whole-image run of the same engine, on photos that
scikit-image ships (upscaled to the test size), for each tile size; and the PSNR measured only
along the tile seams, where a visible edge would show.  For models with a global-statistics graph
it also runs each statistics mode (off = each tile its own statistics, harmonized as below;
thumbnail; exact) and prints its time (wall seconds of the tiled run, on a machine that may be
busy: compare within one run only).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_images(size: int, names):
    from PIL import Image
    from skimage import data

    for name in names:
        img = Image.fromarray(getattr(data, name)())
        yield name, np.asarray(img.resize((size, size), Image.LANCZOS))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="ONNX model (default: the bundled style)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    p.add_argument("--tiles", type=int, nargs="+", default=[512, 768, 1024, 1536])
    p.add_argument("--overlap", type=int, default=None)
    p.add_argument("--harmonize", type=int, nargs="+", default=None,
                   help="thumbnail sides to compare (0: off; default: 0 and the default)")
    p.add_argument("--images", nargs="+", default=["astronaut", "coffee", "chelsea"])
    p.add_argument("--statistics", nargs="+", default=["off", "thumbnail", "exact"],
                   help="statistics modes to compare (models with a global-statistics graph only)")
    p.add_argument("--statistics-size", type=int, default=None, help="thumbnail side of the statistics modes")
    args = p.parse_args()

    import deepshop_native as ds

    overlap = ds.DEFAULT_OVERLAP if args.overlap is None else args.overlap
    harmonize = [0, ds.DEFAULT_HARMONIZE] if args.harmonize is None else args.harmonize
    whole = ds.Stylizer(args.model, device="cpu", tile=0)
    has_statistics = "deepshop.statistics" in whole.metadata
    # (harmonize, statistics mode) pairs: harmonize applies only where the mode is off.
    runs = [(h, "off") for h in harmonize]
    if has_statistics:
        runs += [(ds.DEFAULT_HARMONIZE, m) for m in args.statistics if m != "off"]
    extra = {} if args.statistics_size is None else {"statistics_size": args.statistics_size}
    print(f"model {whole.model_path}, overlap {overlap}")
    print(f"{'image':>10s} {'size':>5s} {'tile':>5s} {'tiles':>6s} {'harmonize':>9s} {'statistics':>10s} "
          f"{'PSNR dB':>8s} {'seam PSNR':>9s} {'time s':>7s}")
    for size in args.sizes:
        for name, img in test_images(size, args.images):
            t0 = time.perf_counter()
            ref = whole(img)
            print(f"{name:>10s} {size:5d} {'whole':>5s} {1:6d} {'':>9s} {'':>10s} {'':>8s} {'':>9s} "
                  f"{time.perf_counter() - t0:7.1f}")
            for tile, (h, mode) in ((t, r) for t in args.tiles for r in runs):
                st = ds.Stylizer(args.model, device="cpu", tile=tile, overlap=overlap, harmonize=h,
                                 **({"statistics": mode, **extra} if has_statistics else {}))
                plan = st.plan(size, size)
                n = plan["tiles_x"] * plan["tiles_y"]
                if n == 1:
                    continue
                t0 = time.perf_counter()
                out = st(img)
                seconds = time.perf_counter() - t0
                # Pixels within 8 px of a seam: the middle of each overlap between kept spans.
                mask = np.zeros((size, size), bool)
                for starts, kept, axis in ((plan["row_starts"], plan["kept"][0], 0),
                                           (plan["col_starts"], plan["kept"][1], 1)):
                    for a, b in zip(starts, starts[1:]):
                        mid = (b + a + kept) // 2
                        sl = slice(max(mid - 8, 0), min(mid + 8, size))
                        if axis == 0:
                            mask[sl, :] = True
                        else:
                            mask[:, sl] = True
                shown = plan.get("statistics", "off")
                print(f"{name:>10s} {size:5d} {tile:5d} {n:6d} {h if shown == 'off' else '-':>9} {shown:>10s} "
                      f"{psnr(out, ref):8.2f} {psnr(out[mask], ref[mask]):9.2f} {seconds:7.1f}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
