"""deepshop batch --engine ray on a local Ray instance (127.0.0.1 only, 2 CPUs): the same bytes as
the local engine, the corrupt files reported, a rerun does nothing, a killed driver's run resumes
to the same set.  Skipped where ray[data] is not installed (pip install 'deepshop-native[ray]')."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

#: Ray binds its services to the loopback interface only when told it is not forming a cluster
#: (read when ray is first imported, hence set here, before it).
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
if "ray" not in sys.modules:
    os.environ.update(LOOPBACK_ENV)

pytest.importorskip("ray", reason="Ray is not installed: pip install 'deepshop-native[ray]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'deepshop-native[ray]'")

from batch_helpers import CORRUPT, collection_fixture, tree  # noqa: E402

import deepshop_native.batch as batch  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance for the module (2 CPUs, no dashboard, 127.0.0.1); its address."""
    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        if not address.startswith("127.0.0.1:"):
            pytest.skip(f"Ray was imported before this module could keep it on 127.0.0.1 (it runs on {address})")
        yield address
    finally:
        ray.shutdown()


collection = collection_fixture("ray_collection")


@pytest.fixture(scope="module")
def local_files(tmp_path_factory, collection, transformer_onnx):
    """The local engine's outputs: what the Ray engine must write, byte for byte."""
    dest = tmp_path_factory.mktemp("ray_local") / "out"
    result = batch.run(collection, dest, model=transformer_onnx, progress=False)
    assert result.done == 28
    return tree(dest)


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, ray_address, collection, local_files, transformer_onnx):
    dest = tmp_path_factory.mktemp("ray_dest") / "out"
    result = batch.run(collection, dest, model=transformer_onnx, engine="ray", workers=2, progress=False)
    return dest, result


def test_ray_writes_the_local_engines_bytes_and_reports_the_corrupt_files(ray_run, collection, local_files):
    dest, result = ray_run
    assert tree(dest) == local_files
    assert (result.done, result.skipped) == (28, 0)
    assert sorted(os.path.relpath(f.input, collection).replace(os.sep, "/") for f in result.failed) == sorted(CORRUPT)
    assert len(result.workers) == 2 and sum(n for n, _ in result.workers.values()) == 28
    assert "images/s" in "\n".join(result.summary_lines())
    report = (dest / ".deepshop-batch-failed.jsonl").read_text().splitlines()
    assert len(report) == 2


def test_ray_rerun_does_nothing(ray_run, collection, transformer_onnx):
    dest, _ = ray_run
    stamps = {p: p.stat().st_mtime_ns for p in dest.rglob("p*")}
    again = batch.run(collection, dest, model=transformer_onnx, engine="ray", workers=2, progress=False)
    assert (again.done, again.skipped, len(again.failed)) == (0, 28, 2)     # only the corrupt files are tried again
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("p*")} == stamps


def test_ray_run_killed_half_way_resumes_to_the_same_set(tmp_path, ray_address, collection, local_files,
                                                         transformer_onnx):
    """The driver (a `deepshop batch` process on the module's Ray instance) is killed once outputs
    appear; a second run writes the rest and leaves what was done."""
    dest = tmp_path / "out"
    cmd = [sys.executable, "-m", "deepshop_native", "batch", str(collection), "-m", transformer_onnx, "-o", str(dest),
           "-q", "--engine", "ray", "--address", ray_address, "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **LOOPBACK_ENV})
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None and len(tree(dest) if dest.exists() else {}) < 2:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    import ray
    deadline = time.monotonic() + 60                  # Ray ends the dead driver's actors: wait for their CPUs
    while time.monotonic() < deadline and ray.available_resources().get("CPU", 0) < 2:
        time.sleep(0.2)
    partial = tree(dest) if dest.exists() else {}
    assert 0 < len(partial) < len(local_files), err.decode(errors="replace")[-2000:]
    assert all(local_files[name] == data for name, data in partial.items())
    result = batch.run(collection, dest, model=transformer_onnx, engine="ray", workers=2, progress=False)
    assert tree(dest) == local_files
    assert result.done + result.skipped == 28 and result.done < 28


def test_an_address_with_no_cluster_is_an_error_at_once(tmp_path, collection, transformer_onnx, capsys):
    """Nothing listens at --address: one line naming it, before any file is written (ray.init
    itself would retry for ever)."""
    import socket
    from deepshop_native.cli import main
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                     # closed again below: nothing listens there
    start = time.monotonic()
    rc = main(["batch", str(collection), "-m", transformer_onnx, "-o", str(tmp_path / "out"), "-q",
               "--engine", "ray", "--address", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert rc == 1 and f"--address 127.0.0.1:{port}: no Ray cluster answers there" in err and err.count("\n") == 1
    assert time.monotonic() - start < 60 and not (tmp_path / "out").exists()
