"""Writing images: arrays in, a file out, atomically (through :func:`deepshop_native.files.atomic_write`),
the format following the extension; 8 bits through Pillow, 16 bits through our own encoders."""
from __future__ import annotations

import io
import os
from typing import Any, BinaryIO, Callable, Optional, Union

import numpy as np
from PIL import Image

from ..core.errors import ImageError, OutputExistsError
from ..core.files import atomic_write, output_exists_message
from .arrays import as_alpha, to_depth, to_rgb_array
from .pil import describe_exception
from .exif import normalise_exif
from .formats import WRITE_EXTENSIONS
from .png16 import encode_png16
from .tiff16 import encode_tiff16

PathLike = Union[str, "os.PathLike[str]"]


def write_image(path: PathLike, pixels: Any, *, alpha: Optional[np.ndarray] = None,
                quality: int = 95, overwrite: bool = False, exif: Optional[bytes] = None,
                icc_profile: Optional[bytes] = None, bit_depth: Optional[int] = None) -> None:
    """Write an image, atomically; the format follows the extension.

    ``pixels``: anything :func:`to_rgb_array` takes (an HxWx4 array brings its alpha).  uint16
    pixels (or ``bit_depth=16``) give 16-bit PNG/TIFF; JPEG and WebP are always 8-bit (16-bit
    values are rounded to 8).  float pixels in [0, 1] give 8 bits unless ``bit_depth=16``.
    ``alpha`` is kept in PNG, WebP and TIFF, and dropped for JPEG, which has no alpha channel.
    ``quality`` (0-100) applies to JPEG (4:4:4 chroma from 90 up, 4:2:0 below) and WebP (lossy).
    TIFF is written uncompressed.  ``exif`` (e.g. ``LoadedImage.exif``) and ``icc_profile`` are
    embedded when given.

    The file is written to a temporary ``.<name>.*.part`` in the same directory, flushed to disk
    and renamed over ``path``; on any failure the temporary file is removed and ``path`` is left
    as it was.  Missing parent directories are created.  An existing ``path`` raises
    :class:`OutputExistsError` unless ``overwrite``.
    """
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    ext = os.path.splitext(name)[1].lower()
    fmt = WRITE_EXTENSIONS.get(ext)
    if fmt is None:
        raise ImageError(f"{name}: cannot write {ext or 'files without an extension'}; supported: "
                         + ", ".join(WRITE_EXTENSIONS))
    encode = _encoder(name, fmt, pixels, alpha, quality, exif, icc_profile, bit_depth)
    if not overwrite and os.path.lexists(name):
        raise OutputExistsError(output_exists_message(name))
    if os.path.isdir(name):
        raise ImageError(f"{name}: is a directory")
    atomic_write(name, encode, overwrite, error=ImageError)


def encode_image(pixels: Any, format: str = "PNG", *, alpha: Optional[np.ndarray] = None, quality: int = 95,
                 exif: Optional[bytes] = None, icc_profile: Optional[bytes] = None,
                 bit_depth: Optional[int] = None, name: str = "<image>") -> bytes:
    """The bytes of an image file of ``format`` ("JPEG", "PNG", "WEBP" or "TIFF", or an extension
    such as ".jpg"), encoded in memory exactly as :func:`write_image` writes it to a file (same
    depths, alpha, quality, EXIF and ICC rules).  ``name`` is what error messages call the image."""
    fmt = str(format).upper().lstrip(".")
    fmt = WRITE_EXTENSIONS.get("." + fmt.lower(), fmt)
    if fmt not in set(WRITE_EXTENSIONS.values()):
        raise ImageError(f"{name}: cannot encode {format!r}; supported: " + ", ".join(sorted(set(WRITE_EXTENSIONS.values()))))
    encode = _encoder(name, fmt, pixels, alpha, quality, exif, icc_profile, bit_depth)
    buffer = io.BytesIO()
    try:
        encode(buffer)
    except ImageError:
        raise
    except Exception as e:   # e.g. WebP refuses sides beyond 16383 px
        raise ImageError(f"{name}: cannot encode as {fmt} ({describe_exception(e)})") from e
    return buffer.getvalue()


def _encoder(name: str, fmt: str, pixels: Any, alpha: Optional[np.ndarray], quality: int, exif: Optional[bytes],
             icc_profile: Optional[bytes], bit_depth: Optional[int]) -> Callable[[BinaryIO], None]:
    """Checks the arguments and brings the pixels to the format's depth; returns encode(file)."""
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) \
            or not 0 <= quality <= 100:
        raise ImageError(f"{name}: quality must be an integer 0..100, got {quality!r}")
    if bit_depth not in (None, 8, 16):
        raise ImageError(f"{name}: bit_depth must be 8 or 16, got {bit_depth!r}")
    try:
        rgb, a = to_rgb_array(pixels)
        if alpha is not None:
            if a is not None:
                raise ImageError("alpha given twice: as the 4th channel and as alpha=")
            a = as_alpha(alpha, rgb.shape[:2])
    except ImageError as e:
        msg = str(e)
        raise ImageError(msg if msg.startswith(name + ": ") else f"{name}: {msg}") from None
    if fmt in ("JPEG", "WEBP"):
        depth = 8
    elif bit_depth is not None:
        depth = bit_depth
    else:
        depth = 16 if rgb.dtype == np.uint16 else 8
    rgb = to_depth(rgb, depth)
    a = None if (a is None or fmt == "JPEG") else to_depth(a, depth)
    if isinstance(exif, Image.Exif):
        exif = exif.tobytes()
    exif = normalise_exif(exif) if exif else None
    icc_profile = bytes(icc_profile) if icc_profile else None

    if depth == 16 and fmt == "PNG":
        return lambda f: encode_png16(f, rgb, a, exif, icc_profile)
    if depth == 16:
        return lambda f: encode_tiff16(f, rgb, a, exif, icc_profile)
    return lambda f: _encode_pillow(f, fmt, rgb, a, quality, exif, icc_profile)


def _encode_pillow(f: BinaryIO, fmt: str, rgb: np.ndarray, alpha: Optional[np.ndarray],
                   quality: int, exif: Optional[bytes], icc: Optional[bytes]) -> None:
    arr = rgb if alpha is None else np.dstack([rgb, alpha])
    im = Image.fromarray(np.ascontiguousarray(arr))
    params: dict = {}
    if exif:
        params["exif"] = exif
    if icc:
        params["icc_profile"] = icc
    if fmt == "JPEG":
        params.update(quality=int(quality), subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        params.update(quality=int(quality))
    im.save(f, format=fmt, **params)
