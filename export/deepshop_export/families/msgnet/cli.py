"""``deepshop-export msgnet``: an MSG-Net checkpoint (21styles.model, a PaddleHub .pdparams, a
deepshop-train msgnet model.pth or checkpoint.pt) to the encoder + generator pair of ONNX files."""
from __future__ import annotations

import argparse
import os
import sys

from ...cli_options import add_export_options

PROG = "deepshop-export msgnet"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Export MSG-Net (Zhang & Dana 2017) as two ONNX graphs with dynamic height/width: the style "
                    "encoder (OUTPUT's stem + .encoder.onnx) and the generator (OUTPUT), which takes the content "
                    "image and the style's Gram matrix.  deepshop stylize --model OUTPUT --style painting.jpg runs it.")
    p.add_argument("checkpoint", nargs="?",
                   help="21styles.model or any MSG-Net state_dict (.model/.pth/.pt, also deepshop-train's "
                        "checkpoint.pt), or PaddleHub's .pdparams")
    p.add_argument("--random", action="store_true", help="no checkpoint: random weights (benchmarks, tests)")
    p.add_argument("--ngf", type=int, default=128, help="with --random: width (default 128, as published)")
    add_export_options(p, output_help="output .onnx path of the generator")
    p.add_argument("--statistics", action="store_true",
                   help="write the generator as a global-statistics graph: tiles of large images are normalised "
                        "with a thumbnail's instance-norm statistics instead of their own; and the encoder too: "
                        "style images larger than the style tile get the whole image's Gram (exact statistics)")
    p.add_argument("--overwrite", action="store_true", help="replace the output files if they exist")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from deepshop_native.core.errors import DeepshopError

    from deepshop_native.core.files import check_not_an_input

    from ...checkpoint import sha256_of, training_provenance
    from .export import PairReport, encoder_path_for, export_msgnet
    from . import network as mn

    def error(message: str) -> int:
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1

    if bool(args.checkpoint) == bool(args.random):
        return error("give a checkpoint file or --random (not both)")
    try:
        # Before anything is read: neither output (the generator, the encoder beside it) is the checkpoint.
        for out in (args.output, encoder_path_for(args.output)):
            check_not_an_input(out, [args.checkpoint])
        if args.random:
            import torch
            torch.manual_seed(0)
            net = mn.MSGNet(ngf=args.ngf)
            provenance = {"source": "random weights (torch.manual_seed(0))"}
            name = args.name or "msgnet-random"
        else:
            from ...importers.msgnet import load_msgnet_file
            net = load_msgnet_file(args.checkpoint)
            provenance = {"source": os.path.basename(args.checkpoint), "source_sha256": sha256_of(args.checkpoint),
                          **training_provenance(args.checkpoint)}
            name = args.name or os.path.splitext(os.path.basename(args.checkpoint))[0]
        report = PairReport(export_msgnet(net, args.output, name=name, provenance=provenance, license=args.license,
                                          fp16=args.fp16, opset=args.opset, validate=args.validate,
                                          overwrite=args.overwrite, statistics=args.statistics))
    except DeepshopError as e:
        return error(str(e))
    print(report.summary())
    return 0
