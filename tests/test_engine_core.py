"""The engine core for every model family: named multi-input/output sessions, the channel-generic
tiled runner (image inputs tiled, aux inputs whole; image, classes, aux and scalar outputs) and
the model-family registry.  Tiny ONNX graphs are built here with onnx.helper; every result is
checked against numpy computed independently."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deepshop_native as ds
from deepshop_native import _native
from deepshop_native.core import metadata as mm
from deepshop_native.models import open_model
from deepshop_native.pipelines.generic import SessionPipeline, TiledPipeline

from model_factory import save_with_metadata

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def make_model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def spatial(name, channels):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels, "H", "W"])


def roles_meta(inputs, outputs, family="generic_tiled", **extra):
    """Metadata of a model with declared roles; pointwise (receptive field 1) unless told."""
    meta = {mm.key("value_range"): "0,1", mm.key("stride_multiple"): "1", mm.key("family"): family,
            mm.key("receptive_field"): "1",
            mm.key("inputs"): mm.encode_roles(inputs, outputs=False),
            mm.key("outputs"): mm.encode_roles(outputs, outputs=True)}
    meta.update({mm.key(k): v for k, v in extra.items()})
    return meta


def reflect_mean3x3(a):
    """3x3 box mean of each channel of an H x W x C array, borders reflected (numpy 'reflect')."""
    p = np.pad(a.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = a.shape[:2]
    return sum(p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9


# --- models -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_image_model(tmp_path_factory):
    """y = 0.5 * mean3x3(a) + 0.5 * b: two image inputs (3 and 1 channels), one image output.
    Local: its receptive field is 3 pixels, within the runner's halo."""
    box = numpy_helper.from_array(np.full((3, 1, 3, 3), 1 / 18, np.float32), "box")
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    nodes = [helper.make_node("Pad", ["a", "pads"], ["ap"], mode="reflect"),
             helper.make_node("Conv", ["ap", "box"], ["am"], group=3),
             helper.make_node("Mul", ["b", "half"], ["bh"]),
             helper.make_node("Add", ["am", "bh"], ["y"])]
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    model = make_model(nodes, [spatial("a", 3), spatial("b", 1)], [spatial("y", 3)], [box, half, pads])
    path = tmp_path_factory.mktemp("core") / "two_images.onnx"
    return save_with_metadata(model, path, roles_meta({"a": "image", "b": "image"}, {"y": "image"},
                                                      receptive_field="3"))


@pytest.fixture(scope="module")
def aux_model(tmp_path_factory):
    """y = x * gain (gain: an aux 1 x 3 x 1 x 1 input), plus stats = per-channel mean of y (aux output)."""
    gain = helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1, 3, 1, 1])
    stats = helper.make_tensor_value_info("stats", TensorProto.FLOAT, ["N", 3, 1, 1])
    nodes = [helper.make_node("Mul", ["x", "gain"], ["y"]),
             helper.make_node("ReduceMean", ["y"], ["stats"], axes=[2, 3], keepdims=1)]
    model = make_model(nodes, [spatial("x", 3), gain], [spatial("y", 3), stats])
    path = tmp_path_factory.mktemp("core") / "aux.onnx"
    return save_with_metadata(model, path, roles_meta({"x": "image", "gain": "aux"}, {"y": "image", "stats": "aux"}))


W_CLASSES = np.array([1.0, -1.0, 0.5, -0.5], np.float32)
B_CLASSES = np.array([0.0, 1.0, 0.2, 0.7], np.float32)


@pytest.fixture(scope="module")
def classes_model(tmp_path_factory):
    """1-channel edge map in, 4 class scores out: score_k = w_k * e + b_k (a 1x1 convolution)."""
    w = numpy_helper.from_array(W_CLASSES.reshape(4, 1, 1, 1), "w")
    b = numpy_helper.from_array(B_CLASSES, "b")
    model = make_model([helper.make_node("Conv", ["e", "w", "b"], ["scores"])], [spatial("e", 1)],
                       [spatial("scores", 4)], [w, b])
    path = tmp_path_factory.mktemp("core") / "classes.onnx"
    return save_with_metadata(model, path, roles_meta({"e": "image"}, {"scores": "classes"}))


