"""Benchmark support: each pytest-benchmark group holds one job done several ways, one of them
the baseline; at the end, the ratio of every entry's mean time to its group's baseline is
printed (>1: faster than the baseline), all measured in the same run."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

#: Entries whose name contains one of these are the baseline of their group, first match wins.
BASELINE_MARKERS = ("[baseline", "[torch", "[numpy", "[ort-whole")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running benchmark (4K images)")
    config.addinivalue_line("markers", "gpu: needs CUDA")


def _baseline(entries):
    for marker in BASELINE_MARKERS:
        for e in entries:
            if marker in e.name:
                return e
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if not session or not session.benchmarks:
        return
    groups = {}
    for bench in session.benchmarks:
        groups.setdefault(bench.group, []).append(bench)
    tr = terminalreporter
    tr.section("speed ratios (baseline mean / entry mean; >1 is faster)")
    for group, entries in sorted(groups.items(), key=lambda kv: str(kv[0])):
        base = _baseline(entries)
        if base is None:
            continue
        for e in sorted(entries, key=lambda e: e.stats.mean):
            ratio = base.stats.mean / e.stats.mean
            tr.write_line(f"{str(group):34s} {e.name:58s} {e.stats.mean * 1e3:10.1f} ms  x{ratio:5.2f} vs {base.name}")
    # Entries that record their error against a reference (bench_providers.py) and what they ran on.
    recorded = [b for b in session.benchmarks if "mean_abs" in b.extra_info]
    if recorded:
        tr.section("error against torch fp32 (0..255: mean abs / max abs) and what ran")
        for b in sorted(recorded, key=lambda b: (str(b.group), b.name)):
            i = b.extra_info
            ran = f"  {i['device']} {i['precision']}" if "device" in i else ""
            tr.write_line(f"{str(b.group):34s} {b.name:40s} {i['mean_abs']:7.3f} / {i['max_abs']:5.1f}{ran}")
            if i.get("why"):
                tr.write_line(f"{'':34s} {'':40s} (auto: {i['why']})")
            if i.get("precision_why"):
                tr.write_line(f"{'':34s} {'':40s} (precision {i['precision_why']})")


@pytest.fixture(scope="session")
def net():
    """The TransformerNet every speed entry runs: seeded random weights (a trained one runs at the same speed)."""
    pytest.importorskip("torch")
    from model_factory import random_transformer_net
    return random_transformer_net(seed=0)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory, net):
    """`net` exported to ONNX with dynamic N/H/W and deepshop metadata."""
    from model_factory import TRANSFORMER_META, export_plain
    return export_plain(net, tmp_path_factory.mktemp("bench") / "tnet.onnx",
                        {**TRANSFORMER_META, "deepshop.receptive_field": "109"})


@pytest.fixture(scope="session")
def int8_model(tmp_path_factory, model_path):
    """(model, int8 file): a copy of `model_path` with its int8 file beside it, made by
    `deepshop-export quantize` on the scikit-image photos (its speed is that of any int8 file of
    this network; its error is measured on the trained style in docs/results/cpu-features.md)."""
    import shutil
    quantize = pytest.importorskip("deepshop_export.onnx.quantize")
    pytest.importorskip("onnxruntime.quantization")
    model = tmp_path_factory.mktemp("bench_int8") / "tnet.onnx"
    shutil.copyfile(model_path, model)
    report = quantize.quantize_model(model, calibration=8, held_out=2, size=256)
    return str(model), report.path
