"""The FastAPI application: the page at ``/``, the API under ``/v1``, OpenAPI at ``/openapi.json``
(read at ``/docs``, a page of our own: nothing is fetched from outside).

    app = create_app(ServerConfig(catalogue=default_catalogue(["mosaic.onnx"]), workers=2))

Routes (docs/guides/serve.md has the fields, errors and curl examples):

    GET    /healthz                      liveness and queue figures
    GET    /v1/styles                    the gallery: name, description, thumbnail URL, model
    GET    /v1/styles/{name}/thumbnail   a small JPEG of the sample photo in that style (rendered once)
    GET    /v1/models                    the models the server was started with
    POST   /v1/stylize                   form -> the stylized image (waits for it)
    POST   /v1/jobs                      form -> 202 {id, ...}; then:
    GET    /v1/jobs/{id}                 status, progress, result URL, error
    GET    /v1/jobs/{id}/events          server-sent events of progress, until it ends
    GET    /v1/jobs/{id}/result          the image
    DELETE /v1/jobs/{id}                 cancel (unfinished) or forget (finished, result too)
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import deepshop_native as ds
from deepshop_native.image import DEFAULT_MAX_PIXELS, read_image

from . import render
from .catalogue import Catalogue, model_json, style_json
from .errors import HTTPError, error_body
from .forms import check_form, read_form
from .jobs import FINISHED, Job, JobRunner

log = logging.getLogger("deepshop.serve")
STATIC = Path(__file__).resolve().parent / "static"
#: The page's own files only: no inline script, nothing from another origin.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


@dataclass
class ServerConfig:
    catalogue: Catalogue
    workers: int = 1
    queue_size: int = 4                      # waiting jobs, all workers together
    max_upload_bytes: int = 50 * 2**20       # the whole request body
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS   # photo and style image, from the header (2^26)
    time_limit: Optional[float] = 300.0      # seconds of running per request
    result_ttl: float = 600.0                # seconds a finished job's result is kept
    max_kept: int = 64                       # finished jobs kept at most
    prewarm_thumbnails: bool = False         # render every thumbnail in the background at start


class _SecurityHeaders:
    """Adds nosniff, no-referrer and no framing to every response (a pure ASGI middleware, so that
    streaming responses and disconnect detection are untouched)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for k, v in ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                             (b"x-frame-options", b"DENY")):
                    if k not in names:
                        headers.append((k, v))
                message = {**message, "headers": headers}
            await send(message)
        return await self.app(scope, receive, send_with_headers)


class _Thumbnails:
    """Each style's thumbnail, rendered once from the bundled sample photo and kept in memory."""

    def __init__(self, catalogue: Catalogue, pipelines: render.Pipelines):
        self.catalogue, self.pipelines = catalogue, pipelines
        self._made: Dict[str, bytes] = {s.name: s.thumbnail for s in catalogue.styles if s.thumbnail}
        self._locks: Dict[str, threading.Lock] = {s.name: threading.Lock() for s in catalogue.styles}
        self._sample = None

    def get(self, name: str) -> bytes:
        style = self.catalogue.style(name)
        if style is None:
            raise HTTPError(404, f"style: no style named {name[:60]!r}; GET /v1/styles lists them")
        if name in self._made:
            return self._made[name]
        with self._locks[name]:
            if name not in self._made:
                if self._sample is None:
                    self._sample = read_image(STATIC / "sample.jpg").pixels
                pipeline = self.pipelines.get(style.model)
                self._made[name] = render.thumbnail(pipeline, style.model.takes_style_image, style.style_image,
                                                    self._sample)
            return self._made[name]

    def prewarm(self) -> None:
        for style in self.catalogue.styles:
            try:
                self.get(style.name)
            except Exception:
                log.exception("thumbnail of %s", style.name)


def _error_response(e: BaseException) -> JSONResponse:
    status, body, headers = error_body(e)
    if status >= 500 and not isinstance(e, (HTTPError, ds.DeepshopError, MemoryError)):
        log.error("internal error", exc_info=e)
    return JSONResponse(body, status_code=status, headers=headers)


