"""`deepshop edges` and `deepshop colorize`: photos to line drawings, line drawings to paintings.

    deepshop edges INPUT... [-o FILE|DIR] [--sigma S --low L --high H --no-smooth --thickness N --invert]
                   [--method canny|hed --threshold P --no-thin --model M --device D --tile N]
    deepshop colorize DRAWING... [-o FILE|DIR] [--model M] [--temperature T] [--input auto|photo|edges]
                      [--threshold V] [--device D] [--tile N]

Without ``-o`` each result goes next to its input as ``NAME_edges.png`` / ``NAME_colorized.png``
(``--format`` another format); ``-`` reads stdin and ``-o -`` writes to stdout (PNG unless ``--format``).
Batch conventions (inputs, output planning, no overwriting unless ``--overwrite``, a failure list
and exit status 1) come from :mod:`deepshop_native.cli.batch`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..core import options
from . import batch, streams
from .common import add_max_pixels_option, add_output_flags, image_fields, json_stream

EDGES_SUFFIX, COLORIZE_SUFFIX = "_edges", "_colorized"


def register(subparsers) -> None:
    p = _parser(subparsers, "edges", "INPUT", EDGES_SUFFIX,
                help="line drawings from photos (auto-Canny: the line-art colouriser's input)",
                description="Edges of photos: grayscale, bilateral filter (d=3, 60, 120), Canny with thresholds "
                            "from the median (m * (1 -+ sigma)); or --method hed: the HED network's edge "
                            "probability, thinned and thresholded.  White lines on black unless --invert.")
    p.add_argument("--sigma", type=float, default=0.33, help="threshold spread around the median (default 0.33)")
    p.add_argument("--low", type=float, help="fixed low Canny threshold 0..255 (default: automatic)")
    p.add_argument("--high", type=float, help="fixed high Canny threshold 0..255 (default: automatic)")
    p.add_argument("--no-smooth", dest="smooth", action="store_false", help="skip the bilateral filter")
    p.add_argument("--thickness", type=int, default=1, help="line width in pixels (default 1)")
    p.add_argument("--invert", action="store_true", help="dark lines on white, like a drawing on paper")
    p.add_argument("--method", choices=["canny", "hed"], default="canny",
                   help="canny (default: the tutorial's auto-Canny) or hed (the learned HED network; export it once "
                        "with: deepshop-export hed)")
    p.add_argument("--threshold", type=float, help="hed: edge probability from which a pixel is a line (default 0.5)")
    p.add_argument("--no-thin", dest="thin", action="store_false",
                   help="hed: keep HED's wide ridges instead of thinning them to one-pixel lines")
    p.add_argument("--model", help="hed: the HED .onnx (default: hed.onnx in $DEEPSHOP_HED_MODELS or "
                                   "~/.cache/deepshop/hed)")
    p.add_argument("--device", help="hed: auto, cpu, cuda, cuda:N, openvino (default auto)")
    p.add_argument("--tile", type=int, help="hed: largest window in pixels (default 512)")
    _finish(p, run_edges)

    p = _parser(subparsers, "colorize", "DRAWING", COLORIZE_SUFFIX,
                help="colour line drawings with a line-art model (default: the bundled one)",
                description="Colour line drawings.  A scan of dark lines on white paper works as it is (pixels "
                            "darker than --threshold are lines); a dark image is read as light lines on black; a "
                            "colour image is converted to gray, with a note; --input photo colours a photo's edges.")
    p.add_argument("--model", help="line-art model (default: the bundled one)")
    p.add_argument("--temperature", type=float,
                   help="0: each pixel the best class's colour; T > 0: the annealed mean of the palette under "
                        "softmax(scores / T), smoother (default: the model's own)")
    p.add_argument("--input", choices=["auto", "photo", "edges"], default="auto",
                   help="what the inputs are (default auto: drawings; see the description)")
    p.add_argument("--threshold", type=float, help="gray level 0..255 separating lines from paper (default 128)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, openvino (default auto)")
    p.add_argument("--tile", type=int, help="largest window in pixels (default: the engine's)")
    _finish(p, run_colorize, quiet_help="print nothing on success (no progress, no summary, no notes); errors "
                                        "are still printed")


def _parser(subparsers, name: str, metavar: str, suffix: str, **texts):
    """A sub-command's parser with its inputs and -o (the default output: NAME + suffix + .png)."""
    p = subparsers.add_parser(name, **texts)
    p.add_argument("inputs", nargs="+", metavar=metavar, help="image files, folders or glob patterns; - reads stdin")
    p.add_argument("-o", "--out", metavar="FILE|DIR|-", help="output file (one input), folder, or - for stdout "
                   f"(default: next to each input as NAME{suffix}.png; stdout for input -)")
    return p


