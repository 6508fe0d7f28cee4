"""What the ``deepshop-export`` commands share: the options of a command that writes one network
(the output, its metadata, its precision and opset, the check against torch), and how a command
reports its export or the user's mistake."""
from __future__ import annotations

import argparse
import sys
from typing import Callable


def add_export_options(p: argparse.ArgumentParser, *, output_help: str = "output .onnx path",
                       fp16_help: str = "float16 weights (inputs/outputs stay float32)",
                       opset_help: str = "ONNX opset (default: 17)") -> None:
    """-o/--output, --name, --license, --fp16, --opset and --no-validate, in this order."""
    p.add_argument("-o", "--output", required=True, help=output_help)
    p.add_argument("--name", help="model name stored in the metadata (default: the checkpoint's file stem)")
    p.add_argument("--license", default="unknown", help="licence of the weights (default: unknown)")
    p.add_argument("--fp16", action="store_true", help=fp16_help)
    p.add_argument("--opset", type=int, default=17, help=opset_help)
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="skip the numeric comparison with torch (onnx.checker still runs)")


def print_report(export: Callable[[], object], error_prefix: str) -> int:
    """Run ``export`` (it returns a report): the report's summary on stdout and exit status 0, or a
    DeepshopError's message after ``error_prefix`` on stderr, one line, and exit status 1."""
    from deepshop_native.core.errors import DeepshopError

    try:
        report = export()
    except DeepshopError as e:
        print(f"{error_prefix}: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
