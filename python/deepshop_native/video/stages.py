"""Threads joined by bounded queues: a video is decoded, stylized and encoded at once, each on
its own thread, at most a few frames apart (so memory stays bounded).

    with Stages() as stages:
        frames = stages.source(decode(), size=4)              # a thread fills the queue
        flows = stages.map(analyse, frames, size=4)           # a thread per stage, order kept
        done = stages.sink(encode, size=4)                    # a thread drains the queue
        for item in flows: done.put(work(item))
        stages.finish(done)                                   # the sink has written everything

Any stage's error stops every stage and is raised in the caller's thread (by items(), put() or
finish()); leaving the ``with`` early (an error, Ctrl-C) stops them too, and every thread is
joined before it returns, so nothing writes after the caller has given up.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, List, Optional

_END = object()
_POLL = 0.1


class Stopped(Exception):
    """Raised in a stage's thread when the stages were stopped."""


class Channel:
    """A bounded queue between two stages."""

    def __init__(self, stages: "Stages", size: int):
        self._stages = stages
        self._queue: queue.Queue = queue.Queue(max(1, size))
        self.thread: Optional[threading.Thread] = None     # the sink's thread

    def put(self, item) -> None:
        """Put ``item``, waiting while the queue is full; raises the error of a failed stage."""
        while True:
            self._stages.check()
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self.put(_END)

    def __iter__(self) -> Iterator:
        """The items until the producer closes the channel; raises a failed stage's error."""
        while True:
            self._stages.check()
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item


class Stages:
    def __init__(self):
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    def check(self) -> None:
        """Raise the first stage error; Stopped when the stages were stopped without one."""
        if self._error is not None:
            raise self._error
        if self._stop.is_set():
            raise Stopped()

    def _start(self, name: str, body: Callable[[], None]) -> threading.Thread:
        def run():
            try:
                body()
            except Stopped:
                pass
            except BaseException as e:   # noqa: BLE001  (handed to the caller's thread)
                with self._lock:
                    if self._error is None:
                        self._error = e
                self._stop.set()
        thread = threading.Thread(target=run, name=f"deepshop-video-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def source(self, items: Iterable, size: int, name: str = "source") -> Channel:
        """A channel a thread fills with ``items`` (an iterable consumed on that thread)."""
        out = Channel(self, size)

        def body():
            for item in items:
                out.put(item)
            out.close()
        self._start(name, body)
        return out

    def map(self, work: Callable, inputs: Channel, size: int, name: str = "map") -> Channel:
        """A channel of ``work(item)`` for the items of ``inputs``, computed on a thread, in order."""
        out = Channel(self, size)

        def body():
            for item in inputs:
                out.put(work(item))
            out.close()
        self._start(name, body)
        return out

    def sink(self, work: Callable, size: int, name: str = "sink") -> Channel:
        """A channel whose items a thread hands to ``work``; finish() waits until it is drained."""
        into = Channel(self, size)

        def body():
            for item in into:
                work(item)
        into.thread = self._start(name, body)
        return into

    def finish(self, sink: Channel) -> None:
        """Close ``sink`` and wait until its thread has handled every item; raises a stage error."""
        sink.close()
        thread = sink.thread
        while thread.is_alive():
            thread.join(_POLL)
        self.check_error()

    def check_error(self) -> None:
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Stop every stage and join the threads."""
        self._stop.set()
        for thread in self._threads:
            while thread.is_alive():
                thread.join(_POLL)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        self.stop()
        if kind is None:
            self.check_error()