def _form_schema() -> dict:
    text = {"type": "string"}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["photo"],
        "properties": {
            "photo": {"type": "string", "format": "binary", "description": "the photo (JPEG, PNG, WebP, TIFF, BMP...)"},
            "style": {**text, "description": "a style of GET /v1/styles (default: the first)"},
            "model": {**text, "description": "a model of GET /v1/models (instead of style)"},
            "style_image": {"type": "string", "format": "binary",
                            "description": "a painting, for a model that takes a style image"},
            "strength": {"type": "number", "minimum": 0, "maximum": 1, "default": 1,
                         "description": "blend of the style with the photo"},
            "preserve_colors": {"type": "boolean", "default": False, "description": "keep the photo's colours"},
            "format": {"type": "string", "enum": ["jpeg", "png", "webp"],
                       "description": "of the result (default: the photo's when it is one of these, else png)"},
            "quality": {"type": "integer", "minimum": 0, "maximum": 100, "default": 95},
            "max_side": {"type": "integer", "minimum": 1, "description": "working size: the longer side at most this"},
        }}}}}}


_ERRORS = {code: {"description": why, "content": {"application/json": {"example": {"error": "..."}}}}
           for code, why in ((400, "bad option or image"), (404, "unknown style, model or job"),
                             (413, "upload or image too large"), (415, "not an image"),
                             (503, "busy (Retry-After) or over the time limit"))}
