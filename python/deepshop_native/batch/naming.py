"""What a batch reads and where each result goes.

:func:`collect_sources` turns the items of a command line (files, folders, globs, URLs of files,
prefixes and globs) into :class:`Source` objects, in order, each file once; :func:`plan` gives
each its output path below the destination.  The rules are those of ``deepshop stylize --out
DIR`` (``cli/batch.py``), for URLs as for paths: a folder is searched recursively, hidden files
and folders skipped, its images sorted by their path below it; a glob takes its matches with
image extensions (in a URL, ``*`` also matches across ``/``); a file named itself is taken
whatever its extension; the destination is never searched.  An output is
``<sub>/<stem><suffix><ext>`` below the destination, ``<sub>`` being the input's folder below the
item it was found under and ``<ext>`` the input's own extension when it can be written, else
``.png``.
"""
from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..core.files import not_a_file_reason
from ..image.formats import FALLBACK_EXTENSION, WRITE_EXTENSIONS, is_image_name
from .storage import LocalStorage, Storage, open_location

__all__ = ["Source", "Item", "collect_sources", "output_name", "plan"]

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Source:
    """One input file: ``store`` its storage's index in the batch's list, ``path`` the path in it,
    ``name`` what messages call it (the path or URL), ``sub`` its folder below the command-line
    item it was found under ("" for a file named itself; "/"-separated)."""

    store: int
    path: str
    name: str
    sub: str = ""


@dataclass(frozen=True)
class Item:
    """A source and its output's path below the destination ("/"-separated)."""

    source: Source
    output: str


def output_name(file_name: str, suffix: str = "") -> str:
    """``<stem><suffix><ext>``: the input's extension when it can be written, else ``.png``."""
    p = PurePosixPath(file_name)
    ext = p.suffix if p.suffix.lower() in WRITE_EXTENSIONS else FALLBACK_EXTENSION
    return f"{p.stem}{suffix}{ext}"


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def _inside(key: str, folder_key: Optional[str]) -> bool:
    return folder_key is not None and (key == folder_key or key.startswith(folder_key.rstrip("/") + "/"))


class _Collector:
    def __init__(self, stores: List[Storage], cache: dict, skip_key: Optional[str]):
        self.stores, self.cache, self.skip_key = stores, cache, skip_key
        self.sources: List[Source] = []
        self.problems: List[Tuple[str, str]] = []
        self._seen = set()

    def index_of(self, store: Storage) -> int:
        for i, s in enumerate(self.stores):
            if s is store:
                return i
        self.stores.append(store)
        return len(self.stores) - 1

    def add(self, store: Storage, path: str, sub: str) -> None:
        key = store.key(path)
        if key not in self._seen:
            self._seen.add(key)
            self.sources.append(Source(self.index_of(store), path, store.display(path), sub))

    def item(self, text: str) -> None:
        store, path = open_location(text, self.cache)
        kind = store.kind(path)
        if kind == "file":
            self.add(store, path, "")
        elif kind == "dir":
            found = self._scan(store, path, lambda rel: True)
            if not found:
                self.problems.append((text, "a directory with no images"))
        elif _GLOB_CHARS & set(text):
            self._glob(text, store, path)
        elif kind == "other":
            self.problems.append((text, not_a_file_reason(path) if store.local_path(path) else "not a file"))
        else:
            self.problems.append((text, "no such file or directory"))

    def _scan(self, store: Storage, root: str, wanted) -> int:
        """Images below ``root`` for which ``wanted(path relative to root)``; their count."""
        if isinstance(store, LocalStorage):
            files = _walk_local(root, self.skip_key, store)
        else:
            files = [(p, rel) for p, rel in store.walk(root)
                     if not _hidden(rel) and not _inside(store.key(p), self.skip_key)]
        count = 0
        for p, rel in files:
            if is_image_name(rel) and wanted(rel):
                self.add(store, p, posixpath.dirname(rel))
                count += 1
        return count

    def _glob(self, text: str, store: Storage, path: str) -> None:
        if isinstance(store, LocalStorage):
            matches = sorted(glob.glob(path, recursive=True))
            files = [m for m in matches if os.path.isfile(m) and not _inside(store.key(m), self.skip_key)]
            images = [m for m in files if is_image_name(m)]
            base = _glob_base(path)
            for m in images:
                sub = os.path.relpath(os.path.dirname(m) or ".", base)
                self.add(store, m, "" if sub in (".", "") else sub.replace(os.sep, "/"))
            if not images:
                why = f"matched {len(files)} file(s), none an input image" if files else "matched nothing"
                self.problems.append((text, why))
            return
        base = _glob_base(path, posix=True)
        if not self._scan(store, base, lambda rel: fnmatch.fnmatchcase(posixpath.join(base, rel), path)):
            self.problems.append((text, "matched nothing"))


