"""Tests of deepshop_native.image against independent references (Pillow, OpenCV, numpy)."""

import os
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from deepshop_native import image as dio
from deepshop_native.image import pillow16, png16, tiff16
from deepshop_native.core.errors import DeepshopError, ImageError, OutputExistsError
from deepshop_native.image import (
    DEFAULT_MAX_PIXELS, LoadedImage, read_image, resize_max_side, to_rgb_array, write_image)

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


# ----------------------------------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
def test_lossless_roundtrip_8bit(tmp_path, astronaut, ext):
    p = tmp_path / f"a{ext}"
    write_image(p, astronaut)
    img = read_image(p)
    assert img.bit_depth == 8 and img.pixels.dtype == np.uint8 and img.alpha is None
    assert img.pixels.flags.c_contiguous
    np.testing.assert_array_equal(img.pixels, astronaut)
    # an independent reader agrees
    np.testing.assert_array_equal(cv2_rgb(p), astronaut)
    assert img.path == str(p) and img.format == ("PNG" if ext == ".png" else "TIFF")


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_alpha_roundtrip(tmp_path, chelsea, ext):
    h, w = chelsea.shape[:2]
    alpha = np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))
    p = tmp_path / f"a{ext}"
    write_image(p, chelsea, alpha=alpha, quality=90)
    img = read_image(p)
    assert img.alpha is not None and img.alpha.shape == (h, w)
    if ext == ".webp":
        # lossy colour, but where alpha is 0 the encoder may change RGB: compare opaque parts
        assert psnr(img.pixels[:, w // 2:], chelsea[:, w // 2:]) > 30
        assert np.abs(img.alpha.astype(int) - alpha).max() <= 2
        ref = np.asarray(Image.open(p).convert("RGBA"))
        np.testing.assert_array_equal(img.alpha, ref[..., 3])
    else:
        np.testing.assert_array_equal(img.pixels, chelsea)
        np.testing.assert_array_equal(img.alpha, alpha)
        if ext == ".png":   # (OpenCV premultiplies 8-bit TIFF alpha when reading)
            np.testing.assert_array_equal(cv2_rgb(p), np.dstack([chelsea, alpha]))
        else:
            with Image.open(p) as im:
                assert im.tag_v2.get(338) == (2,)      # ExtraSamples: unassociated alpha


def test_rgba_array_brings_alpha(tmp_path, chelsea):
    alpha = np.full(chelsea.shape[:2], 77, np.uint8)
    p = tmp_path / "x.png"
    write_image(p, np.dstack([chelsea, alpha]))
    img = read_image(p)
    np.testing.assert_array_equal(img.alpha, alpha)
    with pytest.raises(ImageError, match="alpha given twice"):
        write_image(tmp_path / "y.png", np.dstack([chelsea, alpha]), alpha=alpha)


@pytest.mark.parametrize("ext,quality,min_psnr", [(".jpg", 95, 36), (".jpeg", 75, 30),
                                                 (".webp", 90, 32)])
def test_lossy_roundtrip(tmp_path, astronaut, ext, quality, min_psnr):
    p = tmp_path / f"a{ext}"
    write_image(p, astronaut, quality=quality)
    img = read_image(p)
    assert img.bit_depth == 8 and img.alpha is None
    assert psnr(img.pixels, astronaut) > min_psnr
    # what we read is what Pillow and OpenCV decode
    np.testing.assert_array_equal(img.pixels, np.asarray(Image.open(p).convert("RGB")))
    if ext != ".webp":
        assert np.abs(cv2_rgb(p).astype(int) - img.pixels).max() <= 3


def test_quality_changes_size(tmp_path, astronaut):
    write_image(tmp_path / "lo.jpg", astronaut, quality=30)
    write_image(tmp_path / "hi.jpg", astronaut, quality=95)
    assert os.path.getsize(tmp_path / "lo.jpg") < os.path.getsize(tmp_path / "hi.jpg")
    with pytest.raises(ImageError, match="quality"):
        write_image(tmp_path / "q.jpg", astronaut, quality=101)


def test_jpeg_drops_alpha(tmp_path, chelsea):
    alpha = np.zeros(chelsea.shape[:2], np.uint8)
    p = tmp_path / "x.jpg"
    write_image(p, chelsea, alpha=alpha)
    img = read_image(p)
    assert img.alpha is None and psnr(img.pixels, chelsea) > 35


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_roundtrip(tmp_path, ext, with_alpha):
    a = random16((61, 83, 3), seed=1)
    alpha = random16((61, 83), seed=2) if with_alpha else None
    p = tmp_path / f"a{ext}"
    write_image(p, a, alpha=alpha)
    expected = a if alpha is None else np.dstack([a, alpha])
    np.testing.assert_array_equal(cv2_rgb(p), expected)   # libpng / libtiff read it so
    img = read_image(p)
    assert img.bit_depth == 16 and img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, a)
    if with_alpha:
        np.testing.assert_array_equal(img.alpha, alpha)
    else:
        assert img.alpha is None


def test_16bit_to_8bit_rounds(tmp_path):
    a = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    a = np.dstack([a, a[::-1], a[:, ::-1]])
    expected = np.round(a / 257.0).astype(np.uint8)
    write_image(tmp_path / "x.png", a, bit_depth=8)
    np.testing.assert_array_equal(read_image(tmp_path / "x.png").pixels, expected)
    write_image(tmp_path / "x.jpg", a, quality=100)    # JPEG is always 8-bit
    got = read_image(tmp_path / "x.jpg")
    assert got.bit_depth == 8 and psnr(got.pixels, expected) > 40


def test_8bit_to_16bit(tmp_path, chelsea):
    write_image(tmp_path / "x.png", chelsea, bit_depth=16)
    img = read_image(tmp_path / "x.png")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels, chelsea.astype(np.uint16) * 257)


