"""Small hostile image files made on the fly: headers declaring far more pixels than the file
holds (decompression bombs), the way an attacker would make them."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(path, width: int = 16000, height: int = 16000) -> Path:
    """A PNG of under 200 bytes whose header declares width x height RGB pixels."""
    path = Path(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">II", width, height) + bytes([8, 2, 0, 0, 0]))
                     + _chunk(b"IDAT", zlib.compress(bytes(1000))) + _chunk(b"IEND", b""))
    return path


def _small_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buffer, format="JPEG", quality=50)
    return buffer.getvalue()


#: Encoded once, on import (tests may forbid decoding and encoding later).
_SMALL_JPEG = _small_jpeg()


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its SOF0/SOF2 frame header declaring another size."""
    b = bytearray(data)
    i = 2
    while i + 9 < len(b):
        marker, length = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC2):
            b[i + 5:i + 9] = struct.pack(">HH", height, width)
            break
        i += 2 + length
    return bytes(b)


def jpeg_bomb(path, width: int = 16000, height: int = 16000) -> Path:
    """A JPEG of a few hundred bytes (an 8 x 8 image) whose frame header declares width x height."""
    path = Path(path)
    path.write_bytes(jpeg_with_size(_SMALL_JPEG, width, height))
    return path
