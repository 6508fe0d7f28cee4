"""Reading and writing images for Deepshop: numpy/Pillow only (no OpenCV at run time).

Every image comes out as an RGB array (``HxWx3``, uint8 or uint16, C-contiguous) plus an
optional alpha plane (``HxW``, same dtype), whatever the file held: grayscale is replicated to
three channels, palettes are expanded, CMYK is converted to RGB, EXIF orientation is applied.

16-bit images.  Pillow has no 16-bit RGB mode: it decodes 16-bit RGB(A) PNG and TIFF files to
8 bits.  We keep the 16 bits by letting Pillow's own decoder run twice over the file, once
unpacking the high byte of every sample and once the low byte (a different raw mode), and
combining the two; 16-bit gray+alpha PNGs are unpacked in one pass as four bytes per pixel.
Should a future Pillow refuse those raw modes, 16-bit PNGs fall back to a small decoder of our
own (zlib + numpy, :func:`_decode_png16`).  For writing, 16-bit RGB(A) PNGs are encoded by
:func:`_encode_png16` and 16-bit TIFFs by :func:`_encode_tiff16` (uncompressed), both here.

Errors are :class:`~deepshop_native.errors.ImageError` with the message ``"<path>: <reason>"``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import sys
import threading
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Optional, Tuple, Union

import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

from .errors import DeepshopError, ImageError, OutputExistsError
from .files import atomic_write, output_exists_message

__all__ = [
    "DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "READ_EXTENSIONS", "WRITE_EXTENSIONS", "LoadedImage",
    "read_image", "write_image", "atomic_write", "to_rgb_array", "resize_max_side", "resize_to", "fit_max_side",
    "effective_max_pixels",
]

#: Default limit on width*height of an image to decode (268 M pixels, e.g. 16384 x 16384).
DEFAULT_MAX_PIXELS = 2**28
#: Environment variable that replaces the default limit ("0" or "none": no limit).
MAX_PIXELS_ENV = "DEEPSHOP_MAX_PIXELS"

#: Extensions write_image accepts, and the Pillow format each one means.
WRITE_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP",
                    ".tif": "TIFF", ".tiff": "TIFF"}
#: Extensions that read_image is meant for (it reads whatever Pillow can open, though).
READ_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")

_ORIENTATION_TAG = 0x0112
_EXIF_HEADER = b"Exif\x00\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PathLike = Union[str, "os.PathLike[str]"]


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
    path: Optional[str] = None
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


# ----------------------------------------------------------------------------------------------
# limits
# ----------------------------------------------------------------------------------------------

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
        raise TypeError(f"max_pixels must be an int or None, got {type(max_pixels).__name__}")
    if max_pixels < 0:
        raise ValueError(f"max_pixels must be >= 0 (0 = no limit), got {max_pixels}")
    return int(max_pixels) or None


_PIL_LIMIT_LOCK = threading.RLock()


@contextlib.contextmanager
def _pillow_limit_lifted():
    """Turn Pillow's own decompression-bomb limit off for a while (we apply our own limit, which
    may be higher: Pillow refuses beyond 2 * 89 M pixels).  Restored afterwards; serialised."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------

