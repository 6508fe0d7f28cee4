"""OpenVINO called directly (the `openvino` wheel's C API, not ONNX Runtime's plugin): found
without importing it, chosen by device="auto" and, where the plugin serves no device, by
device="openvino"; and computing what ONNX Runtime's CPU provider computes, within the documented
bound (fp32 and bf16), on whole images and tiled ones (last tile cut short), on a global-statistics
graph and on a model whose image inputs are not 3-channel.  The references are ONNX Runtime's CPU
provider and numpy, never this backend's own earlier output.  Skipped without the package."""
from __future__ import annotations

import math
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native import _native
from deepshop_native.core import runtime as _runtime
from deepshop_native.models import open_model
from deepshop_native.pipelines.stylizer import AUTO_PRECISION_BOUND

from conftest import OPENVINO_LIBRARY, needs_bf16

#: fp32 against fp32 on 0..255: only the summation order differs.
FP32_BOUND = (0.02, 0.05)
PRECISIONS = ["fp32", pytest.param("bf16", marks=needs_bf16)]
# 150 x 214 with 128 px windows (halo 28, overlap 16): the last tiles of each row and column keep
# fewer pixels than the others, and the bottom-right tile is short both ways.
H, W, TILE, OVERLAP = 150, 214, 128, 16


def bound(precision):
    return FP32_BOUND if precision == "fp32" else AUTO_PRECISION_BOUND


def rand_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def assert_close(out, ref, precision, what):
    err = np.abs(np.asarray(out, np.float64) - np.asarray(ref, np.float64))
    mean_bound, max_bound = bound(precision)
    assert err.mean() <= mean_bound and err.max() <= max_bound, (what, precision, err.mean(), err.max())
    # The corner the last tile writes (the trap of a stale or wrongly shaped output buffer).
    corner = err[-8:, -8:]
    assert corner.max() <= max_bound, (what, "bottom-right corner", corner.max())


def test_library_is_found_without_importing_openvino(monkeypatch):
    if not OPENVINO_LIBRARY:
        monkeypatch.delenv(_runtime.ENV_OPENVINO_DIRECT_LIBRARY, raising=False)
        path, missing = _runtime.find_openvino_library()
        assert not path and "deepshop-native[openvino]" in missing
        pytest.skip("the openvino package is not installed")
    monkeypatch.delenv(_runtime.ENV_OPENVINO_DIRECT_LIBRARY, raising=False)
    path, missing = _runtime.find_openvino_library()
    assert "openvino" not in sys.modules
    assert path == OPENVINO_LIBRARY and Path(path).name.startswith("libopenvino_c.so") and not missing
    monkeypatch.setenv(_runtime.ENV_OPENVINO_DIRECT_LIBRARY, "none")
    path, missing = _runtime.find_openvino_library()
    assert not path and "$DEEPSHOP_OPENVINO_LIBRARY" in missing and "not a file" in missing


def test_auto_takes_direct_openvino(transformer_onnx, openvino_library):
    st = ds.Stylizer(transformer_onnx, device="auto")
    if st.provider == "CUDAExecutionProvider":
        pytest.skip("CUDA usable here: auto takes it first")
    assert (st.provider, st.device_used) == ("OpenVINO", "openvino:CPU")
    assert st.precision == ("bf16" if _native.cpu_has_bf16() else "fp32")
    # Only CUDA may be named as skipped: OpenVINO is what auto took.
    assert all(c.startswith("CUDA: ") for c in st.fallback_reason.split("; ") if c)
    # OpenVINO's own window, sized by its working memory per pixel (about twice as much in fp32).
    assert st.tile == (2176 if st.precision == "bf16" else 1536)
    # An image no larger in area than one window runs whole (a 1080p frame); so does one whose
    # working memory fits a quarter of the memory this process may use (at most 8 GiB): larger
    # ones run in windows within the window's area.
    whole = st.plan(1080, 1920)
    assert (whole["tiles_y"], whole["tiles_x"], whole["harmonize"]) == (1, 1, False)
    per_pixel = 320 if st.precision == "bf16" else 600
    assert st._tiles.whole_area == int(min(usable_memory() / 4, 8 * 2 ** 30) / per_pixel)
    side = math.isqrt(st._tiles.whole_area) // 4 * 4
    assert st.plan(side, side)["tiles_y"] * st.plan(side, side)["tiles_x"] == 1
    tiled = st.plan(side + 64, side + 64)
    assert tiled["tiles_y"] * tiled["tiles_x"] > 1 and tiled["window"][0] * tiled["window"][1] <= st.tile ** 2
    info = ds.model_info(transformer_onnx)
    assert info["provider"] == "OpenVINO" and info["openvino_direct"].startswith("OpenVINO ")


