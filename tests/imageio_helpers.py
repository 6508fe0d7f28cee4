"""Shared by the image I/O tests (test_imageio*.py): the sample photos, the environment without a
pixel limit, OpenCV's reading, 16-bit test data, and a deliberately naive 16-bit PNG writer of the
tests' own (every filter type, Adam7)."""

import struct
import zlib

import numpy as np
import pytest

from deepshop_native.image import png16

cv2 = pytest.importorskip("cv2")
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return np.ascontiguousarray(skdata.astronaut())


@pytest.fixture(scope="module")
def chelsea():
    return np.ascontiguousarray(skdata.chelsea())


@pytest.fixture(autouse=True)
def _no_env_limit(monkeypatch):
    monkeypatch.delenv("DEEPSHOP_MAX_PIXELS", raising=False)


def psnr(a, b, peak=255.0):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def cv2_rgb(path):
    """OpenCV's reading, BGR(A) -> RGB(A)."""
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert a is not None
    if a.ndim == 3:
        a = a[..., [2, 1, 0, 3][:a.shape[2]]]
    return a


def random16(shape, seed=0):
    """16-bit test data: noise, plus smooth gradients (which libpng filters differently)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 65536, shape, dtype=np.uint16)
    h, w = shape[:2]
    grad = (np.arange(w, dtype=np.uint32) * 65535 // max(w - 1, 1)).astype(np.uint16)
    a[: h // 3] = grad[None, :, None] if a.ndim == 3 else grad[None, :]
    return a


# -- a deliberately naive PNG writer of the tests' own (every filter type, Adam7) -------------

def _chunk(ctype, body):
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(
        ">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def _filter_line(line, prior, bpp, ftype):
    out = bytearray([ftype])
    for i, x in enumerate(line):
        a = line[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        if ftype == 0:
            pred = 0
        elif ftype == 1:
            pred = a
        elif ftype == 2:
            pred = b
        elif ftype == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out.append((x - pred) % 256)
    return bytes(out)


def naive_png16(path, arr, *, interlace=False, trns=None, extra_chunks=()):
    """Write uint16 HxW / HxWxC (C = 1, 2, 3, 4) as a 16-bit PNG, rows cycling filters 0..4."""
    if arr.ndim == 2:
        arr = arr[..., None]
    h, w, c = arr.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    bpp = 2 * c
    passes = png16.ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = bytearray()
    n = 0
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        prior = bytes(sub.shape[1] * bpp)
        for row in sub:
            line = row.astype(">u2").tobytes()
            raw += _filter_line(line, prior, bpp, n % 5)
            prior = line
            n += 1
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0,
                                                             int(interlace)))
    if trns is not None:
        data += _chunk(b"tRNS", struct.pack(">" + "H" * len(trns), *trns))
    for ct, body in extra_chunks:
        data += _chunk(ct, body)
    data += _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)
