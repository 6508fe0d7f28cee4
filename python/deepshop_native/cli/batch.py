"""Conventions shared by every ``deepshop`` sub-command that works on many images.

* :func:`expand_inputs` turns the command line's inputs (files, directories, globs) into files;
* :func:`plan_outputs` decides each input's output path (``--out`` a file or a directory);
* :func:`run_batch` processes them one by one: a failure is recorded and the batch goes on, an
  existing output is not replaced without ``--overwrite``, a progress bar shows where it is;
* :func:`tile_progress` is the nested bar for the tiles of one large image.

``-`` is standard input as an input and standard output as ``--out`` (:mod:`.streams`): it passes
through as the path ``-``, and the command's ``process`` reads and writes it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple, Union

from ..core.errors import DeepshopError, batch_exit_code, failure_reason, interruption_recorded
from ..core.files import InputFiles, not_a_file_reason, output_exists_message, replaced_input
from ..image.formats import FALLBACK_EXTENSION, READ_EXTENSIONS, WRITE_EXTENSIONS, is_image_name, is_unwritable_image_name
from .streams import STDIN_NAME, STDOUT_NAME, is_stdio

__all__ = [
    "IMAGE_EXTENSIONS", "WRITABLE_EXTENSIONS", "InputPath", "collect_inputs", "expand_inputs", "plan_outputs",
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
    return is_image_name(os.fspath(name))


def _inside(path: str, directories: Sequence[str]) -> bool:
    """``path`` is one of ``directories`` or below one (directories given as absolute paths)."""
    path = os.path.normcase(os.path.abspath(path))
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in directories)


def _walk_images(directory: Path, skip_dirs: Sequence[str] = (), is_own_output: Callable[[str], bool] = None
                 ) -> List[Path]:
    """Image files below a directory, recursively, sorted by their path below it (a folder's
    files together).  Hidden files and folders are skipped, and so are the folders in
    ``skip_dirs`` (our output folder: a rerun must not feed on its own results) and the files
    ``is_own_output(name)`` recognises as outputs of ours."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not _inside(os.path.join(root, d), skip_dirs)]
        for name in files:
            if not name.startswith(".") and is_image_file_name(name) and not (is_own_output and is_own_output(name)):
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


def collect_inputs(patterns: Iterable[StrPath], *, skip_dirs: Sequence[StrPath] = (),
                   is_own_output: Optional[Callable[[str], bool]] = None) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """Input files from command-line items, in order, each file once, and the items that gave
    none: ``(files, problems)``, a problem being ``(item, reason)``.

    An item is a file (taken whatever its extension: a non-image named explicitly fails later
    with a read error rather than being skipped), a directory (its images, recursively, sorted;
    hidden files skipped) or a glob with ``*``, ``?``, ``[...]`` or ``**`` (its matches with
    image extensions, sorted).  Only regular files are taken from a scan (a named pipe would
    block the batch).  Scans (directories and globs, not files named themselves) leave out what
    lies in ``skip_dirs`` and the names ``is_own_output`` recognises, so that a rerun does not
    process its own outputs.  The paths returned are :class:`InputPath` objects.
    """
    result: List[Path] = []
    seen = set()
    problems: List[Tuple[str, str]] = []
    skip = [os.path.normcase(os.path.abspath(d)) for d in skip_dirs]

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
        if is_stdio(text):     # standard input (streams.py)
            add(path, None)
        elif path.is_file():
            add(path, None)
        elif path.is_dir():
            images = _walk_images(path, skip, is_own_output)
            if not images:
                problems.append((text, "a directory with no images"))
            for p in images:
                add(p, path)
        elif _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            files = [m for m in matches if os.path.isfile(m) and not _inside(m, skip)]
            images = [m for m in files if is_image_file_name(m)
                      and not (is_own_output and is_own_output(os.path.basename(m)))]
            if not images:
                why = (f"matched {len(files)} file(s), none an input image" if files else "matched nothing")
                problems.append((text, why))
            base = _glob_base(text)
            for m in images:
                add(Path(m), base)
        elif os.path.lexists(text):
            problems.append((text, not_a_file_reason(text)))
        else:
            problems.append((text, "no such file or directory"))
    return result, problems



def expand_inputs(patterns: Iterable[StrPath], **scan_options) -> List[Path]:
    """:func:`collect_inputs`, with every item that gave no file reported together in one
    :class:`DeepshopError`."""
    files, problems = collect_inputs(patterns, **scan_options)
    if problems:
        raise DeepshopError("no input images from: " + "; ".join(f"{item} ({why})" for item, why in problems))
    return files


def _normalise_ext(ext: Optional[str]) -> Optional[str]:
    if ext is None or ext == "":
        return None
    ext = ext if ext.startswith(".") else "." + ext
    if ext.lower() not in WRITABLE_EXTENSIONS:
        raise DeepshopError(f"cannot write {ext} files; supported: "
                            + ", ".join(WRITABLE_EXTENSIONS))
    return ext


