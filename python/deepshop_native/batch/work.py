"""One image's work, the same in every engine: its bytes in, the painted file's bytes out, written
to the destination.  What ``deepshop stylize`` does per file (read with the pixel limit, EXIF
orientation applied, ``max_side``, the pipeline, the same encoder with the photo's EXIF and ICC
profile), with the file's bytes coming from any storage."""
from __future__ import annotations

import io
import os
import posixpath
import socket
import time
from dataclasses import dataclass
from typing import Optional

from ..core.errors import DeepshopError, failure_reason
from ..image import encode_image, read_image, resize_max_side
from .spec import PaintSpec
from .storage import Storage

__all__ = ["Painter", "Outcome", "ITEM_ERRORS", "failure_reason", "worker_id"]

#: What fails one image and lets the batch go on (anything else is a bug and stops it).
ITEM_ERRORS = (DeepshopError, OSError, ValueError, RuntimeError, MemoryError)


@dataclass
class Outcome:
    """What one image gave: ``index`` in the engine's work list; ``reason`` empty when it was
    done; ``size`` the output's bytes; ``seconds`` the worker's time on it."""

    index: int
    reason: str = ""
    size: int = 0
    seconds: float = 0.0
    worker: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"



class Painter:
    """The pipeline of a :class:`PaintSpec`, opened once (per worker), and what it does per image."""

    def __init__(self, spec: PaintSpec, threads: Optional[int] = None):
        self.spec = spec
        self.pipeline = spec.open_pipeline(threads)

    def paint(self, data: bytes, name: str, output: str) -> bytes:
        """The bytes of the output file ``output`` (its extension gives the format) painted from
        the bytes of the image file ``name``."""
        spec = self.spec
        source = io.BytesIO(data)
        source.name = name                       # errors name the file
        image = read_image(source, max_pixels=spec.max_pixels)
        pixels, alpha = image.pixels, image.alpha
        if spec.max_side is not None:
            pixels = resize_max_side(pixels, spec.max_side)
            alpha = None if alpha is None else resize_max_side(alpha, spec.max_side)
        styled = self.pipeline.run(pixels, strength=spec.strength, preserve_colors=spec.preserve_colors)
        return encode_image(styled, posixpath.splitext(output)[1], alpha=alpha, quality=spec.quality,
                            exif=image.exif, icc_profile=image.icc_profile, name=output)

    def paint_to(self, data: bytes, name: str, store: Storage, target: str, overwrite: bool) -> int:
        """Paint and write the result to ``target`` in ``store``; the bytes written."""
        out = self.paint(data, name, store.display(target))
        store.write_bytes(target, out, overwrite)
        return len(out)


def do_item(painter: Painter, index: int, name: str, data: Optional[bytes], read_error: str, store: Storage,
            target: str, overwrite: bool) -> Outcome:
    """One image, its failure caught (:data:`ITEM_ERRORS`) and returned as the reason."""
    start = time.perf_counter()
    reason = read_error
    size = 0
    if not reason:
        try:
            size = painter.paint_to(data, name, store, target, overwrite)
        except ITEM_ERRORS as e:
            reason = failure_reason(e, name)
    return Outcome(index, reason, size, time.perf_counter() - start, worker_id())


def read_item(store: Storage, path: str, name: str):
    """(the file's bytes, "") or (None, the reason it cannot be read)."""
    try:
        return store.read_bytes(path), ""
    except ITEM_ERRORS as e:
        return None, failure_reason(e, name)