def usable_memory() -> float:
    """Physical memory, or the cgroup's limit where lower (bytes)."""
    limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < limit:
            limit = int(text)
    return float(limit)


def test_openvino_takes_direct_where_the_plugin_lists_no_device(transformer_onnx, openvino_library):
    # The suite hides ONNX Runtime's plugin ($DEEPSHOP_OPENVINO_EP_LIBRARY): as on a non-Intel CPU.
    st = ds.Stylizer(transformer_onnx, device="openvino", precision="fp32")
    assert (st.provider, st.device_used, st.precision, st.fallback_reason) == ("OpenVINO", "openvino:CPU", "fp32", "")


def test_openvino_cpu_takes_direct_even_where_the_plugin_lists_the_cpu(transformer_onnx, openvino_library,
                                                                       openvino_plugin):
    # Called directly, a statistics graph needs a quarter of the plugin's memory per window.
    st = ds.Stylizer(transformer_onnx, device="openvino", precision="fp32")
    assert (st.provider, st.device_used) == ("OpenVINO", "openvino:CPU")


def test_neither_plugin_nor_library_is_one_line(transformer_onnx, monkeypatch):
    monkeypatch.setenv(_runtime.ENV_OPENVINO_DIRECT_LIBRARY, "/nonexistent/libopenvino_c.so")
    with pytest.raises(ds.DeviceError, match=r"device 'openvino' requested, but .*called directly: "
                                             r"\$DEEPSHOP_OPENVINO_LIBRARY .* not a file"):
        ds.Stylizer(transformer_onnx, device="openvino")
    st = ds.Stylizer(transformer_onnx, device="auto")
    if st.provider != "CUDAExecutionProvider":
        assert st.provider == "CPUExecutionProvider" and "\n" not in st.fallback_reason
        clauses = dict(c.split(": ", 1) for c in st.fallback_reason.split("; "))
        assert "called directly" in clauses["OpenVINO"]


def test_a_library_that_is_not_openvino(transformer_onnx, monkeypatch, tmp_path):
    fake = tmp_path / "libopenvino_c.so"
    fake.write_bytes(b"not a shared library")
    monkeypatch.setenv(_runtime.ENV_OPENVINO_DIRECT_LIBRARY, str(fake))
    with pytest.raises(ds.DeviceError, match="called directly: .*(cannot load OpenVINO from|already loaded from)"):
        ds.Stylizer(transformer_onnx, device="openvino")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_direct_agrees_with_cpu_provider_whole_and_tiled(transformer_onnx, openvino_library, precision):
    img = rand_image(H, W, seed=3)
    cpu = ds.Stylizer(transformer_onnx, device="cpu", tile=0)(img.astype(np.float32) / 255) * 255
    for tile in (0, TILE):
        st = ds.Stylizer(transformer_onnx, device="openvino", precision=precision, tile=tile, overlap=OVERLAP)
        assert (st.provider, st.precision) == ("OpenVINO", precision)
        if tile:
            plan = st.plan(H, W)
            assert plan["tiles_x"] > 2 and plan["tiles_y"] > 2
            ref = ds.Stylizer(transformer_onnx, device="cpu", tile=tile, overlap=OVERLAP)(img.astype(np.float32) / 255) * 255
        else:
            ref = cpu
        out = st(img.astype(np.float32) / 255) * 255
        assert_close(out, ref, precision, f"tile {tile}")
        # A second image of another size through the same session: new shapes, new compiled form.
        small = img[:97, :131]
        ref_small = ds.Stylizer(transformer_onnx, device="cpu", tile=tile, overlap=OVERLAP)(
            small.astype(np.float32) / 255) * 255
        assert_close(st(small.astype(np.float32) / 255) * 255, ref_small, precision, f"tile {tile}, second size")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_statistics_graph_tiled(openvino_library, precision):
    """The bundled style is a global-statistics graph (4 extra inputs, 3 extra outputs): the
    thumbnail pass and the tiled pass both run through OpenVINO."""
    img = rand_image(H, W, seed=5)
    # (A 128 px window here crashes ONNX Runtime's CPU provider too, in the engine's statistics
    # path on main: reported; 160 px avoids it.)
    options = dict(tile=160, overlap=OVERLAP, statistics="thumbnail", statistics_size=96)
    st = ds.Stylizer(device="openvino", precision=precision, **options)
    plan = st.plan(H, W)
    assert st.provider == "OpenVINO" and plan["tiles_x"] * plan["tiles_y"] > 2 and plan["statistics"] == "thumbnail"
    x = img.astype(np.float32) / 255  # float outputs: no uint8 rounding between the two
    ref = ds.Stylizer(device="cpu", **options)(x) * 255
    assert_close(st(x) * 255, ref, precision, "statistics graph")


