"""`deepshop posterize`: posterise images with uniform levels or a palette learned from an image.

    deepshop posterize INPUT... --levels N --out FILE|DIR
    deepshop posterize INPUT... --palette-from IMAGE -k K [--method kmeans|median_cut] --out DIR
                       [--space rgb|lab] [--dither] [--labels] [--overwrite] [--quality Q] [--seed S]

Batch conventions (input expansion, output planning, no overwriting unless asked, a summary and
an exit code) come from :mod:`deepshop_native.batch`; image reading and atomic writing from
:mod:`deepshop_native.imageio`.  With ``--labels`` the label map (palette index per pixel) is
also written next to each output as ``<name>_labels.png`` (8-bit grey for up to 256 colours,
16-bit grey up to 65536).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .errors import ArrayError, OutputExistsError


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "posterize",
        help="reduce images to a few colours (uniform levels or a palette learned from an image)",
        description="Posterise images: every pixel becomes the nearest palette colour (ties: the "
                    "lowest palette index).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
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
    p.add_argument("--out", required=True, metavar="FILE|DIR", help="output file (one input) or folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality of the outputs (default: 95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the k-means palette (default: 0)")
    p.set_defaults(func=run)
    return p


def labels_path(dst: Path) -> Path:
    return dst.with_name(dst.stem + "_labels.png")


def write_label_map(path: Path, labels: np.ndarray, overwrite: bool) -> None:
    """Writes the label map as a grey PNG (8-bit up to 256 colours, else 16-bit), atomically."""
    from PIL import Image

    from .imageio import atomic_write

    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists already (use --overwrite to replace it)")
    if labels.max(initial=0) < 256:
        img = Image.fromarray(labels.astype(np.uint8), mode="L")
    else:
        img = Image.fromarray(labels.astype(np.uint16))  # 16-bit grey PNG
    atomic_write(str(path), lambda f: img.save(f, format="PNG"), overwrite)


def run(args) -> int:
    from . import batch, imageio
    from .kernels import palette_from_image, posterize

    if args.palette_from is not None and args.k is None:
        print("deepshop posterize: --palette-from needs -k K (the number of colours)", file=sys.stderr)
        return 2
    if args.k is not None and args.palette_from is None:
        print("deepshop posterize: -k only applies with --palette-from", file=sys.stderr)
        return 2
    if args.levels is not None and args.labels and args.levels ** 3 > 65536:
        print(f"deepshop posterize: --labels supports at most 65536 colours, --levels {args.levels} "
              f"gives {args.levels ** 3}", file=sys.stderr)
        return 2

    palette = None
    try:
        if args.palette_from is not None:
            source = imageio.read_image(args.palette_from)
            pixels = source.pixels if source.alpha is None else np.dstack([source.pixels, source.alpha])
            palette = palette_from_image(pixels, args.k, method=args.method, space=args.space, seed=args.seed)
        inputs = batch.expand_inputs(args.inputs)
        jobs = batch.plan_outputs(inputs, args.out)
    except (ArrayError, ValueError, OSError) as exc:
        where = f"{args.palette_from}: " if palette is None and args.palette_from else ""
        print(f"deepshop posterize: {where}{exc}", file=sys.stderr)
        return 2

    def process(src: Path, dst: Path) -> None:
        image = imageio.read_image(src)
        label_dst = labels_path(Path(dst))
        if args.labels and label_dst.exists() and not args.overwrite:
            raise OutputExistsError(f"{label_dst}: exists already (use --overwrite to replace it)")
        try:
            out, labels = posterize(image.pixels, levels=args.levels, palette=palette, space=args.space,
                                    dither=args.dither, return_labels=True)
        except ArrayError as exc:
            raise ArrayError(f"{src}: {exc}") from exc
        imageio.write_image(dst, out, alpha=image.alpha, quality=args.quality, overwrite=args.overwrite)
        if args.labels:
            write_label_map(label_dst, labels, overwrite=args.overwrite)

    report = batch.run_batch(jobs, process, overwrite=args.overwrite, desc="posterize")
    report.print_summary(sys.stderr)
    return report.exit_code