def test_float_input(tmp_path, chelsea):
    f = chelsea.astype(np.float64) / 255.0
    write_image(tmp_path / "f.png", f)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png").pixels, chelsea)
    write_image(tmp_path / "f16.png", f.astype(np.float32), bit_depth=16)
    img = read_image(tmp_path / "f16.png")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels, np.round(f.astype(np.float32) * 65535).astype(np.uint16))
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        write_image(tmp_path / "g.png", chelsea.astype(np.float32))   # 0..255 floats


def test_exif_and_icc_written(tmp_path, chelsea):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "DeepshopCam"      # Make
    exif[0x0112] = 1
    exif_bytes = exif.tobytes()
    for name in ["x.jpg", "x.png", "x.webp", "x.tif", "x16.png", "x16.tif"]:
        p = tmp_path / name
        px = chelsea.astype(np.uint16) * 257 if "16" in name else chelsea
        write_image(p, px, exif=exif_bytes, icc_profile=icc)
        with Image.open(p) as im:
            assert im.info.get("icc_profile") == icc, name
            assert im.getexif().get(0x010F) == "DeepshopCam", name
        img = read_image(p)
        assert img.icc_profile == icc, name
        if not name.endswith(".tif"):
            assert img.exif is not None and img.exif.startswith(b"Exif\x00\x00"), name


def test_unsupported_write_extension(tmp_path, chelsea):
    with pytest.raises(ImageError, match=r"\.gif.*\.png"):
        write_image(tmp_path / "x.gif", chelsea)
    with pytest.raises(ImageError, match="supported"):
        write_image(tmp_path / "noext", chelsea)


# ----------------------------------------------------------------------------------------------
# 16-bit PNG reading vs OpenCV, every colour type, interlaced, and the fallback decoder
# ----------------------------------------------------------------------------------------------

def test_16bit_png_written_by_libpng_matches_opencv(tmp_path):
    a = random16((50, 71, 3), seed=3)
    p3, p4, p1 = tmp_path / "rgb.png", tmp_path / "rgba.png", tmp_path / "g.png"
    cv2.imwrite(str(p3), a[..., ::-1])
    cv2.imwrite(str(p4), np.dstack([a[..., ::-1], a[..., 0]]))
    cv2.imwrite(str(p1), a[..., 1])
    img = read_image(p3)
    assert img.bit_depth == 16 and img.alpha is None and img.format == "PNG"
    np.testing.assert_array_equal(img.pixels, cv2_rgb(p3))
    img = read_image(p4)
    np.testing.assert_array_equal(np.dstack([img.pixels, img.alpha]), cv2_rgb(p4))
    img = read_image(p1)
    assert img.mode.startswith("I;16") and img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels, np.repeat(cv2_rgb(p1)[..., None], 3, axis=2))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("fallback", [False, True])
def test_16bit_png_every_colour_type(tmp_path, monkeypatch, channels, interlace, fallback):
    if fallback:
        # as if Pillow did not know the raw modes we use: our own decoder takes over
        def refuse(*args, **kwargs):
            raise ValueError("unknown raw mode for given image mode")
        monkeypatch.setattr(pillow16, "_with_rawmode", refuse)
    a = random16((13, 19, channels), seed=channels)
    p = tmp_path / "x.png"
    naive_png16(p, a, interlace=interlace)
    img = read_image(p)
    assert img.bit_depth == 16
    gray = channels in (1, 2)
    rgb = np.repeat(a[..., :1], 3, axis=2) if gray else a[..., :3]
    np.testing.assert_array_equal(img.pixels, rgb)
    if channels in (2, 4):
        np.testing.assert_array_equal(img.alpha, a[..., -1])
    else:
        assert img.alpha is None
    if channels != 2:          # OpenCV reads gray+alpha as BGRA; compare the rest with it too
        ref = cv2_rgb(p)
        ref = ref if ref.ndim == 3 else np.repeat(ref[..., None], 3, axis=2)
        np.testing.assert_array_equal(np.dstack([img.pixels] + ([img.alpha] if img.alpha is not None else [])), ref)