def test_concurrent_calls_agree(transformer_onnx, openvino_library):
    """One session, two threads: each call takes its own infer request."""
    st = ds.Stylizer(transformer_onnx, device="openvino", precision="fp32", tile=0)
    imgs = [rand_image(64, 80, seed=s) for s in (1, 2)]
    expected = [ds.Stylizer(transformer_onnx, device="cpu", tile=0)(i) for i in imgs]
    results = [None, None]

    def work(k):
        for _ in range(2):
            results[k] = st(imgs[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_two_image_inputs_of_3_and_1_channels(openvino_library, tmp_path):
    """A named multi-input model (3- and 1-channel image inputs) through the tiled pipeline, against numpy."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from deepshop_native.core import metadata as mm
    from model_factory import save_with_metadata

    def spatial(name, c):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", c, "H", "W"])
    # y = 0.5 * a + 0.5 * b (b broadcast over a's 3 channels), pointwise.
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "half"], ["y"])]
    graph = helper.make_graph(nodes, "g", [spatial("a", 3), spatial("b", 1)], [spatial("y", 3)], [half])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    meta = {mm.key("value_range"): "0,1", mm.key("stride_multiple"): "1", mm.key("family"): "generic_tiled",
            mm.key("receptive_field"): "1",
            mm.key("inputs"): mm.encode_roles({"a": "image", "b": "image"}, outputs=False),
            mm.key("outputs"): mm.encode_roles({"y": "image"}, outputs=True)}
    path = save_with_metadata(model, tmp_path / "two.onnx", meta)
    rng = np.random.default_rng(7)
    a, b = rng.random((45, 61, 3), dtype=np.float32), rng.random((45, 61, 1), dtype=np.float32)
    ref = 0.5 * (a + b)
    p = open_model(path, device="openvino", tile=16, overlap=4)
    assert p._session.provider == "OpenVINO"
    y = p({"a": a, "b": b})["images"]["y"]
    # bf16 where auto picks it: 8 bits of mantissa, relative error <= 2^-8.
    np.testing.assert_allclose(y, ref, atol=1e-6 if p._session.precision == "fp32" else 2 ** -8)


def test_scalar_outputs_and_a_static_model(openvino_library, tmp_path):
    """Rank-0 outputs (loss = mean(x^2), total = sum(x)) and a graph without dynamic dimensions."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from deepshop_native.core import metadata as mm
    from deepshop_native.pipelines.generic import SessionPipeline
    from model_factory import save_with_metadata

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, []) for n in ("loss", "total")]
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["loss"], keepdims=0),
             helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], outs), ir_version=10,
                              opset_imports=[helper.make_opsetid("", 17)])
    meta = {mm.key("inputs"): mm.encode_roles({"x": "aux"}, outputs=False),
            mm.key("outputs"): mm.encode_roles({"loss": "scalar", "total": "scalar"}, outputs=True)}
    path = save_with_metadata(model, tmp_path / "scalars.onnx", meta)
    p = SessionPipeline(path, device="openvino")
    assert p._session.provider == "OpenVINO"
    v = np.random.default_rng(2).random((1, 3, 8, 8), dtype=np.float32)
    out = p(x=v)
    tol = 1e-5 if p._session.precision == "fp32" else 1e-2
    assert np.shape(out["loss"]) == () and np.shape(out["total"]) == ()
    np.testing.assert_allclose(float(out["loss"]), float((v.astype(np.float64) ** 2).mean()), rtol=tol)
    np.testing.assert_allclose(float(out["total"]), float(v.astype(np.float64).sum()), rtol=tol)