def _walk_local(root: str, skip_key: Optional[str], store: Storage) -> List[Tuple[str, str]]:
    """Regular files below a local folder, hidden ones and the destination left out, sorted by
    their path below it: (path, relative path with "/")."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not _inside(store.key(os.path.join(folder, d)), skip_key)]
        for name in files:
            p = os.path.join(folder, name)
            if not name.startswith(".") and os.path.isfile(p):
                found.append((p, os.path.relpath(p, root).replace(os.sep, "/")))
    return sorted(found, key=lambda f: f[1].split("/"))


def _glob_base(pattern: str, posix: bool = False) -> str:
    """The leading folders of a glob pattern that hold no wildcard."""
    parts = (PurePosixPath(pattern) if posix else PurePath(pattern)).parts
    fixed = []
    for part in parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    if not fixed:
        return "" if posix else "."
    return str(PurePosixPath(*fixed)) if posix else os.path.join(*fixed)



def collect_sources(items: Iterable[str], stores: List[Storage], *, skip: Optional[Tuple[Storage, str]] = None,
                    cache: Optional[dict] = None) -> Tuple[List[Source], List[Tuple[str, str]]]:
    """Sources from command-line items, and the items that gave none: ``(sources, problems)``, a
    problem being ``(item, reason)``.  ``stores`` is the batch's list of storages (extended with
    those the URLs need); ``skip`` (a storage and a folder in it: the destination) is never searched."""
    skip_key = None if skip is None else skip[0].key(skip[1])
    c = _Collector(stores, {} if cache is None else cache, skip_key)
    for text in items:
        c.item(os.fspath(text))
    return c.sources, c.problems


def plan(sources: Sequence[Source], stores: Sequence[Storage], dest_store: Storage, dest: str, suffix: str = ""
         ) -> Tuple[List[Item], List[Tuple[Source, str]]]:
    """Each source's output below ``dest``: ``(items, refused)``.  Refused (``(source, reason)``):
    a source whose output would replace an input of the batch, or is already the output of an
    earlier source (``a.png`` and ``a.bmp`` both give ``a.png``)."""
    input_keys: Dict[str, Source] = {stores[s.store].key(s.path): s for s in sources}
    taken: Dict[str, Source] = {}
    items, refused = [], []
    for s in sources:
        name = output_name(posixpath.basename(s.path.replace(os.sep, "/")), suffix)
        rel = f"{s.sub}/{name}" if s.sub else name
        target = dest_store.join(dest, rel)
        victim = input_keys.get(dest_store.key(target))
        if victim is not None:
            what = "the input itself" if victim == s else f"the input {victim.name}"
            refused.append((s, f"the output {dest_store.display(target)} would replace {what}; choose another "
                               "destination or --suffix"))
        elif rel in taken:
            refused.append((s, f"{dest_store.display(target)} is already the output of {taken[rel].name}; "
                               "use --suffix or separate runs"))
        else:
            taken[rel] = s
            items.append(Item(s, rel))
    return items, refused
