"""Native engine against PyTorch eager (and OpenCV's dnn module where it can run the model) on
the same TransformerNet weights, plus tiling overhead against one whole-image ORT run.

    python -m pytest bench/bench_engine.py --benchmark-only            # 512x512 and 1080p
    python -m pytest bench/bench_engine.py --benchmark-only -m slow    # 3840x2160 as well

Every entry of a group does the same job on the same image; the summary prints ratios.
"""
from __future__ import annotations

import numpy as np
import pytest

import deepshop_native as ds

torch = pytest.importorskip("torch")

SIZES = [
    pytest.param((512, 512), id="512x512"),
    pytest.param((1080, 1920), id="1920x1080"),
    pytest.param((2160, 3840), id="3840x2160", marks=pytest.mark.slow),
]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _image(hw):
    return np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)


def _need_cuda(device):
    if device == "cuda":
        if "CUDAExecutionProvider" not in ds.available_providers() or not torch.cuda.is_available():
            pytest.skip("CUDA not available")


def _bench(benchmark, fn, rounds):
    fn()  # warm-up: session arenas, kernels, caches
    benchmark.pedantic(fn, rounds=rounds, iterations=1)


def _rounds(hw):
    return 3 if hw[0] * hw[1] > 3_000_000 else 5


def _entry(benchmark, hw, device, label):
    """Names the entry within its group (one group per image size and device); returns the image."""
    _need_cuda(device)
    benchmark.group = f"stylize {hw[1]}x{hw[0]} {device}"
    benchmark.name = f"test_[{label}-{device}]"
    return _image(hw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hw", SIZES)
def test_torch_eager(benchmark, net, hw, device):
    """The PyTorch fast_neural_style way: uint8 HWC -> float NCHW*255 -> net -> clamp -> uint8."""
    img = _entry(benchmark, hw, device, "torch-eager")
    model = net.to(device)

    def run():
        with torch.inference_mode():
            x = torch.from_numpy(img).to(device).permute(2, 0, 1)[None].float()
            y = model(x).clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).cpu().numpy()
        return y

    _bench(benchmark, run, _rounds(hw))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hw", SIZES)
def test_native_default_tiles(benchmark, model_path, hw, device):
    img = _entry(benchmark, hw, device, f"native-tile{ds.DEFAULT_TILE}")
    st = ds.Stylizer(model_path, device=device, batch=4 if device == "cuda" else 1)
    _bench(benchmark, lambda: st(img), _rounds(hw))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hw", SIZES)
def test_native_whole_image(benchmark, model_path, hw, device):
    """One whole-image ORT run through the engine: the reference for tiling overhead."""
    img = _entry(benchmark, hw, device, "ort-whole")
    st = ds.Stylizer(model_path, device=device, tile=0)
    _bench(benchmark, lambda: st(img), _rounds(hw))


@pytest.mark.parametrize("hw", SIZES[:2])
def test_opencv_dnn(benchmark, model_path, hw):
    """OpenCV's dnn module on the same ONNX file, where it can import it."""
    cv2 = pytest.importorskip("cv2")
    try:
        cvnet = cv2.dnn.readNetFromONNX(model_path)
    except cv2.error as e:
        pytest.skip(f"OpenCV cannot import the model: {str(e).splitlines()[-1][:120]}")
    img = _entry(benchmark, hw, "cpu", "opencv-dnn")

    def run():
        cvnet.setInput(cv2.dnn.blobFromImage(img, 1.0, swapRB=False))
        y = cvnet.forward()[0].transpose(1, 2, 0)
        return np.clip(y, 0, 255).round().astype(np.uint8)

    try:
        run()
    except cv2.error as e:
        pytest.skip(f"OpenCV cannot run the model: {str(e).splitlines()[-1][:120]}")
    _bench(benchmark, run, _rounds(hw))
