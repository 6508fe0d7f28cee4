"""Execution providers and precisions on the same TransformerNet weights, against PyTorch eager
fp32, all in one run: ONNX Runtime's CPU provider called from Python, deepshop with
device="auto" (whatever it picks here), deepshop on its CPU provider (the engine before
OpenVINO), deepshop on OpenVINO through ONNX Runtime's plugin fp32 / bf16, deepshop calling
OpenVINO's C API itself fp32 / bf16, and OpenVINO called directly from Python (same ONNX file,
same precision, compiled for the image's shape: the strongest way to call it).

    python -m pytest bench/bench_providers.py --benchmark-only      # 512x512 and 1920x1080
    python -m pytest bench/bench_providers.py --benchmark-only -m "" --benchmark-json B.json  # and 3840x2160
    python bench/ratios.py B.json --same-precision   # auto against OpenVINO from Python, precision for precision

int8: the same network quantized by `deepshop-export quantize` (its int8 file beside a copy of the
model): deepshop on it by name (OpenVINO called directly, ONNX Runtime's CPU provider), OpenVINO
from Python on the same int8 file, and deepshop `auto` on the model with its int8 file beside it
(int8 where auto's rule takes it: cpp/engine/execution_providers.h, auto_cpu_precision).

Entries that cannot run here skip themselves (no OpenVINO plugin device, no `openvino`
package).  The torch baseline runs last, size by size (its memory churn slows what is compiled
right after it: _pending); it then records each earlier entry's error against torch fp32 on 0..255
(mean and max abs, uint8 outputs), printed after the speed ratios, and fails, naming them, where
deepshop's auto entries are beyond the documented bound
(deepshop_native.pipelines.stylizer.AUTO_PRECISION_BOUND; in int8, whose bound is a PSNR against fp32
on held-out photos, the auto entry checks the random network's outputs against its fp32 outputs at
that PSNR itself).  Run without the torch entries (-k), nothing records or checks the error.
"""
from __future__ import annotations

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native.core import runtime as _runtime
from deepshop_native.pipelines.stylizer import AUTO_PRECISION_BOUND

torch = pytest.importorskip("torch")

SIZES = [pytest.param((512, 512), id="512x512"), pytest.param((1080, 1920), id="1920x1080"),
         pytest.param((2160, 3840), id="3840x2160", marks=pytest.mark.slow)]
# (benchmark, image shape, output, check) of each entry timed so far: test_torch_eager, which runs
# last, records their error against torch fp32 and runs their checks.  torch runs last so that its
# memory churn (a 4K run allocates and frees gigabytes) falls on no entry: an OpenVINO instance
# made just after torch's 4K run was 7 % slower over its rounds in a trial (the AMX machine,
# 2026-12-07), the next one was not.
_pending: list = []


@pytest.fixture(scope="module", autouse=True)
def _runtimes_started(model_path):
    """OpenVINO started, from Python and through deepshop, before the first timed entry: the first
    entries of a run were the slowest of their route (5-11 % at 512 x 512 and 1080p in a run on the
    AMX machine, 2026-12-07, whichever route came first), a cost no later entry paid."""
    img = _image((256, 256))
    try:
        import openvino as ov
    except ImportError:
        ov = None
    if ov is not None:
        core = ov.Core()
        net = core.read_model(model_path)
        net.reshape([1, 3, 256, 256])
        core.compile_model(net, "CPU").create_infer_request().infer({0: img.transpose(2, 0, 1)[None].astype(np.float32)})
    ds.Stylizer(model_path, device="auto")(img)


def _image(hw):
    return np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)


def _entry(benchmark, hw, label):
    benchmark.group = f"providers {hw[1]}x{hw[0]}"
    benchmark.name = f"test_[{label}]"
    return _image(hw)


def _run(benchmark, img, fn, check=None):
    """Warm up (sessions, compiled shapes), time; the output is kept for test_torch_eager (check(err)
    is then called with its error against torch fp32, 0..255)."""
    out = fn()
    benchmark.pedantic(fn, rounds=3 if img.size > 3_000_000 else 5, iterations=1)
    _pending.append((benchmark, img.shape, out, check))
    return out


def _openvino_device_or_skip():
    if "CPU" not in [t for p, t, _ in _runtime.execution_devices() if p == "OpenVINOExecutionProvider"]:
        pytest.skip("the OpenVINO plugin lists no CPU device here (not installed, or not an Intel CPU)")


@pytest.mark.parametrize("hw", SIZES)
def test_onnxruntime_python_cpu(benchmark, net, model_path, hw):
    ort = pytest.importorskip("onnxruntime")
    img = _entry(benchmark, hw, "onnxruntime-python-cpu")
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])

    def run():
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
        y = session.run(None, {"input": x})[0][0].transpose(1, 2, 0)
        return np.clip(y, 0, 255).round().astype(np.uint8)

    _run(benchmark, img, run)


