"""The `deepshop` command: one module per subcommand, each with ``register(subparsers)`` and ``run(args)``.

    deepshop stylize INPUT... [--model M] [--out FILE|DIR] [--style IMAGE] [engine options]   (stylize.py)
    deepshop batch INPUT... --out DEST [--engine local|ray --address A --workers N] [stylize's options] (batch_command.py)
    deepshop styles [--sheet PHOTO -o SHEET]                                                  (styles.py)
    deepshop info [MODEL]                                                                     (info.py)
    deepshop posterize INPUT... --levels N | --palette-from IMAGE -k K --out FILE|DIR          (posterize.py)
    deepshop gatys -c CONTENT -s STYLE [...]                                                  (gatys.py)
    deepshop edges INPUT... / deepshop colorize DRAWING...                                    (lineart.py)
    deepshop video IN [-o OUT] [--style ... | --model M] [--temporal off|stats|flow]          (video.py)
    deepshop serve [--host 127.0.0.1 --port 8000 --workers N --model FILE ...]                (serve/cli.py)
    deepshop completion bash|zsh|fish                                                         (completion.py)

`-` is standard input as an input and standard output as --out (streams.py); --json prints one
JSON object per image on stdout and nothing else there; -q prints nothing on success (common.py).

Inputs are files, directories (searched recursively) and globs (batch.py).  Outputs are written
atomically and never replace an existing file without --overwrite, nor any input even with it
(deepshop_native.core.files.check_not_an_input).  One pixel limit (--max-pixels, $DEEPSHOP_MAX_PIXELS,
else 2^26) applies to every image a subcommand reads, checked from the header before decoding.  A batch
goes on past a bad file or a missing input, then lists every failure and exits with status 1.

Errors: every mistake a user can make (a bad option value, a missing or unreadable file) is
printed as one line ``deepshop: error: ...`` naming the option or file and the reason, without
a traceback, and the exit status is 1; argparse's own usage errors exit with 2.  Ctrl-C and
SIGTERM stop the run alike (status 130 / 143), leaving no partial output behind.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Optional, Sequence

from .. import __version__
from ..core.errors import DeepshopError
from ..serve import cli as serve
from . import batch_command, completion, gatys, info, lineart, posterize, styles, stylize, video
from .common import pixel_limit

#: The subcommands, in the order `deepshop --help` lists them.
SUBCOMMANDS = (stylize, batch_command, styles, info, posterize, gatys, lineart, video, serve, completion)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run unwinds and temporary files are removed."""


def _on_sigterm(signum, frame):
    raise Terminated()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepshop", description="Turn photographs into artwork with neural networks.")
    parser.add_argument("--version", action="version", version=f"deepshop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.register(sub)
    parser.set_defaults(root_parser=parser)   # `deepshop completion` describes the whole command
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    _print_raw_file_names()
    parser = build_parser()
    args = parser.parse_args(argv)   # usage errors: argparse prints them and exits with 2
    previous = _install_sigterm()
    try:
        with pixel_limit(args):   # --max-pixels (or its default) on every image the subcommand reads or makes
            return args.func(args)
    except DeepshopError as e:
        print(f"deepshop: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:   # the reader of stdout went away (`| head`): nothing more to say to it
        _silence_stdout()
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


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