def plan_outputs(inputs: Sequence[StrPath], out: Optional[StrPath], *, suffix: str = "",
                 ext: Optional[str] = None, companions: Optional[Callable[[Path], Sequence[Path]]] = None,
                 other_inputs: Sequence[StrPath] = ()) -> List[Tuple[Path, Path]]:
    """(input, output) pairs.

    ``out=None`` puts each output next to its input as ``<stem><suffix><ext>`` (a suffix is
    then needed, or the output would be the input itself).

    ``out`` is the output file itself when there is exactly one input and ``out`` has an image
    extension and is not an existing directory.  Otherwise it is a directory (created when the
    first output is written) and each output is ``<stem><suffix><ext>`` there, ``ext`` being
    the input's extension unless given (an input format that cannot be written, such as .bmp,
    gives .png); inputs found by expanding a directory or a glob keep their path below it.
    ``companions(dst)`` names further files written beside an output (e.g. a label map);
    ``other_inputs`` are the files read besides the inputs (a style image, a palette's source).

    Checked before any work starts: two inputs with the same output (or companion), an output
    or companion that would replace any input of the batch or any of ``other_inputs`` (the same
    path or the same file: :func:`~deepshop_native.core.files.replaced_input`), several inputs with ``out`` naming
    a file, and ``out`` named like a file of a format that cannot be written (``x.gif`` would
    otherwise become a folder) are errors.
    """
    inputs = [p if isinstance(p, Path) else Path(p) for p in inputs]
    new_ext = _normalise_ext(ext)
    if not inputs:
        return []

    def output_name(src: Path) -> str:
        target_ext = new_ext or (src.suffix if src.suffix.lower() in WRITABLE_EXTENSIONS else FALLBACK_EXTENSION)
        return f"{src.stem}{suffix}{target_ext}"

    if any(is_stdio(src) for src in inputs) or is_stdio(out):
        return _stdio_pairs(inputs, out)
    out_path = None if out is None else Path(out)
    if out_path is not None and not out_path.is_dir() and is_unwritable_image_name(out_path.name):
        raise DeepshopError(f"{out}: cannot write {out_path.suffix} files; supported: "
                            + ", ".join(WRITABLE_EXTENSIONS) + " (or name a folder)")
    if out_path is None:
        pairs = [(src, src.parent / output_name(src)) for src in inputs]
    elif out_path.suffix.lower() in WRITABLE_EXTENSIONS and not out_path.is_dir():  # names the file
        if len(inputs) > 1:
            raise DeepshopError(f"{out}: names a file, but there are {len(inputs)} inputs; give "
                                f"a directory for the outputs")
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

    read = InputFiles(list(inputs) + list(other_inputs))
    taken = {}
    for src, dst in pairs:
        for target in [dst] + list(companions(dst) if companions else []):
            victim = replaced_input(target, read)
            if victim is not None:
                what = "the input itself" if victim == src else f"the input {victim}"
                raise DeepshopError(f"{src}: the output {target} would replace {what}; choose another "
                                    f"output directory, --suffix or --ext")
            key = _key(target)
            if key in taken:
                raise DeepshopError(f"{taken[key]} and {src} would both be written to {target}; "
                                    f"use --suffix/--ext or separate runs")
            taken[key] = src
    return pairs


def _stdio_pairs(inputs: Sequence[Path], out: Optional[StrPath]) -> List[Tuple[Path, Path]]:
    """The one job of `-` (streams.py): stdin to stdout unless --out names a file, a file to stdout."""
    if len(inputs) != 1:
        raise DeepshopError("-: standard input and output take one image; give one input")
    src = inputs[0]
    if out is None or is_stdio(out):
        return [(src, Path("-"))]
    out_path = Path(out)
    if out_path.is_dir() or out_path.suffix.lower() not in WRITABLE_EXTENSIONS:
        raise DeepshopError(f"{out}: standard input has no file name to put in a folder; give --out FILE "
                            "(with an image extension) or --out -")
    return [(src, out_path)]


def shown(path: StrPath, output: bool = False) -> str:
    """A path as messages and --json show it: `-` as <stdin> / <stdout>."""
    if is_stdio(path):
        return STDOUT_NAME if output else STDIN_NAME
    return os.fspath(path)


