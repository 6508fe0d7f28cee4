"""Image arrays: whatever a caller hands over (numpy arrays of any layout, Pillow images, paths,
loaded images) brought to one form, RGB ``HxWx3`` plus an optional alpha ``HxW``, and the bit
depth and size conversions between such arrays."""
from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import numpy as np
from PIL import Image

from ..core.errors import DeepshopError, ImageError, OptionError
from .pil import describe_exception, pil_image_name, pil_to_arrays
from .read import LoadedImage, read_image


_FLOAT_SLACK = 0.01   # float pixels a little outside [0, 1] are clipped; far outside: refused


def to_rgb_array(obj: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(pixels HxWx3, alpha HxW or None) from an array, a Pillow image, a LoadedImage, or what
    :func:`~deepshop_native.image.read_image` reads (a path, bytes, a binary file object).

    Arrays may be HxW, HxWx1 (gray, replicated), HxWx3 (RGB) or HxWx4 (RGBA) of uint8, uint16
    or float32/float64 in [0, 1] (returned as float32), with any strides; the results are
    C-contiguous (a C-contiguous uint8/uint16 RGB input is returned as is, not copied).
    """
    if isinstance(obj, LoadedImage):
        return obj.pixels, obj.alpha
    if isinstance(obj, (str, os.PathLike, bytes, bytearray, memoryview)) or callable(getattr(obj, "read", None)):
        img = read_image(obj)
        return img.pixels, img.alpha
    if isinstance(obj, Image.Image):
        try:
            pixels, alpha, _ = pil_to_arrays(obj)
        except DeepshopError:
            raise
        except Exception as e:
            raise ImageError(f"{pil_image_name(obj)}: cannot convert to RGB "
                             f"({describe_exception(e)})") from e
        return np.ascontiguousarray(pixels), None if alpha is None else np.ascontiguousarray(alpha)
    if not isinstance(obj, np.ndarray):
        raise ImageError(f"expected a numpy array, a PIL image or a path, got "
                         f"{type(obj).__name__}")
    a = _check_dtype(obj, "image array")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ImageError(f"expected an image array of shape HxWx3 (or HxW, HxWx1, HxWx4), got "
                         f"shape {tuple(obj.shape)}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"empty image: array of shape {tuple(obj.shape)}")
    a = _check_float_range(a, "image array")
    alpha = None
    if a.shape[2] == 4:
        alpha = np.ascontiguousarray(a[..., 3])
        a = a[..., :3]
    elif a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a), alpha


def _check_dtype(a: np.ndarray, what: str) -> np.ndarray:
    kind, size = a.dtype.kind, a.dtype.itemsize
    if kind == "u" and size in (1, 2):
        return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))
    if kind == "f" and size in (2, 4, 8):
        return a if a.dtype == np.float32 else a.astype(np.float32)
    raise ImageError(f"{what}: expected dtype uint8, uint16 or float32/float64 in [0, 1], got "
                     f"{a.dtype}")


def _check_float_range(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype != np.float32:
        return a
    lo, hi = float(np.min(a)), float(np.max(a))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageError(f"{what}: contains NaN or infinite values")
    if lo < -_FLOAT_SLACK or hi > 1.0 + _FLOAT_SLACK:
        raise ImageError(f"{what}: float pixels must be in [0, 1], got values in "
                         f"[{lo:g}, {hi:g}] (divide 8-bit values by 255)")
    if lo < 0.0 or hi > 1.0:
        a = np.clip(a, 0.0, 1.0)
    return a


def as_alpha(alpha: Any, shape: Tuple[int, int]) -> np.ndarray:
    if not isinstance(alpha, np.ndarray):
        raise ImageError(f"alpha: expected a numpy array, got {type(alpha).__name__}")
    a = _check_dtype(alpha, "alpha")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.shape != tuple(shape):
        raise ImageError(f"alpha: expected shape {tuple(shape)} (HxW, as the pixels), got "
                         f"{tuple(alpha.shape)}")
    return np.ascontiguousarray(_check_float_range(a, "alpha"))


def to_depth(a: np.ndarray, depth: int) -> np.ndarray:
    """uint8/uint16/float32 [0, 1] -> uint8 (depth 8) or uint16 (depth 16), rounding."""
    if a.dtype == np.float32:
        scale = 255.0 if depth == 8 else 65535.0
        out = np.rint(np.clip(a, 0.0, 1.0) * scale)
        return out.astype(np.uint8 if depth == 8 else np.uint16)
    if depth == 8:
        if a.dtype == np.uint8:
            return a
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if a.dtype == np.uint16:
        return a
    return a.astype(np.uint16) * np.uint16(257)


def fit_max_side(height: int, width: int, max_side: int) -> Tuple[int, int]:
    """(new_height, new_width) with max(new) <= max_side, aspect ratio kept; unchanged if
    already small enough."""
    if max_side < 1:
        raise OptionError(f"max_side: must be >= 1, got {max_side}")
    longest = max(height, width)
    if longest <= max_side:
        return height, width
    scale = max_side / longest
    if height >= width:
        return max_side, max(1, min(max_side, round(width * scale)))
    return max(1, min(max_side, round(height * scale))), max_side


def resize_max_side(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so that max(height, width) <= max_side (Lanczos); no-op when small enough.

    Works on HxWxC and HxW arrays of uint8 (Pillow LANCZOS), uint16 and float32 (Lanczos in
    float, per channel), so the alpha plane of an image is resized by the same call:
    ``resize_max_side(alpha, max_side)`` gives the same height and width as the pixels.
    """
    h, w = pixels.shape[:2]
    nh, nw = fit_max_side(h, w, int(max_side))
    if (nh, nw) == (h, w):
        return pixels
    return resize_to(pixels, nh, nw)


def resize_to(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an HxW or HxWxC uint8/uint16/float32 array with Lanczos filtering."""
    if a.ndim not in (2, 3):
        raise ImageError(f"expected an HxW or HxWxC array, got shape {tuple(a.shape)}")
    if a.dtype == np.uint8 and (a.ndim == 2 or a.shape[2] in (1, 3)):
        src = a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a
        out = np.asarray(Image.fromarray(np.ascontiguousarray(src)).resize(
            (width, height), Image.Resampling.LANCZOS))
        return out[..., None] if a.ndim == 3 and a.shape[2] == 1 else out
    if a.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise ImageError(f"cannot resize dtype {a.dtype}")
    planes = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[2])]
    res = []
    for p in planes:
        f = Image.fromarray(np.ascontiguousarray(p, dtype=np.float32))   # mode "F"
        res.append(np.asarray(f.resize((width, height), Image.Resampling.LANCZOS)))
    out = res[0] if a.ndim == 2 else np.stack(res, axis=2)
    if a.dtype in (np.uint8, np.uint16):
        top = 255 if a.dtype == np.uint8 else 65535
        return np.clip(np.rint(out), 0, top).astype(a.dtype)
    return np.clip(out, 0.0, 1.0).astype(a.dtype) if a.dtype == np.float32 else out.astype(a.dtype)
