"""The `deepshop` command.

    deepshop stylize INPUT... [--model M] [--out FILE|DIR] [--tile --device --strength
                     --preserve-colors --max-side --quality --overwrite --statistics]
    deepshop info [MODEL]
    deepshop posterize INPUT... --levels N | --palette-from IMAGE -k K  --out FILE|DIR

Inputs are files, directories (searched recursively) and globs.  Outputs are written
atomically and never replace an existing file (nor any input) without --overwrite.  A batch
goes on past a bad file or a missing input, then lists every failure and exits with status 1.

Errors: every mistake a user can make (a bad option value, a missing or unreadable file) is
printed as one line ``deepshop: error: ...`` naming the option or file and the reason, without
a traceback, and the exit status is 1; argparse's own usage errors exit with 2.  Ctrl-C and
SIGTERM stop the run alike (status 130 / 143), leaving no partial output behind.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__, options
from .errors import DeepshopError, OptionError

#: Default pixel limit of `deepshop stylize` (64 Mi pixels, e.g. 8192 x 8192): a small file that
#: declares a huge image is refused before it is decoded; --max-pixels or $DEEPSHOP_MAX_PIXELS
#: raise it (0: no limit).
STYLIZE_MAX_PIXELS = 1 << 26


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run unwinds and temporary files are removed."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _floats(n: int):
    def parse(text: str):
        try:
            values = [float(v) for v in text.replace(" ", "").split(",") if v]
        except ValueError:
            values = []
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}")
        return tuple(values)
    return parse


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    from .options import STATISTICS_MODES
    from .stylizer import DEFAULT_HARMONIZE, DEFAULT_OVERLAP, DEFAULT_STATISTICS_SIZE, DEFAULT_TILE
    g = p.add_argument_group("engine")
    g.add_argument("--device", default="auto",
                   help="auto, cpu, cuda, cuda:N, openvino, openvino:CPU|GPU|NPU (default: auto, the fastest here)")
    g.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "int8"],
                   help="compute precision (default: auto, the provider's fastest within the documented error)")
    g.add_argument("--tile", type=int, default=None,
                   help="network window in pixels per side; 0 runs the whole image at once (default: the "
                        f"provider's own, {DEFAULT_TILE} on the CPU provider)")
    g.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="least blended overlap between tiles (at most half a tile's kept span)")
    g.add_argument("--halo", type=int, default=None, help="context pixels around each tile (default: from the model)")
    g.add_argument("--batch", type=int, default=1, help="tiles per network call")
    g.add_argument("--harmonize", type=int, default=None,
                   help="thumbnail side whose colours the tiles of instance-norm models take; 0: off "
                        f"(default {DEFAULT_HARMONIZE}; MSG-Net models: 0)")
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


def _default_harmonize() -> int:
    from .stylizer import DEFAULT_HARMONIZE
    return DEFAULT_HARMONIZE


def _engine_kwargs(args) -> dict:
    """The engine options, validated (OptionError names the command-line option)."""
    try:
        o = options.engine_options(
            device=args.device, tile=0 if args.tile is None else args.tile, overlap=args.overlap, halo=args.halo,
            batch=args.batch, harmonize=_default_harmonize() if args.harmonize is None else args.harmonize,
            statistics=args.statistics,
            statistics_size=args.statistics_size, threads=args.threads, value_range=args.value_range,
            channel_order=args.channel_order, mean=args.mean, stride_multiple=args.stride_multiple)
    except OptionError as e:
        raise _as_cli_option(e) from None
    # No --tile: the provider's own window size.
    return {**o, "tile": "auto" if args.tile is None else o["tile"], "precision": args.precision}


def _as_cli_option(e: OptionError) -> OptionError:
    """The API's option name ("max_side: ...") as the command line spells it ("--max-side: ...")."""
    name, sep, rest = str(e).partition(": ")
    return OptionError(f"--{name.replace('_', '-')}: {rest}" if sep and name.isidentifier() else str(e))


def _max_pixels(value: Optional[int]) -> Optional[int]:
    """--max-pixels, else $DEEPSHOP_MAX_PIXELS, else STYLIZE_MAX_PIXELS; None for no limit."""
    from .image import MAX_PIXELS_ENV, effective_max_pixels

    if value is None:
        return effective_max_pixels() if os.environ.get(MAX_PIXELS_ENV, "").strip() else STYLIZE_MAX_PIXELS
    if value < 0:
        raise OptionError(f"--max-pixels: must be >= 0 (0 = no limit), got {value}")
    return value or None


def _suffix(value: Optional[str]) -> Optional[str]:
    """--suffix goes into file names: no path separators, no NUL."""
    if value is not None and (os.sep in value or (os.altsep and os.altsep in value) or "\0" in value):
        raise OptionError(f"--suffix: {value!r} must be part of a file name, without '{os.sep}'")
    return value


def _faster_provider_installed(stylizer) -> bool:
    """Whether a provider faster than the one in use is installed (a CUDA-capable onnxruntime, the
    OpenVINO plugin) and so could not be used: then auto's reason is news; "not installed" is not."""
    from ._runtime import available_providers, find_openvino_library, find_openvino_plugin
    if stylizer.device_used.startswith("cuda"):
        return False
    cuda = "CUDAExecutionProvider" in available_providers()
    openvino = ((bool(find_openvino_plugin()[0]) or bool(find_openvino_library()[0]))
                and not stylizer.device_used.startswith("openvino"))
    return cuda or openvino


