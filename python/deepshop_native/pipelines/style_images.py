"""What the families that take a style image at run time share (MSG-Net, the arbitrary-style
network): the two-graph pipeline files (a style encoder or predictor beside its generator,
metadata ``deepshop.pipeline``), the style image brought to the size its network wants, and a
cache of each style file's result (by path, modification time and size)."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from ..core import metadata as mm
from ..core.errors import ImageError, ModelError
from ..core.files import sha256_of
from ..core.paths import resolve_model
from ..core.session import pixels_as_unit_float
from ..image import LoadedImage, check_made_size, read_image, resize_to, to_rgb_array

#: The smallest style image side accepted: below it there is no texture to speak of.
MIN_STYLE_SIDE = 16
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F", "P;L")


def pipeline_entry(path: Path, family: str, parts: Tuple[str, str], what: str, command: str) -> dict:
    """The ``deepshop.pipeline`` entry of one graph of a ``family`` pair (``parts``: the helper's
    and the generator's part names); ModelError naming the file otherwise."""
    meta = mm.read_model_metadata(path)
    if meta.get(mm.key("family")) != family:
        raise ModelError(f"{path}: not {what} model (family {meta.get(mm.key('family'), 'none')!r}); it has no "
                         "style input, so a style image cannot be given to it")
    try:
        pipe = json.loads(meta.get(mm.key("pipeline"), ""))
        if not isinstance(pipe, dict) or pipe.get("part") not in parts:
            raise ValueError("no part")
    except ValueError:
        raise ModelError(f"{path}: {what} model without a valid {mm.key('pipeline')} entry "
                         f"(export it again with {command})") from None
    return pipe


def resolve_pair(model, family: str, helper: str, what: str, command: str) -> tuple:
    """(helper path, generator path, generator's pipeline entry) from either file of a pair whose
    helper graph is ``helper`` ("encoder", "predictor"): the helper names its generator, the
    generator its helper and, when recorded, the helper's sha256 (a mismatched pair is refused)."""
    path = resolve_model(model)
    parts = (helper, "generator")
    pipe = pipeline_entry(path, family, parts, what, command)
    if pipe["part"] == helper:
        generator = path.with_name(str(pipe.get("generator", "")))
        if not pipe.get("generator") or not generator.is_file():
            raise ModelError(f"{path}: the {what} {helper}'s generator {generator.name!r} is not beside it")
        path, pipe = generator, pipeline_entry(generator, family, parts, what, command)
        if pipe["part"] != "generator":
            raise ModelError(f"{path}: expected the {what} generator graph, found the {pipe['part']}")
    helper_path = path.with_name(str(pipe.get(helper, "")))
    if not pipe.get(helper) or not helper_path.is_file():
        raise ModelError(f"{path}: the {what} generator needs its {helper} {pipe.get(helper)!r} beside it "
                         f"({command} writes both)")
    if pipe.get(f"{helper}_sha256") and sha256_of(helper_path) != pipe[f"{helper}_sha256"]:
        raise ModelError(f"{helper_path}: is not the {helper} {path.name} was exported with (sha256 differs); "
                         "export the pair again")
    return helper_path, path, pipe


def style_pixels(style, *, longer: Optional[int] = None, shorter: Optional[int] = None, multiple: int = 1,
                 what: str = "the network") -> tuple:
    """(RGB float32 [0, 1] of a style image resized so that its longer (or shorter) side is the
    given size, sides rounded to ``multiple``, its name for messages).  Refuses unreadable,
    grayscale, transparent and tiny images: ``what`` takes its colours from the style; and a size
    that would make more pixels than the pixel limit (before any memory is taken)."""
    name = os.fspath(style) if isinstance(style, (str, os.PathLike)) else f"<{type(style).__name__}>"
    if isinstance(style, LoadedImage) and style.path:
        name = style.path
    if isinstance(style, (str, os.PathLike, bytes, bytearray, memoryview)) or callable(getattr(style, "read", None)):
        img = read_image(style)       # ImageError naming the file when unreadable
        name = img.path or name
        gray = img.mode in _GRAY_MODES
        pixels, alpha = img.pixels, img.alpha
    else:
        if isinstance(style, np.ndarray):
            gray = style.ndim == 2 or (style.ndim == 3 and style.shape[2] == 1)
        else:
            gray = getattr(style, "mode", "RGB") in _GRAY_MODES
        pixels, alpha = to_rgb_array(style)
    if gray:
        raise ImageError(f"{name}: the style image is grayscale; {what} takes its colours from the style, "
                         "give a colour image")
    if alpha is not None:
        raise ImageError(f"{name}: the style image has an alpha channel (transparency); flatten it onto a "
                         "background first (the style network takes RGB only)")
    h, w = pixels.shape[:2]
    if min(h, w) < MIN_STYLE_SIDE:
        raise ImageError(f"{name}: the style image is too small ({w}x{h}); at least {MIN_STYLE_SIDE} px on each side")
    scale = (longer / max(h, w)) if longer else (shorter / min(h, w))
    nh = max(multiple, int(round(h * scale / multiple)) * multiple)
    nw = max(multiple, int(round(w * scale / multiple)) * multiple)
    check_made_size("style_size", nh, nw, f"the style image {name}")
    pixels = pixels_as_unit_float(name, pixels)
    if (nh, nw) != (h, w):
        pixels = resize_to(pixels, nh, nw)
    return np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32), name


class StyleCache:
    """Each style file's result (a Gram matrix, a style vector), computed once per path, modification
    time, size and the settings it was computed with.  Images given as arrays are not cached."""

    def __init__(self):
        self._entries: dict = {}
        self._lock = threading.Lock()

    def get(self, style, settings: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        key = None
        if isinstance(style, (str, os.PathLike)):
            p = os.path.abspath(os.fspath(style))
            try:
                st = os.stat(p)
                key = (p, st.st_mtime_ns, st.st_size) + tuple(settings)
            except (OSError, ValueError):
                key = None   # reading it says why
        if key is not None:
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
        value = compute()
        if key is not None:
            with self._lock:
                self._entries[key] = value
        return value
