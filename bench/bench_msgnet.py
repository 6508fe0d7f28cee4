"""MSG-Net (style image at run time): the engine against PyTorch eager on the same random-weight
network (ngf=128, as published; a trained one runs at the same speed), in the same run.

    python -m pytest bench/bench_msgnet.py --benchmark-only

Groups: setting a style from a 512 x 512 image (encoder pass + Gram matrix; the native path uses
the engine and ds.gram, cache bypassed), the cost of a style already seen (the per-file cache),
and stylising a 1920 x 1080 photo.  Devices: "cpu" (ONNX Runtime's CPU provider) and "auto"
(the fastest provider usable here, e.g. OpenVINO on an Intel CPU); CUDA where present.
"""
from __future__ import annotations

import numpy as np
import pytest

import deepshop_native as ds

torch = pytest.importorskip("torch")

from deepshop_export.families.msgnet.export import export_msgnet  # noqa: E402
from deepshop_export.families.msgnet.network import MSGNet, gram_matrix  # noqa: E402

DEVICES = ["cpu", "auto", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(scope="module")
def msgnet():
    torch.manual_seed(0)
    return MSGNet(ngf=128).eval()


@pytest.fixture(scope="module")
def msgnet_path(tmp_path_factory, msgnet):
    path = tmp_path_factory.mktemp("msgnet") / "msgnet.onnx"
    export_msgnet(msgnet, path, name="bench", provenance={"source": "random weights"}, validate=False)
    return str(path)


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _skip_unusable(device):
    if device == "cuda" and ("CUDAExecutionProvider" not in ds.available_providers() or not torch.cuda.is_available()):
        pytest.skip("CUDA not available")


def _bench(benchmark, fn, rounds):
    fn()                      # warm-up: sessions, arenas, shapes
    benchmark.pedantic(fn, rounds=rounds, iterations=1)


def _bgr(img, device="cpu"):
    return torch.from_numpy(img).to(device).permute(2, 0, 1)[None].float().flip(1)


# ------------------------------------------------------------------ set_style at 512 x 512

@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_set_style_torch(benchmark, msgnet, device):
    _skip_unusable(device)
    benchmark.group, benchmark.name = "msgnet set_style 512x512", f"test_[torch-eager-{device}]"
    style, model = _image(512, 512, 1), msgnet.to(device)

    def run():
        with torch.inference_mode():
            return gram_matrix(model.encode(_bgr(style, device))).cpu().numpy()
    _bench(benchmark, run, 5)


@pytest.mark.parametrize("device", DEVICES)
def test_set_style_native(benchmark, msgnet_path, device):
    _skip_unusable(device)
    net = ds.StyleNet(msgnet_path, device=device)
    benchmark.group, benchmark.name = "msgnet set_style 512x512", f"test_[native-{device}={net.device_used}]"
    style = _image(512, 512, 1)
    _bench(benchmark, lambda: net.set_style(style), 5)     # an array: no cache, a full encoder pass + Gram


def test_set_style_cached(benchmark, msgnet_path, tmp_path):
    """A style file seen before: the cached Gram (no encoder pass)."""
    from PIL import Image
    path = tmp_path / "style.png"
    Image.fromarray(_image(512, 512, 1)).save(path)
    net = ds.StyleNet(msgnet_path, device="cpu")
    benchmark.group, benchmark.name = "msgnet set_style 512x512", "test_[native-cpu-cached-file]"
    _bench(benchmark, lambda: net.set_style(path), 20)


# ------------------------------------------------------------------ stylise 1920 x 1080

@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_stylize_torch(benchmark, msgnet, device):
    _skip_unusable(device)
    benchmark.group, benchmark.name = "msgnet stylize 1920x1080", f"test_[torch-eager-{device}]"
    photo, model = _image(1080, 1920), msgnet.to(device)
    with torch.inference_mode():
        g = gram_matrix(model.encode(_bgr(_image(512, 512, 1), device)))

    def run():
        with torch.inference_mode():
            y = model(_bgr(photo, device), g).flip(1).clamp(0, 255).round().to(torch.uint8)
            return y[0].permute(1, 2, 0).cpu().numpy()
    _bench(benchmark, run, 2)


@pytest.mark.parametrize("tile", ["auto", 0])
@pytest.mark.parametrize("device", DEVICES)
def test_stylize_native(benchmark, msgnet_path, device, tile):
    _skip_unusable(device)
    net = ds.StyleNet(msgnet_path, device=device, tile=tile).set_style(_image(512, 512, 1))
    plan = net.plan(1080, 1920)
    label = "whole" if tile == 0 else f"tiles{plan['tiles_x'] * plan['tiles_y']}"
    benchmark.group, benchmark.name = "msgnet stylize 1920x1080", f"test_[native-{device}={net.device_used}-{label}]"
    photo = _image(1080, 1920)
    _bench(benchmark, lambda: net(photo), 2)