def read_image(path: PathLike, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file as RGB (+ alpha), 8 or 16 bits, EXIF orientation applied.

    JPEG (also CMYK and Adobe's inverted CMYK), PNG (1-16 bits, gray, gray+alpha, RGB, RGBA,
    palette with transparency), WebP, TIFF (8 and 16 bits), BMP and whatever else Pillow opens.
    Images of more than ``max_pixels`` pixels (width * height, from the file's header) are
    refused before anything is decoded; see :func:`effective_max_pixels`.  Truncated or corrupt
    files raise :class:`ImageError` (the whole image is decoded here, never lazily).
    """
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    try:
        limit = effective_max_pixels(max_pixels)
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None
    _check_readable(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _read(name, limit)
    except Image.DecompressionBombError:
        # Pillow's limit is lower than ours (or ours is off): read again with Pillow's off;
        # our own check still happens before decoding.
        with _pillow_limit_lifted():
            return _read(name, limit)


def _check_readable(name: str) -> None:
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except OSError as e:
        raise ImageError(f"{name}: cannot access ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{name}: is a directory, not an image file")
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")


def _open(name: str) -> Image.Image:
    try:
        return Image.open(name)
    except Image.DecompressionBombError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file, or a format Pillow cannot read") from None
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except PermissionError:
        raise ImageError(f"{name}: permission denied") from None
    except Exception as e:  # a corrupt header: SyntaxError, struct.error, EOFError, ...
        raise ImageError(f"{name}: cannot read image header ({_describe(e)})") from e


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    if isinstance(e, MemoryError):
        return "out of memory"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _read(name: str, limit: Optional[int]) -> LoadedImage:
    im = _open(name)
    try:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageError(f"{name}: image has zero size ({width}x{height})")
        if limit is not None and width * height > limit:
            raise ImageError(
                f"{name}: image is {width}x{height} = {width * height:,} pixels, more than the "
                f"limit of {limit:,} pixels (a guard against decompression bombs); raise it with "
                f"max_pixels=... (deepshop: --max-pixels) or the environment variable {MAX_PIXELS_ENV} "
                f"(0 = no limit)")
        mode = im.mode
        fmt = "JPEG" if im.format == "MPO" else im.format
        try:
            pixels, alpha, depth = _decode(name, im)
        except (ImageError, Image.DecompressionBombError):
            raise
        except Exception as e:
            raise ImageError(f"{name}: cannot decode {fmt or 'image'} ({_describe(e)})") from e
        info = dict(im.info)
        try:
            exif_obj = im.getexif()
            orientation = exif_obj.get(_ORIENTATION_TAG, 1)
        except Exception:  # broken EXIF must not make a readable image unreadable
            exif_obj, orientation = None, 1
    finally:
        im.close()

    exif = info.get("exif")
    exif = _normalise_exif(exif) if isinstance(exif, (bytes, bytearray)) and exif else None
    try:
        orientation = int(orientation)
    except (TypeError, ValueError):
        orientation = 1
    if 2 <= orientation <= 8:
        pixels = _orient(pixels, orientation)
        alpha = None if alpha is None else _orient(alpha, orientation)
        if exif is not None:
            exif = _exif_with_orientation_1(exif, exif_obj)
    icc = info.get("icc_profile")
    icc = bytes(icc) if isinstance(icc, (bytes, bytearray)) and _icc_is_rgb(icc) else None
    return LoadedImage(
        pixels=np.ascontiguousarray(pixels),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        path=name, bit_depth=depth, mode=mode, exif=exif, icc_profile=icc, format=fmt)


# Raw modes of 16-bit RGB(A) samples (PNG: "zip" tiles, TIFF: "raw"/"libtiff" tiles) that Pillow
# reduces to 8 bits: we decode them twice, high bytes and low bytes.
_HILO_RAWMODES = {f"{m};16{e}" for m in ("RGB", "RGBA", "RGBX", "RGBa") for e in "BLN"}
_PNG16_RAWMODES = {"RGB;16B", "RGBA;16B", "LA;16B"}


def _tile_rawmode(tile: Any) -> Optional[str]:
    args = tile[3] if len(tile) > 3 else None
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _with_rawmode(tile: Any, rawmode: str) -> Any:
    args = tile[3]
    new_args = rawmode if isinstance(args, str) else (rawmode,) + tuple(args[1:])
    return tile._replace(args=new_args) if hasattr(tile, "_replace") else (
        tuple(tile[:3]) + (new_args,) + tuple(tile[4:]))


def _swap_byte_order(rawmode: str) -> str:
    """The raw mode that unpacks the other byte of each 16-bit sample."""
    native = "L" if sys.byteorder == "little" else "B"
    order = rawmode[-1]
    if order == "N":
        order = native
    return rawmode[:-1] + ("L" if order == "B" else "B")


def _decode(name: str, im: Image.Image) -> Tuple[np.ndarray, Optional[np.ndarray], int]:
    """Decode the whole image: (RGB pixels, alpha or None, bit depth)."""
    rawmodes = [_tile_rawmode(t) for t in im.tile]
    if rawmodes and im.format == "PNG" and rawmodes[0] in _PNG16_RAWMODES:
        return _decode_png16_via_pillow(name, im, rawmodes[0])
    if rawmodes and all(r in _HILO_RAWMODES for r in rawmodes):
        try:
            return _decode_hilo(name, im, rawmodes)
        except (ValueError, AttributeError, TypeError, IndexError) as e:
            if "raw mode" not in str(e) and not isinstance(e, (AttributeError, TypeError)):
                raise
            warnings.warn(f"{name}: this Pillow cannot unpack 16-bit samples ({e}); "
                          f"reading 8 bits", RuntimeWarning, stacklevel=3)
            with _open(name) as im8:
                im8.load()
                return _pil_to_arrays(im8)
    im.load()
    return _pil_to_arrays(im)


def _decode_hilo(name: str, im: Image.Image, rawmodes: list) -> Tuple[np.ndarray, Optional[np.ndarray], int]:
    # associated ("premultiplied") alpha: unpack as plain RGBA, un-premultiply in 16 bits below
    premultiplied = any(r.startswith("RGBa") for r in rawmodes)
    hi_modes = [r.replace("RGBa", "RGBA") for r in rawmodes]
    tiles = list(im.tile)
    im.tile = [_with_rawmode(t, r) for t, r in zip(tiles, hi_modes)]
    im.load()
    hi = np.asarray(im)
    with _open(name) as im2:
        tiles2 = list(im2.tile)
        if len(tiles2) != len(tiles):
            raise ImageError(f"{name}: file changed while being read")
        im2.tile = [_with_rawmode(t, _swap_byte_order(r)) for t, r in zip(tiles2, hi_modes)]
        im2.load()
        lo = np.asarray(im2)
    if hi.shape != lo.shape:
        raise ImageError(f"{name}: file changed while being read")
    data = (hi.astype(np.uint16) << 8) | lo.astype(np.uint16)
    pixels, alpha = data[..., :3], (data[..., 3] if data.shape[2] == 4 else None)
    if premultiplied and alpha is not None:
        pixels = _unpremultiply16(pixels, alpha)
    if alpha is None:
        alpha = _alpha_from_trns16(pixels, im.info.get("transparency"))
    return pixels, alpha, 16


def _decode_png16_via_pillow(name: str, im: Image.Image, rawmode: str) -> Tuple[np.ndarray, Optional[np.ndarray], int]:
    try:
        if rawmode == "LA;16B":
            # 16-bit gray+alpha: 4 bytes a pixel, which Pillow's plain "RGBA" raw mode copies
            # verbatim (and unfilters with the right pixel size): L = R:G, A = B:A.
            im.tile = [_with_rawmode(t, "RGBA") for t in im.tile]
            im.load()
            b = np.asarray(im).astype(np.uint16)
            gray, alpha = (b[..., 0] << 8) | b[..., 1], (b[..., 2] << 8) | b[..., 3]
            return np.repeat(gray[..., None], 3, axis=2), alpha, 16
        return _decode_hilo(name, im, [_tile_rawmode(t) for t in im.tile])
    except (ValueError, AttributeError, TypeError) as e:
        if isinstance(e, ImageError) or (isinstance(e, ValueError) and "raw mode" not in str(e)):
            raise
    # this Pillow does not know the raw modes used above: our own decoder
    data, trns = _decode_png16(name)
    if data.shape[2] == 2:
        return np.repeat(data[..., :1], 3, axis=2), data[..., 1], 16
    if data.shape[2] == 4:
        return data[..., :3], data[..., 3], 16
    return data, _alpha_from_trns16(data, trns), 16


def _unpremultiply16(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(a > 0, pixels.astype(np.float64) * 65535.0 / a, 0.0)
    return np.clip(np.rint(out), 0, 65535).astype(np.uint16)


def _alpha_from_trns16(pixels: np.ndarray, trns: Any) -> Optional[np.ndarray]:
    """PNG tRNS for RGB: one colour (16-bit samples here) is transparent."""
    if isinstance(trns, tuple) and len(trns) == 3:
        hit = np.all(pixels == np.asarray(trns, dtype=np.uint32).astype(pixels.dtype), axis=2)
        return np.where(hit, 0, 65535).astype(np.uint16)
    return None


def _pil_to_arrays(im: Image.Image) -> Tuple[np.ndarray, Optional[np.ndarray], int]:
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
    try:
        conv = im.convert("RGBA" if has_alpha else "RGB")
    except ValueError as e:
        raise ImageError(f"{im.filename or 'image'}: mode {mode} cannot be converted to RGB "
                         f"({e})") from e
    a = np.asarray(conv)
    if has_alpha:
        return a[..., :3], a[..., 3], 8
    return a, None, 8


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation (2..8) to an HxW or HxWxC array: the stored image -> upright."""
    if orientation == 2:    # mirrored horizontally
        return a[:, ::-1]
    if orientation == 3:    # rotated 180
        return a[::-1, ::-1]
    if orientation == 4:    # mirrored vertically
        return a[::-1]
    axes = (1, 0) + tuple(range(2, a.ndim))
    if orientation == 5:    # transpose (mirror along the main diagonal)
        return a.transpose(axes)
    if orientation == 6:    # needs 90 degrees clockwise
        return a[::-1].transpose(axes)
    if orientation == 7:    # transverse (mirror along the anti-diagonal)
        return a[::-1, ::-1].transpose(axes)
    if orientation == 8:    # needs 90 degrees counter-clockwise
        return a[:, ::-1].transpose(axes)
    return a


def _normalise_exif(exif: bytes) -> bytes:
    """EXIF as JPEG's APP1 carries it: b"Exif\\0\\0" + TIFF header and IFDs."""
    exif = bytes(exif)
    return exif if exif.startswith(_EXIF_HEADER) else _EXIF_HEADER + exif


def _exif_with_orientation_1(exif: bytes, exif_obj: Any) -> bytes:
    """The EXIF block with its Orientation tag set to 1, everything else unchanged (patched in
    place; rebuilt by Pillow if the tag cannot be found where expected)."""
    buf = bytearray(exif)
    base = len(_EXIF_HEADER) if buf.startswith(_EXIF_HEADER) else 0
    try:
        order = {b"II": "<", b"MM": ">"}[bytes(buf[base:base + 2])]
        ifd = base + struct.unpack_from(order + "I", buf, base + 4)[0]
        count = struct.unpack_from(order + "H", buf, ifd)[0]
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, typ, n = struct.unpack_from(order + "HHI", buf, entry)
            if tag == _ORIENTATION_TAG and n == 1 and typ in (3, 4):   # SHORT or LONG
                struct.pack_into(order + ("H" if typ == 3 else "I"), buf, entry + 8, 1)
                return bytes(buf)
    except (KeyError, struct.error):
        pass
    if exif_obj is not None:
        try:
            exif_obj[_ORIENTATION_TAG] = 1
            return _normalise_exif(exif_obj.tobytes())
        except Exception:
            pass
    return exif


def _icc_is_rgb(icc: bytes) -> bool:
    """An ICC profile's data colour space (header bytes 16..20) is RGB."""
    return len(icc) >= 128 and bytes(icc[16:20]) == b"RGB "


# ----------------------------------------------------------------------------------------------
# our own 16-bit PNG decoder (used only when Pillow cannot unpack 16-bit samples)
# ----------------------------------------------------------------------------------------------

_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))   # (x0, y0, dx, dy)
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def _decode_png16(name: str) -> Tuple[np.ndarray, Any]:
    """Decode a 16-bit gray/gray+alpha/RGB/RGBA PNG (interlaced or not) with zlib and numpy.

    Returns (HxWxC uint16 array, tRNS colour as a tuple for RGB, an int for gray, or None)."""
    with open(name, "rb") as f:
        data = f.read()
    if not data.startswith(_PNG_SIGNATURE):
        raise ImageError(f"{name}: not a PNG file")
    pos, idat, header, trns = 8, [], None, None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ImageError(f"{name}: truncated PNG (chunk {ctype!r} cut short)")
        pos += 12 + length
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"tRNS":
            trns = body
        elif ctype == b"IEND":
            break
    else:
        raise ImageError(f"{name}: truncated PNG (no IEND chunk)")
    if header is None:
        raise ImageError(f"{name}: PNG without IHDR")
    width, height, depth, ctype_, _, _, interlace = header
    if depth != 16 or ctype_ not in _PNG_CHANNELS:
        raise ImageError(f"{name}: not a 16-bit gray/RGB PNG (depth {depth}, colour type {ctype_})")
    channels = _PNG_CHANNELS[ctype_]
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise ImageError(f"{name}: corrupt PNG data ({e})") from None
    bpp = 2 * channels
    out = np.empty((height, width, channels), dtype=np.uint16)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    offset = 0
    for x0, y0, dx, dy in passes:
        pw, ph = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if pw <= 0 or ph <= 0:
            continue
        stride = pw * bpp
        size = ph * (stride + 1)
        chunk = raw[offset:offset + size]
        if len(chunk) != size:
            raise ImageError(f"{name}: truncated PNG (image data cut short)")
        offset += size
        rows = _png_unfilter(np.frombuffer(chunk, np.uint8).reshape(ph, stride + 1), bpp, name)
        out[y0::dy, x0::dx] = rows.view(">u2").reshape(ph, pw, channels)
    if trns is not None:
        if ctype_ == 2 and len(trns) >= 6:
            trns = struct.unpack(">HHH", trns[:6])
        elif ctype_ == 0 and len(trns) >= 2:
            trns = struct.unpack(">H", trns[:2])[0]
        else:
            trns = None
    return out, trns