def _cmd_stylize(args) -> int:
    from .batch import collect_inputs, plan_outputs, run_batch, tile_progress
    from .image import read_image, resize_max_side, write_image
    from ._runtime import available_providers
    from .stylizer import Stylizer

    # Every option is checked before any file is touched or the model loaded.
    engine = _engine_kwargs(args)
    try:
        strength = options.check_strength(args.strength)
        max_side = options.check_max_side(args.max_side)
        quality = options.check_quality(args.quality)
    except OptionError as e:
        raise _as_cli_option(e) from None
    max_pixels = _max_pixels(args.max_pixels)
    # Without --out, each result goes next to its photo as NAME_styled.EXT.
    suffix = _suffix(args.suffix)
    suffix = suffix if suffix is not None else ("_styled" if args.out is None else "")
    # A rerun must not stylize its own outputs: scans skip the output folder and, when the
    # outputs lie beside the inputs, names ending in the suffix.
    own_output = (lambda name: os.path.splitext(name)[0].endswith(suffix)) if suffix and args.out is None else None
    inputs, problems = collect_inputs(args.inputs, skip_dirs=[args.out] if args.out else [], is_own_output=own_output)
    jobs = plan_outputs(inputs, args.out, suffix=suffix)
    from . import cli_stylenet
    stylizer = cli_stylenet.open_stylizer(args, engine) if jobs else None   # a Stylizer, or MSG-Net with --style
    # Worth saying when a faster provider is installed but could not be used (a CUDA-capable
    # onnxruntime without a GPU, an OpenVINO plugin on a CPU it does not serve).
    if stylizer and not args.quiet and stylizer.fallback_reason and _faster_provider_installed(stylizer):
        print(f"deepshop: running on {stylizer.device_used} ({stylizer.precision}): {stylizer.fallback_reason}",
              file=sys.stderr)

    def process(src: Path, dst: Path) -> None:
        image = read_image(src, max_pixels=max_pixels)
        pixels, alpha = image.pixels, image.alpha
        if max_side is not None:
            pixels = resize_max_side(pixels, max_side)
            alpha = None if alpha is None else resize_max_side(alpha, max_side)
        plan = stylizer.plan(*pixels.shape[:2])
        tiles = plan["tiles_x"] * plan["tiles_y"]
        with tile_progress(tiles, src.name) as update:
            styled = stylizer(pixels, strength=strength, preserve_colors=args.preserve_colors,
                              progress=update if tiles > 1 and not args.quiet else None)
        write_image(dst, styled, alpha=alpha, quality=quality, overwrite=args.overwrite,
                    exif=image.exif, icc_profile=image.icc_profile)

    report = run_batch(jobs, process, overwrite=args.overwrite, desc="stylize", progress=not args.quiet,
                       problems=problems)
    report.print_summary(sys.stderr)
    return report.exit_code


def _cmd_info(args) -> int:
    from .stylizer import model_info

    try:
        device = options.check_device(args.device)
    except OptionError as e:
        raise _as_cli_option(e) from None
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


def build_parser() -> argparse.ArgumentParser:
    from .image import MAX_PIXELS_ENV

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
    p.add_argument("--max-pixels", type=int, default=None,
                   help=f"refuse images with more pixels than this before decoding them (default {STYLIZE_MAX_PIXELS:,} "
                        f"= 2^26, e.g. 8192x8192, or ${MAX_PIXELS_ENV}; 0: no limit)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_engine_options(p)
    from . import cli_stylenet
    cli_stylenet.register(p)
    p.set_defaults(func=_cmd_stylize)

    p = sub.add_parser("info", help="print a model's metadata, the ONNX Runtime version and providers")
    p.add_argument("model", nargs="?", default=None, help="ONNX model (default: the bundled style)")
    p.add_argument("--device", default="auto", help="the device to describe the choice for (default: auto)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "int8"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_info)

    from . import cli_posterize
    cli_posterize.register(sub)
    from . import cli_gatys
    cli_gatys.register(sub)
    from . import cli_lineart
    cli_lineart.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    _print_raw_file_names()
    parser = build_parser()
    args = parser.parse_args(argv)   # usage errors: argparse prints them and exits with 2
    previous = _install_sigterm()
    try:
        return args.func(args)
    except DeepshopError as e:
        print(f"deepshop: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:   # e.g. an output folder that cannot be created
        where = f"{e.filename}: " if e.filename else ""
        print(f"deepshop: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except Terminated:
        print("deepshop: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("deepshop: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _install_sigterm():
    """SIGTERM raises Terminated (a KeyboardInterrupt) so that it unwinds like Ctrl-C; only the
    main thread may set handlers (None elsewhere)."""
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        return None


def _print_raw_file_names() -> None:
    """File names that are not valid UTF-8 reach Python as surrogate escapes; print them as the
    bytes they are rather than as "\\udcff"."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="surrogateescape")
        except (AttributeError, ValueError, OSError):
            pass


if __name__ == "__main__":
    sys.exit(main())
