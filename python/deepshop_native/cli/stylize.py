"""`deepshop stylize`: style models applied to files, folders and globs.

    deepshop stylize INPUT... [--style PAINTING|NAME ... --style-weights W1,W2] [--model M] [--out FILE|DIR]
                     [--strength S --preserve-colors --working-size N --max-side N --quality Q --overwrite]

What paints (models/styles.py): without --model, a --style that is an image file is a painting for
the arbitrary-style network, otherwise a built-in style's name or number (`deepshop styles`), and
no --style the default style; with --model, the model's family (a feedforward style, or MSG-Net
with --style images).  Without --out each result goes next to its photo
as NAME_styled.EXT; `-` reads the photo from stdin and --out - writes to stdout (streams.py); outputs are written atomically, never replacing a file without --overwrite nor
any input; a batch goes on past a bad file and lists every failure."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core import options
from ..core.errors import OptionError
from ..image import resize_max_side
from ..models.styles import DEFAULT_STYLE, open_styled
from . import streams
from .batch import collect_inputs, plan_outputs, run_batch, tile_progress
from .common import (add_engine_options, add_max_pixels_option, add_output_flags, as_cli_option, engine_kwargs,
                     faster_provider_installed, image_fields, json_stream, suffix)

def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("stylize", help="apply a style model to images")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, directories or globs; - reads stdin")
    p.add_argument("-m", "--model", default=None,
                   help="ONNX style model (default: the built-in styles and style images, see --style)")
    p.add_argument("-o", "--out", default=None,
                   help="output file (one input), directory, or - for stdout (default: next to each input, as "
                        "NAME_styled.EXT; stdout for input -)")
    p.add_argument("--suffix", default=None, help="added to output file names, e.g. _styled")
    p.add_argument("--strength", type=float, default=1.0, help="0..1 blend of the style with the photo")
    p.add_argument("--preserve-colors", action="store_true", help="keep the photo's colours, take the style's luminance")
    p.add_argument("--max-side", type=int, default=None, help="downscale so that the longer side is at most this")
    p.add_argument("--working-size", type=int, default=None,
                   help="the network paints at this longer side and the result is brought to full size with the "
                        "photo's detail (0: paint at full size; default: the style's own)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    add_max_pixels_option(p, " (inputs and --style images), and styles resized by --style-size beyond it")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    streams.add_format_option(p, "default: the input's")
    add_output_flags(p)
    add_engine_options(p)
    g = p.add_argument_group("style (deepshop styles lists the built-in ones)")
    g.add_argument("--style", action="append", default=None, metavar="PAINTING|NAME",
                   help="an image file: paint in its style (any painting; with --model, an MSG-Net model's style "
                        "image); else a built-in style's name or number; repeat to blend several")
    g.add_argument("--style-weights", default=None, metavar="W1,W2",
                   help="weights of the --style values in the blend (default: equal)")
    g.add_argument("--style-size", type=int, default=None,
                   help="side the style image is resized to before its network (default: 384, the shorter side, "
                        "for paintings; 512, the longer side, for MSG-Net)")
    g.add_argument("--style-tile", type=int, default=None,
                   help="MSG-Net: style images larger than this run the encoder in windows of at most this many px, "
                        "the Gram summed over them (default 1024; 0: always whole)")
    g.add_argument("--style-statistics", choices=("auto", "exact", "off"), default=None,
                   help="MSG-Net: how those windows are normalised: the whole style image's statistics (exact: one "
                        "pass per encoder layer; encoders exported with --statistics), or each its own (off)")
    p.set_defaults(func=run)
    return p


def _weights(text, count: int):
    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise OptionError(f"--style-weights: expected comma-separated numbers, got {text!r}") from None
    if len(values) != count:
        raise OptionError(f"--style-weights: {len(values)} weights for {count} --style images")
    return values


def open_pipeline(args, engine: dict):
    """The pipeline that paints, its style set (models/styles.open_styled)."""
    styles = args.style or []
    weights = _weights(args.style_weights, len(styles))
    family = {name: getattr(args, name) for name in ("style_size", "style_tile", "style_statistics")
              if getattr(args, name) is not None}
    if args.working_size is not None:
        engine = {**engine, "working_size": options.check_size("--working-size", args.working_size)}
    try:
        return open_styled(args.model, styles, weights, family_options=family, **engine)
    except OptionError as e:
        if str(e).startswith(("style_size", "style_tile", "style_statistics", "style_weights")):
            raise as_cli_option(e) from None
        raise


def style_shown(args) -> str:
    """--json's "style": the --style values, else the model file's name, else the default style."""
    if args.style:
        return "+".join(args.style)
    return os.path.basename(args.model) if args.model else DEFAULT_STYLE


def run(args) -> int:
    # Every option is checked before any file is touched or the model loaded.
    engine = engine_kwargs(args)
    streams.check(args.inputs, args.out, args.format)
    to_json = json_stream(args)
    try:
        strength = options.check_strength(args.strength)
        max_side = options.check_max_side(args.max_side)
        quality = options.check_quality(args.quality)
    except OptionError as e:
        raise as_cli_option(e) from None
    # Without --out, each result goes next to its photo as NAME_styled.EXT.
    name_suffix = suffix(args.suffix)
    name_suffix = name_suffix if name_suffix is not None else ("_styled" if args.out is None else "")
    # A rerun must not stylize its own outputs: scans skip the output folder and, when the
    # outputs lie beside the inputs, names ending in the suffix.
    own_output = ((lambda name: os.path.splitext(name)[0].endswith(name_suffix))
                  if name_suffix and args.out is None else None)
    inputs, problems = collect_inputs(args.inputs, skip_dirs=[args.out] if args.out else [], is_own_output=own_output)
    # The style images and the model are read too: no output may replace them either.
    jobs = plan_outputs(inputs, args.out, suffix=name_suffix, ext=streams.extension(args.format),
                        other_inputs=list(args.style or ()) + [args.model])
    pipeline = open_pipeline(args, engine) if jobs else None
    # Worth saying when a faster provider is installed but could not be used (a CUDA-capable
    # onnxruntime without a GPU, an OpenVINO plugin on a CPU it does not serve).
    if pipeline and not args.quiet and pipeline.fallback_reason and faster_provider_installed(pipeline):
        print(f"deepshop: running on {pipeline.device_used} ({pipeline.precision}): {pipeline.fallback_reason}",
              file=sys.stderr)

    def process(src: Path, dst: Path) -> dict:
        image = streams.read(src)      # under the subcommand's pixel limit (cli.common.pixel_limit)
        pixels, alpha = image.pixels, image.alpha
        if max_side is not None:
            pixels = resize_max_side(pixels, max_side)
            alpha = None if alpha is None else resize_max_side(alpha, max_side)
        with tile_progress(None, src.name, disable=True if args.quiet else None) as update:
            styled = pipeline.run(pixels, strength=strength, preserve_colors=args.preserve_colors, progress=update)
        streams.write(dst, styled, fmt=streams.stream_format(args.format, src, image.format), alpha=alpha,
                      quality=quality, overwrite=args.overwrite, exif=image.exif, icc_profile=image.icc_profile)
        return image_fields(styled, style=style_shown(args), pipeline=pipeline)

    report = run_batch(jobs, process, overwrite=args.overwrite, desc="stylize", progress=not args.quiet,
                       problems=problems, json_stream=to_json)
    report.print_summary(sys.stderr, quiet=args.quiet)
    return report.exit_code
