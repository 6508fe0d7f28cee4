"""Execution providers and precision: what device= and precision= accept, which provider
device="auto" takes and why, and that every installed provider computes the same image as
torch fp32 within the documented bound."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native import _native
from deepshop_native.core import runtime as _runtime
from deepshop_native.pipelines.stylizer import AUTO_PRECISION_BOUND

from conftest import OPENVINO_PLUGIN
from model_factory import torch_reference

torch = pytest.importorskip("torch")

HIDDEN = "/nonexistent/openvino-plugin.so"  # $DEEPSHOP_OPENVINO_EP_LIBRARY pointing nowhere hides the plugin


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def openvino_devices() -> list[str]:
    """OpenVINO device types the installed plugin serves here ([] without the plugin)."""
    if not OPENVINO_PLUGIN:
        return []
    _runtime.ensure_runtime()
    if _native.register_openvino(OPENVINO_PLUGIN, ""):
        return []
    return [t for p, t, _ in _native.ep_devices() if p == "OpenVINOExecutionProvider"]


def rand_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- what the options accept -----------------------------------------------------------------

@pytest.mark.parametrize("device", ["tpu", "cuda:", "cuda:x", "openvino:FPGA", "cpu:0", ""])
def test_bad_device_is_an_option_error(identity_onnx, device):
    with pytest.raises(ds.OptionError, match="device:? .* is not one of .*openvino:GPU"):
        ds.Stylizer(identity_onnx, device=device)


@pytest.mark.parametrize("precision", ["half", "float32", "int4", ""])
def test_bad_precision_is_an_option_error(identity_onnx, precision):
    with pytest.raises(ds.OptionError, match="precision:? .* is not one of 'auto', 'fp32', 'bf16', 'fp16', 'int8'"):
        ds.Stylizer(identity_onnx, device="cpu", precision=precision)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cpu_provider_refuses_reduced_precision(identity_onnx, precision):
    with pytest.raises(ds.DeviceError, match=f"CPU provider computes in fp32 only, precision '{precision}'"):
        ds.Stylizer(identity_onnx, device="cpu", precision=precision)


def test_cpu_provider_reports_itself(identity_onnx):
    st = ds.Stylizer(identity_onnx, device="CPU", precision="FP32")
    assert (st.provider, st.device_used, st.precision, st.fallback_reason) == ("CPUExecutionProvider", "cpu", "fp32", "")


def test_tile_auto_is_the_providers_own(identity_onnx):
    assert ds.Stylizer(identity_onnx, device="cpu").tile == ds.DEFAULT_TILE
    assert ds.Stylizer(identity_onnx, device="cpu", tile=256).tile == 256
    assert ds.Stylizer(identity_onnx, device="cpu", tile=None).tile == 0
    for bad in (-1, "big"):
        with pytest.raises(ds.OptionError, match="tile: must be"):
            ds.Stylizer(identity_onnx, device="cpu", tile=bad)


@pytest.mark.parametrize("device,precision,threads,expected", [
    ("CPU", "bf16", 0, {"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}}),
    ("CPU", "fp32", 2, {"CPU": {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": "2"}}),
    ("GPU", "fp16", 2, {"GPU": {"INFERENCE_PRECISION_HINT": "f16"}}),
])
def test_openvino_options_are_the_documented_json(device, precision, threads, expected):
    """The plugin's load_config, as OpenVINO documents it: {device: {property: value}}."""
    assert json.loads(_native.openvino_load_config(device, precision, threads)) == expected


def test_bf16_detection_matches_proc_cpuinfo():
    flags = cpu_flags()
    assert _native.cpu_has_bf16() == bool({"avx512_bf16", "amx_bf16"} & flags)


# --- finding the plugin, and auto without it -------------------------------------------------

