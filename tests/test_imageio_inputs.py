"""Tests of deepshop_native.image against independent references (Pillow, OpenCV, numpy): errors
and limits, atomic writes, array and PIL inputs, resizing, bytes and file objects, planar TIFF.
Round trips, formats and orientation: test_imageio.py."""

import os
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from deepshop_native import image as dio
from deepshop_native.image import png16
from deepshop_native.core.errors import DeepshopError, ImageError, OutputExistsError
from deepshop_native.image import (
    DEFAULT_MAX_PIXELS, LoadedImage, read_image, resize_max_side, to_rgb_array, write_image)

from imageio_helpers import (  # noqa: F401  (astronaut, chelsea, _no_env_limit: fixtures)
    _chunk, _no_env_limit, astronaut, chelsea, cv2_rgb, random16)

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
