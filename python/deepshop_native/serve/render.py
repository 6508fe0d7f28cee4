"""The work of one request, in two steps:

* :func:`prepare` (in the request's thread, before queueing): the photo decoded from memory with the
  pixel limit checked from its header first (``read_image(..., max_pixels=...)``, the CLI's
  ``--max-pixels``), brought to ``max_side``; the style image's header and pixel count checked; the
  style or model looked up in the catalogue.  Bad input is refused here, before it waits in the queue.
* :func:`run` (in a worker thread): the pipeline called with the progress callback, the result
  encoded to bytes in memory.

Content is sniffed by the image reader (Pillow), never taken from a file name or a content type.
"""
from __future__ import annotations

import copy
import io
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import numpy as np

import deepshop_native as ds
from deepshop_native.image import encode_image, read_image, resize_max_side

from .catalogue import Catalogue, Model
from .errors import HTTPError
from .forms import FORMATS, StylizeForm

_OWN_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}


@dataclass
class Prepared:
    """A checked request, ready for a worker: decoded pixels and everything the run needs."""

    model: Model
    pixels: np.ndarray
    alpha: Optional[np.ndarray]
    exif: Optional[bytes]
    icc_profile: Optional[bytes]
    style_image: Optional[Any]          # bytes of an upload, or a catalogue style's painting
    style_image_name: str
    strength: float
    preserve_colors: bool
    format: str                         # a FORMATS key
    quality: int
    filename: str                       # the download's name: <photo stem>_styled.<ext>

    @property
    def media_type(self) -> str:
        return FORMATS[self.format][1]

    @property
    def size(self):
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


def _named(upload) -> io.BytesIO:
    """The upload's bytes as a file object named by the client's file name, so that the reader's
    messages name it (never a server path: uploads have none)."""
    f = io.BytesIO(upload.data)
    f.name = upload.filename
    return f


def _choose(form: StylizeForm, catalogue: Catalogue):
    """(model, style image or None, its name) for the form's style / model / style_image."""
    if form.style is not None:
        style = catalogue.style(form.style)
        if style is None:
            raise HTTPError(404, f"style: no style named {form.style[:60]!r}; GET /v1/styles lists them")
        return style.model, style.style_image, style.name
    if form.model is not None:
        model = catalogue.model(form.model)
        if model is None:
            raise HTTPError(404, f"model: no model named {form.model[:60]!r}; GET /v1/models lists them")
    elif form.style_image is not None:
        model = catalogue.style_image_model()
        if model is None:
            raise HTTPError(400, "style_image: this server has no model that takes a style image (start it with "
                                 "--model and an MSG-Net model)")
    else:
        if not catalogue.styles:
            raise HTTPError(400, "style: this server offers no styles; give a model")
        style = catalogue.styles[0]
        return style.model, style.style_image, style.name
    if model.takes_style_image and form.style_image is None:
        raise HTTPError(400, f"style_image: model {model.name!r} takes a style image; send the painting as the "
                             "file field 'style_image'")
    if form.style_image is not None and not model.takes_style_image:
        raise HTTPError(400, f"style_image: model {model.name!r} does not take a style image")
    upload = form.style_image
    return model, (upload.data if upload is not None else None), (upload.filename if upload is not None else "")


def prepare(form: StylizeForm, catalogue: Catalogue, max_pixels: Optional[int]) -> Prepared:
    """Checks and decodes a request (see the module doc); DeepshopError or HTTPError when it cannot run."""
    model, style_image, style_name = _choose(form, catalogue)
    if isinstance(style_image, bytes) and form.style_image is not None:
        # Refused from its header when too large, and when it is no image, before any work is queued;
        # the pipeline decodes it again when it sets the style.
        read_image(_named(form.style_image), max_pixels=max_pixels)
    image = read_image(_named(form.photo), max_pixels=max_pixels)
    pixels, alpha = image.pixels, image.alpha
    if form.max_side is not None:
        pixels = resize_max_side(pixels, form.max_side)
        alpha = None if alpha is None else resize_max_side(alpha, form.max_side)
    fmt = form.format or _OWN_FORMATS.get(image.format or "", "png")
    stem = os.path.splitext(form.photo.filename)[0] if form.photo.filename != "<upload>" else "photo"
    safe_stem = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in stem)[:80] or "photo"
    return Prepared(model=model, pixels=pixels, alpha=alpha, exif=image.exif, icc_profile=image.icc_profile,
                    style_image=style_image, style_image_name=style_name, strength=form.strength,
                    preserve_colors=form.preserve_colors, format=fmt, quality=form.quality,
                    filename=f"{safe_stem}_styled{FORMATS[fmt][2]}")


class Pipelines:
    """Each model's pipeline, opened once on first use and shared by every request."""

    def __init__(self):
        self._open: Dict[str, Any] = {}
        self._locks: Dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, model: Model):
        pipeline = self._open.get(model.name)
        if pipeline is not None:
            return pipeline
        with self._lock:
            lock = self._locks.setdefault(model.name, threading.Lock())
        with lock:
            if model.name not in self._open:
                self._open[model.name] = model.open()
            return self._open[model.name]


def tile_count(pipeline, height: int, width: int) -> int:
    """Tiles the pipeline will run for this size (the progress total), 1 when it cannot say."""
    try:
        plan = pipeline.plan(height, width)
        return max(1, int(plan["tiles_x"]) * int(plan["tiles_y"]))
    except Exception:
        return 1


def stylize(pipeline, takes_style_image: bool, style_image, style_name: str, pixels: np.ndarray, *,
            strength: float, preserve_colors: bool, progress: Optional[Callable[[int, int], bool]]) -> np.ndarray:
    """One run of a shared pipeline.  A pipeline that takes a style image is copied (a shallow copy:
    the sessions are shared, the style is the copy's own), so that requests with different styles
    never see each other's."""
    if takes_style_image:
        if style_image is None:
            raise ds.OptionError(f"style_image: model takes a style image and none was given ({style_name})")
        pipeline = copy.copy(pipeline)
        if isinstance(style_image, (bytes, bytearray)):
            f = io.BytesIO(style_image)
            f.name = style_name or "<style_image>"
            style_image = f
        pipeline.set_style(style_image)
    return pipeline(pixels, strength=strength, preserve_colors=preserve_colors, progress=progress)


def run(prepared: Prepared, pipelines: Pipelines, progress: Callable[[int, int], bool],
        set_total: Callable[[int], None]) -> bytes:
    """Stylizes a prepared request in this (worker) thread; returns the encoded image file."""
    pipeline = pipelines.get(prepared.model)
    h, w = prepared.pixels.shape[:2]
    set_total(tile_count(pipeline, h, w))
    styled = stylize(pipeline, prepared.model.takes_style_image, prepared.style_image, prepared.style_image_name,
                     prepared.pixels, strength=prepared.strength, preserve_colors=prepared.preserve_colors,
                     progress=progress)
    return encode_image(styled, FORMATS[prepared.format][0], alpha=prepared.alpha, quality=prepared.quality,
                        exif=prepared.exif, icc_profile=prepared.icc_profile, name=prepared.filename)


def thumbnail(pipeline, takes_style_image: bool, style_image, sample: np.ndarray) -> bytes:
    """A small JPEG of the sample photo in this style."""
    styled = stylize(pipeline, takes_style_image, style_image, "<style>", sample, strength=1.0,
                     preserve_colors=False, progress=None)
    return encode_image(styled, "JPEG", quality=85, name="thumbnail")