def test_plugin_is_found_without_importing_it(openvino_plugin):
    path, missing = _runtime.find_openvino_plugin()
    assert "onnxruntime_ep_openvino" not in sys.modules
    if not path:
        assert "not installed" in missing and "deepshop-native[openvino]" in missing
        pytest.skip("onnxruntime-ep-openvino is not installed")
    assert Path(path).is_file() and Path(path).name == _runtime.OPENVINO_PLUGIN_FILE and not missing


def test_auto_without_plugin_falls_back_to_cpu_with_one_line(identity_onnx, monkeypatch):
    monkeypatch.setenv(_runtime.ENV_OPENVINO_LIBRARY, HIDDEN)
    st = ds.Stylizer(identity_onnx, device="auto")
    if st.provider == "CUDAExecutionProvider":
        pytest.skip("CUDA usable here: auto takes it before OpenVINO")
    assert (st.provider, st.device_used, st.precision) == ("CPUExecutionProvider", "cpu", "fp32")
    reason = st.fallback_reason
    assert "\n" not in reason
    clauses = dict(c.split(": ", 1) for c in reason.split("; "))
    assert list(clauses) == ["CUDA", "OpenVINO"]
    assert _runtime.ENV_OPENVINO_LIBRARY in clauses["OpenVINO"] and "not a file" in clauses["OpenVINO"]
    img = rand_image(40, 48)
    np.testing.assert_array_equal(st(img), img)  # and it runs


def test_openvino_without_plugin_is_a_device_error(identity_onnx, monkeypatch):
    monkeypatch.setenv(_runtime.ENV_OPENVINO_LIBRARY, HIDDEN)
    with pytest.raises(ds.DeviceError, match=r"device 'openvino' requested, but \$DEEPSHOP_OPENVINO_EP_LIBRARY"):
        ds.Stylizer(identity_onnx, device="openvino")


def test_plugin_on_a_cpu_it_does_not_serve(identity_onnx, openvino_plugin):
    """The OpenVINO plugin lists Intel devices only: elsewhere auto says so and uses the CPU."""
    if not openvino_plugin:
        pytest.skip("onnxruntime-ep-openvino is not installed")
    if "CPU" in openvino_devices():
        pytest.skip("the OpenVINO plugin serves this CPU")
    with pytest.raises(ds.DeviceError, match="lists no CPU device here .*Intel CPUs only"):
        ds.Stylizer(identity_onnx, device="openvino")
    st = ds.Stylizer(identity_onnx, device="auto")
    if st.provider != "CUDAExecutionProvider":
        assert st.provider == "CPUExecutionProvider"
        assert "OpenVINO: the OpenVINO plugin lists no CPU device here" in st.fallback_reason


def test_auto_takes_openvino_where_it_serves_the_cpu(identity_onnx, openvino_plugin):
    if "CPU" not in openvino_devices():
        pytest.skip("no OpenVINO CPU device here (plugin missing, or a CPU it does not serve)")
    st = ds.Stylizer(identity_onnx, device="auto")
    if st.provider == "CUDAExecutionProvider":
        pytest.skip("CUDA usable here: auto takes it first")
    assert (st.provider, st.device_used) == ("OpenVINOExecutionProvider", "openvino:CPU")
    assert st.precision == ("bf16" if _native.cpu_has_bf16() else "fp32")
    # OpenVINO's tile runs a 1080p frame in one window (one compiled shape, no thumbnail).
    assert st.plan(1080, 1920)["window"] == (1080, 1920) and st.tile > ds.DEFAULT_TILE


# --- every provider against torch fp32 -------------------------------------------------------

def _provider_settings():
    """(device, precision) for every provider and precision usable here, the CPU provider first."""
    settings = [("cpu", "fp32")]
    try:
        ov = openvino_devices()
    except ds.DeepshopError:
        ov = []
    if "CPU" in ov:
        settings += [("openvino:CPU", "fp32")] + ([("openvino:CPU", "bf16")] if _native.cpu_has_bf16() else [])
    for t in ("GPU", "NPU"):
        if t in ov:
            settings += [(f"openvino:{t}", "fp32"), (f"openvino:{t}", "fp16")]
    if "CUDAExecutionProvider" in ds.available_providers():
        settings.append(("cuda", "fp32"))
    return settings


