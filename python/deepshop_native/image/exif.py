"""EXIF orientation and ICC profiles: turning a stored image upright, and keeping the metadata
that still fits the pixels once it is."""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

ORIENTATION_TAG = 0x0112
EXIF_HEADER = b"Exif\x00\x00"


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
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


def normalise_exif(exif: bytes) -> bytes:
    """EXIF as JPEG's APP1 carries it: b"Exif\\0\\0" + TIFF header and IFDs."""
    exif = bytes(exif)
    return exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif


def exif_with_orientation_1(exif: bytes, exif_obj: Any) -> bytes:
    """The EXIF block with its Orientation tag set to 1, everything else unchanged (patched in
    place; rebuilt by Pillow if the tag cannot be found where expected)."""
    buf = bytearray(exif)
    base = len(EXIF_HEADER) if buf.startswith(EXIF_HEADER) else 0
    try:
        order = {b"II": "<", b"MM": ">"}[bytes(buf[base:base + 2])]
        ifd = base + struct.unpack_from(order + "I", buf, base + 4)[0]
        count = struct.unpack_from(order + "H", buf, ifd)[0]
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, typ, n = struct.unpack_from(order + "HHI", buf, entry)
            if tag == ORIENTATION_TAG and n == 1 and typ in (3, 4):   # SHORT or LONG
                struct.pack_into(order + ("H" if typ == 3 else "I"), buf, entry + 8, 1)
                return bytes(buf)
    except (KeyError, struct.error):
        pass
    if exif_obj is not None:
        try:
            exif_obj[ORIENTATION_TAG] = 1
            return normalise_exif(exif_obj.tobytes())
        except Exception:
            pass
    return exif


def icc_is_rgb(icc: bytes) -> bool:
    """An ICC profile's data colour space (header bytes 16..20) is RGB."""
    return len(icc) >= 128 and bytes(icc[16:20]) == b"RGB "
