"""Reading images: a file path, bytes in memory or a binary file object in, a
:class:`LoadedImage` out (RGB + alpha, 8 or 16 bits, EXIF orientation applied).

Every image comes out as an RGB array (``HxWx3``, uint8 or uint16, C-contiguous) plus an
optional alpha plane (``HxW``, same dtype), whatever the file held: grayscale is replicated to
three channels, palettes are expanded, CMYK is converted to RGB, EXIF orientation is applied.
Errors are :class:`~deepshop_native.errors.ImageError` with the message ``"<name>: <reason>"``,
the name being the path, ``<bytes>`` or the file object's name.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import Any, BinaryIO, Optional, Tuple, Union

import numpy as np
from PIL import Image

from ..core.errors import ImageError
from ..core.files import check_regular_file
from .pil import describe_exception, pil_to_arrays
from .exif import ORIENTATION_TAG, exif_with_orientation_1, icc_is_rgb, normalise_exif, orient
from .limits import DEFAULT_MAX_PIXELS, RAISE_IT, effective_max_pixels, pillow_limit_lifted
from .pillow16 import decode_16bit

#: What read_image reads from: a path, the file's bytes, or a binary file object (read whole).
ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]


@dataclass
class LoadedImage:
    """An image read by :func:`read_image`.

    ``pixels`` is ``HxWx3`` RGB, ``alpha`` ``HxW`` or None, both C-contiguous and of the same
    dtype: uint8 when ``bit_depth`` is 8, uint16 when it is 16.  The EXIF orientation has been
    applied to both.  ``exif`` is the file's EXIF block (starting b"Exif\\0\\0"; from JPEG, PNG
    and WebP files, None for TIFF, whose tags are no EXIF block) with its orientation reset to
    1 (upright) once applied, so that writing it back with the pixels is right.
    ``icc_profile`` is kept only when it describes RGB data (a gray or CMYK profile does not
    fit the RGB pixels returned).  ``mode`` is Pillow's mode of the file (for a 16-bit RGB PNG
    Pillow says "RGB": ``bit_depth`` tells them apart); ``format`` is Pillow's format name
    ("JPEG", "PNG", "WEBP", "TIFF", "BMP", ...; "MPO" camera JPEGs say "JPEG").
    """

    pixels: np.ndarray
    alpha: Optional[np.ndarray] = None
    path: Optional[str] = None   # the file's path, or "<bytes>" / the file object's name
    bit_depth: int = 8
    mode: str = "RGB"
    exif: Optional[bytes] = None
    icc_profile: Optional[bytes] = None
    format: Optional[str] = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height), as Pillow counts."""
        return self.width, self.height


