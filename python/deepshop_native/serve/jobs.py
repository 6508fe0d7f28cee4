"""Jobs: ``workers`` threads take work from a bounded queue; each job reports its progress, can be
cancelled, and is stopped past the time limit.

* At most ``workers + queue_size`` jobs are in the server at once (running or waiting); a job's place
  is given back the moment it finishes (before its client hears of it), and :meth:`JobRunner.submit`
  past that raises :class:`~.errors.Busy` (HTTP 503) with a Retry-After estimated from recent run times.
* A job's work gets a progress callback ``progress(done, total) -> bool``: the engine calls it after
  each tile, and a False answer stops the run (ds.Cancelled).  It answers False once the job is
  cancelled (DELETE, or the client of a synchronous request went away) or has run longer than the
  time limit (counted from when a worker took it).
* Finished jobs are kept in memory (their result bytes with them) for ``result_ttl`` seconds and at
  most ``max_kept`` of them, oldest dropped first; nothing is written to disk.
"""
from __future__ import annotations

import logging
import math
import queue
import secrets
import threading
import time
from concurrent.futures import Future
from typing import Callable, Dict, List, Optional

import deepshop_native as ds

from .errors import Busy, TimeLimit, public_message, status_of

log = logging.getLogger("deepshop.serve")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class Job:
    """One piece of work and its state.  ``version`` grows with every change (progress, status), so
    that a watcher (the SSE stream) can tell when there is news."""

    def __init__(self, work: Callable[["Job"], bytes], *, media_type: str = "", filename: str = "",
                 time_limit: Optional[float] = None, info: Optional[dict] = None):
        self.id = secrets.token_urlsafe(12)
        self.work, self.media_type, self.filename = work, media_type, filename
        self.time_limit = time_limit
        self.info = dict(info or {})
        self.status = QUEUED
        self.done = self.total = 0
        self.result: Optional[bytes] = None
        self.error: Optional[str] = None
        self.error_status: Optional[int] = None
        self.created = time.time()
        self.started: Optional[float] = None
        self.finished: Optional[float] = None
        self.version = 0
        self.future: Future = Future()
        self._cancel = threading.Event()
        self._on_finish: Optional[Callable[[], None]] = None      # gives the job's place back (once)
        self._deadline: Optional[float] = None
        self._timed_out = False
        self._lock = threading.Lock()

    # --- called by the worker and the engine ---------------------------------------------------
    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = int(total)
            self.version += 1

    def progress(self, done: int, total: int) -> bool:
        """The engine's progress callback: records (done, total); False stops the run."""
        with self._lock:
            self.done, self.total = int(done), int(total)
            self.version += 1
        if self._cancel.is_set():
            return False
        if self._deadline is not None and time.monotonic() > self._deadline and done < total:
            self._timed_out = True
            return False
        return True

    # --- called by the API ---------------------------------------------------------------------
    def cancel(self) -> bool:
        """Asks the job to stop; a queued job is cancelled at once.  False when it had finished."""
        self._cancel.set()
        with self._lock:
            if self.status in FINISHED:
                return False
            if self.status == QUEUED:
                self._finish(CANCELLED, error="cancelled before it started")
        return True

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def snapshot(self) -> dict:
        with self._lock:
            return {"id": self.id, "status": self.status, "progress": {"done": self.done, "total": self.total},
                    "error": self.error, "created": self.created, "started": self.started,
                    "finished": self.finished, **self.info}

    # --- internal ------------------------------------------------------------------------------
    def _finish(self, status: str, *, result: Optional[bytes] = None, error: Optional[str] = None,
                error_status: Optional[int] = None, exception: Optional[BaseException] = None) -> None:
        """Sets the final state (the caller holds the lock)."""
        self.status, self.result, self.error, self.error_status = status, result, error, error_status
        self.finished = time.time()
        self.version += 1
        self.work = None            # the request's pixels go with it
        release, self._on_finish = self._on_finish, None
        if release is not None:
            release()
        if not self.future.done():
            if status == DONE:
                self.future.set_result(result)
            else:
                self.future.set_exception(exception or ds.Cancelled(error or status))

    def _run(self) -> None:
        with self._lock:
            if self.status != QUEUED:           # cancelled while it waited
                return
            self.status, self.started = RUNNING, time.time()
            self.version += 1
            if self.time_limit:
                self._deadline = time.monotonic() + self.time_limit
            work = self.work
        try:
            result = work(self)
        except BaseException as e:
            if isinstance(e, ds.Cancelled) and self._timed_out:
                e = TimeLimit(f"stopped: ran longer than the server's time limit of {self.time_limit:g} s; "
                              "send a smaller image or a smaller max_side")
            if isinstance(e, ds.Cancelled) and self.cancelled:
                with self._lock:
                    self._finish(CANCELLED, error="cancelled", exception=e)
                return
            if not isinstance(e, (ds.DeepshopError, MemoryError)):
                log.exception("job %s failed", self.id)
            with self._lock:
                self._finish(FAILED, error=public_message(e), error_status=status_of(e), exception=e)
            if not isinstance(e, Exception):
                raise
            return
        with self._lock:
            if self.cancelled:
                self._finish(CANCELLED, error="cancelled")
            else:
                self._finish(DONE, result=result)


