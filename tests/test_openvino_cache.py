"""OpenVINO's compiled-model cache for the direct backend (cpp/engine/openvino_cache.*): compiled
forms land in $DEEPSHOP_CACHE/openvino, a second network of the same model and shapes adds none
(it is read back), `off` writes nothing, a folder that cannot be made only turns the cache off, and
the folder is trimmed oldest first to its budget.  The results are checked against the input (an
identity model).  Skipped without the openvino package.  (conftest turns the cache off for the
rest of the suite, so that tests write nothing into the user's cache folder.)"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

import deepshop_native as ds

BUDGET = 1 << 30   # kOpenVinoCacheBudgetBytes


def run_identity(model, h=40, w=36):
    image = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    stylizer = ds.Stylizer(model, device="openvino", precision="fp32", tile=0, harmonize=0)
    assert stylizer.provider == "OpenVINO"
    np.testing.assert_array_equal(stylizer(image), image)


def blobs(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.blob")} if folder.is_dir() else {}


def test_compiled_model_is_cached_and_read_back(openvino_library, identity_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSHOP_CACHE", str(tmp_path))
    run_identity(identity_onnx)
    first = blobs(tmp_path / "openvino")
    assert len(first) == 1
    run_identity(identity_onnx)                       # a new network: the same compiled form, from disk
    assert blobs(tmp_path / "openvino") == first
    run_identity(identity_onnx, 24, 20)               # other shapes: compiled and cached too
    assert len(blobs(tmp_path / "openvino")) == 2


def test_cache_off_and_unusable_folder(openvino_library, identity_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSHOP_CACHE", "off")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run_identity(identity_onnx)
    assert not (tmp_path / "home").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DEEPSHOP_CACHE", str(blocker))   # $DEEPSHOP_CACHE/openvino cannot be made
    run_identity(identity_onnx)


def test_folder_is_trimmed_oldest_first(openvino_library, identity_onnx, tmp_path, monkeypatch):
    folder = tmp_path / "openvino"
    folder.mkdir()
    old, recent, other = folder / "old.blob", folder / "recent.blob", folder / "notes.txt"
    for path, size in ((old, BUDGET), (recent, 1 << 20), (other, BUDGET)):
        with open(path, "wb") as f:   # sparse: the sizes count, no disk is used
            f.truncate(size)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    os.utime(recent, (time.time() - 60, time.time() - 60))
    monkeypatch.setenv("DEEPSHOP_CACHE", str(tmp_path))
    run_identity(identity_onnx)
    names = set(p.name for p in folder.iterdir())
    assert "old.blob" not in names and {"recent.blob", "notes.txt"} <= names   # only OpenVINO's *.blob go
    assert len([n for n in names if n.endswith(".blob")]) == 2
