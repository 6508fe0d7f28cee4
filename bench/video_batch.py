"""Would painting video frames in batches pay on this CPU?  OpenVINO from Python, the 26-style
network reshaped to batch 1, 2 and 4 at one frame size: frames per second of each, the batch
sizes interleaved in every repeat, each first in turn (so that a change of the machine's load
touches them alike).

    python bench/video_batch.py [--model PATH] [--size 1024x576] [--frames 4] [--repeats 3]

The model defaults to the pretrained multistyle26.onnx in deepshop's cache (inputs ``input``
N x 3 x H x W in 0..1 and ``style_weights`` (26)); nothing is downloaded.  Prints one JSON line
per repeat and batch size, then the median frames/s of each, its ratio to batch 1's, and the
median of the ratios within a repeat.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=os.path.expanduser("~/.cache/deepshop/pretrained/multistyle26.onnx"))
    p.add_argument("--size", default="1024x576", help="frame WIDTHxHEIGHT")
    p.add_argument("--frames", type=int, default=4, help="frames per measurement (a multiple of every batch)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", default="1,2,4")
    args = p.parse_args()
    import openvino as ov

    width, height = (int(v) for v in args.size.split("x"))
    batches = [int(b) for b in args.batches.split(",")]
    core = ov.Core()
    compiled = {}
    for b in batches:
        model = core.read_model(args.model)
        model.reshape({"input": [b, 3, height, width], "style_weights": [26]})
        compiled[b] = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    hint = compiled[batches[0]].get_property("INFERENCE_PRECISION_HINT")
    precision = getattr(hint, "get_type_name", lambda: str(hint))()
    rng = np.random.default_rng(0)
    weights = np.zeros(26, np.float32)
    weights[3] = 1.0
    requests = {b: c.create_infer_request() for b, c in compiled.items()}
    inputs = {b: {"input": rng.random((b, 3, height, width), dtype=np.float32), "style_weights": weights}
              for b in batches}
    for b in batches:                                    # warm-up
        requests[b].infer(inputs[b])
    rates = {b: [] for b in batches}
    for r in range(args.repeats):
        for b in batches[r % len(batches):] + batches[:r % len(batches)]:     # each size first in turn
            began = time.perf_counter()
            for _ in range(args.frames // b):
                requests[b].infer(inputs[b])
            rate = (args.frames // b) * b / (time.perf_counter() - began)
            rates[b].append(rate)
            print(json.dumps(dict(repeat=r, batch=b, fps=round(rate, 3), load=os.getloadavg()[0])), flush=True)
    base = statistics.median(rates[1]) if 1 in rates else None
    for b in batches:
        m = statistics.median(rates[b])
        # The ratio within each repeat (the batch sizes measured one after the other), then its median.
        paired = statistics.median(r / r1 for r, r1 in zip(rates[b], rates[1])) if 1 in rates else None
        print(json.dumps(dict(batch=b, median_fps=round(m, 3), ratio_to_batch_1=round(m / base, 3) if base else None,
                              median_paired_ratio=round(paired, 3) if paired else None, size=args.size,
                              precision=precision, openvino=ov.__version__)))


if __name__ == "__main__":
    main()