def _psnr(a, b):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _auto(benchmark, net, model, hw, label):
    img = _entry(benchmark, hw, label)
    st = ds.Stylizer(model, device="auto")
    # The OpenVINO-from-Python entry of the same precision (bench/ratios.py --same-precision).
    benchmark.extra_info.update(device=st.device_used, precision=st.precision, why=st.fallback_reason,
                                precision_why=st.precision_reason, same_as=f"openvino-direct-{st.precision}")
    if st.precision == "int8":
        out = _run(benchmark, img, lambda: st(img))
        del st
        fp32 = ds.Stylizer(model, device="auto", precision="fp32")
        assert _psnr(out, fp32(img)) >= ds._native.INT8_AUTO_MIN_PSNR_DB
    else:
        _run(benchmark, img, lambda: st(img),
             lambda err: err.mean() <= AUTO_PRECISION_BOUND[0] and err.max() <= AUTO_PRECISION_BOUND[1])


@pytest.mark.parametrize("hw", SIZES)
def test_deepshop_auto(benchmark, net, model_path, hw):
    _auto(benchmark, net, model_path, hw, "deepshop-auto")


@pytest.mark.parametrize("hw", SIZES)
def test_deepshop_auto_with_int8_file(benchmark, net, int8_model, hw):
    """auto on the model with its int8 file beside it: int8 where auto's rule takes it."""
    _auto(benchmark, net, int8_model[0], hw, "deepshop-auto-int8-file")


@pytest.mark.parametrize("hw", SIZES)
def test_deepshop_cpu_provider(benchmark, net, model_path, hw):
    img = _entry(benchmark, hw, "deepshop-cpu-fp32")
    st = ds.Stylizer(model_path, device="cpu")
    _run(benchmark, img, lambda: st(img))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("hw", SIZES)
def test_deepshop_openvino(benchmark, net, model_path, hw, precision):
    img = _entry(benchmark, hw, f"deepshop-openvino-{precision}")
    _openvino_device_or_skip()
    try:
        st = ds.Stylizer(model_path, device="openvino", precision=precision)
    except ds.DeviceError as e:
        pytest.skip(str(e))
    _run(benchmark, img, lambda: st(img))


@pytest.mark.parametrize("hw", SIZES)
def test_deepshop_cpu_provider_int8(benchmark, net, int8_model, hw):
    img = _entry(benchmark, hw, "deepshop-cpu-int8")
    st = ds.Stylizer(int8_model[0], device="cpu", precision="int8")
    _run(benchmark, img, lambda: st(img))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("hw", SIZES)
def test_deepshop_openvino_direct(benchmark, net, model_path, int8_model, hw, precision, monkeypatch):
    """deepshop calling OpenVINO's C API itself (what auto takes where the `openvino` wheel is
    installed, and device="openvino" where the ORT plugin lists no device: hidden here)."""
    img = _entry(benchmark, hw, f"deepshop-openvino-direct-{precision}")
    if not _runtime.find_openvino_library()[0]:
        pytest.skip("the openvino package is not installed")
    monkeypatch.setenv(_runtime.ENV_OPENVINO_LIBRARY, "none")  # ONNX Runtime's plugin hidden
    try:
        st = ds.Stylizer(int8_model[0] if precision == "int8" else model_path, device="openvino", precision=precision)
    except ds.DeviceError as e:
        pytest.skip(str(e))
    assert st.provider == "OpenVINO"
    benchmark.extra_info.update(device=st.device_used, precision=st.precision)
    _run(benchmark, img, lambda: st(img))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("hw", SIZES)
def test_openvino_direct(benchmark, net, model_path, int8_model, hw, precision):
    """OpenVINO from Python, the whole image at once (int8: the same int8 file, its other layers in f32)."""
    ov = pytest.importorskip("openvino", reason="the `openvino` package (pip install 'deepshop-native[bench]')")
    img = _entry(benchmark, hw, f"openvino-direct-{precision}")
    core = ov.Core()
    if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16 for OpenVINO")
    model = core.read_model(int8_model[1] if precision == "int8" else model_path)
    model.reshape([1, 3, *hw])  # static shape: OpenVINO's fastest compiled form
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"})
    request = compiled.create_infer_request()

    def run():
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
        y = request.infer({0: x})[0][0].transpose(1, 2, 0)
        return np.clip(y, 0, 255).round().astype(np.uint8)

    _run(benchmark, img, run)


@pytest.mark.parametrize("hw", SIZES)
def test_torch_eager(benchmark, net, hw):
    """The baseline, last (see _pending); its output is the reference of the entries before it."""
    img = _entry(benchmark, hw, "torch-eager-fp32")

    def run():
        with torch.inference_mode():
            y = net(torch.from_numpy(img).permute(2, 0, 1)[None].float())
            return y.clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()

    reference = _run(benchmark, img, run).astype(np.float32)
    failed = []
    for entry, shape, out, check in _pending:
        if shape != img.shape:
            continue
        err = np.abs(out.astype(np.float32) - reference)
        entry.extra_info.update(mean_abs=float(err.mean()), max_abs=float(err.max()))
        if check is not None and not check(err):
            failed.append(f"{entry.name}: mean abs {err.mean():.3f}, max abs {err.max():.1f} against torch fp32")
    assert not failed, "beyond the documented bound (AUTO_PRECISION_BOUND): " + "; ".join(failed)