_IMAGE = {200: {"description": "the stylized image", "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}}


def create_app(config: ServerConfig) -> FastAPI:
    catalogue = config.catalogue
    pipelines = render.Pipelines()
    thumbnails = _Thumbnails(catalogue, pipelines)
    runner_box: Dict[str, JobRunner] = {}
    # Decoding runs in the request's (thread-pool) thread; at most this many at once, the rest wait.
    decoding = threading.BoundedSemaphore(max(2, config.workers))

    def prepare(form):
        with decoding:
            return render.prepare(form, catalogue, config.max_pixels)

    def runner() -> JobRunner:
        if "r" not in runner_box:        # made on first use, so that TestClient without lifespan works
            runner_box["r"] = JobRunner(config.workers, config.queue_size, time_limit=config.time_limit,
                                        result_ttl=config.result_ttl, max_kept=config.max_kept)
        return runner_box["r"]

    async def lifespan(app):
        runner()
        if config.prewarm_thumbnails:
            threading.Thread(target=thumbnails.prewarm, name="deepshop-serve-thumbnails", daemon=True).start()
        yield
        runner_box.pop("r").close()

    app = FastAPI(title="Deepshop", version=ds.__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Turn photographs into artwork: the stylization engine over HTTP.  Errors are "
                              '`{"error": message}`.')
    app.add_middleware(_SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.config, app.state.runner = config, runner

    @app.exception_handler(HTTPError)
    async def _http_error(request, e):
        return _error_response(e)

    @app.exception_handler(ds.DeepshopError)
    async def _deepshop_error(request, e):
        return _error_response(e)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request, e):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, e):
        where = ", ".join(".".join(str(p) for p in err.get("loc", ())) for err in e.errors())
        return JSONResponse({"error": f"bad request ({where})"}, status_code=400)

    @app.exception_handler(Exception)
    async def _internal(request, e):
        return _error_response(e)

    # --- the page ------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_CSP,
                                                            "Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(STATIC / "docs.html", headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/healthz", tags=["server"])
    async def healthz():
        """The server is up: version, workers and the queue."""
        return {"status": "ok", "version": ds.__version__, **runner().stats()}

    # --- the catalogue -------------------------------------------------------------------------
    @app.get("/v1/styles", tags=["styles"])
    async def styles():
        """The styles on offer: name, description, thumbnail URL and the model that runs it."""
        return [style_json(s, f"/v1/styles/{quote(s.name, safe='')}/thumbnail") for s in catalogue.styles]

    @app.get("/v1/styles/{name}/thumbnail", tags=["styles"], responses={200: {"content": {"image/jpeg": {}}}})
    async def thumbnail(name: str):
        """The sample photo in this style, a small JPEG (rendered on first request, then cached)."""
        data = await run_in_threadpool(thumbnails.get, name)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/v1/models", tags=["styles"])
    async def models():
        """The models the server was started with; ``takes_style_image``: send a painting as ``style_image``."""
        return [model_json(m) for m in catalogue.models]

    # --- stylizing -----------------------------------------------------------------------------
    async def submit(request: Request, keep: bool) -> Job:
        runner().check_room()                   # busy: refused before the body is read
        form = check_form(await read_form(request, config.max_upload_bytes))
        prepared = await run_in_threadpool(prepare, form)
        width, height = prepared.size
        job = Job(lambda job: render.run(prepared, pipelines, job.progress, job.set_total),
                  media_type=prepared.media_type, filename=prepared.filename, time_limit=config.time_limit,
                  info={"width": width, "height": height, "model": prepared.model.name,
                        "style": form.style or (None if form.model or form.style_image else prepared.style_image_name),
                        "format": prepared.format})
        return runner().submit(job, keep=keep)

    def image_response(job: Job) -> Response:
        return Response(job.result, media_type=job.media_type,
                        headers={"Content-Disposition": f'inline; filename="{job.filename}"',
                                 "Cache-Control": "no-store"})

    @app.post("/v1/stylize", tags=["stylize"], openapi_extra=_form_schema(), responses={**_IMAGE, **_ERRORS})
    async def stylize(request: Request):
        """Stylizes the photo and answers with the image; a client that goes away cancels it."""
        job = await submit(request, keep=False)
        waiting = asyncio.wrap_future(job.future)
        waiting.add_done_callback(lambda f: f.cancelled() or f.exception())   # retrieved, even if nobody waits
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=0.25)
            if not waiting.done() and await request.is_disconnected():
                job.cancel()        # the engine stops at its next tile
                return Response(status_code=499)
        if job.status != "done":
            return _error_response(waiting.exception())
        return image_response(job)

    def job_json(job: Job) -> dict:
        snap = job.snapshot()
        base = f"/v1/jobs/{job.id}"
        snap.update(url=base, events=f"{base}/events", result=f"{base}/result" if snap["status"] == "done" else None)
        if job.error_status is not None:
            snap["error_status"] = job.error_status
        return snap

    def find(job_id: str) -> Job:
        job = runner().get(job_id)
        if job is None:
            raise HTTPError(404, f"no job {job_id[:40]!r} (finished jobs are kept {config.result_ttl:g} s)")
        return job

    @app.post("/v1/jobs", tags=["jobs"], status_code=202, openapi_extra=_form_schema(), responses=_ERRORS)
    async def create_job(request: Request):
        """Queues the work and answers at once with the job's id and URLs."""
        job = await submit(request, keep=True)
        return JSONResponse(job_json(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], responses={404: _ERRORS[404]})
    async def get_job(job_id: str):
        """Status (queued, running, done, failed, cancelled), progress in tiles, result URL, error."""
        return job_json(find(job_id))

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"], responses={200: {"content": {"text/event-stream": {}}}})
    async def job_events(job_id: str, request: Request):
        """Server-sent events: ``progress`` while it waits and runs (data: the job's JSON), then one of
        ``done``, ``failed``, ``cancelled``, and the stream ends."""
        job = find(job_id)

        async def stream():
            yield "retry: 1000\n\n"
            seen, quiet = -1, 0.0
            while True:
                if job.version != seen:
                    seen = job.version
                    snap = job_json(job)
                    kind = snap["status"] if snap["status"] in FINISHED else "progress"
                    yield f"event: {kind}\ndata: {json.dumps(snap)}\n\n"
                    quiet = 0.0
                    if kind != "progress":
                        return
                elif quiet >= 15.0:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.1)
                quiet += 0.1

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/v1/jobs/{job_id}/result", tags=["jobs"], responses={**_IMAGE, 404: _ERRORS[404],
                                                                  409: {"description": "not done"}})
    async def job_result(job_id: str):
        """The stylized image of a finished job."""
        job = find(job_id)
        if job.status == "done":
            return image_response(job)
        if job.status == "failed":
            return JSONResponse({"error": job.error}, status_code=job.error_status or 500)
        state = f"{job.status} ({job.done}/{job.total} tiles)" if job.status == "running" else job.status
        return JSONResponse({"error": f"job {job.id} is {state}; GET /v1/jobs/{job.id}/events follows it"},
                            status_code=409)

    @app.delete("/v1/jobs/{job_id}", tags=["jobs"], responses={404: _ERRORS[404]})
    async def delete_job(job_id: str):
        """Cancels an unfinished job (202; it stops at its next tile and stays listed as cancelled),
        or forgets a finished one and its result (200)."""
        job = find(job_id)
        if job.cancel():
            return JSONResponse(job_json(job), status_code=202)
        runner().remove(job.id)
        return JSONResponse({**job_json(job), "deleted": True}, status_code=200)

    return app
