"""Where a batch's files live: local paths, or URLs of any file system that ``pyarrow.fs`` opens.

* :class:`LocalStorage` -- plain paths on this machine (or on a file system every node of a
  cluster mounts), through ``os``; outputs written by :func:`deepshop_native.core.files.atomic_write`
  (a temporary file renamed into place, never replacing a file without ``overwrite``).
* :class:`ArrowStorage` -- a URL (``s3://bucket/prefix``, ``gs://...``, ``hdfs://...``,
  ``file:///...``) through ``pyarrow.fs``; schemes pyarrow does not know go through ``fsspec``
  when it is installed (``pyarrow.fs.FSSpecHandler``).  On a local file system (``file://``) writes
  are atomic as above; on an object store an object appears whole or not at all, and each write
  is checked afterwards by the size the store reports.

pyarrow comes with the ``ray`` extra; plain paths need nothing beyond the core package.
Storage objects are picklable: the Ray engine ships them to its workers.
"""
from __future__ import annotations

import os
import posixpath
import urllib.parse
from typing import Iterator, Optional, Tuple

from ..core.errors import DeepshopError, ImageError, MissingDependencyError, OutputError, OutputExistsError
from ..core.files import atomic_write, output_exists_message

__all__ = ["Storage", "LocalStorage", "ArrowStorage", "is_url", "open_location"]


def is_url(text: str) -> bool:
    """``scheme://...`` (a scheme of two letters or more: ``C:\\x`` is a Windows path)."""
    scheme = urllib.parse.urlsplit(text).scheme if "://" in text else ""
    return len(scheme) > 1


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text or type(e).__name__


class Storage:
    """A file system: paths within it are strings, ``display(path)`` is what messages call them."""

    #: Whether appending to a file is possible (the manifest is one appended file there).
    can_append = False

    def display(self, path: str) -> str:
        raise NotImplementedError

    def key(self, path: str) -> str:
        """The file's identity, to tell that an output would replace an input."""
        return self.display(path)

    def join(self, root: str, rel: str) -> str:
        raise NotImplementedError

    def kind(self, path: str) -> str:
        """ "file", "dir", "missing" or "other" (a pipe, a device...)."""
        raise NotImplementedError

    def walk(self, root: str) -> Iterator[Tuple[str, str]]:
        """Every regular file below ``root``: (its path, its path relative to ``root`` with "/")."""
        raise NotImplementedError

    def read_bytes(self, path: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, path: str, data: bytes, overwrite: bool = False) -> None:
        raise NotImplementedError

    def local_path(self, path: str) -> Optional[str]:
        """The OS path of a file on a local file system (None for an object store)."""
        return None

    def absolute(self, path: str) -> str:
        """The path as another process (a Ray worker, elsewhere) must be given it."""
        return path


class LocalStorage(Storage):
    """Plain paths (module doc)."""

    can_append = True

    def display(self, path: str) -> str:
        return path

    def key(self, path: str) -> str:
        return "file://" + os.path.normcase(os.path.realpath(path))

    def join(self, root: str, rel: str) -> str:
        return os.path.join(root, *rel.split("/")) if rel else root

    def kind(self, path: str) -> str:
        if os.path.isfile(path):
            return "file"
        if os.path.isdir(path):
            return "dir"
        return "other" if os.path.lexists(path) else "missing"

    def walk(self, root: str) -> Iterator[Tuple[str, str]]:
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                if os.path.isfile(path):
                    yield path, os.path.relpath(path, root).replace(os.sep, "/")

    def read_bytes(self, path: str) -> bytes:
        from ..core.files import check_regular_file
        check_regular_file(path, "image")      # a pipe or a device would block the batch
        with open(path, "rb") as f:
            return f.read()

    def write_bytes(self, path: str, data: bytes, overwrite: bool = False) -> None:
        atomic_write(path, lambda f: f.write(data), overwrite)

    def local_path(self, path: str) -> Optional[str]:
        return path

    def absolute(self, path: str) -> str:
        return os.path.abspath(path)