@pytest.mark.parametrize("device,precision", _provider_settings())
def test_provider_agrees_with_torch_and_cpu_provider(transformer_onnx, transformer_net, device, precision,
                                                     openvino_plugin):
    img = rand_image(136, 200, seed=3)
    try:
        st = ds.Stylizer(transformer_onnx, device=device, precision=precision, tile=0)
    except ds.DeviceError as e:
        if not device.startswith("cuda"):
            raise  # OpenVINO settings are listed only where the plugin serves the device: it must start
        pytest.skip(f"{device} not usable here: {e}")
    assert st.precision == precision and st.device_used.lower().startswith(device.split(":")[0])
    out = st(img.astype(np.float32) / 255) * 255
    ref = torch_reference(transformer_net, img)
    cpu = ds.Stylizer(transformer_onnx, device="cpu", tile=0)(img.astype(np.float32) / 255) * 255
    mean_bound, max_bound = AUTO_PRECISION_BOUND if precision != "fp32" else (0.02, 0.05)
    for other in (ref, cpu):
        err = np.abs(out - other)
        assert err.mean() <= mean_bound and err.max() <= max_bound, (device, precision, err.mean(), err.max())


# --- the command line ------------------------------------------------------------------------

def test_info_says_which_provider_and_why(identity_onnx):
    r = subprocess.run([sys.executable, "-m", "deepshop_native", "info", identity_onnx, "--json"],
                       capture_output=True, text=True, env={**os.environ, _runtime.ENV_OPENVINO_LIBRARY: HIDDEN})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    if info["provider"] != "CUDAExecutionProvider":
        assert (info["provider"], info["device"], info["precision"]) == ("CPUExecutionProvider", "cpu", "fp32")
        assert "OpenVINO: " in info["fallback_reason"]
    assert info["cpu_bf16"] == _native.cpu_has_bf16()


def test_cli_precision_the_device_cannot_do(identity_onnx, tmp_path):
    src = tmp_path / "a.png"
    from PIL import Image
    Image.fromarray(rand_image(32, 32)).save(src)
    r = subprocess.run([sys.executable, "-m", "deepshop_native", "stylize", str(src), "--model", identity_onnx,
                        "--device", "cpu", "--precision", "bf16", "-q"], capture_output=True, text=True)
    assert r.returncode == 1 and "CPU provider computes in fp32 only" in r.stderr
    assert not (tmp_path / "a_styled.png").exists()


def test_cli_says_why_only_when_a_faster_provider_is_installed(identity_onnx, tmp_path, capsys, monkeypatch):
    from PIL import Image
    from deepshop_native.cli import main
    Image.fromarray(rand_image(32, 32)).save(tmp_path / "a.png")
    monkeypatch.setenv(_runtime.ENV_OPENVINO_LIBRARY, HIDDEN)
    assert main(["stylize", str(tmp_path / "a.png"), "-m", identity_onnx, "-o", str(tmp_path / "b.png")]) == 0
    said = "deepshop: running on cpu (fp32): " in capsys.readouterr().err
    assert said == ("CUDAExecutionProvider" in ds.available_providers())
    if OPENVINO_PLUGIN and "CPU" not in openvino_devices():
        monkeypatch.setenv(_runtime.ENV_OPENVINO_LIBRARY, OPENVINO_PLUGIN)  # installed, but not for this CPU
        assert main(["stylize", str(tmp_path / "a.png"), "-m", identity_onnx, "-o", str(tmp_path / "c.png")]) == 0
        err = capsys.readouterr().err
        assert "deepshop: running on cpu (fp32): " in err and "OpenVINO: the OpenVINO plugin lists no CPU" in err