@pytest.fixture(scope="module")
def scalar_model(tmp_path_factory):
    """y = 1 - x (image) and two scalar outputs: loss = mean(x^2), total = sum(x)."""
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    loss = helper.make_tensor_value_info("loss", TensorProto.FLOAT, [])
    total = helper.make_tensor_value_info("total", TensorProto.FLOAT, [])
    nodes = [helper.make_node("Sub", ["one", "x"], ["y"]),
             helper.make_node("Mul", ["x", "x"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["loss"], keepdims=0),
             helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)]
    model = make_model(nodes, [spatial("x", 3)], [spatial("y", 3), loss, total], [one])
    path = tmp_path_factory.mktemp("core") / "scalar.onnx"
    return save_with_metadata(model, path, roles_meta({"x": "image"}, {"y": "image", "loss": "scalar",
                                                                      "total": "scalar"}))


@pytest.fixture(scope="module")
def gram_model(tmp_path_factory):
    """No image at all: features f (C x N, aux) -> gram = f f^T (aux) and its trace-free sum (scalar)."""
    f = helper.make_tensor_value_info("f", TensorProto.FLOAT, [4, "N"])
    gram = helper.make_tensor_value_info("gram", TensorProto.FLOAT, [4, 4])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [])
    nodes = [helper.make_node("Transpose", ["f"], ["ft"], perm=[1, 0]),
             helper.make_node("MatMul", ["f", "ft"], ["gram"]),
             helper.make_node("ReduceSum", ["gram"], ["s"], keepdims=0)]
    model = make_model(nodes, [f], [gram, s])
    path = tmp_path_factory.mktemp("core") / "gram.onnx"
    return save_with_metadata(model, path, {mm.key("family"): "generic_session",
                                            mm.key("inputs"): mm.encode_roles({"f": "aux"}, outputs=False),
                                            mm.key("outputs"): mm.encode_roles({"gram": "aux", "s": "scalar"},
                                                                               outputs=True)})


@pytest.fixture
def runtime():
    """The ONNX Runtime library loaded (the pipelines do it themselves; bare sessions need it)."""
    from deepshop_native.core.runtime import ensure_runtime
    ensure_runtime()


def rng_image(h, w, c, seed):
    return np.random.default_rng(seed).random((h, w, c), dtype=np.float32)


# --- sessions: named inputs and outputs ---------------------------------------------------------

def test_session_describes_named_inputs_and_outputs_with_roles(runtime, aux_model):
    s = _native.Session(model=aux_model, device="cpu")
    assert [(t["name"], t["role"], t["shape"]) for t in s.inputs] == [("x", "image", (-1, 3, -1, -1)),
                                                                      ("gain", "aux", (1, 3, 1, 1))]
    assert [(t["name"], t["role"]) for t in s.outputs] == [("y", "image"), ("stats", "aux")]
    assert all(t["type"] == "float32" for t in s.inputs + s.outputs)
    assert s.family == "generic_tiled"


def test_session_run_on_named_arrays(runtime, aux_model):
    s = _native.Session(model=aux_model, device="cpu")
    x = np.random.default_rng(1).random((2, 3, 5, 7), dtype=np.float32)
    gain = np.array([0.5, 2.0, -1.0], np.float32).reshape(1, 3, 1, 1)
    out = s.run(inputs={"x": x, "gain": gain})
    np.testing.assert_allclose(out["y"], x * gain, rtol=1e-6)
    np.testing.assert_allclose(out["stats"], (x * gain).mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)
    only = s.run(inputs={"x": x, "gain": gain}, outputs=["stats"])
    assert list(only) == ["stats"]
    with pytest.raises(ds.OptionError, match="gain.*not given"):
        s.run(inputs={"x": x})
    with pytest.raises(ds.OptionError, match="'bogus' is not an input"):
        s.run(inputs={"x": x, "gain": gain, "bogus": gain})
    with pytest.raises(ds.OptionError, match="gain.*does not fit"):
        s.run(inputs={"x": x, "gain": np.ones((1, 4, 1, 1), np.float32)})


def test_session_pipeline_without_images_through_the_registry(gram_model):
    p = open_model(gram_model, device="cpu")
    assert type(p) is SessionPipeline
    f = np.random.default_rng(2).standard_normal((4, 9)).astype(np.float32)
    out = p(f=f)
    ref = f.astype(np.float64) @ f.T.astype(np.float64)
    np.testing.assert_allclose(out["gram"], ref, rtol=1e-5, atol=1e-5)
    assert out["s"].shape == ()
    np.testing.assert_allclose(out["s"], ref.sum(), rtol=1e-5, atol=1e-4)


