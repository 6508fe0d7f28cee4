"""The run-time install needs none of torch, onnx, scipy, scikit-image, TensorFlow or matplotlib
(the runtime wheel does not install them): every `deepshop` subcommand that needs no training runs
here in a subprocess where importing any of them fails and is recorded (a sitecustomize.py on
PYTHONPATH puts a finder first on sys.meta_path, in every child process too), and must succeed
without one attempt.  OpenCV is blocked as well except for `deepshop edges` (the edges extra).

The models these commands read are made beforehand in this process (which has torch): the tiny
stand-ins of the pretrained networks (conftest's tiny_pretrained, through
$DEEPSHOP_PRETRAINED_MODELS) and a Gatys graph of a random VGG19 (deepshop-export gatys)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from deepshop_native.core.paths import PRETRAINED_ENV
from deepshop_native.models.styles import DEFAULT_STYLE

pytest.importorskip("torch")

#: What the run-time package must never import (top-level module names).
NOT_AT_RUN_TIME = ("torch", "torchvision", "onnx", "onnxscript", "scipy", "skimage", "tensorflow", "matplotlib",
                   "h5py", "deepshop_export")

SITECUSTOMIZE = textwrap.dedent('''
    import importlib.abc, os, sys

    _BLOCKED = set(os.environ["DEEPSHOP_TEST_BLOCKED"].split(","))
    _LOG = os.environ["DEEPSHOP_TEST_BLOCKED_LOG"]

    class _Unimportable(importlib.abc.MetaPathFinder):
        """Any import of a blocked module fails as if it were not installed, and is recorded."""
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in _BLOCKED:
                with open(_LOG, "a") as f:
                    f.write(name + "\\n")
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by tests/test_no_torch.py)", name=name)
            return None

    sys.meta_path.insert(0, _Unimportable())
''')

RUN_CLI = "import sys; from deepshop_native.cli import main; sys.exit(main(sys.argv[1:]))"
#: deepshop serve, up to the app and its catalogue: uvicorn.run replaced by a stub (nothing listens).
RUN_SERVE = ("import sys, uvicorn; from deepshop_native.cli import main; "
             "uvicorn.run = lambda app, **kw: print('app', type(app).__name__); "
             "sys.exit(main(['serve', '--port', '8765']))")


@pytest.fixture(scope="module")
def blocker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("no_torch")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("no_torch_files")
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (9, 13, 3)).astype(np.uint8)
    photo = np.kron(base, np.ones((8, 8, 1), np.uint8))[:64, :96]
    Image.fromarray(photo).save(d / "photo.png")
    Image.fromarray(255 - photo[::-1]).save(d / "painting.jpg", quality=92)
    drawing = np.full((64, 64), 255, np.uint8)
    drawing[10:54, 30:33] = 0
    drawing[30:33, 8:56] = 0
    Image.fromarray(drawing).save(d / "drawing.png")
    return d


@pytest.fixture(scope="module")
def gatys_graph(tmp_path_factory):
    """A Gatys loss-and-gradient graph of a random VGG19 (as tests/test_gatys.py makes it)."""
    from deepshop_export.families.gatys.export import export_gatys

    from test_gatys_export import random_torchvision_vgg
    folder = tmp_path_factory.mktemp("no_torch_gatys")
    weights = random_torchvision_vgg(str(folder / "vgg19-random.pth"))
    path = folder / "gatys-vgg19-max.onnx"
    export_gatys(path, model="vgg19", weights=weights, pooling="max", content_layers=["relu2_2"],
                 style_layers=["relu1_1", "relu2_1"])
    return path


def run_blocked(code: str, args, blocker, tmp_path, *, allow=(), env=None, stdin=None):
    """``python -c code args`` with the run-time-forbidden modules unimportable; (result, attempts)."""
    log = tmp_path / "blocked-imports.txt"
    blocked = [m for m in NOT_AT_RUN_TIME + ("cv2",) if m not in allow]
    environment = {**os.environ, **(env or {}), "DEEPSHOP_TEST_BLOCKED": ",".join(blocked),
                   "DEEPSHOP_TEST_BLOCKED_LOG": str(log),
                   "PYTHONPATH": os.pathsep.join([str(blocker)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, env=environment,
                       input=stdin, timeout=300, cwd=tmp_path)
    attempts = log.read_text().split() if log.exists() else []
    return r, attempts


def test_the_blocker_blocks(blocker, tmp_path):
    r, attempts = run_blocked("import torch", [], blocker, tmp_path)
    assert r.returncode != 0 and b"blocked by tests/test_no_torch.py" in r.stderr
    assert attempts == ["torch"]


@pytest.mark.parametrize("case", [
    "stylize bundled", "stylize built-in", "stylize painting", "stylize stdin", "styles", "styles json",
    "posterize", "info", "edges", "colorize", "completion"])
def test_subcommand_runs_without_torch(case, blocker, files, tiny_pretrained, tmp_path):
    out = tmp_path / "out.png"
    photo, painting = files / "photo.png", files / "painting.jpg"
    args, allow, stdin = {
        "stylize bundled": (["stylize", photo, "--style", "stained-glass", "-o", out, "-q"], (), None),
        "stylize built-in": (["stylize", photo, "-o", out, "-q"], (), None),   # the default: a built-in style
        "stylize painting": (["stylize", photo, "--style", painting, "-o", out, "-q"], (), None),
        "stylize stdin": (["stylize", "-", "--format", "png", "-q"], (), photo.read_bytes()),
        "styles": (["styles"], (), None),
        "styles json": (["styles", "--json"], (), None),
        "posterize": (["posterize", photo, "--levels", "3", "--out", out, "-q"], (), None),
        "info": (["info", "--json"], (), None),
        "edges": (["edges", photo, "-o", out, "-q"], ("cv2",), None),
        "colorize": (["colorize", files / "drawing.png", "-o", out, "-q"], (), None),
        "completion": (["completion", "bash"], (), None),
    }[case]
    if "cv2" in allow:
        pytest.importorskip("cv2")
    r, attempts = run_blocked(RUN_CLI, args, blocker, tmp_path, allow=allow, stdin=stdin,
                              env={PRETRAINED_ENV: str(tiny_pretrained[0])})
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert attempts == [], f"{case} tried to import {attempts}"
    if case.startswith("styles"):
        assert DEFAULT_STYLE.encode() in r.stdout and b"stained-glass" in r.stdout
    if case == "stylize stdin":
        assert r.stdout.startswith(b"\x89PNG")
    elif out.name in [p.name for p in tmp_path.iterdir()]:
        with Image.open(out) as im:
            assert im.size == (96, 64) or case == "colorize"


def test_gatys_runs_without_torch(blocker, files, gatys_graph, tmp_path):
    out = tmp_path / "gatys.png"
    r, attempts = run_blocked(RUN_CLI, ["gatys", "-c", files / "photo.png", "-s", files / "painting.jpg", "-m",
                                        gatys_graph, "-n", "3", "-l", "48", "-o", out, "--json", "-q"],
                              blocker, tmp_path)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert attempts == []
    entry = json.loads(r.stdout)
    assert entry["output"] == str(out) and max(entry["size"]) == 48 and out.is_file()


def test_serve_app_is_made_without_torch(blocker, tiny_pretrained, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    r, attempts = run_blocked(RUN_SERVE, [], blocker, tmp_path, env={PRETRAINED_ENV: str(tiny_pretrained[0])})
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert attempts == [], f"serve tried to import {attempts}"
    assert b"app FastAPI" in r.stdout


def test_importing_the_package_imports_no_torch(blocker, tmp_path):
    code = ("import deepshop_native as ds, deepshop_native.cli, deepshop_native.api; "
            "ds.Stylizer; import sys; print(sorted(m for m in sys.modules if m.partition('.')[0] in "
            f"{NOT_AT_RUN_TIME!r}))")
    r, attempts = run_blocked(code, [], blocker, tmp_path)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert attempts == [] and r.stdout.strip() == b"[]"