def _finish(p, func, **output_flags) -> None:
    """The options both sub-commands end with, and the function that runs them."""
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    streams.add_format_option(p, "default: png")
    add_output_flags(p, **output_flags)
    add_max_pixels_option(p)
    p.set_defaults(func=func)


def _outputs(args, suffix):
    own = (lambda name: Path(name).stem.endswith(suffix)) if args.out is None else None
    inputs, problems = batch.collect_inputs(args.inputs, skip_dirs=[args.out] if args.out else [],
                                            is_own_output=own)
    return batch.plan_outputs(inputs, args.out, suffix="" if args.out else suffix, ext=args.format or "png",
                              other_inputs=[args.model] if args.model else ()), problems


def _source(src: Path):
    """What the pipelines read: the file's path, or the image read from stdin for `-`."""
    return streams.read(src) if streams.is_stdio(src) else src


def _write(args, dst: Path, pixels) -> None:
    streams.write(dst, pixels, fmt=streams.stream_format(args.format, None, default="png"), overwrite=args.overwrite)


def run_edges(args) -> int:
    from ..pipelines.edges import edges

    streams.check(args.inputs, args.out, args.format)
    method_options = dict(method=args.method, threshold=args.threshold, thin=args.thin, model=args.model,
                          tile=args.tile, device=args.device or "auto")
    if args.method == "hed":
        # The network is loaded once (or its export command printed) before any file is touched.
        from ..pipelines.hed import DEFAULT_TILE, HedEdges
        tile = DEFAULT_TILE if args.tile is None else options.check_size("--tile", args.tile)
        method_options.update(model=HedEdges(args.model, device=method_options.pop("device"), tile=tile), tile=None)
    # Option values checked before any file is touched (edges() checks them again per image).
    to_json = json_stream(args)
    edges(np.zeros((16, 16), np.uint8), sigma=args.sigma, low=args.low, high=args.high,
          smooth=args.smooth, thickness=args.thickness, **method_options)
    jobs, problems = _outputs(args, EDGES_SUFFIX)
    network = method_options["model"] if args.method == "hed" else None

    def process(src: Path, dst: Path) -> dict:
        e = edges(_source(src), sigma=args.sigma, low=args.low, high=args.high, smooth=args.smooth,
                  thickness=args.thickness, invert=args.invert, **method_options)
        _write(args, dst, e)
        return image_fields(e, style=args.method, pipeline=network)

    report = batch.run_batch(jobs, process, overwrite=args.overwrite, desc="edges", problems=problems,
                             progress=not args.quiet, json_stream=to_json)
    report.print_summary(sys.stderr, quiet=args.quiet)
    return report.exit_code


def run_colorize(args) -> int:
    from ..pipelines.colorize import Colorizer

    if args.temperature is not None:
        options.check_number("--temperature", args.temperature, 0.0, 1e6)
    if args.threshold is not None:
        options.check_number("--threshold", args.threshold, 0.0, 255.0)
    streams.check(args.inputs, args.out, args.format)
    to_json = json_stream(args)
    model = Colorizer(args.model, device=args.device, tile=args.tile)
    jobs, problems = _outputs(args, COLORIZE_SUFFIX)

    def process(src: Path, dst: Path) -> dict:
        out = model.run(_source(src), temperature=args.temperature, input=args.input, threshold=args.threshold)
        if not args.quiet:
            for note in out["notes"]:
                print(f"deepshop colorize: note: {batch.shown(src)}: {note}", file=sys.stderr)
        _write(args, dst, out["rgb"])
        return image_fields(out["rgb"], style=args.model or "lineart (bundled)", pipeline=model)

    report = batch.run_batch(jobs, process, overwrite=args.overwrite, desc="colorize", problems=problems,
                             progress=not args.quiet, json_stream=to_json)
    report.print_summary(sys.stderr, quiet=args.quiet)
    return report.exit_code