def test_own_png16_decoder_against_libpng_files(tmp_path):
    a = random16((40, 57, 3), seed=9)
    p = tmp_path / "x.png"
    cv2.imwrite(str(p), np.dstack([a[..., ::-1], a[..., 2]]))
    data, trns = png16.decode_png16(p.read_bytes(), str(p))
    np.testing.assert_array_equal(data, cv2_rgb(p))
    assert trns is None


@pytest.mark.parametrize("fallback", [False, True])
def test_16bit_png_rgb_transparency(tmp_path, monkeypatch, fallback):
    if fallback:
        monkeypatch.setattr(pillow16, "_with_rawmode",
                            lambda *a: (_ for _ in ()).throw(ValueError("unknown raw mode")))
    a = random16((8, 9, 3), seed=4)
    key = tuple(int(v) for v in a[2, 3])
    p = tmp_path / "t.png"
    naive_png16(p, a, trns=key)
    img = read_image(p)
    expected = np.where(np.all(a == np.array(key, np.uint16), axis=2), 0, 65535)
    np.testing.assert_array_equal(img.pixels, a)
    np.testing.assert_array_equal(img.alpha, expected)
    assert img.alpha[2, 3] == 0


def test_16bit_tiff_from_libtiff(tmp_path):
    a = random16((45, 38, 3), seed=5)
    for comp in (1, 5, 8):      # none, LZW, deflate: Pillow's raw and libtiff decoders
        p = tmp_path / f"c{comp}.tif"
        cv2.imwrite(str(p), a[..., ::-1], [cv2.IMWRITE_TIFF_COMPRESSION, comp])
        img = read_image(p)
        assert img.bit_depth == 16
        np.testing.assert_array_equal(img.pixels, a)
    g = tmp_path / "g.tif"
    cv2.imwrite(str(g), a[..., 0])
    img = read_image(g)
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels[..., 1], a[..., 0])


def test_16bit_tiff_premultiplied_alpha(tmp_path):
    rgb = random16((20, 30, 3), seed=6)
    alpha = np.full((20, 30), 65535, np.uint16)
    alpha[:, 10:] = 40000
    alpha[:, 25:] = 0
    premultiplied = np.rint(rgb * (alpha[..., None] / 65535.0)).astype(np.uint16)
    p = tmp_path / "pre.tif"
    with open(p, "wb") as f:
        tiff16.encode_tiff16(f, premultiplied, alpha, None, None, extra_samples=1)
    with Image.open(p) as im:
        assert im.tag_v2[338] == (1,)       # associated alpha
    img = read_image(p)
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.alpha, alpha)
    np.testing.assert_array_equal(img.pixels[:, :10], rgb[:, :10])
    assert np.abs(img.pixels[:, 10:25].astype(int) - rgb[:, 10:25]).max() <= 1
    assert np.all(img.pixels[:, 25:] == 0)


# ----------------------------------------------------------------------------------------------
# modes
# ----------------------------------------------------------------------------------------------

def test_grayscale_8bit(tmp_path, chelsea):
    g = np.asarray(Image.fromarray(chelsea).convert("L"))
    Image.fromarray(g).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.mode == "L" and img.bit_depth == 8 and img.alpha is None
    assert img.pixels.shape == chelsea.shape
    for c in range(3):
        np.testing.assert_array_equal(img.pixels[..., c], g)
    Image.fromarray(g).convert("1").save(tmp_path / "b.png")
    img = read_image(tmp_path / "b.png")
    assert set(np.unique(img.pixels)) <= {0, 255}


def test_la_and_rgba(tmp_path, chelsea):
    g = np.asarray(Image.fromarray(chelsea).convert("L"))
    alpha = (np.arange(g.size) % 256).astype(np.uint8).reshape(g.shape)
    Image.fromarray(np.dstack([g, alpha])).save(tmp_path / "la.png")
    with Image.open(tmp_path / "la.png") as im:
        assert im.mode == "LA"
    img = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(img.pixels, np.repeat(g[..., None], 3, axis=2))
    np.testing.assert_array_equal(img.alpha, alpha)


def test_palette_with_transparency(tmp_path):
    pal = Image.new("P", (6, 4))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    idx = np.array([[0, 1, 2, 0, 1, 2]] * 4, np.uint8)
    pal.putdata(idx.ravel().tolist())
    pal.save(tmp_path / "p.png", transparency=1)          # index 1 transparent (tRNS)
    img = read_image(tmp_path / "p.png")
    ref = np.asarray(Image.open(tmp_path / "p.png").convert("RGBA"))
    assert img.mode == "P"
    np.testing.assert_array_equal(img.pixels, ref[..., :3])
    np.testing.assert_array_equal(img.alpha, ref[..., 3])
    assert img.alpha[0, 1] == 0 and img.alpha[0, 0] == 255
    np.testing.assert_array_equal(img.pixels[0, 2], [0, 0, 255])
    # without transparency: no alpha
    pal.save(tmp_path / "q.png")
    img = read_image(tmp_path / "q.png")
    assert img.alpha is None
    np.testing.assert_array_equal(img.pixels, np.asarray(Image.open(tmp_path / "q.png").convert("RGB")))
    # gif-style palette
    pal.save(tmp_path / "g.gif", transparency=1)
    img = read_image(tmp_path / "g.gif")
    assert img.alpha is not None and img.alpha[0, 1] == 0