# --- the tiled runner, one model of each kind ----------------------------------------------------

TILED = dict(tile=16, overlap=4)


def test_two_image_inputs_tiled_equals_whole_and_numpy(two_image_model):
    a, b = rng_image(45, 61, 3, 3), rng_image(45, 61, 1, 4)
    ref = np.clip(0.5 * reflect_mean3x3(a) + 0.5 * b, 0, 1)
    whole = open_model(two_image_model, device="cpu", tile=0)
    tiled = open_model(two_image_model, device="cpu", **TILED)
    assert type(whole) is TiledPipeline
    assert tiled.plan(45, 61)["tiles_x"] > 2 and tiled.plan(45, 61)["halo"] == (1, 1)
    y_whole = whole(a=a, b=b[..., 0])["images"]["y"]   # H x W is taken as one channel
    y_tiled = tiled({"a": a, "b": b})["images"]["y"]
    np.testing.assert_allclose(y_whole, ref, atol=2e-6)
    # Local model: tiles see exactly what the whole image sees; only the blend rounds.
    np.testing.assert_allclose(y_tiled, y_whole, atol=1e-6)
    u8 = whole(a=(a * 255).round().astype(np.uint8), b=b)["images"]["y"]
    np.testing.assert_allclose(u8, np.clip(0.5 * reflect_mean3x3((a * 255).round() / 255) + 0.5 * b, 0, 1), atol=2e-6)


def test_aux_input_is_passed_whole_to_every_tile(aux_model):
    x = rng_image(40, 50, 3, 5)
    gain = np.array([0.5, 0.25, 1.0], np.float32).reshape(1, 3, 1, 1)
    ref = np.clip(x * gain.reshape(3), 0, 1)
    whole = open_model(aux_model, device="cpu", tile=0)
    tiled = open_model(aux_model, device="cpu", **TILED)
    r_whole = whole(x=x, aux={"gain": gain})
    r_tiled = tiled(x=x, aux={"gain": gain})
    np.testing.assert_allclose(r_whole["images"]["y"], ref, atol=1e-6)
    np.testing.assert_allclose(r_tiled["images"]["y"], ref, atol=1e-6)
    # Aux outputs come once per network call: one for the whole image, one per tile when tiled.
    (stats,) = r_whole["whole"]["stats"]
    np.testing.assert_allclose(stats.reshape(3), (x * gain.reshape(3)).mean(axis=(0, 1)), rtol=1e-5)
    plan = tiled.plan(40, 50)
    assert len(r_tiled["whole"]["stats"]) == plan["tiles_x"] * plan["tiles_y"]
    with pytest.raises(ds.OptionError, match="aux input 'gain' was not given"):
        tiled(x=x)


def test_one_channel_in_k_classes_out_argmax_and_palette(classes_model):
    e = rng_image(37, 53, 1, 6)
    scores = e[..., 0, None] * W_CLASSES + B_CLASSES  # H x W x 4
    ref_labels = scores.argmax(axis=2)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)
    whole = open_model(classes_model, device="cpu", tile=0)
    tiled = open_model(classes_model, device="cpu", palettes={"scores": palette}, **TILED)
    r_whole, r_tiled = whole(e=e), tiled(e=e)
    assert r_whole["labels"]["scores"].dtype == np.int32
    np.testing.assert_array_equal(r_whole["labels"]["scores"], ref_labels)
    np.testing.assert_array_equal(r_tiled["labels"]["scores"], ref_labels)
    assert "scores" not in r_whole["colours"]
    np.testing.assert_array_equal(r_tiled["colours"]["scores"], palette[ref_labels])
    with pytest.raises(ds.OptionError, match="'e' has 3 channels; the model takes 1"):
        pass_three = tiled(e=rng_image(8, 8, 3, 0))  # noqa: F841


