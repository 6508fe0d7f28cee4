"""16-bit PNG, our own codec (zlib + numpy): the encoder for every 16-bit PNG we write (Pillow
writes 16-bit gray only), and a decoder used only when Pillow cannot unpack 16-bit samples."""
from __future__ import annotations

import struct
import zlib
from typing import Any, BinaryIO, Optional, Tuple

import numpy as np

from ..core.errors import ImageError
from .exif import EXIF_HEADER

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))   # (x0, y0, dx, dy)
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def decode_png16(data: bytes, name: str) -> Tuple[np.ndarray, Any]:
    """Decode a 16-bit gray/gray+alpha/RGB/RGBA PNG (interlaced or not) with zlib and numpy;
    ``name`` (a path, ``<bytes>``, ...) is for the error messages.

    Returns (HxWxC uint16 array, tRNS colour as a tuple for RGB, an int for gray, or None)."""
    if not data.startswith(PNG_SIGNATURE):
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
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
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


def encode_png16(f: BinaryIO, rgb: np.ndarray, alpha: Optional[np.ndarray],
                  exif: Optional[bytes], icc: Optional[bytes]) -> None:
    """A 16-bit RGB (colour type 2) or RGBA (6) PNG, non-interlaced."""
    arr = rgb if alpha is None else np.dstack([rgb, alpha])
    h, w, c = arr.shape
    f.write(PNG_SIGNATURE)
    _png_chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6 if c == 4 else 2, 0, 0, 0))
    if icc:
        _png_chunk(f, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        _png_chunk(f, b"eXIf", exif[len(EXIF_HEADER):] if exif.startswith(EXIF_HEADER) else exif)
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
