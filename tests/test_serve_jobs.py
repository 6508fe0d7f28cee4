"""deepshop serve under concurrency: jobs and their server-sent events, the bounded queue (503 with
Retry-After, then recovery), cancellation through the engine's progress callback (DELETE, a client
that goes away, the time limit), expiry of kept results, one shared pipeline, no files left behind.
A GatedPipeline (serve_helpers) holds a real engine run between tiles until the test lets it go, so
that "busy" and "running" are states the test controls rather than races."""
from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from fastapi.testclient import TestClient  # noqa: E402

from deepshop_native.serve.app import ServerConfig, create_app  # noqa: E402
from deepshop_native.serve.catalogue import Catalogue, Model, Style, default_catalogue  # noqa: E402
from serve_helpers import (GatedPipeline, assert_clean_error, decoded, encoded, identity, multipart, photo,  # noqa: E402
                           sse_events)


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    """The identity model in 160-px windows: a 150 x 200 photo runs as several tiles."""
    path = identity(tmp_path_factory.mktemp("serve_jobs") / "identity.onnx")
    return default_catalogue([path], include_default=False, device="cpu", threads=1, tile=160)


def gated_catalogue(tiled):
    gated = GatedPipeline(tiled.models[0].open())
    model = Model("gated", "holds each tile until released", lambda: gated)
    return gated, Catalogue(styles=[Style("gated", "", model)], models=[model])


def submit(client, arr, url="/v1/jobs", **data):
    return client.post(url, files={"photo": ("p.png", encoded(arr))}, data=data)


def wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_job_lifecycle_with_events(tiled):
    arr = photo(150, 200, seed=4)
    tiles = tiled.models[0].open().plan(150, 200)
    with TestClient(create_app(ServerConfig(catalogue=tiled))) as c:
        r = submit(c, arr)
        assert r.status_code == 202
        job = r.json()
        assert r.headers["location"] == job["url"] == f"/v1/jobs/{job['id']}" and job["status"] in ("queued", "running")
        assert (job["width"], job["height"], job["style"], job["format"]) == (200, 150, "identity", "png")
        events = sse_events(c.get(job["events"]).text)
        kinds = [k for k, _ in events]
        assert kinds[-1] == "done" and set(kinds[:-1]) <= {"progress"}
        done = [d["progress"]["done"] for _, d in events]
        assert done == sorted(done)
        total = tiles["tiles_x"] * tiles["tiles_y"]
        assert total > 1 and events[-1][1]["progress"] == {"done": total, "total": total}
        state = c.get(job["url"]).json()
        assert state["status"] == "done" and state["result"] == f"{job['url']}/result" and state["error"] is None
        np.testing.assert_array_equal(decoded(c.get(state["result"]).content), arr)
        assert c.delete(job["url"]).json()["deleted"] is True
        for url in (job["url"], job["events"], state["result"]):
            assert_clean_error(c.get(url), 404, contains="no job")
        assert_clean_error(c.delete(job["url"]), 404)


def test_cancel_a_running_job_through_the_engine(tiled):
    gated, cat = gated_catalogue(tiled)
    with TestClient(create_app(ServerConfig(catalogue=cat))) as c:
        job = submit(c, photo(150, 200)).json()
        assert gated.entered.wait(20)
        assert_clean_error(c.get(f"{job['url']}/result"), 409, contains="is running")
        r = c.delete(job["url"])
        assert r.status_code == 202
        gated.release()
        events = sse_events(c.get(job["events"]).text)
        assert events[-1][0] == "cancelled"
        assert gated.answers[-1] is False                 # the callback said stop; the engine raised Cancelled
        assert len(gated.answers) < gated.inner.plan(150, 200)["tiles_x"] * gated.inner.plan(150, 200)["tiles_y"]
        assert c.get(job["url"]).json()["status"] == "cancelled"
        assert_clean_error(c.get(f"{job['url']}/result"), 409, contains="cancelled")


def test_busy_queue_answers_503_with_retry_after_then_recovers(tiled):
    gated, cat = gated_catalogue(tiled)
    with TestClient(create_app(ServerConfig(catalogue=cat, workers=1, queue_size=1))) as c:
        running = submit(c, photo(150, 200)).json()
        assert gated.entered.wait(20)
        waiting = submit(c, photo(20, 20)).json()
        assert waiting["status"] == "queued"
        for url in ("/v1/jobs", "/v1/stylize"):
            r = submit(c, photo(20, 20), url=url)
            assert_clean_error(r, 503, contains="busy")
            assert r.headers["retry-after"].isdigit() and 1 <= int(r.headers["retry-after"]) <= 120
        assert c.delete(waiting["url"]).json()["status"] == "cancelled"     # a queued job: at once
        assert c.get("/healthz").json()["running"] == 1
        gated.release()
        assert sse_events(c.get(running["events"]).text)[-1][0] == "done"
        wait_for(lambda: c.get("/healthz").json()["queued"] == 0)
        again = submit(c, photo(20, 20))                                    # room again
        assert again.status_code == 202
        assert sse_events(c.get(again.json()["events"]).text)[-1][0] == "done"


