"""The Ray engine: the batch as a Ray Data pipeline, on a cluster or on this machine.

    list (the driver) -> read the bytes (Ray tasks) -> paint and write (a pool of Ray actors, each
    holding one pipeline) -> outcomes streamed back to the driver (manifest, progress, summary)

Each actor opens the pipeline once and paints one image per call with the same code as the local
engine (``work.Painter``), so the files are byte for byte the local engine's; it writes each
result itself (nothing large travels back).  Actors take ``cpus_per_worker`` CPUs (the engine's
threads, unless --threads says otherwise) and ``gpus_per_worker`` GPUs.  Reading takes no CPU
slot (it waits on storage), so that the actors can have every core.

Ray is an optional dependency (``pip install 'deepshop-native[ray]'``); nothing here imports it
before a run.
"""
from __future__ import annotations

import logging
import math
import socket
from typing import Callable, List, Optional, Sequence, Tuple

from ..core import errors
from ..core.errors import DeepshopError, MissingDependencyError, OptionError
from .naming import Item
from .spec import PaintSpec
from .storage import Storage
from .work import ITEM_ERRORS, Outcome, Painter, do_item, failure_reason, read_item

__all__ = ["INSTALL_HINT", "import_ray", "probe_address", "run_ray"]

INSTALL_HINT = "pip install 'deepshop-native[ray]'"
#: Images per block of the work list at most (blocks are the unit Ray Data streams).
_BLOCK_ITEMS = 16


def import_ray():
    """The ray module; MissingDependencyError with the install command where it is missing."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"--engine ray needs Ray Data, which is not installed: {INSTALL_HINT}") from None
    return ray


class PaintWorker:
    """A Ray actor of the pool: ``SETTINGS`` (the spec, the destination's storage, the thread
    count) is set on a subclass made per run, so that nothing goes through constructor arguments."""

    SETTINGS: tuple = ()

    def __init__(self):
        spec, self.store, threads = self.SETTINGS
        self.painter, self.error = None, None
        try:
            self.painter = Painter(spec, threads)
        except ITEM_ERRORS as e:     # the driver stops the batch with it (a Ray error would retry forever)
            self.error = (type(e).__name__ if isinstance(e, DeepshopError) else "DeepshopError",
                          failure_reason(e, ""))

    def __call__(self, batch):
        import numpy as np
        if self.error is not None:
            n = len(batch["i"])
            return {"i": np.asarray(batch["i"], dtype=np.int64), "reason": np.array([self.error[1]] * n, dtype=object),
                    "size": np.zeros(n, dtype=np.int64), "seconds": np.zeros(n), "worker": np.array([""] * n, dtype=object),
                    "fatal": np.array([self.error[0]] * n, dtype=object)}
        outcomes = [do_item(self.painter, int(i), str(name), None if err else bytes(data), str(err), self.store,
                            str(target), bool(overwrite))
                    for i, name, target, overwrite, data, err in zip(batch["i"], batch["name"], batch["target"],
                                                                    batch["overwrite"], batch["data"], batch["error"])]
        return {"i": np.array([o.index for o in outcomes], dtype=np.int64),
                "reason": np.array([o.reason for o in outcomes], dtype=object),
                "size": np.array([o.size for o in outcomes], dtype=np.int64),
                "seconds": np.array([o.seconds for o in outcomes], dtype=np.float64),
                "worker": np.array([o.worker for o in outcomes], dtype=object),
                "fatal": np.array([""] * len(outcomes), dtype=object)}


def read_batch(batch, stores: Sequence[Storage]):
    """The read stage: each row's file bytes (b"" and the reason where it cannot be read)."""
    import numpy as np
    datas, errors = [], []
    for store, path, name in zip(batch["store"], batch["path"], batch["name"]):
        data, error = read_item(stores[int(store)], str(path), str(name))
        datas.append(b"" if data is None else data)
        errors.append(error)
    batch["data"] = np.array(datas, dtype=object)
    batch["error"] = np.array(errors, dtype=object)
    return batch


def _connect(ray, address: Optional[str]) -> bool:
    """Start a local Ray instance (``address`` None) or connect to a cluster; True when this
    call did (and so shuts it down afterwards), False when Ray was already initialised."""
    if ray.is_initialized():
        return False
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": True}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", include_dashboard=False, **kwargs)   # a new instance, not one of `ray start`
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        where = f"--address {address}" if address else "a local Ray instance"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DeepshopError(f"{where}: cannot start or reach Ray ({first})") from None
    return True


