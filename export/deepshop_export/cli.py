"""``deepshop-export``: a fast_neural_style TransformerNet checkpoint (.pth) to ONNX with metadata."""
from __future__ import annotations

import argparse
import os
import sys

PROG = "deepshop-export"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Convert a fast_neural_style TransformerNet checkpoint (.pth) to an ONNX model with "
                    "dynamic height/width and deepshop metadata, then check it against torch.  "
                    "`deepshop-export gatys --help`: the loss-and-gradient graph for Gatys style transfer.")
    p.add_argument("checkpoint", help="TransformerNet .pth (a state_dict; old ones with InstanceNorm running stats work)")
    p.add_argument("-o", "--output", required=True, help="output .onnx path")
    p.add_argument("--name", help="model name stored in the metadata (default: the checkpoint's file stem)")
    p.add_argument("--license", default="unknown", help="licence of the weights (default: unknown)")
    p.add_argument("--fp16", action="store_true", help="float16 weights and computation (inputs/outputs stay float32; "
                                                        "InstanceNorm stays float32)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or later (default: 17)")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="skip the numeric comparison with torch (onnx.checker still runs)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--provenance", action="append", default=[], metavar="KEY=VALUE",
                   help="extra provenance entry (style image, training settings, ...); repeatable")
    return p


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


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
    args = _parser().parse_args(argv)
    from deepshop_native.errors import DeepshopError

    from .checkpoint import load_checkpoint, sha256_of, training_provenance
    from .onnx_export import MAX_OPSET, MIN_OPSET, export_transformer_net

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
        return _error(f"{args.output}: exists already; pass --overwrite to replace it")

    try:
        net = load_checkpoint(args.checkpoint)
        # What the training recorded (style image, losses, data, time) travels into the model.
        provenance = {"source": os.path.basename(args.checkpoint), "source_sha256": sha256_of(args.checkpoint),
                      **training_provenance(args.checkpoint), **extra}
        name = args.name or os.path.splitext(os.path.basename(args.checkpoint))[0]
        report = export_transformer_net(net, args.output, name=name, provenance=provenance, license=args.license,
                                        fp16=args.fp16, opset=args.opset, validate=args.validate,
                                        overwrite=args.overwrite)
    except DeepshopError as e:
        return _error(str(e))
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
