"""The pixel limit: a guard against decompression bombs, checked from the file's header before
anything is decoded."""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Optional

import numpy as np
from PIL import Image

from ..core.errors import ImageError, OptionError

#: Default limit on width*height of an image to decode (268 M pixels, e.g. 16384 x 16384).
DEFAULT_MAX_PIXELS = 2**28
#: Environment variable that replaces the default limit ("0" or "none": no limit).
MAX_PIXELS_ENV = "DEEPSHOP_MAX_PIXELS"


def effective_max_pixels(max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> Optional[int]:
    """The pixel limit to apply: None for none.

    ``max_pixels`` equal to :data:`DEFAULT_MAX_PIXELS` (the default) is replaced by the value of
    ``$DEEPSHOP_MAX_PIXELS`` when that is set; None or 0 means no limit.
    """
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
