"""A stylize request's form: the multipart body read into memory within the size limit, then its
fields checked into a :class:`StylizeForm`.

Nothing is written to disk: the body is parsed as it streams in (python-multipart's parser) and
refused with 413 as soon as it passes the limit (at once when Content-Length says so already).
Uploads are named by the client's file name, cut to its last component; no field names a server path.

Fields (``POST /v1/stylize`` and ``POST /v1/jobs``): file ``photo`` (required); at most one of
``style`` (a catalogue style), ``model`` (a model the server was started with) and file
``style_image`` (a painting, for a model that takes one; with ``model`` naming it or the first such
model); ``strength`` (0..1), ``preserve_colors`` (true/false), ``format`` (jpeg, png, webp),
``quality`` (0..100), ``max_side`` (working size: the longer side is brought down to it).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, Optional

from .errors import HTTPError

FILE_FIELDS = ("photo", "style_image")
TEXT_FIELDS = ("style", "model", "strength", "preserve_colors", "format", "quality", "max_side")
#: Most bytes in one text field, and most parts in one request.
MAX_FIELD_BYTES = 1024
MAX_PARTS = 16
#: format field -> (Pillow format, content type, extension)
FORMATS = {"jpeg": ("JPEG", "image/jpeg", ".jpg"), "jpg": ("JPEG", "image/jpeg", ".jpg"),
           "png": ("PNG", "image/png", ".png"), "webp": ("WEBP", "image/webp", ".webp")}
#: Largest max_side (as the engine's bound on sizes, deepshop_native.options.MAX_SIDE).
MAX_SIDE = 1 << 20
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass
class Upload:
    field: str
    filename: str          # the client's name, cut to its last component ("<upload>" when none)
    data: bytes


@dataclass
class Form:
    fields: Dict[str, str] = field(default_factory=dict)
    files: Dict[str, Upload] = field(default_factory=dict)


def client_filename(name: Optional[str]) -> str:
    """The client's file name as messages show it: the last path component, printable, at most
    100 characters; "<upload>" when there is none."""
    if not name:
        return "<upload>"
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(c for c in base if c.isprintable())[:100].strip()
    return base or "<upload>"


def too_large(limit: int) -> HTTPError:
    return HTTPError(413, f"request body larger than the server's upload limit of {limit / 2**20:g} MiB "
                          "(deepshop serve --max-upload-mb)")


async def read_form(request, max_bytes: int) -> Form:
    """The multipart/form-data body of ``request`` in memory; HTTPError 413 past ``max_bytes``,
    415 for another content type, 400 for a malformed body."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise HTTPError(415, "expected a multipart/form-data body (a file field 'photo' and the options as fields)")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise too_large(max_bytes)
    form, parts = Form(), []
    state = {"headers": [], "name": b"", "value": b""}

    def on_part_begin():
        if len(parts) >= MAX_PARTS:
            raise HTTPError(400, f"more than {MAX_PARTS} parts in the form")
        parts.append({"disposition": b"", "data": bytearray()})

    def on_header_field(data, start, end):
        state["name"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        if state["name"].lower() == b"content-disposition":
            parts[-1]["disposition"] = state["value"]
        state["name"], state["value"] = b"", b""

    def on_part_data(data, start, end):
        part = parts[-1]
        part["data"] += data[start:end]
        if "filename" not in part and len(part["data"]) > MAX_FIELD_BYTES:
            raise HTTPError(400, f"field {part.get('name', '?')!r}: longer than {MAX_FIELD_BYTES} bytes")

    def on_headers_finished():
        part = parts[-1]
        _, options = parse_options_header(part["disposition"])
        if b"name" not in options:
            raise HTTPError(400, "a form part without a name")
        part["name"] = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            part["filename"] = options[b"filename"].decode("utf-8", "replace")

    callbacks = {"on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_headers_finished": on_headers_finished}
    try:
        parser = MultipartParser(params[b"boundary"], callbacks)
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_bytes:
                raise too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except HTTPError:
        raise
    except Exception as e:      # python-multipart's parse errors
        raise HTTPError(400, f"malformed multipart body ({type(e).__name__})") from None
    for part in parts:
        name = part.get("name")
        if name is None:
            continue
        if name in form.fields or name in form.files:
            raise HTTPError(400, f"field {name!r} given twice")
        if name in FILE_FIELDS:
            form.files[name] = Upload(name, client_filename(part.get("filename")), bytes(part["data"]))
        elif name in TEXT_FIELDS:
            form.fields[name] = bytes(part["data"]).decode("utf-8", "replace").strip()
        else:
            raise HTTPError(400, f"unknown field {name[:40]!r}; the fields are: " + ", ".join(FILE_FIELDS + TEXT_FIELDS))
    return form


@dataclass
class StylizeForm:
    photo: Upload
    style: Optional[str] = None
    model: Optional[str] = None
    style_image: Optional[Upload] = None
    strength: float = 1.0
    preserve_colors: bool = False
    format: Optional[str] = None        # a FORMATS key; None: the photo's own when it is one, else png
    quality: int = 95
    max_side: Optional[int] = None


def _number(name: str, text: str, lo: float, hi: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise HTTPError(400, f"{name}: expected a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise HTTPError(400, f"{name}: must be a finite number, got {text[:40]}")
    if not lo <= value <= hi:
        raise HTTPError(400, f"{name}: must be within [{lo:g}, {hi:g}], got {value:g}")
    return value


def _integer(name: str, text: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"[+-]?\d{1,19}", text):
        raise HTTPError(400, f"{name}: expected an integer, got {text[:40]!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise HTTPError(400, f"{name}: must be from {lo} to {hi}, got {value}")
    return value


def check_form(form: Form) -> StylizeForm:
    """The fields checked (HTTPError 400 naming the field); the style and model names are checked
    against the catalogue later."""
    f = {k: v for k, v in form.fields.items() if v != ""}      # an empty field of an HTML form: not given
    photo = form.files.get("photo")
    if photo is None:
        raise HTTPError(400, "photo: no file given (a multipart file field named 'photo')")
    out = StylizeForm(photo=photo, style=f.get("style"), model=f.get("model"), style_image=form.files.get("style_image"))
    if out.style is not None and (out.model is not None or out.style_image is not None):
        raise HTTPError(400, "style: give a catalogue style, or a model (with a style_image for a model that takes "
                             "one), not both")
    if "strength" in f:
        out.strength = _number("strength", f["strength"], 0.0, 1.0)
    if "preserve_colors" in f:
        text = f["preserve_colors"].lower()
        if text not in _TRUE + _FALSE:
            raise HTTPError(400, f"preserve_colors: expected true or false, got {f['preserve_colors'][:40]!r}")
        out.preserve_colors = text in _TRUE
    if "format" in f:
        key = f["format"].lower()
        if key not in FORMATS:
            raise HTTPError(400, f"format: {f['format'][:40]!r} is not one of jpeg, png, webp")
        out.format = key
    if "quality" in f:
        out.quality = _integer("quality", f["quality"], 0, 100)
    if "max_side" in f:
        out.max_side = _integer("max_side", f["max_side"], 1, MAX_SIDE)
    return out
