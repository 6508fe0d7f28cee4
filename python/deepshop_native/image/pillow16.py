"""16-bit RGB(A) decoding through Pillow's own decoders.

Pillow has no 16-bit RGB mode: it decodes 16-bit RGB(A) PNG and TIFF files to 8 bits.  We keep
the 16 bits by letting Pillow's decoder run twice over the file, once unpacking the high byte
of every sample and once the low byte (a different raw mode), and combining the two; 16-bit
gray+alpha PNGs are unpacked in one pass as four bytes per pixel.  Should a future Pillow refuse
those raw modes, 16-bit PNGs fall back to our own decoder (:func:`.png16.decode_png16`).

16-bit TIFFs with separate colour planes (PlanarConfiguration 2) are decoded the same way, plane
by plane; Pillow alone would unpack them as 8-bit samples, i.e. garbage.
"""
from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
from PIL import Image

from ..core.errors import ImageError
from .pil import pil_to_arrays
from .png16 import decode_png16

Decoded = Tuple[np.ndarray, Optional[np.ndarray], int]   # (RGB pixels, alpha or None, bit depth)

# Raw modes of 16-bit RGB(A) samples (PNG: "zip" tiles, TIFF: "raw"/"libtiff" tiles) that Pillow
# reduces to 8 bits: we decode them twice, high bytes and low bytes.
_HILO_RAWMODES = {f"{m};16{e}" for m in ("RGB", "RGBA", "RGBX", "RGBa") for e in "BLN"}
_PNG16_RAWMODES = {"RGB;16B", "RGBA;16B", "LA;16B"}
_PLANE_RAWMODES = {"R", "G", "B", "A"}
_TIFF_PLANAR_CONFIG, _TIFF_BITS, _TIFF_COMPRESSION = 284, 258, 259


def decode_16bit(name: str, im: Image.Image, reopen: Callable[[], Image.Image],
                 read_bytes: Callable[[], bytes]) -> Optional[Decoded]:
    """Decode ``im`` keeping 16 bits when it is a 16-bit RGB(A) PNG or TIFF; None for any other
    image (Pillow's plain decoding then fits).  ``reopen()`` opens the same file again and
    ``read_bytes()`` gives its bytes (for the fallback decoder)."""
    rawmodes = [_tile_rawmode(t) for t in im.tile]
    if not rawmodes:
        return None
    if im.format == "PNG" and rawmodes[0] in _PNG16_RAWMODES:
        return _decode_png16_via_pillow(name, im, rawmodes[0], reopen, read_bytes)
    planar = _planar_tiff16_rawmodes(name, im, rawmodes)
    if planar is not None:
        return _decode_hilo(name, im, planar, reopen)
    if all(r in _HILO_RAWMODES for r in rawmodes):
        try:
            return _decode_hilo(name, im, rawmodes, reopen)
        except (ValueError, AttributeError, TypeError, IndexError) as e:
            if "raw mode" not in str(e) and not isinstance(e, (AttributeError, TypeError)):
                raise
            warnings.warn(f"{name}: this Pillow cannot unpack 16-bit samples ({e}); "
                          f"reading 8 bits", RuntimeWarning, stacklevel=3)
            with reopen() as im8:   # im's tiles were changed: decode a fresh copy
                im8.load()
                return pil_to_arrays(im8)
    return None


def _planar_tiff16_rawmodes(name: str, im: Image.Image, rawmodes: List[Optional[str]]) -> Optional[List[str]]:
    """For a 16-bit TIFF with one plane per colour, the 16-bit raw mode of every plane's tile."""
    if im.format != "TIFF":
        return None
    tags = getattr(im, "tag_v2", {})
    bits = tags.get(_TIFF_BITS)
    bits = tuple(bits) if isinstance(bits, (tuple, list)) else (bits,)
    if tags.get(_TIFF_PLANAR_CONFIG) != 2 or not any(b == 16 for b in bits):
        return None
    if any(b != 16 for b in bits) or not all(r in _PLANE_RAWMODES for r in rawmodes) \
            or im.tile[0].codec_name != "raw":
        # Pillow would unpack these samples as 8 bits: refuse rather than return garbage.
        raise ImageError(f"{name}: 16-bit TIFF with separate colour planes (PlanarConfiguration 2) "
                         f"and compression {tags.get(_TIFF_COMPRESSION)} or mixed bit depths {bits} "
                         f"cannot be read; save it with interleaved samples (contiguous) or uncompressed")
    order = "B" if getattr(im.tag_v2, "_endian", "<") == ">" else "L"
    return [f"{r};16{order}" for r in rawmodes]


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


def _decode_hilo(name: str, im: Image.Image, rawmodes: list, reopen: Callable[[], Image.Image]) -> Decoded:
    # associated ("premultiplied") alpha: unpack as plain RGBA, un-premultiply in 16 bits below
    premultiplied = any(r.startswith("RGBa") for r in rawmodes)
    hi_modes = [r.replace("RGBa", "RGBA") for r in rawmodes]
    tiles = list(im.tile)
    im.tile = [_with_rawmode(t, r) for t, r in zip(tiles, hi_modes)]
    im.load()
    hi = np.asarray(im)
    with reopen() as im2:
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


def _decode_png16_via_pillow(name: str, im: Image.Image, rawmode: str, reopen: Callable[[], Image.Image],
                             read_bytes: Callable[[], bytes]) -> Decoded:
    try:
        if rawmode == "LA;16B":
            # 16-bit gray+alpha: 4 bytes a pixel, which Pillow's plain "RGBA" raw mode copies
            # verbatim (and unfilters with the right pixel size): L = R:G, A = B:A.
            im.tile = [_with_rawmode(t, "RGBA") for t in im.tile]
            im.load()
            b = np.asarray(im).astype(np.uint16)
            gray, alpha = (b[..., 0] << 8) | b[..., 1], (b[..., 2] << 8) | b[..., 3]
            return np.repeat(gray[..., None], 3, axis=2), alpha, 16
        return _decode_hilo(name, im, [_tile_rawmode(t) for t in im.tile], reopen)
    except (ValueError, AttributeError, TypeError) as e:
        if isinstance(e, ImageError) or (isinstance(e, ValueError) and "raw mode" not in str(e)):
            raise
    # this Pillow does not know the raw modes used above: our own decoder
    data, trns = decode_png16(read_bytes(), name)
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
