"""Fuzz suite: hostile input must end in a clean result or a DeepshopError subclass -- never
another exception, a hang or a crash.

* A corpus of malformed images made on the fly from small valid files of every format we read
  (truncated, bit-flipped, wrong headers, huge declared sizes, zero-byte), read from paths and
  from bytes, and special files (FIFOs, directories, symlink loops, devices).
* Malformed models (garbage, truncated, bit-flipped, wrong graphs) and abusive metadata.
* Hypothesis strategies for option values, arrays and the stylize and posterize command lines.

Every other subcommand and pipeline (gatys, edges, colorize, info, MSG-Net, deepshop-export):
tests/test_fuzz_commands.py.  The harness (counts, worker, corpora) is tests/fuzz_harness.py.

Whatever can crash the process (decoders, ONNX Runtime) runs in a worker subprocess that
reports case by case, so a crash names its case instead of killing pytest.  Counts per
category are printed at the end (``pytest -s tests/test_fuzz.py tests/test_fuzz_commands.py``)
and written as JSON to $DEEPSHOP_FUZZ_REPORT when it is set: the reliability figures
(docs/results/reliability.md) come from there.  Every case is derived from fixed seeds
(hypothesis derandomised), so the figures are stable.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import deepshop_native as ds  # noqa: E402
from deepshop_native import image as dimage  # noqa: E402
from deepshop_native.core import options  # noqa: E402
from deepshop_native.core.errors import OptionError  # noqa: E402
from fuzz_harness import (FUZZ, _check_results, _cli_outcome, _image_corpus, _model_corpus, _outcome,  # noqa: E402
                          _record, _run_worker, write_report)
from model_factory import identity_model  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    write_report()


# ------------------------------------------------------------------ a corpus of malformed images

def test_malformed_images_give_an_image_error_or_a_valid_image(tmp_path):
    files = _image_corpus(tmp_path)
    cases = []
    for n, (category, path) in enumerate(files):
        # The CLI's stylize limit for huge declared sizes (refused from the header); 4 MP
        # elsewhere, so that a flipped size field cannot make the run slow.
        limit = options.MAX_SIDE * 64 if category == "huge declared size" else 1 << 22
        for kind in ("image", "image_bytes"):
            cases.append({"id": f"{n}{kind[5:]}", "kind": kind, "path": str(path), "max_pixels": limit,
                          "category": category})
    results = _run_worker(cases)
    _check_results(cases, results, lambda c: "images: " + c["category"])
    # the valid files must stay readable, and most hostile ones refused
    assert all(results[c["id"]] == "ok" for c in cases if c["category"] == "valid")
    assert all(results[c["id"]] != "ok" for c in cases if c["category"] == "zero-byte and tiny")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
def test_special_files_are_refused_without_hanging(tmp_path, identity_onnx):
    special = tmp_path / "special"
    special.mkdir()
    os.mkfifo(special / "fifo.png")
    os.mkfifo(special / "fifo.onnx")
    (special / "folder.png").mkdir()
    (special / "folder.onnx").mkdir()
    for name in ("loop.png", "loop.onnx"):
        os.symlink(special / name, special / name)
    os.symlink(special / "nowhere", special / "dangling.png")
    cases = []
    for target in ["fifo.png", "folder.png", "loop.png", "dangling.png", "/dev/null", "/dev/zero", "/dev/urandom"]:
        path = target if target.startswith("/") else str(special / target)
        cases.append({"id": f"img_{Path(target).name}", "kind": "image", "path": path, "max_pixels": 1 << 22})
    for target in ["fifo.onnx", "folder.onnx", "loop.onnx", "/dev/null", "/dev/zero"]:
        path = target if target.startswith("/") else str(special / target)
        cases.append({"id": f"model_{Path(target).name}", "kind": "model", "path": path})
    results = _run_worker(cases, timeout=120)
    _check_results(cases, results, lambda c: "special files")
    assert all(out.startswith("error:") for out in results.values()), results
    # a folder holding them: the CLI batch must go on past each (in a subprocess: a hang fails)
    Image.new("RGB", (8, 8)).save(special / "good.png")
    code = "import sys; from deepshop_native.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, "stylize", str(special), "-m", identity_onnx, "-o",
                        str(tmp_path / "out"), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert (tmp_path / "out" / "good.png").is_file()
    _record("special files", "cli batch went on")


# ------------------------------------------------------------------ malformed models
# Fixed in the C++ core (issue 14, items 1 and 11: metadata integers and ranges bounded where
# the engine reads them); until then these may crash or give black images.
_CORE_METADATA = {"stride_huge": {"deepshop.stride_multiple": str(2**63 - 1)},
                  "stride_2_62": {"deepshop.stride_multiple": str(2**62)},
                  "receptive_field_huge": {"deepshop.receptive_field": str(2**61)}}
_METADATA = {"value_range_text": {"deepshop.value_range": "a,b"}, "stride_negative": {"deepshop.stride_multiple": "-4"},
             "channel_order_bad": {"deepshop.channel_order": "XYZ"}, "mean_short": {"deepshop.mean": "1,2"},
             "value_range_one": {"deepshop.value_range": "0"}, "mean_text": {"deepshop.mean": "x,y,z"}}


def test_malformed_models_give_a_model_error_or_run(tmp_path):
    made = _model_corpus(tmp_path)
    cases = [{"id": f"{n}", "kind": "model", "path": str(p), "category": c} for n, (c, p) in enumerate(made)]
    results = _run_worker(cases, timeout=240)
    _check_results(cases, results, lambda c: "models: " + c["category"])
    accepted = [Path(c["path"]).name for c in cases if results[c["id"]] == "ok"
                and c["category"] in ("garbage", "wrong graph")]
    assert accepted == [], accepted


@pytest.mark.parametrize("name", sorted(_METADATA) + sorted(_CORE_METADATA))
def test_abusive_metadata_gives_a_model_error_or_runs(tmp_path, name):
    meta = {"deepshop.value_range": "0,255", **_METADATA.get(name, _CORE_METADATA.get(name, {}))}
    path = identity_model(tmp_path / f"{name}.onnx", meta)
    case = {"id": name, "kind": "model", "path": path}
    results = _run_worker([case], timeout=120, category="models: metadata")
    _check_results([case], results, lambda c: "models: metadata")


# ------------------------------------------------------------------ hypothesis: options

_ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.integers(-4, 4096),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=4),
    st.lists(st.integers(-10, 300), max_size=4), st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "gpu", "CUDA:1",
                                                                  "RGB", "bgr", "0,255", ""]))
_ENGINE_KEYS = ("device", "tile", "halo", "overlap", "batch", "threads", "harmonize", "value_range",
                "channel_order", "mean", "stride_multiple")


@FUZZ
@given(st.dictionaries(st.sampled_from(_ENGINE_KEYS), _ANY_VALUE, max_size=6))
def test_option_values_are_accepted_bounded_or_refused_with_an_option_error(kwargs):
    try:
        o = options.engine_options(**kwargs)
    except OptionError:
        _record("options: engine_options", "OptionError")
        return
    _record("options: engine_options", "ok")
    for key in ("tile", "overlap", "harmonize"):
        assert 0 <= o[key] <= options.MAX_SIDE
    assert 1 <= o["batch"] <= options.MAX_BATCH and 0 <= o["threads"] <= options.THREADS_PER_CORE * options.cpu_count()
    for key in ("value_range", "mean"):
        assert o[key] is None or all(math.isfinite(v) for v in o[key])


# mostly everyday sizes, some at and beyond the 2^20 bound
_small = st.one_of(*[st.integers(0, 300)] * 12, st.integers(-3, -1), st.integers(2**20 - 2, 2**20 + 1),
                   st.integers(2**31 - 1, 2**63))


@settings(FUZZ, max_examples=100)
@given(tile=st.one_of(st.none(), _small), halo=st.one_of(st.none(), _small), overlap=_small,
       batch=st.one_of(st.integers(1, 5), st.integers(1, 5), st.integers(-1, 0)), harmonize=_small, h=st.integers(1, 70), w=st.integers(1, 70),
       strength=st.one_of(st.floats(0, 1), st.floats(0, 1), st.floats(-0.5, 1.5)),
       max_side=st.one_of(st.none(), st.none(), st.integers(-1, 80)))
def test_stylizer_runs_or_refuses_any_tiling(identity_onnx, tile, halo, overlap, batch, harmonize, h, w, strength,
                                              max_side):
    img = np.random.default_rng(h * 100 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    result = {}

    def run():
        st_ = ds.Stylizer(identity_onnx, tile=tile, halo=halo, overlap=overlap, batch=batch, harmonize=harmonize)
        result["out"] = st_(img, strength=strength, max_side=max_side)

    outcome = _outcome(run)
    _record("options: Stylizer runs", outcome)
    if outcome == "ok" and max_side is None:
        np.testing.assert_array_equal(result["out"], img)       # identity model: exact, whatever the tiling


# ------------------------------------------------------------------ hypothesis: arrays

_DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.float16, np.float32, np.float64, np.bool_,
                           np.complex64, ">u2", "<f4", ">f8"])
_SHAPES = st.one_of(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
                    st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 5)))


@FUZZ
@given(arr=hnp.arrays(_DTYPES, _SHAPES, elements=None), levels=st.integers(0, 8))
def test_arrays_are_converted_or_refused_with_a_deepshop_error(tmp_path_factory, arr, levels):
    out = tmp_path_factory.getbasetemp() / "fuzz_array.png"
    for name, call in (("to_rgb_array", lambda: dimage.to_rgb_array(arr)),
                       ("posterize", lambda: ds.posterize(arr, levels=levels)),
                       ("gram", lambda: ds.gram(arr)),
                       ("write_image", lambda: dimage.write_image(out, arr, overwrite=True))):
        with np.errstate(all="ignore"):
            _record(f"arrays: {name}", _outcome(call))


@settings(FUZZ, max_examples=40)
@given(arr=hnp.arrays(_DTYPES, st.tuples(st.integers(1, 20), st.integers(1, 20), st.sampled_from([1, 3, 4])),
                      elements=None))
def test_stylizer_takes_or_refuses_any_array(identity_onnx, arr):
    st_ = _stylizer_cache(identity_onnx)
    with np.errstate(all="ignore"):
        _record("arrays: Stylizer", _outcome(lambda: st_(arr)))


_STYLIZERS: dict = {}


def _stylizer_cache(model):
    if model not in _STYLIZERS:
        _STYLIZERS[model] = ds.Stylizer(model, tile=0)
    return _STYLIZERS[model]


# ------------------------------------------------------------------ hypothesis: command lines

_OPTION_NAMES = ["--tile", "--overlap", "--halo", "--batch", "--harmonize", "--threads", "--device", "--strength",
                 "--max-side", "--quality", "--max-pixels", "--value-range", "--mean", "--stride-multiple",
                 "--channel-order", "--suffix"]
_OPTION_TEXT = st.one_of(st.integers(-2**70, 2**70).map(str), st.integers(-3, 600).map(str), st.integers(0, 9).map(str),
                         st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8),
                         st.sampled_from(["0,255", "1,0", "0,inf", "nan,nan,nan", "RGB", "gpu", "cuda:7", "/..", ""]))


@settings(FUZZ, max_examples=150)
@given(opts=st.lists(st.tuples(st.sampled_from(_OPTION_NAMES), _OPTION_TEXT), max_size=4))
def test_stylize_command_lines_never_give_a_traceback(tmp_path_factory, identity_onnx, opts):
    from deepshop_native.cli import main
    base = tmp_path_factory.getbasetemp()
    photo = base / "fuzz_cli_photo.png"
    if not photo.exists():
        Image.new("RGB", (20, 12), (200, 30, 90)).save(photo)
    argv = ["stylize", str(photo), "-m", identity_onnx, "-o", str(base / "fuzz_cli_out.png"), "-q", "--overwrite"]
    for name, value in opts:
        argv.append(f"{name}={value}")
    _record("command lines: stylize", _cli_outcome(main, argv))


@settings(FUZZ, max_examples=100)
@given(opts=st.lists(st.tuples(st.sampled_from(["--levels", "-k", "--quality", "--seed", "--method", "--space"]),
                               _OPTION_TEXT), max_size=4),
       palette=st.booleans())
def test_posterize_command_lines_never_give_a_traceback(tmp_path_factory, opts, palette):
    from deepshop_native.cli import main
    base = tmp_path_factory.getbasetemp()
    photo = base / "fuzz_cli_photo2.png"
    if not photo.exists():
        Image.new("RGB", (20, 12), (10, 130, 90)).save(photo)
    argv = ["posterize", str(photo), "--out", str(base / "fuzz_post_out.png"), "--overwrite"]
    argv += ["--palette-from", str(photo)] if palette else ["--levels", "3"]
    for name, value in opts:
        argv.append(f"{name}={value}")
    _record("command lines: posterize", _cli_outcome(main, argv))