class JobRunner:
    """The worker threads, the bounded queue and the table of kept jobs."""

    def __init__(self, workers: int = 1, queue_size: int = 4, *, time_limit: Optional[float] = 300.0,
                 result_ttl: float = 600.0, max_kept: int = 64):
        self.workers, self.queue_size = int(workers), int(queue_size)
        self.time_limit, self.result_ttl, self.max_kept = time_limit, float(result_ttl), int(max_kept)
        self._queue: "queue.Queue[Optional[Job]]" = queue.Queue()
        self._jobs: Dict[str, Job] = {}
        self._lock = threading.Lock()
        self._running = 0
        self._active: set = set()       # jobs submitted and not finished (running or waiting)
        self._mean_seconds = 5.0        # running mean of run times, for Retry-After
        self._closed = False
        self._threads: List[threading.Thread] = []
        for k in range(self.workers):
            t = threading.Thread(target=self._worker, name=f"deepshop-serve-worker-{k}", daemon=True)
            t.start()
            self._threads.append(t)

    # --- submitting ----------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return max(0, len(self._active) - self._running)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: a run's mean time times the rounds of waiting jobs
        ahead, within 1..120."""
        rounds = self.waiting / max(1, self.workers) + 1
        return max(1, min(120, int(math.ceil(self._mean_seconds * rounds))))

    def _full(self) -> bool:
        return self._closed or len(self._active) >= self.workers + self.queue_size

    def check_room(self) -> None:
        """Busy (503) when every place is taken, so that a request is refused before its body is read."""
        if self._full():
            raise Busy(self.retry_after(), self.waiting)

    def _release(self, job: Job) -> None:
        with self._lock:
            self._active.discard(job)

    def submit(self, job: Job, *, keep: bool = True) -> Job:
        """Queues ``job``; Busy when every place is taken.  ``keep``: list it for /v1/jobs/{id} (a
        synchronous request's job is not)."""
        self.sweep()
        with self._lock:
            if self._full():
                raise Busy(self.retry_after(), self.waiting)
            self._active.add(job)
            job._on_finish = lambda: self._release(job)
            if keep:
                self._jobs[job.id] = job
        self._queue.put_nowait(job)
        return job

    def get(self, job_id: str) -> Optional[Job]:
        self.sweep()
        with self._lock:
            return self._jobs.get(job_id)

    def remove(self, job_id: str) -> Optional[Job]:
        with self._lock:
            return self._jobs.pop(job_id, None)

    def stats(self) -> dict:
        return {"workers": self.workers, "running": self._running, "queued": self.waiting,
                "queue_size": self.queue_size, "kept_jobs": len(self._jobs)}

    # --- housekeeping --------------------------------------------------------------------------
    def sweep(self) -> None:
        """Drops finished jobs older than result_ttl, and the oldest beyond max_kept."""
        now = time.time()
        with self._lock:
            finished = sorted((j for j in self._jobs.values() if j.status in FINISHED and j.finished is not None),
                              key=lambda j: j.finished)
            for k, job in enumerate(finished):
                if now - job.finished > self.result_ttl or len(finished) - k > self.max_kept:
                    del self._jobs[job.id]

    def close(self, timeout: float = 5.0) -> None:
        """Cancels every job, stops the workers (waiting up to ``timeout`` s for running runs to
        notice) and drops every kept result."""
        self._closed = True
        with self._lock:
            jobs = list(self._active)
        for job in jobs:
            job.cancel()
        for _ in self._threads:
            self._queue.put_nowait(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._jobs.clear()

    def _worker(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.status != QUEUED:           # cancelled while it waited: its place is free already
                continue
            with self._lock:
                self._running += 1
            t0 = time.monotonic()
            try:
                job._run()
            except BaseException:        # a KeyboardInterrupt-like escape: the job is failed already
                log.exception("worker stopped by job %s", job.id)
            finally:
                with self._lock:
                    self._running -= 1
                if job.status == DONE:
                    self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (time.monotonic() - t0)
            self.sweep()