class ArrowStorage(Storage):
    """A ``pyarrow.fs`` file system and the URL prefix its paths are shown with (module doc)."""

    def __init__(self, fs, prefix: str):
        self.fs, self.prefix = fs, prefix
        self.is_local = type(fs).__name__ == "LocalFileSystem"
        self.can_append = self.is_local

    def __reduce__(self):
        return (ArrowStorage, (self.fs, self.prefix))

    def display(self, path: str) -> str:
        return self.prefix + path

    def key(self, path: str) -> str:
        if self.is_local:
            return "file://" + os.path.normcase(os.path.realpath(path))
        return self.display(path)

    def join(self, root: str, rel: str) -> str:
        return posixpath.join(root, rel) if rel else root

    def _info(self, path: str):
        try:
            return self.fs.get_file_info(path)
        except Exception as e:
            raise DeepshopError(f"{self.display(path)}: cannot access ({_describe(e)})") from e

    def kind(self, path: str) -> str:
        import pyarrow.fs as pafs
        t = self._info(path).type
        return {pafs.FileType.File: "file", pafs.FileType.Directory: "dir",
                pafs.FileType.NotFound: "missing"}.get(t, "other")

    def walk(self, root: str) -> Iterator[Tuple[str, str]]:
        import pyarrow.fs as pafs
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        except Exception as e:
            raise DeepshopError(f"{self.display(root)}: cannot list ({_describe(e)})") from e
        base = root.rstrip("/")
        for info in sorted(infos, key=lambda i: i.path.split("/")):
            if info.type == pafs.FileType.File:
                rel = info.path[len(base):].lstrip("/") if info.path.startswith(base) else info.base_name
                yield info.path, rel

    def read_bytes(self, path: str) -> bytes:
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read()
        except Exception as e:
            raise ImageError(f"{self.display(path)}: cannot read ({_describe(e)})") from e

    def write_bytes(self, path: str, data: bytes, overwrite: bool = False) -> None:
        if self.is_local:
            atomic_write(path, lambda f: f.write(data), overwrite)
            return
        name = self.display(path)
        if not overwrite and self.kind(path) != "missing":
            raise OutputExistsError(output_exists_message(name))
        try:
            parent = posixpath.dirname(path)
            if parent:
                self.fs.create_dir(parent, recursive=True)
            with self.fs.open_output_stream(path) as f:
                f.write(data)
            size = self.fs.get_file_info(path).size
        except Exception as e:
            raise OutputError(f"{name}: cannot write ({_describe(e)})") from e
        if size != len(data):
            try:
                self.fs.delete_file(path)
            except Exception:
                pass
            raise OutputError(f"{name}: the store holds {size} bytes after writing {len(data)}; removed")

    def local_path(self, path: str) -> Optional[str]:
        return path if self.is_local else None


def _arrow_filesystem(url: str):
    """(a pyarrow file system, the path within it, the display prefix) for a URL."""
    try:
        import pyarrow.fs as pafs
    except ImportError:
        raise MissingDependencyError(f"{url}: URLs need pyarrow: pip install 'deepshop-native[ray]' "
                                     "(or pip install pyarrow)") from None
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    try:
        fs, path = pafs.FileSystem.from_uri(url)
    except ValueError as first:          # ArrowInvalid: a scheme pyarrow does not know
        fs, path = _fsspec_filesystem(url, scheme, first)
    except Exception as e:
        raise DeepshopError(f"{url}: cannot open ({_describe(e)})") from e
    return fs, path.rstrip("/") or path, scheme + "://"


def _fsspec_filesystem(url: str, scheme: str, first: BaseException):
    import pyarrow.fs as pafs
    try:
        import fsspec
    except ImportError:
        raise DeepshopError(f"{url}: pyarrow cannot open {scheme}:// URLs ({_describe(first)}); fsspec and "
                            "its package for the scheme would") from None
    try:
        spec_fs, _, paths = fsspec.get_fs_token_paths(url)
    except Exception as e:
        raise DeepshopError(f"{url}: cannot open ({_describe(e)})") from e
    return pafs.PyFileSystem(pafs.FSSpecHandler(spec_fs)), paths[0]


def open_location(text: str, cache: Optional[dict] = None) -> Tuple[Storage, str]:
    """(the storage, the path within it) of a path or URL.  ``cache`` (scheme and host -> storage)
    lets items of one bucket share a storage."""
    if not is_url(text):
        key = ("", "")
        store = (cache or {}).get(key) or LocalStorage()
        if cache is not None:
            cache[key] = store
        return store, text
    parts = urllib.parse.urlsplit(text)
    fs, path, prefix = _arrow_filesystem(text)
    key = (parts.scheme.lower(), parts.netloc)
    if cache is not None:
        store = cache.setdefault(key, ArrowStorage(fs, prefix))
    else:
        store = ArrowStorage(fs, prefix)
    return store, path
