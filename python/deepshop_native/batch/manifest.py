"""The batch's memory in its destination: a JSON-lines manifest that makes a rerun resume.

Each run appends to ``DEST/.deepshop-batch.jsonl``: a ``run`` record (its options and their
digest, :meth:`PaintSpec.digest`), a ``plan`` record for every output it is about to write,
then ``done`` or ``failed`` for each as it finishes.  Lines are appended whole and flushed in
small groups (fsync'ed at least every :data:`SYNC_SECONDS`); a line torn by a killed process is
skipped when reading.  On an object store, where nothing can be appended, each group is a new
object ``DEST/.deepshop-batch/<run>-<n>.jsonl``, written once.

:func:`triage` decides what a run does with each output (all with the same options digest):

* it exists and a ``done`` record says so -- skipped;
* it exists and a ``plan`` record, but no ``done``, says a run was about to write it -- that run
  was killed after writing it (outputs appear whole, atomically): skipped as well, and recorded
  as done now; with ``overwrite`` it is painted again instead (the file might be an older one the
  run was going to replace);
* it exists with no record of these options -- refused (``exists``), or painted over with ``overwrite``;
* it does not exist -- painted (a ``failed`` record of an earlier run is retried).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple

from ..core.errors import DeepshopError
from ..core.files import lock_exclusively, output_exists_message
from .naming import Item
from .storage import Storage

__all__ = ["MANIFEST_NAME", "SEGMENTS_DIR", "FAILED_REPORT_NAME", "Manifest", "triage"]

MANIFEST_NAME = ".deepshop-batch.jsonl"
SEGMENTS_DIR = ".deepshop-batch"
#: The default report of a run's failures (one JSON object per line: input, output, reason).
FAILED_REPORT_NAME = ".deepshop-batch-failed.jsonl"
#: Records are written in groups of at most this many ...
GROUP = 64
#: ... and at least this often (seconds), fsync'ed.
SYNC_SECONDS = 2.0
VERSION = 1


@dataclass
class OutputState:
    """What the manifest says about one output: the digests it was planned and done with."""

    planned: Set[str] = field(default_factory=set)
    done: Set[str] = field(default_factory=set)


class Manifest:
    """The manifest of the destination ``dest`` in ``store`` (module doc)."""

    def __init__(self, store: Storage, dest: str):
        self.store, self.dest = store, dest
        self.path = store.join(dest, MANIFEST_NAME)
        self.local = store.local_path(self.path)
        self.torn_lines = 0
        self._file = None
        self._buffer: List[bytes] = []
        self._last_sync = time.monotonic()
        self._run = ""
        self._segment = 0

    # -------------------------------------------------------------- reading
    def _texts(self) -> Iterable[bytes]:
        if self.local is not None:
            if os.path.isfile(self.local):
                with open(self.local, "rb") as f:
                    yield f.read()
        elif self.store.kind(self.path) == "file":
            yield self.store.read_bytes(self.path)
        seg_dir = self.store.join(self.dest, SEGMENTS_DIR)
        if self.store.kind(seg_dir) == "dir":
            for path, rel in self.store.walk(seg_dir):
                if rel.endswith(".jsonl") and "/" not in rel:
                    yield self.store.read_bytes(path)

    def records(self) -> List[dict]:
        """Every readable record (torn or foreign lines counted in ``torn_lines`` and skipped)."""
        out = []
        for text in self._texts():
            for line in text.split(b"\n"):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    self.torn_lines += 1
                    continue
                if isinstance(rec, dict) and "event" in rec:
                    out.append(rec)
                else:
                    self.torn_lines += 1
        return out

    def state(self) -> Dict[str, OutputState]:
        """Output (below the destination) -> what was planned and done with which digests."""
        states: Dict[str, OutputState] = {}
        for rec in self.records():
            event, output, digest = rec.get("event"), rec.get("output"), rec.get("options")
            if event in ("plan", "done") and isinstance(output, str) and isinstance(digest, str):
                s = states.setdefault(output, OutputState())
                (s.planned if event == "plan" else s.done).add(digest)
        return states

    # -------------------------------------------------------------- writing
    def open(self, run: str) -> "Manifest":
        """Start appending records of the run ``run``.  On a local file system the manifest is
        locked: a second batch writing to the same destination at once is refused."""
        self._run = run
        if self.local is not None:
            os.makedirs(os.path.dirname(os.path.abspath(self.local)), exist_ok=True)
            f = open(self.local, "ab+")
            try:
                _lock(f, self.local)
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":   # a line torn by a killed run: end it
                        f.write(b"\n")
            except BaseException:
                f.close()
                raise
            self._file = f
        return self

    def write(self, record: dict) -> None:
        record = {"v": VERSION, "run": self._run, **record}
        self._buffer.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        if len(self._buffer) >= GROUP or time.monotonic() - self._last_sync >= SYNC_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the records so far (and fsync them)."""
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer = []
        if self._file is not None:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        else:
            self._segment += 1
            name = f"{SEGMENTS_DIR}/{self._run}-{self._segment:06d}.jsonl"
            self.store.write_bytes(self.store.join(self.dest, name), data, overwrite=False)
        self._last_sync = time.monotonic()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None


def _lock(f, name: str) -> None:
    if not lock_exclusively(f):
        raise DeepshopError(f"{name}: another batch is writing to this destination; wait for it or choose "
                            "another --out")


def triage(items: List[Item], existing: Set[str], states: Dict[str, OutputState], digest: str, overwrite: bool,
           display) -> Tuple[List[Tuple[Item, bool]], List[Item], List[Item], List[Tuple[Item, str]]]:
    """(to paint: (item, replace an existing file), skipped as done, recovered (written by a
    killed run: skipped and recorded as done), refused: (item, reason)); module doc."""
    todo, skipped, recovered, refused = [], [], [], []
    for item in items:
        s = states.get(item.output)
        if item.output not in existing:
            todo.append((item, False))
        elif s is not None and digest in s.done:
            skipped.append(item)
        elif s is not None and digest in s.planned and not overwrite:
            recovered.append(item)
        elif overwrite:
            todo.append((item, True))
        else:
            why = output_exists_message(display(item.output))
            if s is not None and (s.done or s.planned):
                why += " (it was made with other options)"
            refused.append((item, why))
    return todo, skipped, recovered, refused


def existing_outputs(store: Storage, dest: str) -> Set[str]:
    """Every file below the destination (paths relative to it), listed once."""
    if store.kind(dest) != "dir":
        return set()
    with contextlib.suppress(FileNotFoundError):
        return {rel for _, rel in store.walk(dest)}
    return set()
