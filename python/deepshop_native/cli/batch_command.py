"""`deepshop batch`: a collection stylized into one destination, here or on a Ray cluster, resumable.

    deepshop batch INPUT... --out DEST [--style PAINTING|NAME ... | --model M] [stylize's options]
                   [--engine local|ray] [--address auto|HOST:PORT|ray://HOST:PORT] [--workers N]
                   [--cpus-per-worker F] [--gpus-per-worker F] [--report FILE]

INPUTs are files, folders, globs and URLs (s3://bucket/prefix, gs://..., file:///...); DEST a
folder or URL prefix.  Outputs are named as `deepshop stylize --out DIR` names them and are the
same bytes; a manifest in DEST (.deepshop-batch.jsonl) lets a rerun skip what is done, so a killed
batch resumes; failures are listed (DEST/.deepshop-batch-failed.jsonl) and do not stop the others.
The painting lives in deepshop_native.batch; this module only reads the command line."""
from __future__ import annotations

import argparse
import sys

from ..batch import ENGINES, run as run_batch
from ..core.errors import OptionError
from .common import add_engine_options, add_max_pixels_option, as_cli_option, engine_kwargs, max_pixels, suffix


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("batch", help="stylize a collection into a folder or bucket, locally or on Ray, resumable")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs or URLs (s3://, gs://, file://)")
    p.add_argument("-o", "--out", required=True, metavar="DEST", help="output folder or URL prefix (holds the manifest)")
    p.add_argument("-m", "--model", default=None, help="ONNX style model (default: the built-in styles, see --style)")
    p.add_argument("--suffix", default=None, help="added to output file names (default: none)")
    p.add_argument("--strength", type=float, default=1.0, help="0..1 blend of the style with the photo")
    p.add_argument("--preserve-colors", action="store_true", help="keep the photo's colours")
    p.add_argument("--max-side", type=int, default=None, help="downscale so that the longer side is at most this")
    p.add_argument("--working-size", type=int, default=None,
                   help="the network paints at this longer side (0: full size; default: the style's own)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    add_max_pixels_option(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs not made by an earlier run with these options")
    p.add_argument("--report", default=None, metavar="FILE",
                   help="JSON-lines list of this run's failures (default DEST/.deepshop-batch-failed.jsonl)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("where it runs")
    g.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process, one image after another; ray: a Ray Data pipeline (pip install "
                        "'deepshop-native[ray]')")
    g.add_argument("--address", default=None,
                   help="ray: the cluster (auto, HOST:PORT of its head, or ray://HOST:10001); default: start Ray "
                        "on this machine")
    g.add_argument("--workers", type=int, default=None,
                   help="ray: workers, each holding one pipeline (default: as many as the cluster's CPUs or GPUs hold)")
    g.add_argument("--cpus-per-worker", type=float, default=None,
                   help="ray: CPUs per worker, also its engine threads unless --threads (default 1)")
    g.add_argument("--gpus-per-worker", type=float, default=None, help="ray: GPUs per worker (e.g. 1, or 0.5 to share)")
    add_engine_options(p)
    s = p.add_argument_group("style (deepshop styles lists the built-in ones)")
    s.add_argument("--style", action="append", default=None, metavar="PAINTING|NAME",
                   help="an image file (any painting; with --model, an MSG-Net style image) or a built-in style's "
                        "name or number; repeat to blend")
    s.add_argument("--style-weights", default=None, metavar="W1,W2", help="weights of the --style values (default: equal)")
    s.add_argument("--style-size", type=int, default=None, help="side the style image is resized to")
    s.add_argument("--style-tile", type=int, default=None, help="MSG-Net: style encoder window (px)")
    s.add_argument("--style-statistics", choices=("auto", "exact", "off"), default=None,
                   help="MSG-Net: how those windows are normalised")
    p.set_defaults(func=run)
    return p


def _weights(text):
    if text is None:
        return None
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise OptionError(f"--style-weights: expected comma-separated numbers, got {text!r}") from None


def run(args) -> int:
    engine = engine_kwargs(args)
    ray_opts = {}
    for name in ("address", "workers", "cpus_per_worker", "gpus_per_worker"):
        if getattr(args, name) is not None:
            ray_opts[name] = getattr(args, name)
    family = {name: getattr(args, name) for name in ("style_size", "style_tile", "style_statistics")
              if getattr(args, name) is not None}
    name_suffix = suffix(args.suffix) or ""
    try:
        result = run_batch(args.inputs, args.out, model=args.model, style=args.style or (),
                           style_weights=_weights(args.style_weights), strength=args.strength,
                           preserve_colors=args.preserve_colors, max_side=args.max_side, working_size=args.working_size,
                           quality=args.quality, max_pixels=max_pixels(args.max_pixels), suffix=name_suffix,
                           overwrite=args.overwrite, engine=args.engine, report=args.report,
                           progress=not args.quiet, family_options=family, **ray_opts, **engine)
    except OptionError as e:
        raise as_cli_option(e) from None
    except KeyboardInterrupt as e:
        partial = getattr(e, "batch_result", None)
        if partial is not None:
            partial.print_summary(sys.stderr)
        raise
    result.print_summary(sys.stderr)
    return result.exit_code
