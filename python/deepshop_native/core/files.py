"""The one atomic file writer of Deepshop: every output (images, ONNX models, checkpoints,
reports, previews, style sources) goes through :func:`atomic_write`.

The bytes go to a hidden temporary file beside the destination (``.NAME.XXXXXX.part``), which
is flushed, fsync'ed and then renamed into place, so a destination is either what it was before
or the complete new file, never half-written.  Without ``overwrite`` an existing destination is
never replaced (a hard link makes the no-clobber rename atomic where the file system has them).

A process killed outright (SIGKILL, power loss) cannot remove its temporary file; the next
write of the same destination removes such leftovers of our own naming pattern when they were
last modified before this process started (:func:`remove_stale_temporaries`).

This module imports neither the C++ extension nor Pillow: the export side uses it too.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import threading
import time
from typing import BinaryIO, Callable, Type

from .errors import DeepshopError, ImageError, OutputError, OutputExistsError

__all__ = ["atomic_write", "check_not_an_input", "InputFiles", "not_a_file_reason", "output_exists_message", "remove_stale_temporaries",
           "replaced_input", "same_file", "TEMP_SUFFIX"]

#: Suffix of the temporary files; a prefix of "." + the destination's name comes before it.
TEMP_SUFFIX = ".part"
#: When this process started: temporaries untouched since before then are nobody's work in progress.
_STARTED = time.time()
#: A temporary must also be this old (seconds) to be removed, in case another process started
#: just before us is still writing the same destination.
_STALE_AGE = 60.0
#: Our temporaries' names: "." + destination name + "." + mkstemp's 8 characters + ".part".
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")
_SWEPT: set = set()
_SWEPT_LOCK = threading.Lock()


def not_a_file_reason(path: str) -> str:
    """Why an existing path that is neither a regular file nor a directory gives no input."""
    try:
        os.stat(path)
    except OSError as e:
        return f"cannot access ({e.strerror or e})"   # a dangling link, a symlink loop
    return "not a regular file or directory"


def output_exists_message(name: str) -> str:
    """The one wording for an output that exists and may not be replaced."""
    return f"{name}: exists; pass overwrite=True (--overwrite) to replace it"


def atomic_write(name: str, encode: Callable[[BinaryIO], None], overwrite: bool = False, *,
                 error: Type[DeepshopError] = OutputError) -> None:
    """Write the file ``name`` through ``encode(file)`` (a binary file object) into a temporary
    file beside it, then rename it into place: an interruption or an encoder error leaves the
    destination as it was and no temporary file behind.  Without ``overwrite`` an existing
    destination is never replaced (:class:`OutputExistsError`).  Failures to write are raised as
    ``error`` (a :class:`DeepshopError` subclass) naming the file and the reason."""
    name = os.fspath(name)
    if "\0" in name:
        raise error(f"{name!r}: the output path contains a NUL byte, which no file name can")
    directory = os.path.dirname(os.path.abspath(name))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise error(f"{name}: cannot create directory {directory} ({e.strerror or e})") from e
    if not overwrite and os.path.lexists(name):
        # Checked first too, so that no work is spent encoding a file that cannot be placed.
        raise OutputExistsError(output_exists_message(name))
    remove_stale_temporaries(directory)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(name)}.", suffix=TEMP_SUFFIX)
    except OSError as e:
        raise error(f"{name}: cannot write in {directory} ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as f:
            encode(f)
            f.flush()
            os.fsync(f.fileno())
        _set_file_mode(tmp, name)
        if overwrite:
            os.replace(tmp, name)
        else:
            _rename_no_clobber(tmp, name)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, DeepshopError) or not isinstance(e, Exception):
            raise
        raise error(f"{name}: cannot write ({_describe(e)})") from e
    _fsync_directory(directory)


def _as_path(item) -> "str | None":
    """``item`` as a path string, or None when it cannot name a file (an array, bytes, a NUL byte)."""
    if not isinstance(item, (str, os.PathLike)):
        return None
    path = os.fspath(item)
    return path if isinstance(path, str) and path and "\0" not in path else None


class InputFiles:
    """The files a run reads, for the check that no output replaces one: each by its normalised
    absolute path and, where it exists, by its (device, inode), so that a hard link, a symbolic
    link or another spelling of an input is recognised with one ``stat`` per output."""

    def __init__(self, inputs=()):
        self._by_path: dict = {}
        self._by_inode: dict = {}
        for item in inputs:
            self.add(item)

    def add(self, item) -> None:
        path = _as_path(item)
        if path is None:
            return
        self._by_path.setdefault(os.path.normcase(os.path.abspath(path)), item)
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return
        self._by_inode.setdefault((st.st_dev, st.st_ino), item)

    def replaced_by(self, output):
        """The input that writing ``output`` would replace, or None."""
        path = _as_path(output)
        if path is None:
            return None
        found = self._by_path.get(os.path.normcase(os.path.abspath(path)))
        if found is not None:
            return found
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        return self._by_inode.get((st.st_dev, st.st_ino))


def same_file(a, b) -> bool:
    """Whether the paths ``a`` and ``b`` name one file: the same path once made absolute and
    normalised, or the same file on disk (hard links and symbolic links included).  What cannot
    be a path (a NUL byte, not a str or path) is no file: False."""
    return InputFiles([b]).replaced_by(a) is not None


def replaced_input(output, inputs):
    """The first of ``inputs`` that writing ``output`` would replace (:func:`same_file`), or None.
    Inputs that are no paths (arrays, bytes, images in memory, None) are passed over; ``inputs``
    may be an :class:`InputFiles` made once for many outputs."""
    files = inputs if isinstance(inputs, InputFiles) else InputFiles(inputs)
    return files.replaced_by(output)


def check_not_an_input(output, inputs, what: str = "output") -> None:
    """The one check that an output is none of the inputs it is made from (the same path, or the
    same file through a link), whatever ``overwrite`` says: :class:`OutputError` naming both.
    Every writer that reads files calls it before any work starts; an output path with a NUL
    byte (which no file name can hold) is refused here too."""
    if isinstance(output, (str, os.PathLike)) and "\0" in os.fsdecode(os.fspath(output)):
        raise OutputError(f"{os.fspath(output)!r}: the {what} path contains a NUL byte, which no file name can")
    victim = replaced_input(output, inputs)
    if victim is None:
        return
    output, victim = os.fspath(output), os.fspath(victim)
    which = "the input itself" if output == victim else f"the same file as the input {victim}"
    raise OutputError(f"{output}: the {what} is {which}; an input is never overwritten (not even with "
                      f"--overwrite): choose another {what} name")


def lock_exclusively(f) -> bool:
    """Take an advisory exclusive lock on the open file ``f`` without waiting: False when another
    process holds it; True when taken, and where locks do not exist (Windows, a file system
    without them), so that a caller refuses only a lock another run really holds."""
    try:
        import fcntl
    except ImportError:            # Windows: no advisory locks here
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        pass                       # a file system without locks
    return True


def remove_stale_temporaries(directory: str) -> list:
    """Remove the temporaries ``.NAME.XXXXXXXX.part`` that earlier, killed writers left in
    ``directory``: only files of exactly our naming pattern (mkstemp's 8 random characters),
    regular, and last modified before this process started and over a minute ago.  Done once
    per directory and process (:func:`atomic_write` calls it before its first write there).
    Returns the paths removed; errors are ignored (a leftover is harmless, only wasted space)."""
    removed: list = []
    key = os.path.normcase(os.path.abspath(directory))
    with _SWEPT_LOCK:
        if key in _SWEPT:
            return removed
        _SWEPT.add(key)
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and st.st_mtime < _STARTED and now - st.st_mtime > _STALE_AGE:
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            pass
    return removed


def _describe(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return "out of memory"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _rename_no_clobber(tmp: str, name: str) -> None:
    """Move tmp to name unless name exists (atomically where hard links work)."""
    try:
        os.link(tmp, name)
    except FileExistsError:
        raise OutputExistsError(output_exists_message(name)) from None
    except (OSError, NotImplementedError):   # no hard links on this file system
        if os.path.lexists(name):
            raise OutputExistsError(output_exists_message(name)) from None
        os.replace(tmp, name)
    else:
        os.unlink(tmp)


def _set_file_mode(tmp: str, name: str) -> None:
    """mkstemp makes 0600 files: give the output the mode a plain open() would (or keep the
    mode of the file it replaces)."""
    try:
        mode = os.stat(name).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    with contextlib.suppress(OSError, NotImplementedError):
        os.chmod(tmp, mode)


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_of(path: "str | os.PathLike") -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (provenance, and the pairing of a model's graphs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_regular_file(name: str, what: str = "image", error: type = ImageError) -> os.stat_result:
    """``os.stat(name)`` when it is a non-empty regular file (symbolic links followed), else
    ``error`` naming the file and what it is instead."""
    if "\0" in name:
        raise error(f"{name!r}: the {what} path contains a NUL byte, which no file name can")
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise error(f"{name}: no such {what} file") from None
    except OSError as e:
        raise error(f"{name}: cannot access ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{name}: is a directory, not {'an' if what[0] in 'aeiou' else 'a'} {what} file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise error(f"{name}: is {kind}, not {'an' if what[0] in 'aeiou' else 'a'} {what} file")
    if st.st_size == 0:
        raise error(f"{name}: empty file (0 bytes)")
    return st
