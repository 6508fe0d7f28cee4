"""`deepshop posterize`: posterise images with uniform levels or a palette learned from an image.

    deepshop posterize INPUT... --levels N --out FILE|DIR
    deepshop posterize INPUT... --palette-from IMAGE -k K [--method kmeans|median_cut] --out DIR
                       [--space rgb|lab] [--dither] [--labels] [--overwrite] [--quality Q] [--seed S]

Batch conventions (input expansion, output planning, no overwriting unless asked, a summary and
an exit code) come from :mod:`deepshop_native.cli.batch`; image reading and atomic writing from
:mod:`deepshop_native.image`.  With ``--labels`` the label map (palette index per pixel) is
also written next to each output as ``<name>_labels.png`` (8-bit grey for up to 256 colours,
16-bit grey up to 65536).  ``-`` as the input reads stdin, ``--out -`` writes to stdout (no
``--labels`` there: a label map needs a file name).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..core import options
from ..core.errors import ArrayError, OptionError, OutputExistsError
from ..core.files import atomic_write, output_exists_message
from ..image import read_image
from ..kernels import palette_from_image, posterize
from . import batch, streams
from .common import add_max_pixels_option, add_output_flags, image_fields, json_stream


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "posterize",
        help="reduce images to a few colours (uniform levels or a palette learned from an image)",
        description="Posterise images: every pixel becomes the nearest palette colour (ties: the "
                    "lowest palette index).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns; - reads stdin")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--levels", type=int, metavar="N",
                        help="N values per channel (N³ colours; 3 gives the 27-colour palette)")
    source.add_argument("--palette-from", metavar="IMAGE", help="learn a palette of K colours from IMAGE")
    p.add_argument("-k", type=int, metavar="K", help="palette size for --palette-from (1..256)")
    p.add_argument("--method", choices=["kmeans", "median_cut"], default="kmeans",
                   help="palette learning method (default: kmeans)")
    p.add_argument("--space", choices=["rgb", "lab"], default="rgb",
                   help="colour space of the nearest-colour distance (default: rgb)")
    p.add_argument("--dither", action="store_true", help="Floyd–Steinberg error diffusion")
    p.add_argument("--labels", action="store_true", help="also write the label map as <name>_labels.png")
    p.add_argument("--out", required=True, metavar="FILE|DIR|-", help="output file (one input), folder, or - for stdout")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality of the outputs (default: 95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the k-means palette (default: 0)")
    streams.add_format_option(p, "default: the input's")
    add_output_flags(p)
    add_max_pixels_option(p, " (inputs and --palette-from)")
    p.set_defaults(func=run, parser=p)
    return p


def labels_path(dst: Path) -> Path:
    return dst.with_name(dst.stem + "_labels.png")


def write_label_map(path: Path, labels: np.ndarray, overwrite: bool) -> None:
    """Writes the label map as a grey PNG (8-bit up to 256 colours, else 16-bit), atomically."""
    from PIL import Image


    if labels.max(initial=0) < 256:
        img = Image.fromarray(labels.astype(np.uint8), mode="L")
    else:
        img = Image.fromarray(labels.astype(np.uint16))  # 16-bit grey PNG
    atomic_write(str(path), lambda f: img.save(f, format="PNG"), overwrite)


def _check_options(args) -> None:
    """Usage mistakes (argparse's exit 2), then option values (OptionError, exit 1)."""
    if args.palette_from is not None and args.k is None:
        args.parser.error("--palette-from needs -k K (the number of colours)")
    if args.k is not None and args.palette_from is None:
        args.parser.error("-k only applies with --palette-from")
    if args.levels is not None:
        options.check_integer("--levels", args.levels, 2, 256)
        if args.labels and args.levels ** 3 > 65536:
            raise OptionError(f"--levels: --labels supports at most 65536 colours, --levels {args.levels} "
                              f"gives {args.levels ** 3}")
    if args.k is not None:
        options.check_integer("-k", args.k, 1, 256)
    options.check_integer("--quality", args.quality, 0, 100)
    options.check_integer("--seed", args.seed, 0, 2 ** 64 - 1)
    streams.check(args.inputs, args.out, args.format)
    if args.labels and (streams.is_stdio(args.out) or any(streams.is_stdio(i) for i in args.inputs)):
        raise OptionError("--labels: the label map is written beside a named output file; not with -")


def run(args) -> int:
    _check_options(args)
    to_json = json_stream(args)
    palette = None
    if args.palette_from is not None:
        source = read_image(args.palette_from)
        pixels = source.pixels if source.alpha is None else np.dstack([source.pixels, source.alpha])
        try:
            palette = palette_from_image(pixels, args.k, method=args.method, space=args.space, seed=args.seed)
        except ArrayError as exc:
            raise ArrayError(f"{args.palette_from}: {exc}") from exc
    # A rerun must not posterize its own outputs (nor label maps) found in the output folder.
    inputs, problems = batch.collect_inputs(args.inputs, skip_dirs=[args.out])
    # The label maps are outputs too: checked against the inputs and each other before starting.
    companions = (lambda dst: [labels_path(dst)]) if args.labels else None
    jobs = batch.plan_outputs(inputs, args.out, companions=companions, ext=streams.extension(args.format),
                              other_inputs=[args.palette_from] if args.palette_from else ())

    def process(src: Path, dst: Path) -> dict:
        image = streams.read(src)
        label_dst = labels_path(Path(dst))
        if args.labels and label_dst.exists() and not args.overwrite:
            raise OutputExistsError(output_exists_message(str(label_dst)))
        out, labels = posterize(image.pixels, levels=args.levels, palette=palette, space=args.space,
                                dither=args.dither, return_labels=True)
        streams.write(dst, out, fmt=streams.stream_format(args.format, src, image.format), alpha=image.alpha,
                      quality=args.quality, overwrite=args.overwrite)
        if args.labels:
            write_label_map(label_dst, labels, overwrite=args.overwrite)
        style = f"levels {args.levels}" if args.levels is not None else f"{args.method} {args.k} from {args.palette_from}"
        return image_fields(out, style=style)

    report = batch.run_batch(jobs, process, overwrite=args.overwrite, desc="posterize", problems=problems,
                             progress=not args.quiet, json_stream=to_json)
    report.print_summary(sys.stderr, quiet=args.quiet)
    return report.exit_code
