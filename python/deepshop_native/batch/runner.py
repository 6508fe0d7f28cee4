"""``deepshop_native.batch.run``: a collection of photos stylized into a destination, on this
machine or on a Ray cluster, resumable (the package doc)."""
from __future__ import annotations

import os
import secrets
import sys
import time
from typing import Iterable, Optional, TextIO, Union

from tqdm import tqdm

from ..core import options
from ..core.errors import OptionError, OutputError, interruption_recorded
from ..image.limits import DEFAULT_MAX_PIXELS
from .manifest import FAILED_REPORT_NAME, Manifest, existing_outputs, triage
from .naming import collect_sources, plan
from .result import BatchResult, Failure
from .spec import make_spec
from .storage import open_location
from .work import Outcome

__all__ = ["ENGINES", "run"]

ENGINES = ("local", "ray")
StrPath = Union[str, "os.PathLike[str]"]


def _check_engine_choice(engine: str, address, workers, cpus_per_worker, gpus_per_worker) -> dict:
    if engine not in ENGINES:
        raise OptionError(f"engine: must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "local":
        for name, value, default in (("address", address, None), ("workers", workers, None),
                                     ("cpus_per_worker", cpus_per_worker, 1.0),
                                     ("gpus_per_worker", gpus_per_worker, 0.0)):
            if value != default:
                raise OptionError(f"{name}: only with the ray engine (engine='ray', --engine ray)")
        return {}
    if address is not None and (not isinstance(address, str) or not address.strip() or "\0" in address):
        raise OptionError(f"address: expected 'auto', HOST:PORT or ray://HOST:PORT, got {address!r}")
    return {
        "address": address,
        "workers": None if workers is None else options.check_integer("workers", workers, 1, 1 << 20),
        "cpus_per_worker": _positive("cpus_per_worker", cpus_per_worker, 1 << 12),
        "gpus_per_worker": options.check_number("gpus_per_worker", gpus_per_worker, 0.0, 1 << 8),
    }


def _positive(name: str, value, hi: float) -> float:
    v = options.check_number(name, value, 0.0, hi)
    if v <= 0:
        raise OptionError(f"{name}: must be > 0, got {value!r}")
    return v


def _check_suffix(suffix: str) -> str:
    if not isinstance(suffix, str) or "/" in suffix or os.sep in suffix or "\0" in suffix:
        raise OptionError(f"suffix: {suffix!r} must be part of a file name, without '/'")
    return suffix


def run(inputs: Union[StrPath, Iterable[StrPath]], out: StrPath, *, model=None, style=(), style_weights=None,
        strength: float = 1.0, preserve_colors: bool = False, max_side: Optional[int] = None,
        working_size: Optional[int] = None, quality: int = 95, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
        suffix: str = "", overwrite: bool = False, engine: str = "local", address: Optional[str] = None,
        workers: Optional[int] = None, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
        report: Optional[StrPath] = None, progress: bool = True, stream: Optional[TextIO] = None,
        family_options: Optional[dict] = None, **engine_options) -> BatchResult:
    """Stylize every image of ``inputs`` (paths, folders, globs, URLs) into the folder or URL
    prefix ``out``; returns a :class:`BatchResult` (package doc).

    Painting options as ``ds.stylize`` and ``deepshop stylize`` take them (``engine_options``:
    device, tile, precision, threads, ...).  ``engine`` "local" paints in this process, "ray" on
    Ray Data (``address``, ``workers``, ``cpus_per_worker``, ``gpus_per_worker``).  Outputs that
    exist are skipped when the manifest says this run's options made them, refused otherwise
    unless ``overwrite``.  Failures are listed in ``report`` (default ``out/.deepshop-batch-failed.jsonl``).
    Ctrl-C re-raises KeyboardInterrupt with the result so far as its ``batch_result``.
    Everything is checked before any file is touched: a bad option is an OptionError.
    """
    ray_options = _check_engine_choice(engine, address, workers, cpus_per_worker, gpus_per_worker)
    if engine == "ray":
        from .ray_engine import import_ray, probe_address
        import_ray()                          # its install command, before anything else
        if address is not None:
            probe_address(address)            # nothing there: an error now (Ray would retry for ever)
    suffix = _check_suffix(suffix)
    spec = make_spec(model, style, style_weights, strength=strength, preserve_colors=preserve_colors,
                     max_side=max_side, working_size=working_size, quality=quality, max_pixels=max_pixels,
                     family_options=family_options, **engine_options)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    cache: dict = {}
    stores: list = []
    dest_store, dest = open_location(os.fspath(out), cache)
    if dest_store.kind(dest) in ("file", "other"):
        raise OutputError(f"{os.fspath(out)}: exists and is not a directory; give a folder (or URL prefix) for the outputs")
    sources, problems = collect_sources([os.fspath(i) for i in inputs], stores, skip=(dest_store, dest), cache=cache)
    items, refused = plan(sources, stores, dest_store, dest, suffix)

    def shown(rel: str) -> str:
        return dest_store.display(dest_store.join(dest, rel))

    manifest = Manifest(dest_store, dest)
    digest = spec.digest()
    todo, skipped, recovered, exists = triage(items, existing_outputs(dest_store, dest), manifest.state(), digest,
                                              overwrite, shown)
    result = BatchResult(engine=engine, skipped=len(skipped) + len(recovered), recovered=len(recovered))
    result.failed += [Failure(item, None, why) for item, why in problems]
    result.failed += [Failure(s.name, None, why) for s, why in refused]
    result.failed += [Failure(i.source.name, shown(i.output), why) for i, why in exists]

    run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{secrets.token_hex(3)}"
    start = time.perf_counter()
    manifest.open(run_id)
    manifest.write({"event": "run", "options": digest, "settings": spec.settings(), "engine": engine,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "todo": len(todo), "skipped": result.skipped})
    for item in recovered:
        manifest.write({"event": "done", "options": digest, "output": item.output, "input": item.source.name,
                        "recovered": True})
    for item, _ in todo:
        manifest.write({"event": "plan", "options": digest, "output": item.output, "input": item.source.name})
    manifest.flush()

    stream = sys.stderr if stream is None else stream
    bar = tqdm(total=len(todo), desc=f"batch ({engine})", unit="image", file=stream,
               disable=None if progress else True, dynamic_ncols=True)

    def on_result(o: Outcome) -> None:
        item = todo[o.index][0]
        record = {"options": digest, "output": item.output, "input": item.source.name, "worker": o.worker,
                  "seconds": round(o.seconds, 4)}
        if o.ok:
            result.done += 1
            result.add_worker(o.worker, o.seconds)
            manifest.write({"event": "done", **record, "bytes": o.size})
        else:
            result.failed.append(Failure(item.source.name, shown(item.output), o.reason))
            manifest.write({"event": "failed", **record, "reason": o.reason})
            bar.set_postfix(failed=len(result.failed), refresh=False)
        bar.update(1)

    finished = False
    try:
        with interruption_recorded(result, "batch_result"):
            if todo and engine == "local":
                from .local import run_local
                run_local(todo, spec, stores, dest_store, dest, on_result)
            elif todo:
                from .ray_engine import run_ray
                run_ray(todo, spec, stores, dest_store, dest, on_result, **ray_options)
        finished = True
    finally:
        bar.close()
        result.seconds = time.perf_counter() - start
        try:
            manifest.write({"event": "end", "done": result.done, "failed": len(result.failed),
                            "seconds": round(result.seconds, 3), "interrupted": result.interrupted})
        finally:
            manifest.close()
        try:
            _write_report(result, report, dest_store, dest, cache)
        except Exception:
            if finished:             # else the error in flight says more
                raise
    return result


def _write_report(result: BatchResult, report: Optional[StrPath], dest_store, dest: str, cache: dict) -> None:
    """This run's failures as JSON lines (an empty file when there were none)."""
    if report is None:
        store, path = dest_store, dest_store.join(dest, FAILED_REPORT_NAME)
    else:
        store, path = open_location(os.fspath(report), cache)
    store.write_bytes(path, result.report_bytes(), overwrite=True)
    result.report = store.display(path)
