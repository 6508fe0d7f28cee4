"""Peak resident memory of stylizing a large image, beyond its input and output.

    python bench/peak_memory.py [--size 8192] [--model M.onnx] [--tile 1536] [--device auto --precision auto]
                                [--statistics auto|thumbnail|exact|off]

The device defaults to "auto" (what users get: OpenVINO where its plugin serves the CPU, with
its own tile), so the figure holds for the default path on the machine where it is taken.

Runs in this process: measures the resident set after the model is loaded and the input image
exists, then the peak (ru_maxrss) after the run, and subtracts the output buffer.  With no
--model, a random-weight TransformerNet is exported first (torch needed); the speed of a
random network is that of a trained one, its memory too.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--model")
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto", help="as Stylizer(device=...); auto: what users get by default")
    p.add_argument("--precision", default="auto")
    p.add_argument("--statistics", default="auto",
                   help="as Stylizer(statistics=...), for models with a global-statistics graph (off: harmonize)")
    args = p.parse_args()

    import deepshop_native as ds

    model = args.model
    if model is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from model_factory import TRANSFORMER_META, export_plain, random_transformer_net
        model = export_plain(random_transformer_net(0), Path(tempfile.mkdtemp()) / "tnet.onnx",
                             {**TRANSFORMER_META, "deepshop.receptive_field": "109"})
    st = ds.Stylizer(model, device=args.device, precision=args.precision, threads=args.threads, statistics=args.statistics,
                     **({} if args.tile is None else {"tile": args.tile}))
    n = args.size
    # A smooth, photo-like image: random noise would be as fast but is not what users feed.
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    img = np.stack([(np.sin(7 * xx + 3 * yy) * 0.5 + 0.5), (xx * yy), (np.cos(5 * yy) * 0.5 + 0.5)], -1)
    img = (img * 255).astype(np.uint8)
    del yy, xx
    plan = st.plan(n, n)
    before = rss_mb()
    t0 = time.perf_counter()
    out = st(img)
    elapsed = time.perf_counter() - t0
    peak = peak_mb()
    io_mb = (img.nbytes + out.nbytes) / 2**20
    print(f"image {n}x{n} uint8 ({img.nbytes / 2**20:.0f} MiB in, {out.nbytes / 2**20:.0f} MiB out), "
          f"{plan['tiles_y']}x{plan['tiles_x']} tiles of {plan['window'][0]}x{plan['window'][1]}, "
          f"{elapsed:.1f} s on {st.device_used} ({st.provider}, {st.precision}), statistics {plan['statistics']}, "
          f"{plan['passes']} pass(es), harmonize {plan['harmonize']}")
    print(f"RSS before run {before:.0f} MiB (input included), peak {peak:.0f} MiB")
    print(f"peak beyond input and output buffers: {peak - before - out.nbytes / 2**20:.0f} MiB "
          f"(peak minus pre-run RSS minus output); peak minus I/O buffers alone: {peak - io_mb:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