def test_rgb_png_with_transparent_colour(tmp_path, chelsea):
    Image.fromarray(chelsea).save(tmp_path / "t.png", transparency=tuple(int(v) for v in chelsea[0, 0]))
    img = read_image(tmp_path / "t.png")
    assert img.alpha is not None and img.alpha[0, 0] == 0
    ref = np.asarray(Image.open(tmp_path / "t.png").convert("RGBA"))
    np.testing.assert_array_equal(img.alpha, ref[..., 3])


def test_cmyk_jpeg(tmp_path, chelsea):
    cmyk = Image.fromarray(chelsea).convert("CMYK")
    p = tmp_path / "c.jpg"
    cmyk.save(p, quality=95)          # Pillow writes Adobe-style (inverted) CMYK JPEGs
    with Image.open(p) as im:
        assert im.mode == "CMYK" and "adobe" in im.info      # inverted, Adobe APP14
        ref = np.asarray(im.convert("RGB"))
    img = read_image(p)
    assert img.mode == "CMYK" and img.bit_depth == 8 and img.pixels.shape == chelsea.shape
    assert np.abs(img.pixels.astype(int) - ref).max() <= 1
    assert psnr(img.pixels, chelsea) > 25


def test_icc_profile_kept_only_for_rgb(tmp_path, chelsea):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.fromarray(chelsea).save(tmp_path / "s.png", icc_profile=srgb)
    Image.fromarray(chelsea).save(tmp_path / "l.png", icc_profile=lab)
    assert read_image(tmp_path / "s.png").icc_profile == srgb
    assert read_image(tmp_path / "l.png").icc_profile is None


def test_bmp(tmp_path, chelsea):
    Image.fromarray(chelsea).save(tmp_path / "x.bmp")
    img = read_image(tmp_path / "x.bmp")
    assert img.format == "BMP"
    np.testing.assert_array_equal(img.pixels, chelsea)


# ----------------------------------------------------------------------------------------------
# EXIF orientation
# ----------------------------------------------------------------------------------------------

H, W = 3, 5
STORED = (np.arange(H * W).reshape(H, W) * 16).astype(np.uint8)

