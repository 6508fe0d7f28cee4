"""The line-art colouriser to ONNX: one edge channel in ("edges", N x 1 x H x W in [0, 1]), K
class scores out ("scores", N x K x H x W, role ``classes``), with the palette and the default
decoding in the metadata, so the engine tiles it and decodes the blended scores to colours."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from deepshop_native.core.errors import OptionError

from ...cli_options import print_report
from ...onnx.export import ExportReport, GraphInterface, export_module
from ...receptive_field import receptive_field

FAMILY = "lineart"
INPUT_NAME, OUTPUT_NAME = "edges", "scores"
DECODINGS = ("argmax", "annealed_mean")


def interface(stride_multiple: int) -> GraphInterface:
    """Random binary edge maps; sizes are rounded up to the network's stride multiple (the shared
    validation sizes 132 x 100 and 64 x 96 are multiples of 4, not of 8)."""
    def make_inputs(h, w, gen):
        h, w = -(-h // stride_multiple) * stride_multiple, -(-w // stride_multiple) * stride_multiple
        return ((torch.rand(1, 1, h, w, generator=gen) < 0.15).float(),)

    return GraphInterface(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          sample_inputs=make_inputs(64, 64, torch.Generator().manual_seed(0)),
                          dynamic_dims=[{0: "batch", 2: "height", 3: "width"}], make_inputs=make_inputs)


def lineart_metadata(net, palette: np.ndarray, *, name: str, license: str, decoding: str = "argmax",
                     temperature: float = 0.0, space: str = "rgb") -> dict[str, str]:
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) != net.classes:
        raise OptionError(f"palette: expected {net.classes} x 3 colours (one per class), got shape {palette.shape}")
    if decoding not in DECODINGS:
        raise OptionError(f"decoding: one of {', '.join(DECODINGS)}, got {decoding!r}")
    return {
        "family": FAMILY, "name": name, "input_layout": "NCHW", "value_range": "0,1", "channel_order": "RGB",
        "mean": "0,0,0", "stride_multiple": str(net.stride_multiple), "receptive_field": str(receptive_field(net)),
        "normalization": "none", "license": license,
        "inputs": json.dumps({INPUT_NAME: "image"}), "outputs": json.dumps({OUTPUT_NAME: "classes"}),
        "palette": json.dumps([[int(c) for c in row] for row in palette]),
        "palette_space": space, "decoding": decoding, "temperature": f"{float(temperature):g}",
    }


def export_lineart(net: torch.nn.Module, out_path: str | os.PathLike, palette: np.ndarray, *, name: str,
                   provenance: dict, license: str = "unknown", decoding: str = "argmax", temperature: float = 0.0,
                   space: str = "rgb", fp16: bool = False, opset: int = 17, validate: bool = True,
                   overwrite: bool = False) -> ExportReport:
    """Export a LineArtUNet with its palette (K x 3 uint8, class k's colour) to `out_path`."""
    meta = lineart_metadata(net, palette, name=name, license=license, decoding=decoding, temperature=temperature,
                            space=space)
    return export_module(net, interface(net.stride_multiple), out_path, metadata=meta,
                         provenance={"network": {"family": FAMILY, **net.config()}, **provenance},
                         receptive_field=int(meta["receptive_field"]), fp16=fp16, opset=opset, validate=validate,
                         overwrite=overwrite)


def export_checkpoint(checkpoint: str, out_path: str, *, decoding: str = "argmax", temperature: float = 0.0,
                      license: str | None = None, name: str | None = None, data_manifest: str | None = None,
                      fp16: bool = False, overwrite: bool = False) -> ExportReport:
    """Export a ``deepshop-train lineart`` checkpoint.  Provenance: the checkpoint's, the held-out
    evaluation of the run's model.json when it lies beside the checkpoint, and the sha256 of the
    training photos' licence manifest when given."""
    from deepshop_native.core.files import sha256_of

    from ...training.checkpoint import load_checkpoint
    from .network import LineArtUNet
    from .settings import CHECKPOINT_FORMAT

    ckpt = load_checkpoint(checkpoint, CHECKPOINT_FORMAT)
    s = ckpt["settings"]
    palette = np.asarray(ckpt["palette"], dtype=np.uint8)
    if s.get("arch", "unet") != "unet":
        raise OptionError(f"{checkpoint}: a '--arch {s['arch']}' run is a fixed-size baseline, not exportable")
    net = LineArtUNet(len(palette), s["base"], s["depth"])
    net.load_state_dict(ckpt["model"])
    prov = dict(ckpt["provenance"])
    prov["checkpoint"] = {"file": os.path.basename(checkpoint), "sha256": sha256_of(checkpoint)}
    model_json = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "model.json")
    if os.path.isfile(model_json):
        with open(model_json) as f:
            held = json.load(f).get("held_out")
        if held:
            prov["held_out"] = held
    if data_manifest:
        prov["data"] = {**prov.get("data", {}), "manifest": os.path.basename(data_manifest),
                        "manifest_sha256": sha256_of(data_manifest)}
    prov["data"] = {k: v for k, v in prov.get("data", {}).items() if k != "folder"}   # no local paths
    return export_lineart(net, out_path, palette, name=name or s.get("name", "lineart"), provenance=prov,
                          license=license or s.get("license", "unknown"), decoding=decoding,
                          temperature=temperature, space=s.get("space", "rgb"), fp16=fp16, overwrite=overwrite)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m deepshop_export.families.lineart.export",
                                description="Export a 'deepshop-train lineart' checkpoint to ONNX.")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--decoding", choices=DECODINGS, default="argmax", help="the model's default decoding")
    p.add_argument("--temperature", type=float, default=0.0, help="its temperature (annealed_mean)")
    p.add_argument("--license", help="licence of the weights (default: the run's)")
    p.add_argument("--name", help="model name (default: the run's)")
    p.add_argument("--data-manifest", help="licence manifest of the training photos (its sha256 is recorded)")
    p.add_argument("--fp16", action="store_true", help="float16 weights")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    if a.decoding == "annealed_mean" and not a.temperature > 0:
        p.error("--decoding annealed_mean needs --temperature T > 0")
    return print_report(lambda: export_checkpoint(a.checkpoint, a.out, decoding=a.decoding,
                                                  temperature=a.temperature, license=a.license, name=a.name,
                                                  data_manifest=a.data_manifest, fp16=a.fp16,
                                                  overwrite=a.overwrite), "error")


if __name__ == "__main__":
    raise SystemExit(main())