def _png_unfilter(rows: np.ndarray, bpp: int, name: str) -> np.ndarray:
    """Undo PNG's per-row filters (rows: filter byte + scanline); returns the scanlines."""
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.empty((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        ftype, line = rows[y, 0], rows[y, 1:]
        if ftype == 0:
            cur = line.copy()
        elif ftype == 1:    # Sub: running sum along each byte lane
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif ftype == 2:    # Up
            cur = line + prior
        elif ftype in (3, 4):    # Average, Paeth: sequential along the row
            cur = _unfilter_sequential(line.tobytes(), prior.tobytes(), bpp, ftype)
        else:
            raise ImageError(f"{name}: corrupt PNG data (filter type {ftype})")
        out[y] = cur
        prior = out[y]
    return out


def _unfilter_sequential(line: bytes, prior: bytes, bpp: int, ftype: int) -> np.ndarray:
    cur = bytearray(len(line))
    for i in range(len(line)):
        a = cur[i - bpp] if i >= bpp else 0
        b = prior[i]
        if ftype == 3:
            cur[i] = (line[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = prior[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            cur[i] = (line[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)


# ----------------------------------------------------------------------------------------------
# arrays
# ----------------------------------------------------------------------------------------------

_FLOAT_SLACK = 0.01   # float pixels a little outside [0, 1] are clipped; far outside: refused


def to_rgb_array(obj: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(pixels HxWx3, alpha HxW or None) from an array, a Pillow image, a path or a LoadedImage.

    Arrays may be HxW, HxWx1 (gray, replicated), HxWx3 (RGB) or HxWx4 (RGBA) of uint8, uint16
    or float32/float64 in [0, 1] (returned as float32), with any strides; the results are
    C-contiguous (a C-contiguous uint8/uint16 RGB input is returned as is, not copied).
    """
    if isinstance(obj, LoadedImage):
        return obj.pixels, obj.alpha
    if isinstance(obj, (str, os.PathLike)):
        img = read_image(obj)
        return img.pixels, img.alpha
    if isinstance(obj, Image.Image):
        try:
            pixels, alpha, _ = _pil_to_arrays(obj)
        except DeepshopError:
            raise
        except Exception as e:
            raise ImageError(f"Pillow image (mode {obj.mode}): cannot convert to RGB "
                             f"({_describe(e)})") from e
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


def _as_alpha(alpha: Any, shape: Tuple[int, int]) -> np.ndarray:
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
        raise ValueError(f"max_side must be >= 1, got {max_side}")
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


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------

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
            a = _as_alpha(alpha, rgb.shape[:2])
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
    exif = _normalise_exif(exif) if exif else None
    icc_profile = bytes(icc_profile) if icc_profile else None

    if not overwrite and os.path.lexists(name):
        raise OutputExistsError(output_exists_message(name))
    if os.path.isdir(name):
        raise ImageError(f"{name}: is a directory")

    if depth == 16 and fmt == "PNG":
        encode = lambda f: _encode_png16(f, rgb, a, exif, icc_profile)   # noqa: E731
    elif depth == 16:
        encode = lambda f: _encode_tiff16(f, rgb, a, exif, icc_profile)  # noqa: E731
    else:
        encode = lambda f: _encode_pillow(f, fmt, rgb, a, quality, exif, icc_profile)  # noqa: E731
    atomic_write(name, encode, overwrite, error=ImageError)


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


# -- 16-bit PNG ---------------------------------------------------------------------------------

def _png_chunk(f: BinaryIO, ctype: bytes, body: bytes) -> None:
    f.write(struct.pack(">I", len(body)) + ctype)
    f.write(body)
    f.write(struct.pack(">I", zlib.crc32(body, zlib.crc32(ctype)) & 0xFFFFFFFF))


def _png_filter_rows(rows: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    """Filter a block of scanlines (uint8, HxS; prior = the scanline above the first), each
    with the PNG filter whose output has the smallest sum of absolute values (libpng's
    heuristic).  Returns Hx(S+1) with the filter type byte first.  Filtering works modulo 256,
    which uint8 arithmetic does by itself."""
    h, s = rows.shape
    cur = rows
    up = np.empty_like(cur)
    up[0] = prior
    up[1:] = cur[:-1]
    left = np.zeros_like(cur)
    left[:, bpp:] = cur[:, :-bpp]
    upleft = np.zeros_like(cur)
    upleft[:, bpp:] = up[:, :-bpp]
    a, b, c = left.astype(np.int16), up.astype(np.int16), upleft.astype(np.int16)
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    del a, b, c, pa, pb, pc
    average = (left >> 1) + (up >> 1) + (left & up & 1)        # floor((left + up) / 2)
    candidates = np.empty((5, h, s), dtype=np.uint8)
    candidates[0] = cur
    np.subtract(cur, left, out=candidates[1])
    np.subtract(cur, up, out=candidates[2])
    np.subtract(cur, average, out=candidates[3])
    np.subtract(cur, paeth, out=candidates[4])
    # |x| of the bytes read as signed: min(x, 256 - x)
    cost = np.minimum(candidates, np.negative(candidates)).sum(axis=2, dtype=np.int64)
    best = np.argmin(cost, axis=0)
    out = np.empty((h, s + 1), dtype=np.uint8)
    out[:, 0] = best
    out[:, 1:] = candidates[best, np.arange(h)]
    return out


def _encode_png16(f: BinaryIO, rgb: np.ndarray, alpha: Optional[np.ndarray],
                  exif: Optional[bytes], icc: Optional[bytes]) -> None:
    """A 16-bit RGB (colour type 2) or RGBA (6) PNG, non-interlaced."""
    arr = rgb if alpha is None else np.dstack([rgb, alpha])
    h, w, c = arr.shape
    f.write(_PNG_SIGNATURE)
    _png_chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6 if c == 4 else 2, 0, 0, 0))
    if icc:
        _png_chunk(f, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        _png_chunk(f, b"eXIf", exif[len(_EXIF_HEADER):] if exif.startswith(_EXIF_HEADER) else exif)
    bpp = 2 * c
    stride = w * bpp
    comp = zlib.compressobj(6)
    prior = np.zeros(stride, dtype=np.uint8)
    block = max(1, (4 << 20) // max(stride, 1))   # ~4 MB of scanlines at a time
    pending = bytearray()
    for y in range(0, h, block):
        rows = np.ascontiguousarray(arr[y:y + block], dtype=">u2").view(np.uint8).reshape(-1, stride)
        pending += comp.compress(_png_filter_rows(rows, prior, bpp).tobytes())
        prior = rows[-1].copy()
        if len(pending) >= (1 << 20):
            _png_chunk(f, b"IDAT", bytes(pending))
            pending.clear()
    pending += comp.flush()
    _png_chunk(f, b"IDAT", bytes(pending))
    _png_chunk(f, b"IEND", b"")


# -- 16-bit TIFF --------------------------------------------------------------------------------

# Tags that describe the pixel data: never taken from an EXIF block given to us.
_TIFF_STRUCTURE_TAGS = {254, 255, 256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320,
                        322, 323, 324, 325, 338, 339, 513, 514, 530, 531, 532, 34675}


def _encode_tiff16(f: BinaryIO, rgb: np.ndarray, alpha: Optional[np.ndarray],
                   exif: Optional[bytes], icc: Optional[bytes], *, extra_samples: int = 2) -> None:
    """An uncompressed 16-bit RGB(A) TIFF (unassociated alpha), in this machine's byte order,
    the IFD serialised by Pillow's ImageFileDirectory_v2 (EXIF tags merged as Pillow does)."""
    arr = np.ascontiguousarray(rgb if alpha is None else np.dstack([rgb, alpha]), dtype="=u2")
    h, w, c = arr.shape
    ifd = TiffImagePlugin.ImageFileDirectory_v2(
        prefix=b"II" if sys.byteorder == "little" else b"MM")
    if exif:
        info = Image.Exif()
        info.load(exif)
        for key in list(info):
            if key in _TIFF_STRUCTURE_TAGS:
                continue
            ifd[key] = info.get_ifd(key) if key in TiffTags.TAGS_V2_GROUPS else info.get(key)
            with contextlib.suppress(Exception):
                ifd.tagtype[key] = info.tagtype[key]
    stride = w * c * 2
    rows_per_strip = max(1, min(h, (1 << 20) // stride))
    strips = (h + rows_per_strip - 1) // rows_per_strip
    full = stride * rows_per_strip
    ifd[256] = w                                   # ImageWidth
    ifd[257] = h                                   # ImageLength
    ifd[258] = (16,) * c                           # BitsPerSample
    ifd[259] = 1                                   # Compression: none
    ifd[262] = 2                                   # Photometric: RGB
    ifd[277] = c                                   # SamplesPerPixel
    ifd[278] = rows_per_strip                      # RowsPerStrip
    ifd[284] = 1                                   # PlanarConfiguration: contiguous
    ifd[339] = (1,) * c                            # SampleFormat: unsigned
    if c == 4:
        ifd[338] = extra_samples                   # ExtraSamples: 2 = unassociated alpha
    if icc:
        ifd[34675] = icc                           # ICC profile
    ifd.tagtype[273] = ifd.tagtype[279] = TiffTags.LONG
    ifd[279] = (full,) * (strips - 1) + (stride * h - full * (strips - 1),)   # StripByteCounts
    ifd[273] = tuple(range(0, full * strips, full))   # StripOffsets (+ data start, by Pillow)
    ifd.save(f)   # at file position 0, so with the TIFF header
    f.write(memoryview(arr).cast("B"))
