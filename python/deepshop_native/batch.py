"""Conventions shared by every ``deepshop`` sub-command that works on many images.

* :func:`expand_inputs` turns the command line's inputs (files, directories, globs) into files;
* :func:`plan_outputs` decides each input's output path (``--out`` a file or a directory);
* :func:`run_batch` processes them one by one: a failure is recorded and the batch goes on, an
  existing output is not replaced without ``--overwrite``, a progress bar shows where it is;
* :func:`tile_progress` is the nested bar for the tiles of one large image.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple, Union

from tqdm import tqdm

from .errors import DeepshopError
from .image.formats import FALLBACK_EXTENSION, READ_EXTENSIONS, WRITE_EXTENSIONS

__all__ = [
    "IMAGE_EXTENSIONS", "WRITABLE_EXTENSIONS", "InputPath", "expand_inputs", "plan_outputs",
    "BatchReport", "run_batch", "tile_progress",
]

#: What counts as an image when a directory or a glob is expanded (compared case-insensitively).
IMAGE_EXTENSIONS = READ_EXTENSIONS
#: The extensions outputs can have (see deepshop_native.image.write_image).
WRITABLE_EXTENSIONS = tuple(WRITE_EXTENSIONS)

_GLOB_CHARS = frozenset("*?[")
StrPath = Union[str, "os.PathLike[str]"]


class InputPath(type(Path())):  # type: ignore[misc]   # PosixPath or WindowsPath
    """A :class:`~pathlib.Path` that remembers the directory it was found under.

    ``base`` is the directory named on the command line (or the fixed leading directories of a
    glob) for files found by expanding one, None for a file named itself.  :func:`plan_outputs`
    keeps the path below ``base`` under the output directory.
    """

    __slots__ = ("base",)

    @classmethod
    def found_under(cls, path: StrPath, base: Optional[StrPath]) -> "InputPath":
        p = cls(path)
        p.base = None if base is None else Path(base)
        return p


def _base_of(p: Path) -> Optional[Path]:
    return getattr(p, "base", None)


def is_image_file_name(name: StrPath) -> bool:
    return os.path.splitext(os.fspath(name))[1].lower() in IMAGE_EXTENSIONS


def _is_hidden(rel_parts: Sequence[str]) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in rel_parts)


def _walk_images(directory: Path) -> List[Path]:
    """Image files below a directory, recursively, hidden files and folders skipped, sorted by
    their path below it (a folder's files together)."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and is_image_file_name(name):
                found.append(Path(root, name))
    return sorted(found, key=lambda p: p.relative_to(directory).parts)


def _glob_base(pattern: str) -> Path:
    """The leading directories of a glob pattern that contain no wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def expand_inputs(patterns: Iterable[StrPath]) -> List[Path]:
    """Input files from command-line items, in order, each file once.

    An item is a file (taken whatever its extension: a non-image named explicitly fails later
    with a read error rather than being skipped), a directory (its images, recursively, sorted;
    hidden files skipped) or a glob with ``*``, ``?``, ``[...]`` or ``**`` (its matches with
    image extensions, sorted).  Items that give no file are collected and reported together in
    one :class:`DeepshopError`.  The paths returned are :class:`InputPath` objects.
    """
    result: List[Path] = []
    seen = set()
    missing: List[str] = []

    def add(path: Path, base: Optional[Path]) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            result.append(InputPath.found_under(path, base))

    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    for item in patterns:
        text = os.fspath(item)
        path = Path(text)
        if path.is_file():
            add(path, None)
        elif path.is_dir():
            images = _walk_images(path)
            if not images:
                missing.append(f"{text} (a directory with no images)")
            for p in images:
                add(p, path)
        elif _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            files = [m for m in matches if os.path.isfile(m)]
            images = [m for m in files if is_image_file_name(m)]
            if not images:
                why = (f"matched {len(files)} file(s), none with an image extension"
                       if files else "matched nothing")
                missing.append(f"{text} ({why})")
            base = _glob_base(text)
            for m in images:
                add(Path(m), base)
        elif os.path.lexists(text):
            missing.append(f"{text} (not a regular file or directory)")
        else:
            missing.append(f"{text} (no such file or directory)")
    if missing:
        raise DeepshopError("no input images from: " + "; ".join(missing))
    return result


def _normalise_ext(ext: Optional[str]) -> Optional[str]:
    if ext is None or ext == "":
        return None
    ext = ext if ext.startswith(".") else "." + ext
    if ext.lower() not in WRITABLE_EXTENSIONS:
        raise DeepshopError(f"cannot write {ext} files; supported: "
                            + ", ".join(WRITABLE_EXTENSIONS))
    return ext


def plan_outputs(inputs: Sequence[StrPath], out: Optional[StrPath], *, suffix: str = "",
                 ext: Optional[str] = None) -> List[Tuple[Path, Path]]:
    """(input, output) pairs.

    ``out=None`` puts each output next to its input as ``<stem><suffix><ext>`` (a suffix is
    then needed, or the output would be the input itself).

    ``out`` is the output file itself when there is exactly one input and ``out`` has an image
    extension and is not an existing directory.  Otherwise it is a directory (created when the
    first output is written) and each output is ``<stem><suffix><ext>`` there, ``ext`` being
    the input's extension unless given (an input format that cannot be written, such as .bmp,
    gives .png); inputs found by expanding a directory or a glob keep their path below it.
    Two inputs with the same output, an output that would replace its own input, or several
    inputs with ``out`` naming a file are errors.
    """
    inputs = [p if isinstance(p, Path) else Path(p) for p in inputs]
    new_ext = _normalise_ext(ext)
    if not inputs:
        return []

    def output_name(src: Path) -> str:
        target_ext = new_ext or (src.suffix if src.suffix.lower() in WRITABLE_EXTENSIONS else FALLBACK_EXTENSION)
        return f"{src.stem}{suffix}{target_ext}"

    out_path = None if out is None else Path(out)
    if out_path is None:
        pairs = [(src, src.parent / output_name(src)) for src in inputs]
    elif out_path.suffix.lower() in IMAGE_EXTENSIONS and not out_path.is_dir():  # names the file
        if len(inputs) > 1:
            raise DeepshopError(f"{out}: names a file, but there are {len(inputs)} inputs; give "
                                f"a directory for the outputs")
        if out_path.suffix.lower() not in WRITABLE_EXTENSIONS:
            raise DeepshopError(f"{out}: cannot write {out_path.suffix} files; supported: "
                                + ", ".join(WRITABLE_EXTENSIONS))
        pairs = [(inputs[0], out_path)]
    else:
        if out_path.exists() and not out_path.is_dir():
            raise DeepshopError(f"{out}: exists and is not a directory")
        pairs = []
        for src in inputs:
            name = output_name(src)
            base = _base_of(src)
            sub = Path()
            if base is not None:
                with contextlib.suppress(ValueError):
                    sub = src.parent.relative_to(base)
            pairs.append((src, out_path / sub / name))

    taken = {}
    for src, dst in pairs:
        key = os.path.normcase(os.path.abspath(dst))
        if key == os.path.normcase(os.path.abspath(src)) or _same_file(src, dst):
            raise DeepshopError(f"{src}: the output would replace the input itself; choose "
                                f"another output directory, --suffix or --ext")
        if key in taken:
            raise DeepshopError(f"{taken[key]} and {src} would both be written to {dst}; "
                                f"use --suffix/--ext or separate runs")
        taken[key] = src
    return pairs


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass
class BatchReport:
    """What :func:`run_batch` did: ``succeeded`` (input, output) pairs and ``failed``
    (input, reason) pairs; ``interrupted`` when Ctrl-C stopped it."""

    succeeded: List[Tuple[Path, Path]] = field(default_factory=list)
    failed: List[Tuple[Path, str]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every image was done, 1 otherwise (130 after Ctrl-C, as shells do)."""
        if self.interrupted:
            return 130
        return 1 if self.failed else 0

    @property
    def total(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def print_summary(self, stream: Optional[TextIO] = None) -> None:
        """One line with the counts, then ``<path>: <reason>`` for every failure."""
        stream = sys.stderr if stream is None else stream
        done = f"{len(self.succeeded)} of {self.total} image(s) done"
        if self.interrupted:
            done += ", interrupted"
        if self.failed:
            print(f"{done}, {len(self.failed)} failed:", file=stream)
            for path, reason in self.failed:
                print(f"{path}: {reason}", file=stream)
        else:
            print(done, file=stream)
        with contextlib.suppress(Exception):
            stream.flush()


def _reason(e: BaseException, src: Path) -> str:
    """The reason of a failure, without a leading "<src>: " (the summary adds the path)."""
    if isinstance(e, MemoryError):
        return "out of memory"
    text = str(e).strip() or type(e).__name__
    if not isinstance(e, (DeepshopError, OSError)):
        text = f"{type(e).__name__}: {text}"
    prefix = f"{src}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def run_batch(jobs: Iterable[Tuple[StrPath, StrPath]], process: Callable[[Path, Path], object],
              *, overwrite: bool = False, desc: str = "", progress: bool = True,
              stream: Optional[TextIO] = None) -> BatchReport:
    """Run ``process(src, dst)`` for every job; failures are recorded and the batch goes on.

    An existing ``dst`` is a failure ("output DST exists (use --overwrite)") unless ``overwrite``, and
    ``process`` is not called for it.  :class:`DeepshopError`, ``OSError``, ``ValueError``,
    ``RuntimeError`` and ``MemoryError`` raised by ``process`` are failures; anything else (a
    bug) propagates.  Ctrl-C stops the batch: the KeyboardInterrupt is re-raised with the report
    so far as its ``batch_report`` attribute (outputs are written atomically, so nothing is left
    half-written).  The progress bar goes to ``stream`` (stderr), and tqdm leaves it out when
    that is not a terminal; ``progress=False`` turns it off.
    """
    stream = sys.stderr if stream is None else stream
    jobs = [(Path(s), Path(d)) for s, d in jobs]
    report = BatchReport()
    bar = tqdm(jobs, desc=desc or None, unit="image", file=stream,
               disable=None if progress else True, dynamic_ncols=True)
    try:
        for src, dst in bar:
            if not overwrite and os.path.lexists(dst):
                report.failed.append((src, f"output {dst} exists (use --overwrite)"))
            else:
                try:
                    process(src, dst)
                except (DeepshopError, OSError, ValueError, RuntimeError, MemoryError) as e:
                    report.failed.append((src, _reason(e, src)))
                else:
                    report.succeeded.append((src, dst))
            if report.failed:
                bar.set_postfix(failed=len(report.failed), refresh=False)
    except KeyboardInterrupt as e:
        report.interrupted = True
        e.batch_report = report  # type: ignore[attr-defined]
        raise
    finally:
        bar.close()
    return report


@contextlib.contextmanager
def tile_progress(total: int, desc: str = "tiles", *, stream: Optional[TextIO] = None,
                  disable: Optional[bool] = None) -> Iterator[Callable[[int, int], None]]:
    """A nested progress bar (below the batch's) for the tiles of one image.

    Yields ``update(done, total)``, the engine's progress callback: ``done`` tiles of
    ``total`` are finished (``total`` may differ from the one given here).  The bar disappears
    when the image is done.
    """
    stream = sys.stderr if stream is None else stream
    bar = tqdm(total=total, desc=desc, unit="tile", position=1, leave=False, file=stream,
               disable=disable, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
            bar.refresh()
        step = int(done) - bar.n
        if step:
            bar.update(step)

    try:
        yield update
    finally:
        bar.close()
