"""deepshop batch / deepshop_native.batch with the local engine (no Ray needed): the same files as
`deepshop stylize --out DIR`, the same naming as cli/batch.py, the manifest (a rerun skips, a
killed run resumes, other options are refused), failures reported, URLs through pyarrow.fs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from batch_helpers import CORRUPT, collection_fixture, tree

import deepshop_native.batch as batch
from deepshop_native.batch.manifest import FAILED_REPORT_NAME, MANIFEST_NAME, Manifest
from deepshop_native.batch.storage import LocalStorage
from deepshop_native.cli import main


collection = collection_fixture("collection")


@pytest.fixture(scope="module")
def stylized(tmp_path_factory, collection, transformer_onnx):
    """`deepshop stylize` on the collection: the reference the batch engines must match byte for byte."""
    out = tmp_path_factory.mktemp("stylize") / "out"
    rc = main(["stylize", str(collection), "-m", transformer_onnx, "-o", str(out), "-q"])
    assert rc == 1                                # the two corrupt files
    return tree(out)


def test_local_engine_writes_the_files_stylize_writes(tmp_path, collection, stylized, transformer_onnx):
    dest = tmp_path / "dest"
    result = batch.run(collection, dest, model=transformer_onnx, progress=False)
    assert tree(dest) == stylized                 # same names, same bytes
    assert len(stylized) == 28 and result.done == 28 and result.skipped == 0
    failed = {Path(f.input).relative_to(collection).as_posix(): f.reason for f in result.failed}
    assert sorted(failed) == sorted(CORRUPT) and all(failed.values())
    report = [json.loads(line) for line in (dest / FAILED_REPORT_NAME).read_text().splitlines()]
    assert sorted(Path(r["input"]).relative_to(collection).as_posix() for r in report) == sorted(CORRUPT)
    assert result.exit_code == 1
    # EXIF (made upright) and ICC profiles carried over, read back by Pillow.
    src, out = Image.open(collection / "a" / "p01.jpg"), Image.open(dest / "a" / "p01.jpg")
    assert out.info.get("icc_profile") == src.info.get("icc_profile") is not None
    assert out.getexif()[0x010F] == "Deepshop test camera" and out.getexif().get(0x0112, 1) == 1
    turned = Image.open(collection / "a" / "deeper" / "p02.jpg")
    assert turned.getexif()[0x0112] == 6
    assert Image.open(dest / "a" / "deeper" / "p02.jpg").size == turned.size[::-1]   # orientation applied
    assert Image.open(dest / "a" / "p07.png").mode == "RGB"                             # p07.bmp -> .png
    assert Image.open(dest / "a" / "p04.png").mode == "RGBA"                            # alpha kept


def test_a_rerun_does_nothing_and_other_options_are_refused(tmp_path, collection, transformer_onnx):
    dest = tmp_path / "dest"
    batch.run(collection, dest, model=transformer_onnx, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in dest.rglob("p*")}
    again = batch.run(collection, dest, model=transformer_onnx, progress=False)
    assert (again.done, again.skipped, len(again.failed)) == (0, 28, 2)     # the corrupt files are retried
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("p*")} == stamps
    other = batch.run(collection, dest, model=transformer_onnx, quality=80, progress=False)
    assert other.done == 0 and len(other.failed) == 30
    assert sum("made with other options" in f.reason for f in other.failed) == 28
    redo = batch.run(collection, dest, model=transformer_onnx, quality=80, overwrite=True, progress=False)
    assert redo.done == 28
    assert batch.run(collection, dest, model=transformer_onnx, quality=80, progress=False).skipped == 28


def test_naming_is_the_stylize_batch_naming(tmp_path, collection):
    """The batch package's listing and naming against cli/batch.py's collect_inputs + plan_outputs."""
    from deepshop_native.batch.naming import collect_sources, plan
    from deepshop_native.cli.batch import collect_inputs, plan_outputs
    dest = tmp_path / "dest"
    items = [str(collection / "a"), str(collection / "**" / "*.png"), str(collection / "p00.jpg"),
             str(collection / "p0?.bmp"), str(collection / "nothing-*.jpg"), str(tmp_path / "missing")]
    ref_inputs, ref_problems = collect_inputs(items, skip_dirs=[dest])
    ref = [(os.path.abspath(s), os.path.relpath(d, dest)) for s, d in plan_outputs(ref_inputs, dest, suffix="_x")]
    stores = []
    sources, problems = collect_sources(items, stores, skip=(LocalStorage(), str(dest)))
    planned, refused = plan(sources, stores, LocalStorage(), str(dest), "_x")
    assert not refused
    assert [(os.path.abspath(i.source.path), i.output.replace("/", os.sep)) for i in planned] == ref
    assert problems == ref_problems


def test_file_urls_give_the_same_files(tmp_path, collection, stylized, transformer_onnx):
    pytest.importorskip("pyarrow", reason="URLs go through pyarrow.fs (the ray extra)")
    dest = tmp_path / "dest"
    result = batch.run(collection.as_uri(), dest.as_uri(), model=transformer_onnx, progress=False)
    assert tree(dest) == stylized and result.done == 28
    assert all(f.input.startswith("file://") for f in result.failed)


def test_object_store_writes_are_checked_and_the_manifest_comes_in_pieces():
    """An object store (pyarrow's in-memory mock): writes are verified by size, no-clobber holds,
    and the manifest is written as separate objects that read back as one."""
    pafs = pytest.importorskip("pyarrow.fs", reason="URLs go through pyarrow.fs (the ray extra)")
    from deepshop_native.batch.storage import ArrowStorage
    from deepshop_native.core.errors import OutputExistsError
    store = ArrowStorage(pafs._MockFileSystem(), "mock://")
    store.write_bytes("bucket/out/a.jpg", b"12345")
    assert store.read_bytes("bucket/out/a.jpg") == b"12345" and store.kind("bucket/out") == "dir"
    with pytest.raises(OutputExistsError):
        store.write_bytes("bucket/out/a.jpg", b"x")
    m = Manifest(store, "bucket/out").open("run1")
    for k in range(3):
        m.write({"event": "plan", "options": "h", "output": f"f{k}.jpg"})
        m.flush()
    m.write({"event": "done", "options": "h", "output": "f1.jpg"})
    m.close()
    assert [rel for _, rel in store.walk("bucket/out/.deepshop-batch")] == [f"run1-{k:06d}.jsonl" for k in (1, 2, 3, 4)]
    state = Manifest(store, "bucket/out").state()
    assert sorted(state) == ["f0.jpg", "f1.jpg", "f2.jpg"] and state["f1.jpg"].done == {"h"}


def test_a_torn_manifest_line_is_skipped(tmp_path, collection, transformer_onnx):
    dest = tmp_path / "dest"
    batch.run(collection / "a" / "deeper", dest, model=transformer_onnx, progress=False)
    with open(dest / MANIFEST_NAME, "ab") as f:
        f.write(b'{"v":1,"event":"done","out')                       # a killed writer's last line
    again = batch.run(collection / "a" / "deeper", dest, model=transformer_onnx, progress=False)
    assert again.done == 0 and again.skipped > 0
    lines = (dest / MANIFEST_NAME).read_bytes().split(b"\n")
    assert b'{"v":1,"event":"done","out' in lines                   # ended, and the next run on its own line
    m = Manifest(LocalStorage(), str(dest))
    assert m.records() and m.torn_lines == 1


def test_a_killed_local_run_resumes(tmp_path, collection, stylized, transformer_onnx):
    dest = tmp_path / "dest"
    cmd = [sys.executable, "-m", "deepshop_native", "batch", str(collection), "-m", transformer_onnx, "-o", str(dest),
           "-q", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and len(tree(dest) if dest.exists() else {}) < 3:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    partial = tree(dest)
    assert all(stylized[name] == data for name, data in partial.items())   # whatever was written is whole
    result = batch.run(collection, dest, model=transformer_onnx, progress=False)
    assert tree(dest) == stylized
    assert result.done + result.skipped == 28 and result.skipped >= len(partial)


def test_cli_batch_options_and_missing_ray(tmp_path, collection, transformer_onnx, monkeypatch, capsys):
    base = ["batch", str(collection / "p00.jpg"), "-o", str(tmp_path / "d"), "-m", transformer_onnx, "-q"]
    assert main(base + ["--workers", "2"]) == 1
    assert "--workers: only with the ray engine" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)                   # as if ray were not installed
    assert main(base + ["--engine", "ray"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'deepshop-native[ray]'" in err
    assert not (tmp_path / "d").exists()                             # refused before anything was touched
    assert main(base) == 0 and (tmp_path / "d" / "p00.jpg").is_file()
