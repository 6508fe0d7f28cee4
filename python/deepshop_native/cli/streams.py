"""`-` on the command line: an image read from standard input, an image written to standard output.

    cat photo.jpg | deepshop stylize - > styled.jpg          stdin in, stdout out (the input's format)
    deepshop posterize photo.png --levels 3 --out - | ...    a file in, stdout out
    deepshop stylize - --out styled.png < photo.jpg          stdin in, a file out

An image on stdout is encoded in memory and written in one go once it is complete: a failure
before that leaves stdout empty.  Its format is ``--format`` when given, else the format the
command would give a file (the input's for stylize and posterize, PNG for edges and colorize); an
input format that cannot be written (BMP, GIF) gives PNG.  Standard input is read once: `-` is
the only input when it is used.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from ..core.errors import OptionError
from ..image import FALLBACK_EXTENSION, WRITE_EXTENSIONS, encode_image, read_image, write_image

#: The command line's name for standard input (as an input) and standard output (as --out).
STDIO = "-"
#: What messages and --json call them.
STDIN_NAME, STDOUT_NAME = "<stdin>", "<stdout>"
#: --format's values: the extensions write_image takes, without the dot.
FORMATS = tuple(sorted({ext.lstrip(".") for ext in WRITE_EXTENSIONS}))


def is_stdio(path) -> bool:
    """Whether an input or output is `-` (standard input or output)."""
    return path is not None and str(path) == STDIO


def add_format_option(p, default_help: str) -> None:
    p.add_argument("--format", choices=FORMATS, type=str.lower, default=None,
                   help=f"format of the outputs deepshop names and of --out - ({default_help}); "
                        "--out FILE takes its extension's")


def extension(fmt: Optional[str]) -> Optional[str]:
    """--format as an output extension (".jpg"), None when not given."""
    return None if fmt is None else "." + fmt.lower()


def check(inputs, out, fmt: Optional[str]) -> None:
    """Usage of `-` and --format, checked before anything is read: stdin only as the one input,
    stdout for one image, and --format agreeing with an --out file's extension."""
    if any(is_stdio(i) for i in inputs) and len(inputs) > 1:
        raise OptionError("-: standard input can be the only input (it is read once)")
    if is_stdio(out) and len(inputs) > 1:
        raise OptionError("--out -: standard output takes one image; give one input, or a folder for several")
    if fmt is not None and out is not None and not is_stdio(out):
        ext = Path(str(out)).suffix.lower()
        if ext in WRITE_EXTENSIONS and not Path(str(out)).is_dir() \
                and WRITE_EXTENSIONS[ext] != WRITE_EXTENSIONS[extension(fmt)]:
            raise OptionError(f"--format {fmt}: --out {out} names a {WRITE_EXTENSIONS[ext]} file; "
                              "leave out --format or change the extension")


def read(src, **options):
    """read_image of a file, or of standard input (named <stdin> in errors) for `-`."""
    if is_stdio(src):
        return read_image(sys.stdin.buffer, **options)
    return read_image(src, **options)


def stream_format(fmt: Optional[str], src, loaded_format: Optional[str] = None, default: Optional[str] = None) -> str:
    """The format of an image written to stdout: --format, else ``default`` (a command's own), else
    the input's (the file's extension, or what was read from stdin), PNG when that is not writable."""
    if fmt is not None:
        return WRITE_EXTENSIONS[extension(fmt)]
    if default is not None:
        return WRITE_EXTENSIONS[extension(default)]
    if not is_stdio(src):
        ext = Path(str(src)).suffix.lower()
        if ext in WRITE_EXTENSIONS:
            return WRITE_EXTENSIONS[ext]
    if loaded_format in set(WRITE_EXTENSIONS.values()):
        return loaded_format
    return WRITE_EXTENSIONS[FALLBACK_EXTENSION]


def write(dst, pixels, *, fmt: str = "PNG", overwrite: bool = False, **options) -> None:
    """write_image to a file, or the encoded image to standard output in one write for `-`
    (``fmt`` is its format then; a file's format is its extension's)."""
    if not is_stdio(dst):
        write_image(dst, pixels, overwrite=overwrite, **options)
        return
    data = encode_image(pixels, fmt, name=STDOUT_NAME, **options)
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
