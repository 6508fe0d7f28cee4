"""A small, bounded load test of deepshop serve on 127.0.0.1 (bench/serve_load.py with few, small
requests): no failures under steady concurrent load, a burst beyond the workers and the queue gets
503 with Retry-After, and the server answers again afterwards.  The full run with figures is
`python bench/serve_load.py` (docs/results/serve.md); no speed is asserted here."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.load
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("skimage")

from serve_helpers import identity  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "bench" / "serve_load.py"


def _bench():
    spec = importlib.util.spec_from_file_location("serve_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steady_load_and_a_burst_beyond_the_queue(tmp_path, capsys):
    bench = _bench()
    model = identity(tmp_path / "identity.onnx")
    out = tmp_path / "load.json"
    # steady: 40 small identity requests from 4 clients; burst: 20 at once of the bundled style at
    # 256 px (slow enough that they pile up) against 2 workers + 2 waiting.
    rc = bench.main(["--requests", "40", "--clients", "4", "--size", "64", "--workers", "2", "--queue", "1",
                     "--burst", "20", "--burst-size", "256", "--burst-style", "default_style", "--baseline", "0",
                     "--device", "cpu", "--model", model, "--style", "identity", "--json", str(out)])
    import json
    r = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert rc == 0, printed
    s, b = r["steady"], r["burst"]
    assert s["ok"] == 40 and s["failed"] == 0 and s["retried_503"] == 0
    assert math.isfinite(s["p95_s"]) and s["p50_s"] <= s["p95_s"] <= s["max_s"]
    assert b["refused_503"] >= 1 and b["refused_with_retry_after"] == b["refused_503"] and b["other"] == []
    assert b["ok"] + b["refused_503"] == 20 and b["ok"] >= r["capacity"] == 4
    assert b["after_burst_status"] == 200
    assert s["rss_last_quarter_mb"] < s["rss_first_quarter_mb"] + 200
    assert "throughput" in printed and "burst: sent / 200 / 503" in printed
