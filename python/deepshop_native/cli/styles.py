"""`deepshop styles`: the built-in styles, and a contact sheet of all of them on one photo.

    deepshop styles [--json]                                  number, name, description of each
    deepshop styles --sheet PHOTO -o SHEET.jpg [--size 256 --columns 6 --overwrite --json -q]

The sheet is the photo (scaled to --size) and each built-in style's painting of it, labelled
with its number and name: pick one, then `deepshop stylize photo.jpg --style NAME`."""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from ..core import options
from ..core.errors import OptionError
from ..core.files import check_not_an_input
from ..image import read_image, resize_max_side, to_depth, write_image
from ..models.styles import DEFAULT_STYLE, builtin_styles, open_styled
from .common import add_engine_options, add_max_pixels_option, as_cli_option, engine_kwargs, image_fields

LABEL_HEIGHT = 22


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("styles", help="list the built-in styles, or render them all on one photo",
                              description="List the built-in styles (--style NAME or NUMBER of deepshop stylize), "
                                          "or with --sheet render each on a photo, labelled, in one picture.")
    p.add_argument("--json", action="store_true", help="one JSON object per style on stdout (number, name, "
                                                       "description, default); with --sheet, one for the sheet")
    p.add_argument("--sheet", metavar="PHOTO", help="render every built-in style on this photo")
    p.add_argument("-o", "--out", metavar="FILE", help="the contact sheet's file (with --sheet)")
    p.add_argument("--size", type=int, default=256, help="longer side of each picture on the sheet (default 256)")
    p.add_argument("--columns", type=int, default=6, help="pictures per row (default 6)")
    p.add_argument("--quality", type=int, default=92, help="JPEG/WebP quality (default 92)")
    add_max_pixels_option(p, " (the --sheet photo)")
    p.add_argument("--overwrite", action="store_true", help="replace the sheet if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success (no progress lines)")
    add_engine_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.sheet is None:
        if args.out is not None:
            raise OptionError("--out: only with --sheet PHOTO (the contact sheet's file)")
        return _list(args.json)
    if args.out is None:
        raise OptionError("--sheet: give the sheet's file with -o/--out")
    engine = engine_kwargs(args)
    try:
        size = options.check_integer("size", args.size, 16, 4096)
        columns = options.check_integer("columns", args.columns, 1, 64)
        quality = options.check_quality(args.quality)
    except OptionError as e:
        raise as_cli_option(e) from None
    check_not_an_input(args.out, [args.sheet])
    started = time.perf_counter()
    photo = read_image(args.sheet)   # the pixel limit of --max-pixels (cli.main's pixel_limit)
    small = resize_max_side(photo.pixels, size)
    small = to_depth(small, 8) if small.dtype != np.uint8 else small
    styles = builtin_styles()
    cells = [("photo", small)]
    pipeline = None
    for i, style in enumerate(styles):
        if not args.quiet:
            print(f"deepshop styles: {i + 1}/{len(styles)} {style.name}", file=sys.stderr, flush=True)
        pipeline = open_styled(None, [style.name], **engine)
        cells.append((f"{i} {style.name}", pipeline.run(small, working_size=0)))
    sheet = _sheet(cells, columns)
    write_image(args.out, sheet, quality=quality, overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"input": args.sheet, "output": args.out, **image_fields(sheet, style="all built-in styles",
                                                                                   pipeline=pipeline),
                          "seconds": round(time.perf_counter() - started, 3)}))
    if not args.quiet:
        print(f"deepshop styles: wrote {args.out} ({len(styles)} styles)", file=sys.stderr)
    return 0


def _list(as_json: bool) -> int:
    for i, style in enumerate(builtin_styles()):
        entry = {"number": i, "name": style.name, "description": style.description, "default": style.name == DEFAULT_STYLE}
        if as_json:
            print(json.dumps(entry))
        else:
            print(f"{i:3d}  {style.name:20s} {'(default) ' if entry['default'] else ''}{style.description}")
    return 0


def _sheet(cells, columns: int) -> np.ndarray:
    """The cells (label, H x W x 3 uint8) on a white grid, each label under its picture."""
    from PIL import Image, ImageDraw, ImageFont

    h = max(c.shape[0] for _, c in cells)
    w = max(c.shape[1] for _, c in cells)
    rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (columns * (w + 8) + 8, rows * (h + LABEL_HEIGHT + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, (label, pixels) in enumerate(cells):
        x = 8 + (k % columns) * (w + 8)
        y = 8 + (k // columns) * (h + LABEL_HEIGHT + 8)
        sheet.paste(Image.fromarray(pixels), (x + (w - pixels.shape[1]) // 2, y + (h - pixels.shape[0]) // 2))
        draw.text((x + 2, y + h + 4), label, fill="black", font=font)
    return np.asarray(sheet)