def _key(path: StrPath) -> str:
    return os.path.normcase(os.path.abspath(path))


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
        return batch_exit_code(bool(self.failed), self.interrupted)

    @property
    def total(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def print_summary(self, stream: Optional[TextIO] = None, *, quiet: bool = False) -> None:
        """One line with the counts, then ``<path>: <reason>`` for every failure; with ``quiet``
        nothing when every image was done."""
        stream = sys.stderr if stream is None else stream
        if quiet and not self.failed and not self.interrupted:
            return
        done = f"{len(self.succeeded)} of {self.total} image(s) done"
        if self.interrupted:
            done += ", interrupted"
        if self.failed:
            print(f"{done}, {len(self.failed)} failed:", file=stream)
            for path, reason in self.failed:
                print(f"{shown(path)}: {reason}", file=stream)
        else:
            print(done, file=stream)
        with contextlib.suppress(Exception):
            stream.flush()



def run_batch(jobs: Iterable[Tuple[StrPath, StrPath]], process: Callable[[Path, Path], object],
              *, overwrite: bool = False, desc: str = "", progress: bool = True,
              stream: Optional[TextIO] = None, problems: Sequence[Tuple[StrPath, str]] = (),
              json_stream: Optional[TextIO] = None) -> BatchReport:
    """Run ``process(src, dst)`` for every job; failures are recorded and the batch goes on.

    ``problems`` (command-line items that gave no input, from :func:`collect_inputs`) start the
    report as failures: the batch goes on with the inputs that were found.
    An existing ``dst`` is a failure (:func:`~deepshop_native.core.files.output_exists_message`) unless
    ``overwrite``, and ``process`` is not called for it.  :class:`DeepshopError`, ``OSError``, ``ValueError``,
    ``RuntimeError`` and ``MemoryError`` raised by ``process`` are failures; anything else (a
    bug) propagates.  Ctrl-C stops the batch: the KeyboardInterrupt is re-raised with the report
    so far as its ``batch_report`` attribute (outputs are written atomically, so nothing is left
    half-written).  The progress bar goes to ``stream`` (stderr), and tqdm leaves it out when
    that is not a terminal; ``progress=False`` turns it off.

    ``json_stream`` (--json) gets one JSON object per line for each input, in order: ``input``,
    ``output``, ``seconds`` and what ``process`` returned (a dict: ``size``, ``style``,
    ``provider``, ``precision``), or ``output`` null and ``error`` for a failure.
    """
    stream = sys.stderr if stream is None else stream
    jobs = [(Path(s), Path(d)) for s, d in jobs]
    report = BatchReport(failed=[(Path(item), why) for item, why in problems])
    for item, why in problems:
        _emit(json_stream, item, None, {"error": why})
    bar = _progress_bar(jobs, desc, progress, stream)
    try:
        with interruption_recorded(report, "batch_report"):
            for src, dst in bar:
                if not overwrite and not is_stdio(dst) and os.path.lexists(dst):
                    report.failed.append((src, output_exists_message(str(dst))))
                    _emit(json_stream, src, None, {"error": report.failed[-1][1]})
                else:
                    started = time.perf_counter()
                    try:
                        fields = process(src, dst)
                    except (DeepshopError, OSError, ValueError, RuntimeError, MemoryError) as e:
                        report.failed.append((src, failure_reason(e, src)))
                        _emit(json_stream, src, None, {"error": report.failed[-1][1]})
                    else:
                        report.succeeded.append((src, dst))
                        _emit(json_stream, src, dst, {**(fields if isinstance(fields, dict) else {}),
                                                      "seconds": round(time.perf_counter() - started, 3)})
                if report.failed:
                    bar.set_postfix(failed=len(report.failed), refresh=False)
    finally:
        bar.close()
    return report


def _emit(json_stream: Optional[TextIO], src: StrPath, dst: Optional[StrPath], fields: dict) -> None:
    """One --json line: input and output first, then the fields."""
    if json_stream is None:
        return
    entry = {"input": shown(src), "output": None if dst is None else shown(dst, output=True), **fields}
    print(json.dumps(entry), file=json_stream, flush=True)


class _NoBar(list):
    """The jobs without a progress bar (tqdm not even imported: `-q` and --json start faster)."""

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(jobs, desc: str, progress: bool, stream: TextIO):
    """tqdm's bar over the jobs where one may show (progress on and, as tqdm decides, a terminal)."""
    if not progress or not _is_terminal(stream):
        return _NoBar(jobs)
    from tqdm import tqdm
    return tqdm(jobs, desc=desc or None, unit="image", file=stream, disable=None, dynamic_ncols=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def tile_progress(total: Optional[int] = None, desc: str = "tiles", *, stream: Optional[TextIO] = None,
                  disable: Optional[bool] = None) -> Iterator[Callable[[int, int], None]]:
    """A nested progress bar (below the batch's) for the tiles of one image.

    Yields ``update(done, total)``, the engine's progress callback: ``done`` tiles of ``total``
    are finished.  With ``total`` None the bar appears on the first update that announces more
    than one tile (the engine knows the plan: nothing is planned twice to size the bar); the
    engine may announce another total later.  The bar disappears when the image is done.
    """
    stream = sys.stderr if stream is None else stream
    bar = None
    if disable or (disable is None and not _is_terminal(stream)):   # as tqdm decides, without importing it
        yield lambda done, total: None
        return

    def make(n: int):
        from tqdm import tqdm
        return tqdm(total=n, desc=desc, unit="tile", position=1, leave=False, file=stream, disable=disable,
                    dynamic_ncols=True)

    if total is not None:
        bar = make(total)

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            if total <= 1:
                return
            bar = make(total)
        if total and bar.total != total:
            bar.total = total
            bar.refresh()
        step = int(done) - bar.n
        if step:
            bar.update(step)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()
