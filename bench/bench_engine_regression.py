"""The engine of this checkout against the engine of an earlier commit, in one process and one run:
a refactoring must not cost speed.  Skips unless $DEEPSHOP_BASELINE names a folder made by
bench/make_baseline.sh (the old package, importable as `deepshop_base`).

    bash bench/make_baseline.sh <git-ref> /tmp/deepshop_baseline
    DEEPSHOP_BASELINE=/tmp/deepshop_baseline python -m pytest bench/bench_engine_regression.py --benchmark-only

Both engines run the same TransformerNet file on the same image with their default options; the
summary prints the ratio of each to the baseline (>1: the new engine is faster).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import numpy as np
import pytest

import deepshop_native as ds

pytest.importorskip("torch")
from model_factory import TRANSFORMER_META, export_plain, random_transformer_net  # noqa: E402

@pytest.fixture(scope="module")
def baseline():
    folder = os.environ.get("DEEPSHOP_BASELINE")
    if not folder:
        pytest.skip("set DEEPSHOP_BASELINE to a folder made by bench/make_baseline.sh")
    sys.path.insert(0, folder)
    try:
        module = importlib.import_module("deepshop_base")
        # A baseline from before the layered package (deepshop_native.errors, not .core.errors):
        # its extension imports its error classes by the old absolute name, which this process's
        # deepshop_native no longer has; give it the baseline's own module under that name.
        if importlib.util.find_spec("deepshop_native.errors") is None:
            sys.modules["deepshop_native.errors"] = importlib.import_module("deepshop_base.errors")
        return module
    finally:
        sys.path.remove(folder)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return export_plain(random_transformer_net(seed=0), tmp_path_factory.mktemp("bench") / "tnet.onnx",
                        {**TRANSFORMER_META, "deepshop.receptive_field": "109"})


def _run(benchmark, stylizer, hw, label):
    benchmark.group = f"engine regression {hw[1]}x{hw[0]}"
    benchmark.name = f"test_[{label}]"
    img = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    stylizer(img)  # warm-up
    benchmark.pedantic(lambda: stylizer(img), rounds=5, iterations=1)


# Old and new side by side for each size (not all old, then all new), so that a change in the
# machine's load during the run falls on both alike.
CASES = [pytest.param(hw, engine, id=f"{hw[1]}x{hw[0]}-{engine}")
         for hw in ((512, 512), (1080, 1920)) for engine in ("baseline", "this")]


@pytest.mark.parametrize("hw,engine", CASES)
def test_engine(benchmark, baseline, model_path, hw, engine):
    module = baseline if engine == "baseline" else ds
    _run(benchmark, module.Stylizer(model_path, device="cpu"), hw, f"{engine}-engine")


def test_same_output(baseline, model_path):
    """Same pixels from both: the comparison is of the same job."""
    img = np.random.default_rng(1).integers(0, 256, (700, 900, 3), dtype=np.uint8)
    old = baseline.Stylizer(model_path, device="cpu", tile=512)(img)
    new = ds.Stylizer(model_path, device="cpu", tile=512)(img)
    assert np.abs(old.astype(int) - new.astype(int)).max() <= 1
