"""The `deepshop` command.

    deepshop stylize INPUT... [--model M] [--out FILE|DIR] [--tile --device --strength
                     --preserve-colors --max-side --quality --overwrite --statistics]
    deepshop info [MODEL]
    deepshop posterize INPUT... --levels N | --palette-from IMAGE -k K  --out FILE|DIR

Inputs are files, directories (searched recursively) and globs.  Outputs are written
atomically and never replace an existing file without --overwrite.  A batch goes on past a
bad file, then lists every failure and exits with status 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .errors import DeepshopError


def _floats(n: int):
    def parse(text: str):
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}")
        return tuple(values)
    return parse


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    from .pipelines import STATISTICS_MODES
    from .stylizer import DEFAULT_HARMONIZE, DEFAULT_OVERLAP, DEFAULT_STATISTICS_SIZE, DEFAULT_TILE
    g = p.add_argument_group("engine")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help=f"network window in pixels per side; 0 runs the whole image at once (default {DEFAULT_TILE})")
    g.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="least blended overlap between tiles")
    g.add_argument("--halo", type=int, default=None, help="context pixels around each tile (default: from the model)")
    g.add_argument("--batch", type=int, default=1, help="tiles per network call")
    g.add_argument("--harmonize", type=int, default=DEFAULT_HARMONIZE,
                   help="thumbnail side whose colours the tiles of instance-norm models take; 0: off "
                        f"(default {DEFAULT_HARMONIZE})")
    g.add_argument("--statistics", choices=STATISTICS_MODES, default="auto",
                   help="models with a global-statistics graph: normalise tiles with a thumbnail's statistics, "
                        "the full image's (exact: one pass per layer), or each its own (off: harmonized); "
                        "auto: thumbnail")
    g.add_argument("--statistics-size", type=int, default=DEFAULT_STATISTICS_SIZE,
                   help=f"thumbnail side for --statistics thumbnail/exact (default {DEFAULT_STATISTICS_SIZE})")
    g.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    m = p.add_argument_group("models without deepshop metadata")
    m.add_argument("--value-range", type=_floats(2), help="pixel range the network takes, e.g. 0,255")
    m.add_argument("--channel-order", choices=["RGB", "BGR"])
    m.add_argument("--mean", type=_floats(3), help="per-channel mean subtracted, e.g. 103.939,116.779,123.68")
    m.add_argument("--stride-multiple", type=int)


def _engine_kwargs(args) -> dict:
    return dict(device=args.device, tile=args.tile, overlap=args.overlap, halo=args.halo, batch=args.batch,
                harmonize=args.harmonize, statistics=args.statistics, statistics_size=args.statistics_size,
                threads=args.threads, value_range=args.value_range, channel_order=args.channel_order,
                mean=args.mean, stride_multiple=args.stride_multiple)


def _cmd_stylize(args) -> int:
    from .batch import expand_inputs, plan_outputs, run_batch, tile_progress
    from .imageio import read_image, resize_max_side, write_image
    from ._runtime import available_providers
    from .stylizer import Stylizer

    # Without --out, each result goes next to its photo as NAME_styled.EXT.
    suffix = args.suffix if args.suffix is not None else ("_styled" if args.out is None else "")
    jobs = plan_outputs(expand_inputs(args.inputs), args.out, suffix=suffix)
    stylizer = Stylizer(args.model, **_engine_kwargs(args))
    # Only worth saying when a CUDA-capable onnxruntime is installed but could not use the GPU.
    if stylizer.fallback_reason and "CUDAExecutionProvider" in available_providers() and not args.quiet:
        print(f"deepshop: running on the CPU: {stylizer.fallback_reason}", file=sys.stderr)

    def process(src: Path, dst: Path) -> None:
        image = read_image(src, max_pixels=args.max_pixels)
        pixels, alpha = image.pixels, image.alpha
        if args.max_side:
            pixels = resize_max_side(pixels, args.max_side)
            alpha = None if alpha is None else resize_max_side(alpha, args.max_side)
        plan = stylizer.plan(*pixels.shape[:2])
        tiles = plan["tiles_x"] * plan["tiles_y"]
        with tile_progress(tiles, src.name) as update:
            styled = stylizer(pixels, strength=args.strength, preserve_colors=args.preserve_colors,
                              progress=update if tiles > 1 and not args.quiet else None)
        write_image(dst, styled, alpha=alpha, quality=args.quality, overwrite=args.overwrite,
                    exif=image.exif, icc_profile=image.icc_profile)

    report = run_batch(jobs, process, overwrite=args.overwrite, desc="stylize", progress=not args.quiet)
    report.print_summary(sys.stderr)
    return report.exit_code


def _cmd_info(args) -> int:
    from .stylizer import model_info

    info = model_info(args.model, device=args.device)
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


def build_parser() -> argparse.ArgumentParser:
    from .imageio import DEFAULT_MAX_PIXELS

    parser = argparse.ArgumentParser(prog="deepshop", description="Turn photographs into artwork with neural networks.")
    parser.add_argument("--version", action="version", version=f"deepshop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stylize", help="apply a style model to images")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, directories or globs")
    p.add_argument("-m", "--model", default=None, help="ONNX style model (default: the bundled style)")
    p.add_argument("-o", "--out", default=None,
                   help="output file (one input) or directory (default: next to each input, as NAME_styled.EXT)")
    p.add_argument("--suffix", default=None, help="added to output file names, e.g. _styled")
    p.add_argument("--strength", type=float, default=1.0, help="0..1 blend of the style with the photo")
    p.add_argument("--preserve-colors", action="store_true", help="keep the photo's colours, take the style's luminance")
    p.add_argument("--max-side", type=int, default=None, help="downscale so that the longer side is at most this")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse images with more pixels than this (decompression-bomb guard; default 2^28, or $DEEPSHOP_MAX_PIXELS; 0: no limit)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_engine_options(p)
    p.set_defaults(func=_cmd_stylize)

    p = sub.add_parser("info", help="print a model's metadata, the ONNX Runtime version and providers")
    p.add_argument("model", nargs="?", default=None, help="ONNX model (default: the bundled style)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_info)

    from . import cli_posterize
    cli_posterize.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DeepshopError as e:
        print(f"deepshop: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepshop: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
