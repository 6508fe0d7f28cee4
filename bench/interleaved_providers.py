"""deepshop against OpenVINO called from Python with the routes taken in turn, round after round, in
one process: drift of the machine (another process, the clock) then falls on every route alike,
where pytest-benchmark times each entry's rounds one after another (bench_providers.py).

    python bench/interleaved_providers.py --size 2160x3840 --precision bf16 --rounds 5
    python bench/interleaved_providers.py --size 2160x3840 --precision bf16 --order openvino,auto,ov-python

Routes: ``ov-python`` (OpenVINO from Python, compiled for the image's shape, numpy's transposes and
rounding as bench_providers.py's entry), ``auto`` (``Stylizer(device="auto")``, whatever precision it
takes) and ``openvino`` (``Stylizer(device="openvino", precision=P)``).  The network is a seeded
random-weight TransformerNet exported to ONNX (a trained one runs at the same speed).  Prints each
route's median and least time and its ratio to OpenVINO from Python (> 1: faster).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="2160x3840", help="HxW (default 2160x3840)")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--order", default="ov-python,auto,openvino", help="routes in the order taken each round")
    args = p.parse_args()
    import openvino as ov

    import deepshop_native as ds
    from model_factory import TRANSFORMER_META, export_plain, random_transformer_net

    hw = tuple(int(v) for v in args.size.lower().split("x"))
    model = export_plain(random_transformer_net(seed=0), Path(tempfile.mkdtemp()) / "tnet.onnx",
                         {**TRANSFORMER_META, "deepshop.receptive_field": "109"})
    img = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    core = ov.Core()
    net = core.read_model(str(model))
    net.reshape([1, 3, *hw])
    hint = "bf16" if args.precision == "bf16" else "f32"
    request = core.compile_model(net, "CPU", {"INFERENCE_PRECISION_HINT": hint}).create_infer_request()

    def ov_python():
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
        return np.clip(request.infer({0: x})[0][0].transpose(1, 2, 0), 0, 255).round().astype(np.uint8)

    auto = ds.Stylizer(model, device="auto")
    direct = ds.Stylizer(model, device="openvino", precision=args.precision)
    routes = {"ov-python": ov_python, "auto": lambda: auto(img), "openvino": lambda: direct(img)}
    order = args.order.split(",")
    print(f"{args.size}, OpenVINO from Python in {args.precision}; auto: {auto.provider} {auto.precision}, "
          f"plan {auto.plan(*hw)['tiles_y']}x{auto.plan(*hw)['tiles_x']} of {auto.plan(*hw)['window']}")
    for name in order:
        routes[name]()                      # warm-up: compiled shapes
    times = {name: [] for name in order}
    for _ in range(args.rounds):
        for name in order:
            t = time.perf_counter()
            routes[name]()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["ov-python"]) if "ov-python" in times else None
    for name in order:
        med = statistics.median(times[name])
        ratio = f"  {base / med:.3f}x OpenVINO from Python" if base else ""
        print(f"{name:10s} median {1000 * med:9.1f} ms  least {1000 * min(times[name]):9.1f} ms{ratio}")


if __name__ == "__main__":
    main()
