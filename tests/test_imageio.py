"""Tests of deepshop_native.image against independent references (Pillow, OpenCV, numpy): round
trips, 16-bit PNG and TIFF, colour modes and formats, EXIF orientation.  Errors, limits, atomic
writes and the other inputs: test_imageio_inputs.py."""

import os

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from deepshop_native.image import pillow16, png16, tiff16
from deepshop_native.core.errors import ImageError
from deepshop_native.image import read_image, write_image

from imageio_helpers import (  # noqa: F401  (astronaut, chelsea, _no_env_limit: fixtures)
    _no_env_limit, astronaut, chelsea, cv2, cv2_rgb, naive_png16, psnr, random16)

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
