"""Errors as the HTTP API gives them: a status and ``{"error": message}``.

The messages are the engine's (the CLI prints the same after ``deepshop: error:``); an upload is
named by the client's file name, and any server path left in a message (a model file, a module) is
cut to its last component, so that a response never tells where things live on the server.  An
unexpected exception is logged with its traceback on the server and answered "internal error".
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import deepshop_native as ds


class HTTPError(Exception):
    """An error the API answers with ``status`` (and ``headers``, e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


class Busy(HTTPError):
    """Every worker busy and the queue full: 503 with Retry-After (seconds)."""

    def __init__(self, retry_after: int, queued: int):
        super().__init__(503, f"the server is busy ({queued} requests queued); retry in {retry_after} s",
                         {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class TimeLimit(ds.DeepshopError):
    """A run went past the per-request time limit (and was cancelled)."""


# ImageError messages that are about size or kind rather than a broken file.
_TOO_LARGE = ("more than the limit of",)
_NOT_AN_IMAGE = ("not an image file", ": empty (0 bytes)")


def status_of(e: BaseException) -> int:
    """The HTTP status of an exception raised while serving a request."""
    if isinstance(e, HTTPError):
        return e.status
    if isinstance(e, ds.ImageError):
        text = str(e)
        if any(s in text for s in _TOO_LARGE):
            return 413
        if any(s in text for s in _NOT_AN_IMAGE):
            return 415
        return 400
    if isinstance(e, (ds.OptionError, ds.ArrayError)):
        return 400
    if isinstance(e, (TimeLimit, ds.Cancelled, ds.DeviceError, MemoryError)):   # Cancelled: the server shut down
        return 503
    if isinstance(e, ds.DeepshopError):     # ModelError and the like: the server's side
        return 500
    return 500


# An absolute path: a '/' (or 'C:\') after the start, whitespace, a quote, '(' or '=' and at least
# two components; cut to its last one.
_PATH = re.compile(r"""(?:(?<=^)|(?<=[\s'"(=]))(?:[A-Za-z]:\\|/)(?:[^\s'"/\\:,;()]+[/\\])+([^\s'"/\\:,;()]*)""")


def public_message(e: BaseException) -> str:
    """The message a client may see: the exception's, without server paths; "internal error" for
    anything that is not a DeepshopError or an HTTPError."""
    if isinstance(e, HTTPError):
        text = e.message
    elif isinstance(e, MemoryError):
        text = "out of memory: try a smaller image or max_side"
    elif isinstance(e, ds.DeepshopError):
        text = str(e)
    else:
        return "internal error"
    return strip_paths(text)


#: Folders whose names never reach a client (longest first): where the package, the models, the
#: working directory, the home and the temporary folder are.  Paths inside them are cut to what
#: follows; the pattern above catches the rest.
_SERVER_DIRS: List[str] = []


def hide_folder(path) -> None:
    """Never show this folder's path (e.g. a --model file's folder) in a response."""
    folder = os.path.abspath(os.fspath(path))
    if folder not in (os.sep, "") and folder not in _SERVER_DIRS:
        _SERVER_DIRS.append(folder)
        _SERVER_DIRS.sort(key=len, reverse=True)


for _folder in (os.path.dirname(os.path.dirname(os.path.abspath(ds.__file__))), os.getcwd(), os.path.expanduser("~"),
                tempfile.gettempdir(), sys.prefix):
    hide_folder(_folder)


def strip_paths(text: str) -> str:
    """The text with every server path cut to its last component.  Inside a known folder a path may
    hold spaces: it runs to the next ':', quote, parenthesis or line end ("{path}: reason")."""
    for folder in _SERVER_DIRS:
        text = re.sub(re.escape(folder) + r"""[/\\](?:[^:'"()\n]*[/\\])?""", "", text)
    return _PATH.sub(lambda m: m.group(1) or "<path>", text)


def error_body(e: BaseException) -> Tuple[int, dict, Dict[str, str]]:
    """(status, JSON body, headers) for an exception."""
    return status_of(e), {"error": public_message(e)}, dict(getattr(e, "headers", {}) or {})