def read_image(source: ImageSource, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image as RGB (+ alpha), 8 or 16 bits, EXIF orientation applied.

    ``source`` is a path (only regular files are read: a named pipe, a device or a directory is
    refused before anything is opened), the bytes of an image file, or a binary file object
    (read to its end).  JPEG (also CMYK and Adobe's inverted CMYK), PNG (1-16 bits, gray,
    gray+alpha, RGB, RGBA, palette with transparency), WebP, TIFF (8 and 16 bits, interleaved
    or separate planes), BMP and whatever else Pillow opens.  Images of more than
    ``max_pixels`` pixels (width * height, from the file's header) are refused before anything
    is decoded; see :func:`effective_max_pixels`.  Truncated or corrupt files raise
    :class:`ImageError` (the whole image is decoded here, never lazily).
    """
    source = _Source.of(source)
    try:
        limit = effective_max_pixels(max_pixels)
    except ImageError as e:
        raise ImageError(f"{source.name}: {e}") from None
    source.check()
    try:
        with warnings.catch_warnings():
            # Pillow's warnings about odd but readable files (EXIF, TIFF tags, bomb size) are
            # not the caller's business: a file is either read or refused with an ImageError.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _read(source, limit)
    except Image.DecompressionBombError:
        # Pillow's limit is lower than ours (or ours is off): read again with Pillow's off;
        # our own check still happens before decoding.
        with pillow_limit_lifted(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return _read(source, limit)


class _Source:
    """Where an image's bytes come from: a path on disk, or bytes held in memory."""

    def __init__(self, name: str, path: Optional[str] = None, data: Optional[bytes] = None):
        self.name, self.path, self.data = name, path, data

    @classmethod
    def of(cls, source: Any) -> "_Source":
        if isinstance(source, (bytes, bytearray, memoryview)):
            return cls("<bytes>", data=bytes(source))
        if isinstance(source, (str, os.PathLike)):
            name = os.fspath(source)
            return cls(os.fsdecode(name) if isinstance(name, bytes) else name, path=name)
        if callable(getattr(source, "read", None)):
            name = getattr(source, "name", None)
            name = name if isinstance(name, str) and name else f"<{type(source).__name__}>"
            try:
                data = source.read()
            except Exception as e:
                raise ImageError(f"{name}: cannot read ({describe_exception(e)})") from e
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ImageError(f"{name}: not a binary file object (read() gave {type(data).__name__}); "
                                 "open the file with 'rb'")
            return cls(name, data=bytes(data))
        raise ImageError(f"expected a path, the bytes of an image file or a binary file object, "
                         f"got {type(source).__name__}")

    def check(self) -> None:
        """Refuse what cannot be an image file before opening it: a pipe or a device would block
        or never end, a directory or an empty file cannot hold an image."""
        if self.data is not None:
            if not self.data:
                raise ImageError(f"{self.name}: empty (0 bytes)")
            return
        check_regular_file(self.name, "image")

    def open(self) -> Image.Image:
        try:
            return Image.open(self.path if self.data is None else io.BytesIO(self.data))
        except Image.DecompressionBombError:
            raise
        except Image.UnidentifiedImageError:
            raise ImageError(f"{self.name}: not an image file, or a format Pillow cannot read") from None
        except FileNotFoundError:
            raise ImageError(f"{self.name}: no such file") from None
        except PermissionError:
            raise ImageError(f"{self.name}: permission denied") from None
        except Exception as e:  # a corrupt header: SyntaxError, struct.error, EOFError, ...
            raise ImageError(f"{self.name}: cannot read image header ({describe_exception(e)})") from e

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as f:
            return f.read()


def _read(source: "_Source", limit: Optional[int]) -> LoadedImage:
    name = source.name
    im = source.open()
    try:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageError(f"{name}: image has zero size ({width}x{height})")
        if limit is not None and width * height > limit:
            raise ImageError(
                f"{name}: image is {width}x{height} = {width * height:,} pixels, more than the "
                f"limit of {limit:,} pixels (a guard against decompression bombs); {RAISE_IT}")
        mode = im.mode
        fmt = "JPEG" if im.format == "MPO" else im.format
        try:
            pixels, alpha, depth = _decode(source, im)
        except (ImageError, Image.DecompressionBombError):
            raise
        except Exception as e:
            raise ImageError(f"{name}: cannot decode {fmt or 'image'} ({describe_exception(e)})") from e
        info = dict(im.info)
        try:
            exif_obj = im.getexif()
            orientation = exif_obj.get(ORIENTATION_TAG, 1)
        except Exception:  # broken EXIF must not make a readable image unreadable
            exif_obj, orientation = None, 1
    finally:
        im.close()

    exif = info.get("exif")
    exif = normalise_exif(exif) if isinstance(exif, (bytes, bytearray)) and exif else None
    try:
        orientation = int(orientation)
    except (TypeError, ValueError):
        orientation = 1
    if 2 <= orientation <= 8:
        pixels = orient(pixels, orientation)
        alpha = None if alpha is None else orient(alpha, orientation)
        if exif is not None:
            exif = exif_with_orientation_1(exif, exif_obj)
    icc = info.get("icc_profile")
    icc = bytes(icc) if isinstance(icc, (bytes, bytearray)) and icc_is_rgb(icc) else None
    return LoadedImage(
        pixels=np.ascontiguousarray(pixels),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        path=name, bit_depth=depth, mode=mode, exif=exif, icc_profile=icc, format=fmt)


def _decode(source: _Source, im: Image.Image) -> Tuple[np.ndarray, Optional[np.ndarray], int]:
    """Decode the whole image: (RGB pixels, alpha or None, bit depth)."""
    decoded = decode_16bit(source.name, im, source.open, source.read_bytes)
    if decoded is not None:
        return decoded
    im.load()
    return pil_to_arrays(im)
