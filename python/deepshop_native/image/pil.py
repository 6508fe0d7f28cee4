"""Pillow images as arrays: a decoded image of any mode brought to RGB pixels, alpha and bit depth,
and how errors about Pillow images name them.  The lowest module of the image package: the
readers and the array conversions build on it."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from PIL import Image

from ..core.errors import ImageError


def describe_exception(e: BaseException) -> str:
    """A short reason for a message: "out of memory", or the exception's class and text."""
    text = str(e).strip()
    if isinstance(e, MemoryError):
        return "out of memory"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def pil_image_name(im: Image.Image) -> str:
    """What an error about a Pillow image calls it: its file name, or its mode when it was made
    in memory (such images have no ``filename``)."""
    return getattr(im, "filename", "") or f"Pillow image (mode {im.mode})"


def pil_to_arrays(im: Image.Image) -> Tuple[np.ndarray, Optional[np.ndarray], int]:
    """A decoded Pillow image of any mode -> (RGB pixels, alpha or None, bit depth)."""
    mode = im.mode
    trns = im.info.get("transparency")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im)
        if mode == "F":
            a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
            gray = np.rint(np.clip(a, 0.0, 1.0) * 65535.0).astype(np.uint16)
        else:
            gray = np.clip(a, 0, 65535).astype(np.uint16)
        alpha = None
        if isinstance(trns, int) and not isinstance(trns, bool):
            alpha = np.where(a == trns, 0, 65535).astype(np.uint16)
        return np.repeat(gray[..., None], 3, axis=2), alpha, 16
    if mode == "RGB" and trns is None:
        return np.asarray(im), None, 8
    if mode == "RGBA":
        a = np.asarray(im)
        return a[..., :3], a[..., 3], 8
    if mode in ("L", "1") and trns is None:
        gray = np.asarray(im.convert("L") if mode == "1" else im)
        return np.repeat(gray[..., None], 3, axis=2), None, 8
    has_alpha = (mode in ("LA", "La", "PA", "RGBa", "RGBA") or trns is not None
                 or (mode == "P" and getattr(im.palette, "mode", "") == "RGBA"))
    if mode == "La":   # premultiplied gray+alpha: Pillow converts it only to "LA"
        im = im.convert("LA")
    try:
        conv = im.convert("RGBA" if has_alpha else "RGB")
    except ValueError as e:
        raise ImageError(f"{pil_image_name(im)}: mode {mode} cannot be converted to RGB "
                         f"({e})") from e
    a = np.asarray(conv)
    if has_alpha:
        return a[..., :3], a[..., 3], 8
    return a, None, 8
