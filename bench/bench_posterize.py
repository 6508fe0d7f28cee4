"""Posterise: deepshop_native against a vectorised numpy reference, Pillow and a Python loop.

Image: skimage's astronaut tiled to 2048 × 2048 (4.2 MP, a real photo's colour statistics).
Groups (same image, same palette in each):

* posterize-levels3-rgb: uniform levels=3 (27 colours) in RGB — native per-channel tables,
  numpy broadcast distance + argmin over the 27 colours, Pillow Image.quantize(palette=...)
  without dithering (Pillow measures RGB distance);
* posterize-palette27-lab: the 27 colours in CIELAB — native with its 2^24 label table (built
  once per palette and cached: the steady state of a batch, a video or a 100-MP image), native
  direct search (no table), numpy broadcast + argmin (conversion to Lab included);
* posterize-lut-build: the one-off cost of that table;
* posterize-python-loop: the per-pixel Python loop of the line-drawing tutorial on a 128 × 128
  crop (MP/s in extra_info.mpix / time: compare rates, not times).

    PYTHONPATH=python pytest bench/bench_posterize.py --benchmark-json=/tmp/post.json
    python bench/ratios.py /tmp/post.json
"""
import functools

import numpy as np
import pytest
from PIL import Image
from skimage import data

import deepshop_native as ds
from deepshop_native import kernels

CHUNK = 1 << 16  # numpy reference: pixels per chunk (its temporaries then stay in cache)


@functools.lru_cache(maxsize=1)
def image():
    return np.ascontiguousarray(np.tile(data.astronaut(), (4, 4, 1)))  # 2048 × 2048 × 3


PALETTE = ds.uniform_palette(3)


def srgb_to_lab(rgb01):
    c = rgb01.astype(np.float32)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]], np.float32)
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883], np.float32)
    d = np.float32(6 / 29)
    f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def numpy_posterize(img, palette, space):
    """Vectorised reference: broadcast squared distance to every colour, argmin, palette lookup.

    Written to be fast numpy: channels as separate (n, 1) - (K,) broadcasts (no reduction over a
    length-3 axis), float32, chunks whose temporaries stay in cache."""
    px = img.reshape(-1, 3)
    pal = srgb_to_lab(palette / 255) if space == "lab" else palette.astype(np.float32)
    labels = np.empty(px.shape[0], np.intp)
    for s in range(0, px.shape[0], CHUNK):
        x = px[s:s + CHUNK]
        x = srgb_to_lab(x / np.float32(255)) if space == "lab" else x.astype(np.float32)
        d = (x[:, 0:1] - pal[:, 0]) ** 2
        d += (x[:, 1:2] - pal[:, 1]) ** 2
        d += (x[:, 2:3] - pal[:, 2]) ** 2
        labels[s:s + CHUNK] = d.argmin(axis=1)
    return palette[labels].reshape(img.shape)


def pillow_posterize(img, palette):
    pal_img = Image.new("P", (1, 1))
    pal_img.putpalette(palette.ravel().tolist() + [0] * (768 - palette.size))
    q = Image.fromarray(img).quantize(colors=len(palette), palette=pal_img, dither=Image.Dither.NONE)
    return np.asarray(q.convert("RGB"))


def python_loop_posterize(img, palette):
    """The tutorial's way: for each pixel, the nearest palette colour in a Python loop."""
    out = np.empty_like(img)
    pal = [tuple(int(v) for v in c) for c in palette]
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            r, g, b = (int(v) for v in img[y, x])
            out[y, x] = min(pal, key=lambda c: (c[0] - r) ** 2 + (c[1] - g) ** 2 + (c[2] - b) ** 2)
    return out


def _bench(benchmark, group, impl, fn, mpix, rounds=5):
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["mpix"] = mpix
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["numpy", "pillow", "native"])
def test_levels3_rgb(benchmark, impl):
    img = image()
    fn = {
        "numpy": lambda: numpy_posterize(img, PALETTE, "rgb"),
        "pillow": lambda: pillow_posterize(img, PALETTE),
        "native": lambda: ds.posterize(img, levels=3),
    }[impl]
    out = _bench(benchmark, "posterize-levels3-rgb", impl, fn, img.shape[0] * img.shape[1] / 1e6,
                 rounds=3 if impl == "numpy" else 7)
    if impl == "native":  # same answer as the reference (ties: lowest index in both)
        assert np.array_equal(out, numpy_posterize(img, PALETTE, "rgb"))


@pytest.mark.parametrize("impl", ["numpy", "native-direct", "native"])
def test_palette27_lab(benchmark, impl):
    img = image()
    if impl == "native":
        kernels._palette_lut(PALETTE, "lab", 0)  # built once per palette; steady state measured
    fn = {
        "numpy": lambda: numpy_posterize(img, PALETTE, "lab"),
        "native-direct": lambda: ds.posterize(img, palette=PALETTE, space="lab", use_lut=False),
        "native": lambda: ds.posterize(img, palette=PALETTE, space="lab", use_lut=True),
    }[impl]
    _bench(benchmark, "posterize-palette27-lab", impl, fn, img.shape[0] * img.shape[1] / 1e6,
           rounds=3 if impl == "numpy" else 7)


@pytest.mark.parametrize("impl", ["native", "pillow"])
def test_palette27_rgb(benchmark, impl):
    img = image()
    if impl == "native":
        kernels._palette_lut(PALETTE, "rgb", 0)
    fn = {
        "pillow": lambda: pillow_posterize(img, PALETTE),
        "native": lambda: ds.posterize(img, palette=PALETTE, space="rgb", use_lut=True),
    }[impl]
    _bench(benchmark, "posterize-palette27-rgb", impl, fn, img.shape[0] * img.shape[1] / 1e6)


@pytest.mark.parametrize("space", ["lab", "rgb"])
def test_lut_build(benchmark, space):
    _bench(benchmark, "posterize-lut-build", f"lut-{space}",
           lambda: ds._native._build_palette_lut(PALETTE, space, 0), 16.777216, rounds=3)


@pytest.mark.parametrize("impl", ["python-loop", "native"])
def test_python_loop(benchmark, impl):
    crop = np.ascontiguousarray(image()[:128, :128])
    fn = {
        "python-loop": lambda: python_loop_posterize(crop, PALETTE),
        "native": lambda: ds.posterize(crop, palette=PALETTE, space="rgb", use_lut=False),
    }[impl]
    _bench(benchmark, "posterize-python-loop-128px", impl, fn, 128 * 128 / 1e6, rounds=3)


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["native-with-table-build", "native"])
def test_100mp_lab(benchmark, impl):
    """105 MP (astronaut tiled to 10240 × 10240), 27 colours in CIELAB: the issue's target of
    100 MP/s on two cores, once with the label table built inside the timing (cold), once warm."""
    big = np.tile(data.astronaut(), (20, 20, 1))

    def cold():
        kernels._lut_cache.clear()
        return ds.posterize(big, palette=PALETTE, space="lab")

    if impl == "native":
        kernels._palette_lut(PALETTE, "lab", 0)
        fn = lambda: ds.posterize(big, palette=PALETTE, space="lab")  # noqa: E731
    else:
        fn = cold
    _bench(benchmark, "posterize-100MP-lab27", impl, fn, big.shape[0] * big.shape[1] / 1e6, rounds=3)
