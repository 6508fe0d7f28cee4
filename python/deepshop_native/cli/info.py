"""`deepshop info [MODEL]`: a model's family, inputs and outputs, metadata, and which provider and
precision a device choice takes here, and why not the faster ones."""
from __future__ import annotations

import argparse
import json

from ..core import options
from ..core.errors import OptionError
from ..core.session import PRECISIONS
from .common import as_cli_option


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("info", help="print a model's metadata, the ONNX Runtime version and providers")
    p.add_argument("model", nargs="?", default=None, help="ONNX model (default: the bundled style)")
    p.add_argument("--device", default="auto", help="the device to describe the choice for (default: auto)")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..api import model_info

    try:
        device = options.check_device(args.device)
    except OptionError as e:
        raise as_cli_option(e) from None
    info = model_info(args.model, device=device, precision=args.precision)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    meta = info.pop("metadata")
    for key, value in info.items():
        print(f"{key:22s} {value}")
    print("metadata:" if meta else "metadata:              (none: pass --value-range etc. to run it)")
    for key, value in sorted(meta.items()):
        if key.endswith("provenance"):
            try:
                value = json.dumps(json.loads(value), indent=2).replace("\n", "\n" + " " * 26)
            except ValueError:
                pass
        print(f"  {key:24s}{value}")
    return 0
