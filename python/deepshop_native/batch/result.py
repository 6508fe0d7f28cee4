"""What a batch did: :class:`BatchResult` (counts, failures, each worker's pace), its summary and
the JSON-lines report of its failures."""
from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, TextIO

from ..core.errors import batch_exit_code

__all__ = ["BatchResult", "Failure"]


@dataclass(frozen=True)
class Failure:
    """An input that gave no output: its name (path or URL), its output (None when it had none
    planned) and the reason."""

    input: str
    output: Optional[str]
    reason: str


@dataclass
class BatchResult:
    """``done``: outputs written by this run; ``skipped``: outputs an earlier run had written with
    the same options (``recovered`` of them found written but not yet recorded, after a killed
    run); ``failed``: :class:`Failure` objects; ``workers``: worker -> [images, seconds busy];
    ``seconds``: the run's wall time; ``report``: where the failures were written."""

    engine: str = "local"
    done: int = 0
    skipped: int = 0
    recovered: int = 0
    failed: List[Failure] = field(default_factory=list)
    workers: Dict[str, List[float]] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    report: Optional[str] = None

    @property
    def exit_code(self) -> int:
        """0 when every image is done, 1 when any failed (130 after Ctrl-C, as shells do)."""
        return batch_exit_code(bool(self.failed), self.interrupted)

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def add_worker(self, worker: str, seconds: float) -> None:
        entry = self.workers.setdefault(worker, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def summary_lines(self) -> List[str]:
        head = (f"{self.done} done, {self.skipped} skipped, {len(self.failed)} failed in {self.seconds:.1f} s "
                f"({self.images_per_second:.2f} images/s, engine {self.engine})")
        if self.recovered:
            head += f"; {self.recovered} of the skipped were written by an interrupted run"
        if self.interrupted:
            head += "; interrupted"
        lines = [head]
        for worker, (count, busy) in sorted(self.workers.items()):
            rate = count / busy if busy > 0 else 0.0
            lines.append(f"  worker {worker}: {int(count)} image(s), {rate:.2f} images/s while busy")
        for f in self.failed:
            lines.append(f"{f.input}: {f.reason}")
        if self.failed and self.report:
            lines.append(f"failures listed in {self.report}")
        return lines

    def print_summary(self, stream: Optional[TextIO] = None) -> None:
        stream = sys.stderr if stream is None else stream
        print("\n".join(self.summary_lines()), file=stream)
        with contextlib.suppress(Exception):
            stream.flush()

    def report_bytes(self) -> bytes:
        """The failures as JSON lines: {"input", "output", "reason"}."""
        return b"".join(json.dumps({"input": f.input, "output": f.output, "reason": f.reason},
                                   ensure_ascii=False).encode() + b"\n" for f in self.failed)

