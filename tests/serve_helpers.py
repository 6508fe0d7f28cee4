"""Helpers of the deepshop serve tests: small exact models (identity, invert), encoded images, a
pipeline whose tiles wait for the test (to hold a worker busy deterministically), and the check
that an error response is clean (JSON, no traceback, no server path)."""
from __future__ import annotations

import io
import os
import sys
import tempfile
import threading

import numpy as np
from PIL import Image

from model_factory import identity_model, image_graph_model, save_with_metadata

PIXEL_META = {"deepshop.value_range": "0,255", "deepshop.stride_multiple": "4"}


def invert_model(path) -> str:
    """output = 255 - input: strength and preserve_colors have hand-worked answers."""
    from onnx import TensorProto, helper
    c = helper.make_tensor("c255", TensorProto.FLOAT, [], [255.0])
    model = image_graph_model([helper.make_node("Sub", ["c255", "input"], ["output"])], initializers=[c])
    return save_with_metadata(model, path, PIXEL_META)


def identity(path) -> str:
    return identity_model(path, PIXEL_META)


def encoded(arr: np.ndarray, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class GatedPipeline:
    """Wraps a real pipeline: every tile's progress call first waits until the test opens the gate
    (``release``), so that a job stays running as long as the test needs.  ``entered`` is set at the
    first tile; ``answers`` records what the server's progress callback answered (False: stop)."""

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.answers = []
        self.calls = 0

    def plan(self, height, width):
        return self.inner.plan(height, width)

    def release(self):
        self.gate.set()

    def __call__(self, pixels, *, strength=1.0, preserve_colors=False, progress=None):
        self.calls += 1

        def gated(done, total):
            self.entered.set()
            self.gate.wait(20)
            answer = progress(done, total) if progress else None
            self.answers.append(answer)
            return answer
        return self.inner(pixels, strength=strength, preserve_colors=preserve_colors, progress=gated)


def server_paths(*extra) -> list:
    """Strings that must never appear in a response: the folders the server runs from."""
    import deepshop_native
    paths = [os.path.dirname(os.path.abspath(deepshop_native.__file__)), tempfile.gettempdir() + "/",
             sys.prefix + "/", os.getcwd() + "/", os.path.expanduser("~") + "/"]
    return [p for p in (*paths, *[str(e) for e in extra]) if len(p) > 2]


def assert_clean_error(response, status: int, *secrets, contains: str = ""):
    """The response is ``status`` with ``{"error": ...}`` naming no server path and no traceback."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    text = response.text
    assert "Traceback" not in text and 'File "' not in text, text
    for secret in server_paths(*secrets):
        assert secret not in text, (secret, text)
    assert contains in body["error"], body["error"]
    return body["error"]


def multipart(fields: dict, files: dict, boundary: str = "deepshop-test-boundary") -> tuple:
    """(body, content type) of a multipart/form-data request, built by hand."""
    out = b""
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    for name, (filename, data) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def sse_events(text: str) -> list:
    """[(event, data dict)] of a server-sent-events stream."""
    import json
    events = []
    for block in text.split("\n\n"):
        kind, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if kind:
            events.append((kind, data))
    return events
