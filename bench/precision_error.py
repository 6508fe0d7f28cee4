"""Error of each execution provider and precision against torch fp32, on 0..255 (uint8 outputs):
mean and max abs, on the bundled style and on a random-weight TransformerNet, for photos that
scikit-image ships.  Prints a markdown table (README, "Execution providers").

    python bench/precision_error.py [--size 512] [--images astronaut coffee]

Rows that cannot run here are listed with the reason.  "OpenVINO direct" is the `openvino`
package on the same ONNX file (the CPU plugin the OpenVINO execution provider runs too).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import deepshop_native as ds  # noqa: E402


def bundled_style_net():
    """The bundled style's weights in a torch TransformerNet (its ONNX initializers carry the
    state-dict names)."""
    import onnx
    import torch
    from onnx import numpy_helper
    from deepshop_export.transformer_net import TransformerNet

    net = TransformerNet().eval()
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in onnx.load(str(ds.DEFAULT_MODEL)).graph.initializer}
    missing = set(net.state_dict()) - set(weights)
    if missing:
        raise SystemExit(f"bundled style lacks {sorted(missing)[:4]}...")
    net.load_state_dict({k: weights[k] for k in net.state_dict()})
    return net


def torch_fp32(net, img):
    import torch
    with torch.inference_mode():
        y = net(torch.from_numpy(img).permute(2, 0, 1)[None].float())
    return y.clamp(0, 255).round()[0].permute(1, 2, 0).numpy()


def openvino_direct(model_path, precision):
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(str(model_path), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16"})

    def run(img):
        y = compiled({0: np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)})[0][0]
        return np.clip(y.transpose(1, 2, 0), 0, 255).round().astype(np.uint8)
    return run


def runners(model_path):
    """(label, run(img) -> uint8 image) for every provider and precision, or (label, reason)."""
    out = []
    for device, precision in [("cpu", "fp32"), ("auto", "auto"), ("openvino", "fp32"), ("openvino", "bf16")]:
        label = f"deepshop device={device} precision={precision}"
        try:
            st = ds.Stylizer(model_path, device=device, precision=precision, tile=0)
            out.append((f"{label} ({st.device_used} {st.precision})", st))
        except ds.DeepshopError as e:
            out.append((label, f"not here: {str(e)[:140]}"))
    for precision in ("fp32", "bf16"):
        try:
            out.append((f"OpenVINO direct {precision}", openvino_direct(model_path, precision)))
        except ImportError:
            out.append((f"OpenVINO direct {precision}", "not here: the openvino package is not installed"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512, help="photos resized to SIZE x SIZE")
    ap.add_argument("--images", nargs="+", default=["astronaut", "coffee"])
    args = ap.parse_args()
    import torch
    from PIL import Image
    from skimage import data
    from model_factory import TRANSFORMER_META, export_plain, random_transformer_net

    import tempfile
    tmp = Path(tempfile.mkdtemp())
    models = {"bundled style": (ds.DEFAULT_MODEL, bundled_style_net()),
              "random TransformerNet": None}
    net = random_transformer_net(seed=0)
    models["random TransformerNet"] = (export_plain(net, tmp / "tnet.onnx", TRANSFORMER_META), net)
    photos = {n: np.asarray(Image.fromarray(getattr(data, n)()).convert("RGB").resize((args.size, args.size),
                                                                                     Image.LANCZOS))
              for n in args.images}
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print("| model | runs as | mean abs | max abs |\n|---|---|---|---|")
    for model_name, (path, net) in models.items():
        refs = {n: torch_fp32(net, img) for n, img in photos.items()}
        for label, run in runners(path):
            if isinstance(run, str):
                print(f"| {model_name} | {label} | {run} | |")
                continue
            errs = [np.abs(run(img).astype(np.float32) - refs[n]) for n, img in photos.items()]
            print(f"| {model_name} | {label} | {np.mean([e.mean() for e in errs]):.3f} | "
                  f"{max(e.max() for e in errs):.0f} |")


if __name__ == "__main__":
    main()
