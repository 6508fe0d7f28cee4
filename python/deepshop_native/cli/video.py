"""`deepshop video`: a video file stylized, its audio, frame rate, size and rotation kept.

    deepshop video IN [-o OUT] [--style PAINTING|NAME ... | --model M] [--strength S]
                   [--temporal off|stats|flow] [--start S --duration D] [--crf N | --bitrate 8M]
                   [--working-size N] [--overwrite] [--no-resume] [engine options]

What paints is chosen as for `deepshop stylize` (models/styles.py); the work is
deepshop_native.video (docs/guides/video.md).  Without -o the result goes next to the input as
NAME_styled.EXT (.mp4 for types that cannot be written).  The output is written atomically and
never replaces the input, nor an existing file without --overwrite; an interrupted run keeps its
segments in .OUT.deepshop-partial/ beside it, and the same command goes on from there.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..core.errors import DeepshopError, OptionError
from ..video.temporal import DEFAULT_BLEND, DEFAULT_MODE, DEFAULT_STATS_EVERY, MODES
from .common import add_engine_options, as_cli_option, engine_kwargs
from .stylize import _weights

_OPTION_NAMES = ("temporal", "start", "duration", "crf", "bitrate", "blend", "stats_every", "strength",
                 "working_size", "style_size", "style_weights")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("video", help="stylize a video file (audio, frame rate and rotation kept)")
    p.add_argument("input", metavar="INPUT", help="video file (.mp4, .mov, .mkv, .webm, ... anything FFmpeg reads)")
    p.add_argument("-o", "--out", default=None,
                   help="output video: .mp4, .m4v, .mov, .mkv or .webm (default: next to the input, NAME_styled.EXT)")
    p.add_argument("-m", "--model", default=None, help="ONNX style model (default: the built-in styles, see --style)")
    p.add_argument("--style", action="append", default=None, metavar="PAINTING|NAME",
                   help="an image file: paint in its style; else a built-in style's name or number (deepshop "
                        "styles); repeat to blend")
    p.add_argument("--style-weights", default=None, metavar="W1,W2", help="weights of the --style values in the blend")
    p.add_argument("--style-size", type=int, default=None, help="side the style image is resized to (default 384)")
    p.add_argument("--strength", type=float, default=1.0, help="0..1 blend of the style with the frame")
    p.add_argument("--temporal", choices=MODES, default=DEFAULT_MODE,
                   help="temporal consistency: off (frame by frame), stats (one set of instance-norm statistics per "
                        "shot), flow (stats, and the previous output frame's strokes carried along the optical flow); "
                        f"default {DEFAULT_MODE}")
    p.add_argument("--blend", type=float, default=DEFAULT_BLEND,
                   help=f"flow: weight of the previous painted frame's strokes, carried along the motion where it "
                        f"is reliable, 0..1 (default {DEFAULT_BLEND:g}; 0: none; below 1 they fade over a shot)")
    p.add_argument("--stats-every", type=int, default=DEFAULT_STATS_EVERY,
                   help=f"stats, flow: frames between measurements of the shot's statistics (default "
                        f"{DEFAULT_STATS_EVERY})")
    p.add_argument("--start", type=float, default=0.0, help="seconds into the video to begin at")
    p.add_argument("--duration", type=float, default=None, help="seconds to stylize (default: to the end)")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--crf", type=int, default=None,
                   help="constant rate factor of the encoder (x264: 0 lossless .. 51; default 18; VP9: default 31)")
    q.add_argument("--bitrate", default=None, help="target bit rate instead, e.g. 8M or 2500k")
    p.add_argument("--working-size", type=int, default=None,
                   help="the network paints at this longer side and the result is brought to full size with the "
                        "frame's detail (0: full size; default: the style's own)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="start over: discard what an interrupted run of the same output left in its work folder "
                        "(.OUT.deepshop-partial beside the output; by default the same command goes on from there "
                        "when the input and every option that changes the pixels are the same)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_engine_options(p)
    p.set_defaults(func=run)
    return p


def _say(bar, text: str) -> None:
    print(f"deepshop: {text}", file=sys.stderr)


def default_output(path: str) -> str:
    from ..video.media import CONTAINERS
    stem, ext = os.path.splitext(path)
    return stem + "_styled" + (ext if ext.lower() in CONTAINERS else ".mp4")


def run(args) -> int:
    from tqdm import tqdm

    from ..video import stylize_video
    engine = engine_kwargs(args)
    styles = args.style or []
    weights = _weights(args.style_weights, len(styles))
    if args.working_size is not None:
        engine["working_size"] = args.working_size
    if args.style_size is not None:
        engine["style_size"] = args.style_size
    output = args.out if args.out is not None else default_output(args.input)
    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="video", unit="frame", file=sys.stderr, dynamic_ncols=True, disable=args.quiet)
        bar.update(done - bar.n)

    try:
        result = stylize_video(args.input, output, style=styles or None, model=args.model, style_weights=weights,
                               strength=args.strength, temporal=args.temporal, start=args.start,
                               duration=args.duration, crf=args.crf, bitrate=args.bitrate, overwrite=args.overwrite,
                               blend=args.blend, stats_every=args.stats_every, progress=progress,
                               resume=args.resume, notice=lambda text: _say(bar, text), **engine)
    except OptionError as e:
        if str(e).partition(":")[0] in _OPTION_NAMES:
            raise as_cli_option(e) from None
        raise
    except (KeyboardInterrupt, DeepshopError) as e:   # how to go on (main() then says what stopped it)
        if bar is not None:
            bar.close()
            bar = None
        note = getattr(e, "resume_note", "")      # (a cancel's own message says it)
        if note:
            print(f"deepshop: {note}", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        if result.resumed == result.frames:
            print("deepshop: every frame was painted by an interrupted run: its segments were joined", file=sys.stderr)
        elif result.resumed:
            cut = "" if result.temporal == "off" else "; the temporal state starts again there"
            print(f"deepshop: went on from frame {result.resumed + 1} (the frames before were painted by an "
                  f"interrupted run{cut})", file=sys.stderr)
        note = "" if result.statistics or result.temporal == "off" else " (no statistics graph: flow only)"
        print(f"deepshop: wrote {result.output}: {result.frames} frames in {result.seconds:.1f} s "
              f"({result.fps:.2f} frames/s on {result.device}), temporal {result.temporal}{note}, "
              f"{result.cuts} scene cut{'s' if result.cuts != 1 else ''}", file=sys.stderr)
    return 0