def test_time_limit_stops_a_run(tiled):
    with TestClient(create_app(ServerConfig(catalogue=tiled, time_limit=1e-6))) as c:
        assert_clean_error(submit(c, photo(150, 200), url="/v1/stylize"), 503, contains="time limit of 1e-06 s")
        job = submit(c, photo(150, 200)).json()
        final = sse_events(c.get(job["events"]).text)[-1]
        assert final[0] == "failed" and final[1]["error_status"] == 503 and "time limit" in final[1]["error"]
        assert submit(c, photo(40, 40), url="/v1/stylize").status_code == 200     # one tile: nothing to stop


def test_a_client_that_goes_away_cancels_its_request(tiled):
    gated, cat = gated_catalogue(tiled)
    app = create_app(ServerConfig(catalogue=cat))
    body, ctype = multipart({}, {"photo": ("p.png", encoded(photo(150, 200)))})
    sent = []

    async def call():
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        gone = asyncio.Event()

        async def receive():
            if messages:
                return messages.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/stylize", "raw_path": b"/v1/stylize", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
                 "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]}
        task = asyncio.create_task(app(scope, receive, send))
        while not gated.entered.is_set():
            await asyncio.sleep(0.02)
        gone.set()                                          # the client hangs up while it runs
        await asyncio.wait_for(task, 20)

    asyncio.run(call())
    gated.release()
    wait_for(lambda: gated.answers and gated.answers[-1] is False)
    assert len(gated.answers) == 1                          # stopped at the first tile after it left
    app.state.runner().close()


def test_results_expire_and_are_bounded(tiled):
    with TestClient(create_app(ServerConfig(catalogue=tiled, result_ttl=0.5, max_kept=2))) as c:
        jobs = []
        for k in range(3):
            jobs.append(submit(c, photo(20, 20, seed=k)).json())
            c.get(jobs[-1]["events"]).read()
        assert_clean_error(c.get(jobs[0]["url"]), 404)      # the oldest beyond max_kept
        assert c.get(jobs[2]["url"]).json()["status"] == "done"
        time.sleep(0.6)
        assert_clean_error(c.get(jobs[2]["url"]), 404, contains="kept 0.5 s")


def test_concurrent_requests_share_one_pipeline_and_get_their_own_results(tiled):
    opened = []
    base = tiled.models[0]

    def open_once():
        opened.append(1)
        return base.open()
    model = Model("shared", "", open_once)
    cat = Catalogue(styles=[Style("shared", "", model)], models=[model])
    arrays = [photo(60 + k, 70, seed=k) for k in range(8)]
    results = [None] * len(arrays)
    with TestClient(create_app(ServerConfig(catalogue=cat, workers=3, queue_size=16))) as c:
        def one(k):
            results[k] = submit(c, arrays[k], url="/v1/stylize")
        threads = [threading.Thread(target=one, args=(k,)) for k in range(len(arrays))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert opened == [1]
    for arr, r in zip(arrays, results):
        assert r.status_code == 200
        np.testing.assert_array_equal(decoded(r.content), arr)


def test_no_files_are_written(tiled, tmp_path, monkeypatch):
    """Uploads, results and errors stay in memory: no temporary file is made (starlette's own form
    parser would spool uploads over 1 MiB to one), and the temporary folder stays empty."""
    import starlette.formparsers
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    made = []
    for module, name in ((tempfile, "TemporaryFile"), (tempfile, "NamedTemporaryFile"), (tempfile, "mkstemp"),
                         (tempfile, "SpooledTemporaryFile"), (starlette.formparsers, "SpooledTemporaryFile")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: made.append(_name) or _real(*a, **k))
    with TestClient(create_app(ServerConfig(catalogue=tiled, max_upload_bytes=4 * 2**20))) as c:
        big = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
        assert len(encoded(big)) > 2**20
        r = submit(c, big, url="/v1/stylize")
        assert r.status_code == 200 and decoded(r.content).shape == big.shape
        c.get(submit(c, photo(150, 200)).json()["events"]).read()
        assert c.post("/v1/stylize", files={"photo": ("x.png", encoded(big) * 3)}).status_code == 413
        assert c.post("/v1/stylize", files={"photo": ("x.png", b"junk")}).status_code == 415
    assert made == [] and os.listdir(private) == []


def test_job_runner_closes_cleanly_with_work_pending(tiled):
    gated, cat = gated_catalogue(tiled)
    with TestClient(create_app(ServerConfig(catalogue=cat, workers=1, queue_size=2))) as c:
        runner = c.app.state.runner()
        submit(c, photo(150, 200))
        assert gated.entered.wait(20)
        waiting = submit(c, photo(20, 20)).json()
        threading.Timer(0.3, gated.release).start()
    # leaving the context ran the shutdown: every job cancelled, the worker stopped, results dropped
    assert gated.answers and gated.answers[-1] is False
    assert not any(t.is_alive() for t in runner._threads) and runner.get(waiting["id"]) is None