#: Seconds to wait for a cluster's port to answer before giving up on --address.
PROBE_SECONDS = 10.0


def probe_address(address: str) -> None:
    """A TCP connection to HOST:PORT (or ray://HOST:PORT), so that an address with nothing behind
    it is an error at once (ray.init would retry it for ever); "auto" is Ray's own to find."""
    text = address[len("ray://"):] if address.startswith("ray://") else address
    if address == "auto" or "://" in text:
        return
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError(f"--address: expected auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
        raise DeepshopError(f"--address {address}: no Ray cluster answers there ({why}); start one with "
                            f"`ray start --head` or give its head's HOST:PORT") from None


def _pool_size(ray, workers: Optional[int], cpus: float, gpus: float) -> int:
    """--workers, else as many workers as the cluster's CPUs (or GPUs) hold; OptionError when the
    cluster cannot hold one."""
    res = ray.cluster_resources()
    if gpus > 0 and res.get("GPU", 0) < gpus:
        raise OptionError(f"--gpus-per-worker: {gpus} GPU(s) per worker, but the Ray cluster has "
                          f"{res.get('GPU', 0):g}")
    if res.get("CPU", 0) < cpus:
        raise OptionError(f"--cpus-per-worker: {cpus} CPU(s) per worker, but the Ray cluster has {res.get('CPU', 0):g}")
    if workers is not None:
        return workers
    fit = res.get("GPU", 0) / gpus if gpus > 0 else res.get("CPU", 1) / cpus
    return max(1, int(math.floor(fit + 1e-9)))


def _error_class(name: str) -> type:
    """The DeepshopError subclass of that name (a worker's error, reported on the driver)."""
    cls = getattr(errors, name, DeepshopError)
    return cls if isinstance(cls, type) and issubclass(cls, DeepshopError) else DeepshopError


def _from_items(ray, rows: list, blocks: int):
    try:
        return ray.data.from_items(rows, override_num_blocks=blocks)
    except TypeError:                                   # Ray before 2.10
        return ray.data.from_items(rows, parallelism=blocks)


def run_ray(todo: List[Tuple[Item, bool]], spec: PaintSpec, stores: Sequence[Storage], dest_store: Storage,
            dest: str, on_result: Callable[[Outcome], None], *, address: Optional[str] = None,
            workers: Optional[int] = None, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0) -> None:
    """Paint ``todo`` ((item, replace an existing output)) on Ray; ``on_result`` gets each
    :class:`Outcome` on the driver as it comes back (in no particular order).  ``address``: None
    starts a local Ray instance, "auto" joins the cluster this machine belongs to, ``host:port``
    a cluster's head, ``ray://host:10001`` a Ray Client server."""
    ray = import_ray()
    started = _connect(ray, address)
    try:
        size = _pool_size(ray, workers, cpus_per_worker, gpus_per_worker)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False               # ours counts finished images instead
        if hasattr(ctx, "print_on_execution_start"):
            ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)   # "progress bars disabled"
        threads = dict(spec.engine).get("threads") or max(1, int(cpus_per_worker))
        worker_class = type("PaintWorker", (PaintWorker,), {"SETTINGS": (spec, dest_store, threads)})
        rows = [{"i": k, "store": item.source.store, "path": stores[item.source.store].absolute(item.source.path),
                 "name": item.source.name, "target": dest_store.absolute(dest_store.join(dest, item.output)),
                 "overwrite": overwrite}
                for k, (item, overwrite) in enumerate(todo)]
        blocks = max(1, min(len(rows), max(4 * size, math.ceil(len(rows) / _BLOCK_ITEMS))))
        ds = _from_items(ray, rows, blocks)
        ds = ds.map_batches(read_batch, fn_kwargs={"stores": list(stores)}, batch_size=None, batch_format="numpy",
                            num_cpus=0)
        remote = {"num_gpus": gpus_per_worker} if gpus_per_worker > 0 else {}
        ds = ds.map_batches(worker_class, batch_size=1, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=size), num_cpus=cpus_per_worker, **remote)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i, reason, nbytes, seconds, worker, fatal in zip(batch["i"], batch["reason"], batch["size"],
                                                                 batch["seconds"], batch["worker"], batch["fatal"]):
                if fatal:
                    raise _error_class(str(fatal))(f"a Ray worker could not open the pipeline: {reason}")
                on_result(Outcome(int(i), str(reason), int(nbytes), float(seconds), str(worker)))
    finally:
        if started:
            ray.shutdown()