# the displayed image D for each orientation, written out by hand from the EXIF definitions:
# 1 top-left, 2 top-right (mirror), 3 bottom-right (180), 4 bottom-left (flip), 5 left-top
# (transpose), 6 right-top (rotate 90 clockwise), 7 right-bottom (transverse), 8 left-bottom
# (rotate 90 counter-clockwise).
DISPLAYED = {
    1: lambda S, r, c: S[r][c],
    2: lambda S, r, c: S[r][W - 1 - c],
    3: lambda S, r, c: S[H - 1 - r][W - 1 - c],
    4: lambda S, r, c: S[H - 1 - r][c],
    5: lambda S, r, c: S[c][r],
    6: lambda S, r, c: S[H - 1 - c][r],
    7: lambda S, r, c: S[H - 1 - c][W - 1 - r],
    8: lambda S, r, c: S[c][W - 1 - r],
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["png", "webp-lossless", "tif16"])
def test_exif_orientation(tmp_path, orientation, fmt):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Make"
    rgb = np.dstack([STORED, 255 - STORED, STORED // 2])
    if fmt == "png":
        p = tmp_path / "o.png"
        Image.fromarray(rgb).save(p, exif=exif.tobytes())
    elif fmt == "webp-lossless":
        p = tmp_path / "o.webp"
        Image.fromarray(rgb).save(p, exif=exif.tobytes(), lossless=True)
    else:
        p = tmp_path / "o.tif"
        write_image(p, rgb.astype(np.uint16) * 257, exif=exif.tobytes())
    img = read_image(p)
    dh, dw = (H, W) if orientation <= 4 else (W, H)
    assert img.pixels.shape == (dh, dw, 3)
    scale = 257 if fmt == "tif16" else 1
    for r in range(dh):
        for c in range(dw):
            assert img.pixels[r, c, 0] == int(DISPLAYED[orientation](STORED, r, c)) * scale, (r, c)
    assert img.pixels.flags.c_contiguous
    # Pillow's exif_transpose agrees
    with Image.open(p) as im:
        if fmt != "tif16":
            np.testing.assert_array_equal(img.pixels, np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
    if fmt != "tif16":
        e = Image.Exif()
        e.load(img.exif)
        assert e.get(0x0112) == 1 and e.get(0x010F) == "Make"


def test_exif_orientation_jpeg_with_alpha_free_blocks(tmp_path):
    # 2x3 blocks of 16x16 pixels, each a flat colour: survives JPEG
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                        [[255, 255, 0], [0, 255, 255], [255, 0, 255]]], np.uint8)
    big = np.kron(colours, np.ones((16, 16, 1), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "o.jpg"
    Image.fromarray(big).save(p, exif=exif.tobytes(), quality=95)
    img = read_image(p)
    assert img.pixels.shape == (48, 32, 3)
    # rotate 90 clockwise: the stored bottom-left block is now top-left
    assert np.abs(img.pixels[8, 8].astype(int) - [255, 255, 0]).max() < 20
    assert np.abs(img.pixels[8, 24].astype(int) - [255, 0, 0]).max() < 20
    assert np.abs(img.pixels[40, 24].astype(int) - [0, 0, 255]).max() < 20
    e = Image.Exif()
    e.load(img.exif)
    assert e[0x0112] == 1
    # the EXIF, written back with the upright pixels, displays right
    write_image(tmp_path / "back.jpg", img.pixels, exif=img.exif)
    again = read_image(tmp_path / "back.jpg")
    assert again.pixels.shape == (48, 32, 3)


def test_orientation_applied_to_alpha(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    rgba = np.dstack([np.dstack([STORED] * 3), STORED])
    Image.fromarray(rgba).save(tmp_path / "a.png", exif=exif.tobytes())
    img = read_image(tmp_path / "a.png")
    assert img.alpha.shape == (W, H)
    np.testing.assert_array_equal(img.alpha, img.pixels[..., 0])


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tif"])
def test_truncated(tmp_path, astronaut, ext):
    p = tmp_path / f"full{ext}"
    write_image(p, astronaut)
    data = p.read_bytes()
    bad = tmp_path / f"cut{ext}"
    bad.write_bytes(data[: len(data) // 2])
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(ImageError) as info:
        read_image(bad)
    assert str(info.value).startswith(f"{bad}: ")
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_truncated_16bit_png(tmp_path):
    p = tmp_path / "x.png"
    write_image(p, random16((64, 64, 3)))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match=str(p)):
        read_image(p)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageError, match=rf"^{p}: not an image"):
        read_image(p)


def test_missing_empty_directory(tmp_path):
    with pytest.raises(ImageError, match="no such image file"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "empty.jpg")
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)
    assert issubclass(ImageError, DeepshopError) and issubclass(ImageError, ValueError)


def _png_header_only(path, width, height):
    """A PNG that claims a size but holds (almost) no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + _chunk(b"IEND", b""))


def test_zero_size_image(tmp_path):
    p = tmp_path / "z.png"
    _png_header_only(p, 0, 10)
    with pytest.raises(ImageError, match=str(p)):
        read_image(p)
    with pytest.raises(ImageError, match="empty"):
        to_rgb_array(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match="empty"):
        to_rgb_array(np.zeros((4, 0), np.uint8))


def test_bomb_limit(tmp_path, chelsea):
    p = tmp_path / "x.png"
    write_image(p, np.zeros((300, 300, 3), np.uint8))
    with pytest.raises(ImageError) as info:
        read_image(p, max_pixels=1000)
    msg = str(info.value)
    assert msg.startswith(f"{p}: ") and "300x300" in msg and "1,000" in msg
    assert "max_pixels" in msg and "DEEPSHOP_MAX_PIXELS" in msg
    assert read_image(p, max_pixels=90000).pixels.shape == (300, 300, 3)
    assert read_image(p, max_pixels=None).pixels.shape == (300, 300, 3)
    assert read_image(p, max_pixels=0).pixels.shape == (300, 300, 3)


def test_bomb_refused_before_decoding(tmp_path, monkeypatch):
    p = tmp_path / "bomb.png"
    _png_header_only(p, 100_000, 100_000)        # 10 G pixels declared, a few bytes of data
    saved = Image.MAX_IMAGE_PIXELS

    def no_decode(self, *a, **k):
        raise AssertionError("decoded although refused")
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    monkeypatch.setattr(Image.Image, "load", no_decode)
    with pytest.raises(ImageError, match=r"100000x100000 = 10,000,000,000 pixels.*67,108,864"):
        read_image(p)                             # the default limit
    with pytest.raises(ImageError, match="limit of 1,000,000 pixels"):
        read_image(p, max_pixels=10**6)
    assert Image.MAX_IMAGE_PIXELS == saved        # Pillow's global is left as it was


def test_env_limit(tmp_path, monkeypatch):
    p = tmp_path / "x.png"
    write_image(p, np.zeros((300, 300, 3), np.uint8))
    monkeypatch.setenv("DEEPSHOP_MAX_PIXELS", "1000")
    with pytest.raises(ImageError, match="1,000"):
        read_image(p)
    assert read_image(p, max_pixels=None).width == 300      # an explicit argument wins
    monkeypatch.setenv("DEEPSHOP_MAX_PIXELS", "0")
    assert read_image(p).width == 300
    assert dio.effective_max_pixels() is None
    monkeypatch.setenv("DEEPSHOP_MAX_PIXELS", "5000")
    assert dio.effective_max_pixels() == dio.effective_max_pixels(DEFAULT_MAX_PIXELS) == 5000
    for bad in ("lots", "-5"):
        monkeypatch.setenv("DEEPSHOP_MAX_PIXELS", bad)
        with pytest.raises(ImageError, match=rf"^{p}: .*DEEPSHOP_MAX_PIXELS"):
            read_image(p)


def test_our_limit_above_pillows(tmp_path, monkeypatch):
    """Pillow refuses beyond 2 * MAX_IMAGE_PIXELS; our (higher) limit is what counts."""
    p = tmp_path / "x.png"
    write_image(p, np.zeros((300, 300, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    img = read_image(p)
    assert img.pixels.shape == (300, 300, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(ImageError, match="limit of 2,000"):
        read_image(p, max_pixels=2000)


# ----------------------------------------------------------------------------------------------
# atomic writing, overwriting
# ----------------------------------------------------------------------------------------------

def _leftovers(directory):
    return [n for n in os.listdir(directory) if n.endswith(".part")]


def test_atomic_write_failure_leaves_nothing(tmp_path, chelsea, monkeypatch):
    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\xff\xd8 half of a file")
        raise OSError("disk on fire")
    monkeypatch.setattr(Image.Image, "save", broken_save)
    dst = tmp_path / "out" / "x.jpg"
    with pytest.raises(ImageError, match="disk on fire") as info:
        write_image(dst, chelsea)
    assert str(info.value).startswith(str(dst))
    assert not dst.exists() and _leftovers(tmp_path / "out") == []
    # an existing file is left as it was
    dst.write_bytes(b"precious")
    with pytest.raises(ImageError):
        write_image(dst, chelsea, overwrite=True)
    assert dst.read_bytes() == b"precious" and _leftovers(tmp_path / "out") == []


def test_atomic_write_failure_16bit(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(png16, "_png_filter_rows", broken)
    dst = tmp_path / "x.png"
    with pytest.raises(ImageError, match="out of memory"):
        write_image(dst, random16((10, 10, 3)))
    assert not dst.exists() and _leftovers(tmp_path) == []


def test_interrupted_write(tmp_path, chelsea, monkeypatch):
    def interrupted(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "x.png", chelsea)
    assert os.listdir(tmp_path) == []


def test_overwrite(tmp_path, chelsea, astronaut):
    dst = tmp_path / "x.png"
    write_image(dst, chelsea)
    before = dst.read_bytes()
    with pytest.raises(OutputExistsError, match=r"exists; pass overwrite=True \(--overwrite\)"):
        write_image(dst, astronaut)
    assert dst.read_bytes() == before
    assert issubclass(OutputExistsError, DeepshopError)
    write_image(dst, astronaut, overwrite=True)
    np.testing.assert_array_equal(read_image(dst).pixels, astronaut)
    assert _leftovers(tmp_path) == []


def test_write_creates_parents_and_normal_permissions(tmp_path, chelsea):
    dst = tmp_path / "a" / "b" / "c.webp"
    write_image(dst, chelsea)
    assert dst.is_file()
    mode = os.stat(dst).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask          # not mkstemp's 0600


# ----------------------------------------------------------------------------------------------
# arrays
# ----------------------------------------------------------------------------------------------

def test_non_contiguous_views(tmp_path, astronaut):
    views = {
        "strided": astronaut[::2, ::3],
        "bgr": astronaut[..., ::-1],
        "transposed": astronaut.transpose(1, 0, 2),
        "fortran": np.asfortranarray(astronaut),
        "flipped": astronaut[::-1],
    }
    for name, v in views.items():
        assert not v.flags.c_contiguous, name
        px, alpha = to_rgb_array(v)
        assert px.flags.c_contiguous and alpha is None, name
        np.testing.assert_array_equal(px, v)
        write_image(tmp_path / f"{name}.png", v)
        np.testing.assert_array_equal(read_image(tmp_path / f"{name}.png").pixels, v)
    rgba = np.dstack([astronaut, astronaut[..., 0]])[:, ::2]
    px, alpha = to_rgb_array(rgba)
    assert px.flags.c_contiguous and alpha.flags.c_contiguous
    np.testing.assert_array_equal(alpha, rgba[..., 3])


def test_contiguous_input_not_copied(astronaut):
    px, _ = to_rgb_array(astronaut)
    assert px is astronaut


@pytest.mark.parametrize("shape", [(5,), (4, 4, 2), (4, 4, 5), (2, 4, 4, 3), ()])
def test_bad_shapes(shape):
    with pytest.raises(ImageError, match=rf"expected .*HxWx3.*got shape {re.escape(str(shape))}"):
        to_rgb_array(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.int8, np.uint32, np.complex64])
def test_bad_dtypes(dtype):
    with pytest.raises(ImageError, match="dtype"):
        to_rgb_array(np.zeros((4, 4, 3), dtype))


def test_gray_and_single_channel_arrays():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for a in (g, g[..., None]):
        px, alpha = to_rgb_array(a)
        assert px.shape == (3, 4, 3) and alpha is None
        for c in range(3):
            np.testing.assert_array_equal(px[..., c], g)


def test_float_and_big_endian_arrays():
    f = np.linspace(0, 1, 24, dtype=np.float64).reshape(2, 4, 3)
    px, _ = to_rgb_array(f)
    assert px.dtype == np.float32
    np.testing.assert_allclose(px, f, atol=1e-7)
    px, _ = to_rgb_array(f * 1.005)          # a little over 1: clipped
    assert px.max() == 1.0
    with pytest.raises(ImageError, match="NaN"):
        to_rgb_array(np.full((2, 2, 3), np.nan))
    be = np.arange(12, dtype=">u2").reshape(2, 2, 3) * 1000
    px, _ = to_rgb_array(be)
    assert px.dtype == np.uint16 and px.dtype.isnative
    np.testing.assert_array_equal(px, be)


def test_pil_path_loaded_inputs(tmp_path, chelsea):
    px, alpha = to_rgb_array(Image.fromarray(chelsea))
    np.testing.assert_array_equal(px, chelsea)
    assert alpha is None
    px, alpha = to_rgb_array(Image.fromarray(chelsea).convert("LA"))
    assert px.shape == chelsea.shape and alpha is not None
    write_image(tmp_path / "x.png", chelsea)
    for obj in (tmp_path / "x.png", str(tmp_path / "x.png"), read_image(tmp_path / "x.png")):
        px, _ = to_rgb_array(obj)
        np.testing.assert_array_equal(px, chelsea)
    with pytest.raises(ImageError, match="expected a numpy array"):
        to_rgb_array([[1, 2, 3]])


def test_loaded_image_fields(tmp_path, chelsea):
    write_image(tmp_path / "x.png", chelsea)
    img = read_image(tmp_path / "x.png")
    assert isinstance(img, LoadedImage)
    assert (img.width, img.height) == (chelsea.shape[1], chelsea.shape[0])
    assert img.mode == "RGB" and img.format == "PNG" and img.exif is None


# ----------------------------------------------------------------------------------------------
# resizing
# ----------------------------------------------------------------------------------------------

def test_resize_max_side_uint8(astronaut, chelsea):
    small = resize_max_side(chelsea, 200)
    assert small.shape == (133, 200, 3) and small.dtype == np.uint8
    ref = np.asarray(Image.fromarray(chelsea).resize((200, 133), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(small, ref)
    assert resize_max_side(chelsea, 451) is chelsea          # no-op
    assert resize_max_side(chelsea, 10_000) is chelsea
    tall = resize_max_side(chelsea.transpose(1, 0, 2), 100)
    assert tall.shape == (100, 67, 3)
    with pytest.raises(ValueError):
        resize_max_side(chelsea, 0)


def test_resize_max_side_uint16_float_alpha(chelsea):
    c16 = chelsea.astype(np.uint16) * 257
    small16 = resize_max_side(c16, 200)
    small8 = resize_max_side(chelsea, 200)
    assert small16.shape == small8.shape and small16.dtype == np.uint16
    assert np.abs(small16 / 257.0 - small8).max() <= 2.0
    f = chelsea.astype(np.float32) / 255
    sf = resize_max_side(f, 200)
    assert sf.dtype == np.float32 and sf.shape == small8.shape
    assert 0.0 <= sf.min() and sf.max() <= 1.0
    alpha = np.full(chelsea.shape[:2], 200, np.uint8)
    sa = resize_max_side(alpha, 200)
    assert sa.shape == small8.shape[:2] and np.all(sa == 200)
    sa16 = resize_max_side(alpha.astype(np.uint16) * 257, 200)
    assert sa16.shape == small8.shape[:2] and np.all(sa16 == 200 * 257)


def test_fit_max_side():
    assert dio.fit_max_side(1000, 10, 100) == (100, 1)
    assert dio.fit_max_side(10, 1000, 100) == (1, 100)
    assert dio.fit_max_side(300, 451, 200) == (133, 200)
    assert dio.fit_max_side(50, 50, 100) == (50, 50)


# --- reading from bytes and file objects; what is not a regular file ----------------------------

def test_read_from_bytes_and_file_objects_matches_reading_the_path(tmp_path, astronaut):
    p = tmp_path / "a.png"
    Image.fromarray(astronaut[:40, :50]).save(p)
    ref = read_image(p)
    from_bytes = read_image(p.read_bytes())
    with open(p, "rb") as f:
        from_file = read_image(f)
    import io
    from_stream = read_image(io.BytesIO(p.read_bytes()))
    for got in (from_bytes, from_file, from_stream):
        np.testing.assert_array_equal(got.pixels, astronaut[:40, :50])
        assert got.format == "PNG" and got.bit_depth == 8
    assert from_bytes.path == "<bytes>" and from_file.path == str(p) and from_stream.path == "<BytesIO>"
    assert ref.path == str(p)


def test_16bit_from_bytes_keeps_16_bits(tmp_path):
    a = random16((20, 30, 3), seed=3)
    p = tmp_path / "a16.png"
    write_image(p, a)
    np.testing.assert_array_equal(read_image(p.read_bytes()).pixels, cv2_rgb(p))


def test_errors_from_bytes_and_file_objects_name_the_source(tmp_path):
    with pytest.raises(ImageError, match=r"^<bytes>: not an image file"):
        read_image(b"definitely not an image")
    with pytest.raises(ImageError, match=r"^<bytes>: empty"):
        read_image(b"")
    p = tmp_path / "text.txt"
    p.write_text("hello")
    with open(p, "rb") as f, pytest.raises(ImageError, match=rf"^{re.escape(str(p))}: not an image file"):
        read_image(f)
    with open(p, "r") as f, pytest.raises(ImageError, match=r"not a binary file object"):
        read_image(f)
    with pytest.raises(ImageError, match=r"expected a path, the bytes"):
        read_image(12345)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    # Regression (issue 14, item 5): opening a FIFO blocked forever waiting for a writer.
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"pipe\.png: is a named pipe \(FIFO\), not an image file"):
        read_image(fifo)
    with pytest.raises(ImageError, match="is a device"):
        read_image("/dev/zero")


def _planar_tiff(arr: np.ndarray, byteorder: str = "<", compression: int = 1) -> bytes:
    """An RGB TIFF with PlanarConfiguration 2 (one strip per colour plane), built by hand from
    the TIFF 6.0 layout: header, one IFD, then the planes."""
    h, w, c = arr.shape
    bits = arr.dtype.itemsize * 8
    planes = [np.ascontiguousarray(arr[..., i]).astype(arr.dtype.newbyteorder(byteorder)).tobytes()
              for i in range(c)]
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, c, None), (259, 3, 1, compression),
               (262, 3, 1, 2), (273, 4, c, None), (277, 3, 1, c), (278, 3, 1, h), (279, 4, c, None),
               (284, 3, 1, 2)]
    ifd_size = 2 + 12 * len(entries) + 4
    extra = 8 + ifd_size                                  # arrays that do not fit in an entry
    bits_at, offsets_at, counts_at = extra, extra + 2 * c, extra + 2 * c + 4 * c
    data_at = counts_at + 4 * c
    offsets = [data_at + sum(len(p) for p in planes[:i]) for i in range(c)]
    e = byteorder
    out = (b"II" if e == "<" else b"MM") + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 258:
            out += struct.pack(e + "HHII", tag, typ, count, bits_at)
        elif tag == 273:
            out += struct.pack(e + "HHII", tag, typ, count, offsets_at)
        elif tag == 279:
            out += struct.pack(e + "HHII", tag, typ, count, counts_at)
        elif typ == 3:
            out += struct.pack(e + "HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack(e + "HHII", tag, typ, count, value)
    out += struct.pack(e + "I", 0)
    out += struct.pack(e + "H" * c, *([bits] * c)) + struct.pack(e + "I" * c, *offsets)
    out += struct.pack(e + "I" * c, *[len(p) for p in planes])
    return out + b"".join(planes)


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_16bit_planar_tiff_is_decoded_to_its_16_bit_values(byteorder):
    # Regression (issue 14, item 10): the planes were unpacked as 8-bit samples (garbage).
    a = random16((13, 17, 3), seed=5)
    img = read_image(_planar_tiff(a, byteorder))
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels, a)


def test_8bit_planar_tiff_and_compressed_16bit_planar_tiff():
    a8 = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(_planar_tiff(a8)).pixels, a8)
    with pytest.raises(ImageError, match=r"^<bytes>: 16-bit TIFF with separate colour planes"):
        read_image(_planar_tiff(random16((9, 11, 3), seed=2), compression=32773))   # PackBits


def test_in_memory_pil_image_of_mode_La_is_converted():
    # Regression (issue 14, item 12): the error handler itself failed on an image without a
    # file name; La (premultiplied gray + alpha) is now un-premultiplied through LA.
    im = Image.new("La", (4, 3), (100, 128))
    pixels, alpha = to_rgb_array(im)
    ref = np.asarray(im.convert("LA"))
    np.testing.assert_array_equal(pixels, np.repeat(ref[..., :1], 3, axis=2))
    np.testing.assert_array_equal(alpha, ref[..., 1])