def test_argmax_ties_go_to_the_lowest_class(tmp_path):
    """Scores equal for classes 1 and 2 everywhere: the label is 1 (numpy's argmax rule)."""
    w = numpy_helper.from_array(np.zeros((3, 1, 1, 1), np.float32), "w")
    b = numpy_helper.from_array(np.array([0.0, 1.0, 1.0], np.float32), "b")
    model = make_model([helper.make_node("Conv", ["e", "w", "b"], ["s"])], [spatial("e", 1)], [spatial("s", 3)], [w, b])
    p = save_with_metadata(model, tmp_path / "ties.onnx", roles_meta({"e": "image"}, {"s": "classes"}))
    labels = open_model(p, device="cpu", **TILED)(e=rng_image(20, 30, 1, 0))["labels"]["s"]
    assert (labels == 1).all()


def test_scalar_outputs_per_call(scalar_model):
    x = rng_image(30, 40, 3, 7)
    whole = open_model(scalar_model, device="cpu", tile=0)
    r = whole(x=x)
    np.testing.assert_allclose(r["images"]["y"], 1 - x, atol=1e-6)
    (loss,), (total,) = r["whole"]["loss"], r["whole"]["total"]
    assert loss.shape == () and total.shape == ()
    np.testing.assert_allclose(loss, (x.astype(np.float64) ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(total, x.astype(np.float64).sum(), rtol=1e-5)
    tiled = open_model(scalar_model, device="cpu", **TILED)
    rt = tiled(x=x)
    np.testing.assert_allclose(rt["images"]["y"], 1 - x, atol=1e-6)
    # Each tile's loss is that of its window: the tile's kept span plus reflected halo.
    plan = tiled.plan(30, 40)
    assert len(rt["whole"]["loss"]) == plan["tiles_x"] * plan["tiles_y"]
    wh, ww = plan["window"]
    hy, hx = plan["halo"]
    rows = [np.abs(np.arange(s - hy, s - hy + wh)) for s in plan["row_starts"]]
    cols = [np.abs(np.arange(s - hx, s - hx + ww)) for s in plan["col_starts"]]
    # Reflection at the far border too: index i >= n maps to 2(n-1) - i.
    rows = [np.where(r >= 30, 58 - r, r) for r in rows]
    cols = [np.where(c >= 40, 78 - c, c) for c in cols]
    expected = [(x[np.ix_(r, c)].astype(np.float64) ** 2).mean() for r in rows for c in cols]
    np.testing.assert_allclose([float(v) for v in rt["whole"]["loss"]], expected, rtol=1e-5)
    # Asked for the scalars only: no image is decoded.
    only = whole(x=x, outputs=["loss"])
    assert only["images"] == {} and list(only["whole"]) == ["loss"]


def test_tiled_runner_progress_and_cancel(two_image_model):
    tiled = open_model(two_image_model, device="cpu", **TILED)
    a, b = rng_image(40, 40, 3, 0), rng_image(40, 40, 1, 0)
    seen = []
    tiled(a=a, b=b, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]
    with pytest.raises(ds.Cancelled):
        tiled(a=a, b=b, progress=lambda done, total: False)


# --- the registry ---------------------------------------------------------------------------------

def test_registry_gives_each_family_its_pipeline(transformer_onnx, identity_onnx, tmp_path):
    assert type(open_model(transformer_onnx, device="cpu")) is ds.Stylizer       # transformer_net
    assert type(open_model(identity_onnx, device="cpu")) is ds.Stylizer          # no family, one image in/out
    model = onnx.load(identity_onnx)
    del model.metadata_props[:]
    p = save_with_metadata(model, tmp_path / "odd.onnx", {mm.key("family"): "no_such_family",
                                                          mm.key("value_range"): "0,1"})
    with pytest.raises(ds.ModelError, match=r"odd\.onnx.*'no_such_family'.*generic_session.*transformer_net"):
        open_model(p)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(ds.ModelError, match="bad.onnx.*not an ONNX model"):
        open_model(bad)
    with pytest.raises(ds.ModelError, match="missing.onnx.*no such model file"):
        open_model(tmp_path / "missing.onnx")


def test_metadata_reader_matches_onnx(transformer_onnx, aux_model):
    for path in (transformer_onnx, aux_model):
        assert mm.read_metadata(path) == {p.key: p.value for p in onnx.load(path).metadata_props}


def test_cpp_metadata_header_matches_the_python_contract():
    header = (REPO / "cpp" / "engine" / "metadata_keys.h").read_text()
    strings = dict(re.findall(r'constexpr const char\* (k\w+) = "([^"]*)";', header))
    assert strings.pop("kPrefix") == mm.PREFIX
    roles = {v for k, v in strings.items() if k.startswith("kRole")}
    keys = {v for k, v in strings.items() if not k.startswith("kRole")}
    assert roles == set(mm.INPUT_ROLES) | set(mm.OUTPUT_ROLES)
    assert keys and keys <= {mm.PREFIX + k for k in mm.KEYS}
    assert mm.MAX_PIXELS == _native.MAX_PIXELS


def test_light_modules_do_not_load_the_extension():
    code = ("import sys, deepshop_native.core.errors, deepshop_native.core.metadata, deepshop_native.core.files\n"
            "assert 'deepshop_native._native' not in sys.modules, 'extension loaded'\n"
            "import deepshop_native as ds; ds.ModelError\n"
            "assert 'deepshop_native._native' not in sys.modules, 'extension loaded by the package init'\n"
            "ds.Stylizer\n"
            "assert 'deepshop_native._native' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


# --- hardening (issue 14, engine side) --------------------------------------------------------

HUGE = 2 ** 63 - 1


@pytest.mark.parametrize("options", [dict(stride_multiple=HUGE), dict(stride_multiple=2 ** 62),
                                     dict(tile=128, overlap=HUGE), dict(tile=128, overlap=8, halo=2 ** 63 - 4),
                                     dict(threads=100000), dict(threads=2 ** 31 - 1), dict(threads=2 ** 70),
                                     dict(tile=2 ** 40), dict(batch=0), dict(tile=-5), dict(device="cuda:99999999999999999999"),
                                     dict(device="gpu"), dict(mean=(float("nan"),) * 3)])
def test_bad_options_are_option_errors(identity_onnx, options):
    with pytest.raises(ds.OptionError):
        ds.Stylizer(identity_onnx, **options)(np.zeros((3, 700, 3), np.uint8))


def test_native_option_errors_are_option_errors():
    with pytest.raises(ds.OptionError, match="batch"):
        _native.TileOptions(batch=0)
    with pytest.raises(ds.OptionError, match="overlap"):
        _native.TileOptions(tile=128, overlap=HUGE)
    with pytest.raises(ds.OptionError, match="threads"):
        ds.posterize(np.zeros((4, 4, 3), np.uint8), levels=2, threads=100000)


@pytest.mark.parametrize("key,value,match", [
    ("stride_multiple", "9223372036854775807", "stride_multiple.*beyond"),
    ("stride_multiple", "99999999999999999999", "stride_multiple.*beyond"),
    ("stride_multiple", "4x", "stride_multiple.*not a non-negative integer"),
    ("receptive_field", "9223372036854775000", "receptive_field.*beyond"),
    ("value_range", "0,inf", "value_range.*not finite"),
    ("value_range", "0,1e-45", "value range.*0.001"),
    ("value_range", "-3e38,3e38", "value_range.*beyond 1e6"),
    ("mean", "nan,nan,nan", "mean.*not finite"),
])
def test_nonsense_metadata_is_a_model_error_naming_the_key(tmp_path, key, value, match):
    meta = {"deepshop.value_range": "0,255", "deepshop.stride_multiple": "4", mm.key(key): value}
    from model_factory import identity_model
    p = identity_model(tmp_path / "m.onnx", metadata=meta)
    with pytest.raises(ds.ModelError, match=r"m\.onnx.*" + match):
        ds.Stylizer(p, device="cpu")


def test_model_output_nan_is_an_error_not_black(tmp_path):
    nan = numpy_helper.from_array(np.array(np.nan, np.float32), "nan")
    model = make_model([helper.make_node("Mul", ["input", "nan"], ["output"])], [spatial("input", 3)],
                       [spatial("output", 3)], [nan])
    p = save_with_metadata(model, tmp_path / "nan.onnx", {"deepshop.value_range": "0,1"})
    with pytest.raises(ds.ModelError, match="nan.onnx.*NaN or infinite"):
        ds.Stylizer(p, device="cpu")(np.zeros((8, 8, 3), np.uint8))


def test_missing_external_weights_is_a_model_error(tmp_path):
    w = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w")
    model = make_model([helper.make_node("Conv", ["input", "w"], ["output"])], [spatial("input", 3)],
                       [spatial("output", 3)], [w])
    p = tmp_path / "ext.onnx"
    save_with_metadata(model, p, {"deepshop.value_range": "0,1"})
    model = onnx.load(str(p))
    onnx.save(model, str(p), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.bin",
              size_threshold=0)
    (tmp_path / "ext.bin").unlink()
    with pytest.raises(ds.ModelError, match="ext.onnx.*could not load"):
        ds.Stylizer(p, device="cpu")
    # The message names the missing weights file too, and where the model expects it.
    for open_model in (lambda: ds.Stylizer(p, device="cpu"), lambda: ds.model_info(p, device="cpu")):
        with pytest.raises(ds.ModelError, match=r"ext\.onnx: .*external data file .*ext\.bin.* is missing"):
            open_model()
    (tmp_path / "ext.bin").mkdir()          # not a file: named as well
    with pytest.raises(ds.ModelError, match=r"ext\.bin.* is not a regular file"):
        ds.Stylizer(p, device="cpu")


def test_failing_reshape_at_run_time_is_a_model_error(tmp_path):
    shape = numpy_helper.from_array(np.array([1, 3, 16, 16], np.int64), "shape")
    model = make_model([helper.make_node("Reshape", ["input", "shape"], ["output"])], [spatial("input", 3)],
                       [spatial("output", 3)], [shape])
    p = save_with_metadata(model, tmp_path / "reshape.onnx", {"deepshop.value_range": "0,1"})
    with pytest.raises(ds.ModelError, match="reshape.onnx.*could not run"):
        ds.Stylizer(p, device="cpu", tile=0)(np.zeros((20, 20, 3), np.uint8))


def test_huge_receptive_field_names_the_model(tmp_path):
    from model_factory import identity_model
    p = identity_model(tmp_path / "rf.onnx", metadata={"deepshop.value_range": "0,1", "deepshop.receptive_field": "1000000"})
    with pytest.raises(ds.OptionError, match="rf.onnx.*receptive field"):
        ds.Stylizer(p, device="cpu", tile=96)(np.zeros((300, 300, 3), np.uint8))


def test_progress_callback_returning_a_non_bool(identity_onnx):
    with pytest.raises(ds.OptionError, match="progress"):
        ds.Stylizer(identity_onnx, device="cpu")(np.zeros((8, 8, 3), np.uint8), progress=lambda d, t: "yes")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_model_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ds.ModelError, match=r"pipe.onnx.*(not a regular file|named pipe)"):
        ds.Stylizer(fifo, device="cpu")
    with pytest.raises(ds.ModelError, match="pipe.onnx"):
        open_model(fifo)


def test_model_info_describes_any_family(classes_model, identity_onnx):
    info = ds.model_info(classes_model)
    assert info["family"] == "generic_tiled"
    assert info["inputs"] == ["e (image, float32, ?x1x?x?)"]
    assert info["outputs"] == ["scores (classes, float32, ?x4x?x?)"]
    plain = ds.model_info(identity_onnx)
    assert (plain["input"], plain["output"]) == ("input", "output")


def test_one_pipeline_shared_by_threads(two_image_model):
    import threading
    tiled = open_model(two_image_model, device="cpu", **TILED)
    inputs = [(rng_image(33, 47, 3, s), rng_image(33, 47, 1, s + 100)) for s in range(4)]
    expected = [tiled(a=a, b=b)["images"]["y"] for a, b in inputs]
    got = [None] * 4

    def work(i):
        got[i] = tiled(a=inputs[i][0], b=inputs[i][1])["images"]["y"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_tile_mask_input_carries_each_tiles_blend_weights(tmp_path):
    """y = x and area = sum(mask): the mask of each tile is its blend weights on its kept span
    (0 on the halo), so the tiles' areas add up to the image's pixel count (the weights sum to
    one at every pixel), each tile's area is at most its kept span, and an untiled run sees a
    mask of ones."""
    mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, "H", "W"])
    area = helper.make_tensor_value_info("area", TensorProto.FLOAT, [])
    model = make_model([helper.make_node("Identity", ["x"], ["y"]),
                        helper.make_node("ReduceSum", ["mask"], ["area"], keepdims=0)],
                       [spatial("x", 3), mask], [spatial("y", 3), area])
    p = save_with_metadata(model, tmp_path / "mask.onnx", roles_meta({"x": "image", "mask": "tile_mask"},
                                                                     {"y": "image", "area": "scalar"}))
    x = rng_image(45, 61, 3, 9)
    tiled = open_model(p, device="cpu", **TILED)
    r = tiled(x=x)
    np.testing.assert_allclose(r["images"]["y"], x, atol=1e-6)
    plan = tiled.plan(45, 61)
    kept_h, kept_w = plan["kept"]
    spans = [min(s + kept_h, 45) - s for s in plan["row_starts"]], [min(s + kept_w, 61) - s for s in plan["col_starts"]]
    areas = [float(a) for a in r["whole"]["area"]]
    assert len(areas) == len(spans[0]) * len(spans[1]) > 1
    assert sum(areas) == pytest.approx(45 * 61, rel=1e-5)
    for a, limit in zip(areas, [h * w for h in spans[0] for w in spans[1]]):
        assert 0 < a <= limit + 1e-3
    (whole_area,) = open_model(p, device="cpu", tile=0)(x=x)["whole"]["area"]
    assert float(whole_area) == 45 * 61
    with pytest.raises(ds.OptionError, match="'mask' is not an image input"):
        tiled(x=x, mask=x[..., :1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="address-space limit via /proc and RLIMIT_AS")
@pytest.mark.parametrize("headroom_mb", [12, 20])
def test_failing_thread_creation_is_an_error_not_an_abort(headroom_mb):
    """Under an address-space limit that lets some kernel threads start but not all, the started
    ones are joined and the failure is raised (before: 'terminate called without an active
    exception', SIGABRT)."""
    code = f"""
import resource, numpy as np
import deepshop_native as ds
img = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
ds.posterize(img, levels=4, threads=1)
vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm + ({headroom_mb} << 20), resource.RLIM_INFINITY))
try:
    ds.posterize(img, levels=4, threads=min(8, ds._native.max_threads()))
except Exception as e:
    print("raised", type(e).__name__)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr[-500:]


def test_overlap_is_capped_at_half_the_kept_span(transformer_onnx):
    """tile 128 with the 28 px halo keeps 72 px: the default 64 px overlap would step tiles 8 px
    apart (24 x 24 tiles for 256 x 256); capped at half the kept span (36 px), neighbours step at
    least kept - 36 px and still overlap by 36 px or more."""
    st = ds.Stylizer(transformer_onnx, device="cpu", tile=128, halo=28)
    plan = st.plan(256, 256)
    kept = plan["kept"][0]
    steps = np.diff(plan["row_starts"])
    assert plan["tiles_y"] == len(plan["row_starts"]) <= 8
    assert (kept - steps >= 32).all() and (steps >= kept - 40).all(), plan
    assert plan["row_starts"][-1] + kept >= 256


# --- pixel stages split over threads --------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 3])
def test_pixel_stages_on_several_threads_equal_numpy(two_image_model, classes_model, identity_onnx, threads):
    """Images large enough that cutting, decoding, blending and finishing are split into row ranges
    on several threads (at least 2**16 values per range): every pixel as numpy computes it, with the
    tiles' seams (tile 160) falling inside and across the ranges."""
    a, b = rng_image(301, 419, 3, 7), rng_image(301, 419, 1, 8)
    ref = np.clip(0.5 * reflect_mean3x3(a) + 0.5 * b, 0, 1)
    for tile in (0, 160):
        y = open_model(two_image_model, device="cpu", tile=tile, threads=threads)(a=a, b=b)["images"]["y"]
        np.testing.assert_allclose(y, ref, atol=2e-6)
    e = rng_image(301, 419, 1, 9)
    labels = open_model(classes_model, device="cpu", tile=160, threads=threads)(e=e)["labels"]["scores"]
    np.testing.assert_array_equal(labels, (e[..., 0, None] * W_CLASSES + B_CLASSES).argmax(axis=2))
    img = np.random.default_rng(10).integers(0, 256, (517, 389, 3), dtype=np.uint8)
    for tile in (0, 160):
        np.testing.assert_array_equal(ds.Stylizer(identity_onnx, device="cpu", tile=tile, threads=threads)(img), img)
