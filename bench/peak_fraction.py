"""How close a route comes to the CPU's fp32 peak: TransformerNet (307,584 FLOP per pixel) on one
image size, timed by the wall clock and by the process's CPU time.  On a shared machine the wall
clock measures the share the scheduler gave; FLOP per CPU-second does not depend on it (threads
that spin while waiting count as busy, so it errs low).  Compare with bench/fma_peak.cpp's
"GFLOP per CPU-second" of one thread: the peak of one core.

    python bench/peak_fraction.py --size 1080x1920 --core-peak 162
"""
from __future__ import annotations

import argparse
import warnings
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

FLOP_PER_PIXEL = 307_584  # TransformerNet, 3 x 3 and 9 x 9 convolutions at 2 FLOP per multiply-add


def routes(model: str, int8: str, hw):
    import openvino as ov

    import deepshop_native as ds
    core = ov.Core()

    def ov_python(path):
        m = core.read_model(path)
        m.reshape([1, 3, *hw])
        request = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()

        def run(img):
            x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
            return np.clip(request.infer({0: x})[0][0].transpose(1, 2, 0), 0, 255).round().astype(np.uint8)
        return run

    yield "deepshop auto (fp32 here: no int8 file)", ds.Stylizer(model)
    yield "OpenVINO from Python, fp32", ov_python(model)
    yield "deepshop auto with the int8 file beside the model", ds.Stylizer(int8)
    yield "OpenVINO from Python, the same int8 file", ov_python(int8[:-len(".onnx")] + ".int8.onnx")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1080x1920", help="HxW (default 1080x1920)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--core-peak", type=float, default=0, help="one core's fp32 GFLOP per CPU-second (fma_peak)")
    args = p.parse_args()
    warnings.filterwarnings("ignore")  # the torch exporter's tracer warnings
    hw = tuple(int(v) for v in args.size.split("x"))
    from model_factory import TRANSFORMER_META, export_plain, random_transformer_net

    from deepshop_export.onnx.quantize import quantize_model
    tmp = tempfile.mkdtemp(prefix="peak-fraction-")
    net = random_transformer_net(seed=0)
    meta = {**TRANSFORMER_META, "deepshop.receptive_field": "109"}
    model = export_plain(net, Path(tmp) / "tnet.onnx", meta)
    int8 = export_plain(net, Path(tmp) / "tnet8.onnx", meta)
    quantize_model(int8, calibration=8, held_out=2, size=256)
    img = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    gflop = FLOP_PER_PIXEL * hw[0] * hw[1] / 1e9
    print(f"{hw[1]}x{hw[0]}: {gflop:.1f} GFLOP per image; load {os.getloadavg()[0]:.1f}")
    for name, run in routes(str(model), str(int8), hw):
        if hasattr(run, "precision"):
            name += f" [{run.device_used} {run.precision}]"
        run(img)  # warm up: compile the shape
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(args.runs):
            run(img)
        wall, cpu = (time.perf_counter() - w0) / args.runs, (time.process_time() - c0) / args.runs
        per_cpu = gflop / cpu
        frac = f", {per_cpu / args.core_peak:.0%} of one core's peak" if args.core_peak else ""
        print(f"{name:70s} wall {wall:6.2f} s ({gflop / wall:5.1f} GFLOP/s), CPU {cpu:6.2f} s "
              f"({per_cpu:5.1f} GFLOP per CPU-second{frac})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
