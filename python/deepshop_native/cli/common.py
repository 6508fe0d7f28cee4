"""What the `deepshop` subcommands share: the engine option group and its checked values, the
API's option names as the command line spells them, the pixel limit (--max-pixels, one for every
subcommand that reads images), the suffix and provider notes of the stylizing commands, and the
output flags (-q, --json, --format, `-`)."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Iterator, Optional

from ..core import options
from ..core.errors import OptionError
from ..core.session import DEFAULT_HARMONIZE, DEFAULT_OVERLAP, DEFAULT_STATISTICS_SIZE, DEFAULT_TILE, PRECISIONS
from ..image.limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, effective_max_pixels, max_pixels_scope


def floats(n: int):
    """An argparse type: exactly ``n`` comma-separated numbers."""
    def parse(text: str):
        try:
            values = [float(v) for v in text.replace(" ", "").split(",") if v]
        except ValueError:
            values = []
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}")
        return tuple(values)
    return parse


def add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--device", default="auto",
                   help="auto, cpu, cuda, cuda:N, openvino, openvino:CPU|GPU|NPU (default: auto, the fastest here)")
    g.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                   help="compute precision (default: auto, the provider's fastest within the documented error)")
    g.add_argument("--tile", type=int, default=None,
                   help="network window in pixels per side; 0 runs the whole image at once (default: the "
                        f"provider's own, {DEFAULT_TILE} on the CPU provider)")
    g.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                   help="least blended overlap between tiles (at most half a tile's kept span)")
    g.add_argument("--halo", type=int, default=None, help="context pixels around each tile (default: from the model)")
    g.add_argument("--batch", type=int, default=1, help="tiles per network call")
    g.add_argument("--harmonize", type=int, default=None,
                   help="thumbnail side whose colours the tiles of instance-norm models take; 0: off "
                        f"(default {DEFAULT_HARMONIZE}; MSG-Net models: 0)")
    g.add_argument("--statistics", choices=options.STATISTICS_MODES, default="auto",
                   help="models with a global-statistics graph: normalise tiles with a thumbnail's statistics, "
                        "the full image's (exact: one pass per layer), or each its own (off: harmonized); "
                        "auto: thumbnail")
    g.add_argument("--statistics-size", type=int, default=DEFAULT_STATISTICS_SIZE,
                   help=f"thumbnail side for --statistics thumbnail/exact (default {DEFAULT_STATISTICS_SIZE})")
    g.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    m = p.add_argument_group("models without deepshop metadata")
    m.add_argument("--value-range", type=floats(2), help="pixel range the network takes, e.g. 0,255")
    m.add_argument("--channel-order", choices=["RGB", "BGR"])
    m.add_argument("--mean", type=floats(3), help="per-channel mean subtracted, e.g. 103.939,116.779,123.68")
    m.add_argument("--stride-multiple", type=int)


def engine_kwargs(args) -> dict:
    """The engine options, validated (OptionError names the command-line option).  No --harmonize:
    the key is left out, so that each family keeps its own default."""
    try:
        o = options.engine_options(
            device=args.device, tile=0 if args.tile is None else args.tile, overlap=args.overlap, halo=args.halo,
            batch=args.batch, harmonize=DEFAULT_HARMONIZE if args.harmonize is None else args.harmonize,
            statistics=args.statistics,
            statistics_size=args.statistics_size, threads=args.threads, value_range=args.value_range,
            channel_order=args.channel_order, mean=args.mean, stride_multiple=args.stride_multiple)
    except OptionError as e:
        raise as_cli_option(e) from None
    if args.harmonize is None:
        del o["harmonize"]
    # No --tile: the provider's own window size.
    return {**o, "tile": "auto" if args.tile is None else o["tile"], "precision": args.precision}


def as_cli_option(e: OptionError) -> OptionError:
    """The API's option name ("max_side: ...") as the command line spells it ("--max-side: ...")."""
    name, sep, rest = str(e).partition(": ")
    return OptionError(f"--{name.replace('_', '-')}: {rest}" if sep and name.isidentifier() else str(e))


def add_max_pixels_option(p: argparse.ArgumentParser, also: str = "") -> None:
    """--max-pixels: the one pixel limit, for every subcommand that reads images."""
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help=f"refuse images of more pixels than this before decoding them{also} (default "
                        f"{DEFAULT_MAX_PIXELS:,} = 2^26, e.g. 8192x8192, or ${MAX_PIXELS_ENV}; 0: no limit)")


def max_pixels(value: Optional[int]) -> Optional[int]:
    """--max-pixels, else $DEEPSHOP_MAX_PIXELS, else DEFAULT_MAX_PIXELS; None for no limit."""
    if value is None:
        return effective_max_pixels()
    if value < 0:
        raise OptionError(f"--max-pixels: must be >= 0 (0 = no limit), got {value}")
    return value or None


@contextlib.contextmanager
def pixel_limit(args) -> Iterator[None]:
    """The subcommand's run with its pixel limit on every image it reads or makes (the pipelines'
    reads included): --max-pixels, else $DEEPSHOP_MAX_PIXELS, else DEFAULT_MAX_PIXELS."""
    with max_pixels_scope(max_pixels(getattr(args, "max_pixels", None))):
        yield


def suffix(value: Optional[str]) -> Optional[str]:
    """--suffix goes into file names: no path separators, no NUL."""
    if value is not None and (os.sep in value or (os.altsep and os.altsep in value) or "\0" in value):
        raise OptionError(f"--suffix: {value!r} must be part of a file name, without '{os.sep}'")
    return value


def faster_provider_installed(pipeline) -> bool:
    """Whether a provider faster than the one in use is installed (a CUDA-capable onnxruntime, the
    OpenVINO plugin) and so could not be used: then auto's reason is news; "not installed" is not."""
    from ..core.runtime import available_providers, find_openvino_library, find_openvino_plugin
    if pipeline.device_used.startswith("cuda"):
        return False
    cuda = "CUDAExecutionProvider" in available_providers()
    openvino = ((bool(find_openvino_plugin()[0]) or bool(find_openvino_library()[0]))
                and not pipeline.device_used.startswith("openvino"))
    return cuda or openvino


def add_output_flags(p: argparse.ArgumentParser, *, json_help: str = "one JSON object per image on stdout "
                     "(input, output, size, style, provider, precision, seconds), nothing else there",
                     quiet_help: str = "print nothing on success (no progress, no summary); errors are still printed",
                     quiet: bool = True) -> None:
    """-q/--quiet and --json, spelt and explained alike in every subcommand."""
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    p.add_argument("--json", action="store_true", help=json_help)


def json_stream(args):
    """Where --json lines go (stdout), None without --json; refused when --out - puts the image there."""
    if not getattr(args, "json", False):
        return None
    from .streams import is_stdio
    if is_stdio(getattr(args, "out", None)) or (getattr(args, "out", None) is None
                                                and any(is_stdio(i) for i in getattr(args, "inputs", ()))):
        raise OptionError("--json: the image goes to standard output (-); give --out FILE for the image, or "
                          "leave out --json")
    return sys.stdout


def image_fields(pixels, *, style=None, pipeline=None) -> dict:
    """The --json fields of one output image: its size [width, height], the style, and the provider and
    precision of the network that made it (null where none ran)."""
    return {"size": [int(pixels.shape[1]), int(pixels.shape[0])], "style": style,
            "provider": getattr(pipeline, "provider", None), "precision": getattr(pipeline, "precision", None)}
