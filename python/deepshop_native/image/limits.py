"""The pixel limit: a guard against decompression bombs, checked from the file's header before
anything is decoded, and a bound on the images a pipeline makes by resizing (MSG-Net's style
size, Gatys' length and style scale).

One limit for the API and every subcommand: :data:`DEFAULT_MAX_PIXELS` (2^26), replaced by
``$DEEPSHOP_MAX_PIXELS`` when set, and, within :func:`max_pixels_scope` (the command line's
``--max-pixels``), by the scope's value; an explicit ``max_pixels=`` argument wins over all three.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from typing import Iterator, Optional

import numpy as np
from PIL import Image

from ..core.errors import ImageError, OptionError

#: Default limit on width*height of an image to decode or make (64 Mi pixels, e.g. 8192 x 8192:
#: 192 MiB as 8-bit RGB, 768 MiB as the float32 the engine runs on).
DEFAULT_MAX_PIXELS = 2**26
#: Environment variable that replaces the default limit ("0" or "none": no limit).
MAX_PIXELS_ENV = "DEEPSHOP_MAX_PIXELS"
#: How a message tells the user to raise the limit.
RAISE_IT = (f"raise it with max_pixels=... (deepshop: --max-pixels) or the environment variable {MAX_PIXELS_ENV} "
            "(0 = no limit)")

_UNSET = object()
_SCOPE: contextvars.ContextVar = contextvars.ContextVar("deepshop_max_pixels", default=_UNSET)


@contextlib.contextmanager
def max_pixels_scope(max_pixels: Optional[int]) -> Iterator[None]:
    """Within the block (this thread or task), images read and made with the default limit take
    ``max_pixels`` instead (None or 0: no limit): how a subcommand's --max-pixels reaches every
    image it reads, the pipelines' included."""
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer))
                                   or max_pixels < 0):
        raise OptionError(f"max_pixels: expected an integer >= 0 (0 = no limit) or None, got {max_pixels!r}")
    token = _SCOPE.set(int(max_pixels) if max_pixels else None)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def effective_max_pixels(max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> Optional[int]:
    """The pixel limit to apply: None for none.

    ``max_pixels`` equal to :data:`DEFAULT_MAX_PIXELS` (the default) is replaced by the limit of
    the enclosing :func:`max_pixels_scope`, else by the value of ``$DEEPSHOP_MAX_PIXELS`` when that
    is set; None or 0 means no limit.
    """
    if max_pixels == DEFAULT_MAX_PIXELS and _SCOPE.get() is not _UNSET:
        return _SCOPE.get()
    if max_pixels == DEFAULT_MAX_PIXELS:
        env = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if env:
            if env.lower() in ("none", "off", "unlimited"):
                return None
            try:
                max_pixels = int(env.replace(",", ""))
                if max_pixels < 0:
                    raise ValueError(env)
            except ValueError:
                raise ImageError(
                    f"${MAX_PIXELS_ENV}={env!r}: expected a number of pixels (0 = no limit)"
                ) from None
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise OptionError(f"max_pixels: expected an integer or None, got {type(max_pixels).__name__}")
    if max_pixels < 0:
        raise OptionError(f"max_pixels: must be >= 0 (0 = no limit), got {max_pixels}")
    return int(max_pixels) or None


def check_made_size(option: str, height: int, width: int, what: str) -> None:
    """OptionError naming ``option`` when an image a pipeline is about to make by resizing
    (``what``, e.g. "the output") has more pixels than the limit: checked before the memory is taken."""
    limit = effective_max_pixels()
    if limit is not None and height * width > limit:
        raise OptionError(f"{option}: makes {what} {width}x{height} = {width * height:,} pixels, more than the "
                          f"limit of {limit:,} pixels; give a smaller value, or {RAISE_IT}")


_PIL_LIMIT_LOCK = threading.RLock()


@contextlib.contextmanager
def pillow_limit_lifted():
    """Turn Pillow's own decompression-bomb limit off for a while (we apply our own limit, which
    may be higher: Pillow refuses beyond 2 * 89 M pixels).  Restored afterwards; serialised."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved
