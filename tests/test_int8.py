"""precision="int8": the int8 file NAME.int8.onnx made by `deepshop-export quantize`, found beside the
model, refused with a DeviceError naming what is missing, checked against its source (a changed
model makes it stale), and taken by precision="auto" by a CPU-feature rule (tested as the pure
function, and end to end on this CPU).  The int8 output is checked against the fp32 model run by
ONNX Runtime's CPU provider and against torch, on the bundled (trained) style and on a random
TransformerNet; the windows OpenVINO called directly takes are checked by their plans."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native import _native
from deepshop_native.core.metadata import read_metadata
from deepshop_native.core.paths import DEFAULT_MODEL

from conftest import OPENVINO_LIBRARY
from model_factory import identity_model, torch_reference

pytest.importorskip("onnxruntime.quantization")
quantize = pytest.importorskip("deepshop_export.onnx.quantize")

BOUND_DB = _native.INT8_AUTO_MIN_PSNR_DB
# Small and quick: 6 calibration photos, 2 held out, longer side 128 px.
QUICK = dict(calibration=6, held_out=2, size=128)


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_sibling_path_is_the_engines():
    assert quantize.quantized_path("/m/style.onnx") == "/m/style.int8.onnx"
    assert quantize.quantized_path("style.model") == "style.model.int8.onnx"


@pytest.fixture(scope="module")
def bundled_int8(tmp_path_factory):
    """The bundled style (a trained, global-statistics graph) and its int8 file beside a copy."""
    if not DEFAULT_MODEL.is_file():
        pytest.skip("no bundled style in this install")
    folder = tmp_path_factory.mktemp("int8")
    model = folder / "style.onnx"
    shutil.copyfile(DEFAULT_MODEL, model)
    report = quantize.quantize_model(model, device="cpu", **QUICK)
    return model, Path(report.path), report


def test_quantize_writes_the_file_with_provenance(bundled_int8):
    model, int8, report = bundled_int8
    assert int8 == model.with_name("style.int8.onnx") and int8.stat().st_size < model.stat().st_size / 2
    meta = read_metadata(int8)
    source = read_metadata(model)
    # The source's keys carried over (its pixel format, roles, statistics layout), precision int8.
    for key in ("deepshop.family", "deepshop.value_range", "deepshop.inputs", "deepshop.statistics"):
        assert meta[key] == source[key]
    assert meta["deepshop.precision"] == "int8"
    assert meta["deepshop.quantized_from"] == quantize.fingerprint(model)
    assert float(meta["deepshop.quantized_psnr"]) == pytest.approx(min(report.psnr_db), abs=0.01)
    prov = json.loads(meta["deepshop.quantization"])
    assert "scikit-image" in prov["photos"] and len(prov["calibration"]) == 6 and len(prov["held_out"]["photos"]) == 2
    assert not set(prov["calibration"]) & set(prov["held_out"]["photos"])
    assert prov["command"].startswith("deepshop-export quantize style.onnx") and prov["kept_float"]


def test_int8_output_is_within_the_bound_against_fp32(bundled_int8, photos):
    """The trained style in int8 against the same model in fp32 on ONNX Runtime's CPU provider, on a
    photo the calibration did not see (coffee at 160 px is not among the 128 px calibration crops)."""
    model, int8, _ = bundled_int8
    img = np.asarray(photos["coffee"][::2, ::2][:160, :200])
    st = ds.Stylizer(model, device="cpu", precision="int8")
    assert (st.precision, st.provider) == ("int8", "CPUExecutionProvider")
    out = st(img)
    ref = ds.Stylizer(model, device="cpu", precision="fp32")(img)
    assert psnr(out, ref) >= BOUND_DB
    assert np.abs(out.astype(float) - ref).mean() < 2.0


def test_random_transformer_net_int8_against_torch(tmp_path, transformer_net, transformer_onnx):
    """A random-weight TransformerNet (no trained structure: a harder case for 8 bits) in int8
    against torch fp32: close, if not within the trained model's bound."""
    model = tmp_path / "tnet.onnx"
    shutil.copyfile(transformer_onnx, model)
    quantize.quantize_model(model, device="cpu", **QUICK)
    img = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    out = ds.Stylizer(model, device="cpu", precision="int8", tile=0)(img)
    ref = np.clip(torch_reference(transformer_net, img), 0, 255).round()
    fp32 = ds.Stylizer(model, device="cpu", precision="fp32", tile=0)(img)
    # The random network's output is a few levels wide (mean ~1): int8 is off by a fraction of it.
    assert np.abs(fp32 - ref).max() <= 1
    err = np.abs(out.astype(float) - ref)
    assert err.mean() < 0.5 and err.max() <= 4, (err.mean(), err.max())


def test_int8_without_its_file_is_a_device_error_naming_it(tmp_path, transformer_onnx):
    model = tmp_path / "plain.onnx"
    shutil.copyfile(transformer_onnx, model)
    for device in ("cpu", "auto"):
        with pytest.raises(ds.DeviceError, match=r"precision 'int8' needs the model's int8 file, and there is no "
                                                 r"plain\.int8\.onnx beside the model \(make it with: deepshop-export "
                                                 r"quantize plain\.onnx\)"):
            ds.Stylizer(model, device=device, precision="int8")
    # Auto runs fp32 and says why not int8 (on this CPU: no VNNI, or no file).
    st = ds.Stylizer(model, device="cpu")
    assert st.precision == "fp32" and "fp32" in st.precision_reason


def test_int8_is_refused_where_it_does_not_run(bundled_int8):
    model, _, _ = bundled_int8
    with pytest.raises(ds.DeviceError, match="int8"):
        ds.Stylizer(model, device="cuda", precision="int8")
    with pytest.raises(ds.OptionError, match="'int8'"):
        ds.Stylizer(model, precision="int4")


def test_a_stale_int8_file_is_not_taken(bundled_int8, tmp_path):
    model, int8, _ = bundled_int8
    copy, copy_int8 = tmp_path / "style.onnx", tmp_path / "style.int8.onnx"
    shutil.copyfile(int8, copy_int8)
    data = bytearray(model.read_bytes())
    data[-1] ^= 1  # the last byte of the last initializer: another model of the same size
    copy.write_bytes(bytes(data))
    with pytest.raises(ds.DeviceError, match=r"style\.int8\.onnx was made from another version of style\.onnx "
                                             r"\(stale"):
        ds.Stylizer(copy, device="cpu", precision="int8")
    # A file that is not one made by the quantizer is not taken either.
    shutil.copyfile(model, copy_int8)
    with pytest.raises(ds.DeviceError, match="not an int8 model made by deepshop-export quantize"):
        ds.Stylizer(copy, device="cpu", precision="int8")


def test_an_int8_file_runs_as_int8_and_refuses_other_precisions(bundled_int8, photos):
    _, int8, _ = bundled_int8
    st = ds.Stylizer(int8, device="cpu")
    assert st.precision == "int8" and st.precision_reason == "int8: the model is an int8 file"
    with pytest.raises(ds.DeviceError, match=r"an int8 file .* precision 'fp32' needs the fp32 model it was made from"):
        ds.Stylizer(int8, device="cpu", precision="fp32")


# --- the rule of precision="auto" ------------------------------------------------------------

GOOD = dict(int8_path="/m/s.int8.onnx", int8_missing="", psnr_db=41.0, model_is_int8=False)


@pytest.mark.parametrize("features,file,expected,why", [
    (["avx2", "avx512f", "avx512_vnni"], GOOD, "int8", "AVX512-VNNI and s.int8.onnx is current, held-out PSNR 41.0 dB"),
    (["avx2", "avx_vnni"], GOOD, "int8", "AVX-VNNI"),
    (["avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16", "avx512_bf16"], GOOD, "bf16", "unmeasured against bf16"),
    (["avx2", "avx512f", "avx512_bf16"], GOOD, "bf16", "AVX512-BF16"),
    (["avx2"], GOOD, "fp32", "no AVX512-VNNI, AVX-VNNI or AMX-INT8 for int8"),
    (["avx2", "avx512f", "avx512_vnni"], {**GOOD, "psnr_db": 37.9}, "fp32", "PSNR of 37.9 dB against fp32, below 38 dB"),
    (["avx2", "avx512f", "avx512_vnni"], {**GOOD, "int8_path": "", "int8_missing": "there is no s.int8.onnx"},
     "fp32", "int8 not taken: there is no s.int8.onnx"),
    ([], {**GOOD, "int8_path": "", "model_is_int8": True}, "int8", "the model is an int8 file"),
])
def test_auto_precision_rule(features, file, expected, why):
    precision, reason = _native.auto_cpu_precision(features, **file)
    assert precision == expected and reason.startswith(expected + ":") and why in reason, reason


def test_cpu_features_match_proc_cpuinfo():
    flags = cpu_flags()
    names = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI",
             "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8"}
    listed = set(_native.cpu_features().split())
    for flag, name in names.items():
        assert (name in listed) == (flag in flags), (flag, listed)


def test_auto_on_this_cpu_follows_the_rule(bundled_int8, openvino_library):
    """End to end: OpenVINO called directly, the int8 file present and current, this CPU's features."""
    model, int8, report = bundled_int8
    features = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")
                if f in cpu_flags()]
    expected, why = _native.auto_cpu_precision(features, str(int8), "", min(report.psnr_db), False)
    st = ds.Stylizer(model)
    assert (st.provider, st.precision, st.precision_reason) == ("OpenVINO", expected, why)
    info = ds.model_info(model)
    assert (info["precision"], info["precision_reason"]) == (expected, why)
    assert info["cpu_features"] == _native.cpu_features()
    # int8 asked for by name runs wherever the file is, and agrees with the CPU provider's int8.
    img = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    ov8 = ds.Stylizer(model, precision="int8")(img)
    cpu8 = ds.Stylizer(model, device="cpu", precision="int8")(img)
    assert psnr(ov8, cpu8) >= BOUND_DB


# --- windows of OpenVINO called directly -----------------------------------------------------

@pytest.mark.skipif(not OPENVINO_LIBRARY, reason="the openvino package is not installed")
def test_openvino_windows(transformer_onnx, openvino_library):
    fp32 = ds.Stylizer(transformer_onnx, precision="fp32")
    assert fp32.provider == "OpenVINO" and fp32.tile == 1536
    # A 1080p frame runs whole: one compiled shape, no halo, no harmonizing thumbnail.
    plan = fp32.plan(1080, 1920)
    assert (plan["tiles_y"], plan["tiles_x"], plan["harmonize"]) == (1, 1, False)
    # 4K: whole where a quarter of the memory holds its working memory (600 B a pixel in fp32:
    # machines of 20 GB and more), else windows of the square window's area (the memory bound)
    # shaped to compute the fewest pixels: four of full height (tests/test_tile_area.py works it
    # out); 8192 x 8192: 6 x 6 on every machine (whole_area is at most 8 GiB's worth).
    plan = fp32.plan(2160, 3840)
    expected = (1, 1, (2160, 3840)) if 2160 * 3840 <= fp32._tiles.whole_area else (1, 4, (2160, 1064))
    assert (plan["tiles_y"], plan["tiles_x"], plan["window"]) == expected
    plan = fp32.plan(8192, 8192)
    assert (plan["tiles_y"], plan["tiles_x"]) == (6, 6)
    # The statistics graph needs about twice the memory per pixel in fp32 (on some CPUs): smaller
    # windows; in int8 (measured where auto takes it) a 1080p frame runs whole, without thumbnail.
    if DEFAULT_MODEL.is_file():
        assert ds.Stylizer(DEFAULT_MODEL, precision="fp32").tile == 1088
        int8 = ds.Stylizer(DEFAULT_MODEL, precision="int8")
        plan = int8.plan(1080, 1920)
        assert int8.tile == 1504 and (plan["tiles_y"], plan["tiles_x"], plan["passes"]) == (1, 1, 1)


# --- the command line --------------------------------------------------------------------------

def _export_cli(*args):
    return subprocess.run([sys.executable, "-m", "deepshop_export", *map(str, args)], capture_output=True, text=True)


def test_quantize_command_errors(tmp_path, bundled_int8, transformer_onnx):
    model, int8, _ = bundled_int8
    r = _export_cli("quantize", model)
    assert r.returncode == 1 and "exists; pass overwrite=True (--overwrite)" in r.stderr and "Traceback" not in r.stderr
    r = _export_cli("quantize", tmp_path / "missing.onnx")
    assert r.returncode == 1 and "missing.onnx: no such model file" in r.stderr
    other = identity_model(tmp_path / "identity.onnx")
    r = _export_cli("quantize", other)
    assert r.returncode == 1 and "family '(none)' is not one measured in int8" in r.stderr
    r = _export_cli("quantize", int8, "-o", tmp_path / "again.onnx")
    assert r.returncode == 1 and "its precision is int8; quantize its fp32 export" in r.stderr
    r = _export_cli("quantize", transformer_onnx, "-o", tmp_path / "x.onnx", "--photos", tmp_path / "none")
    assert r.returncode == 1 and "--photos" in r.stderr and "no such folder" in r.stderr
    assert not (tmp_path / "x.onnx").exists()
