"""Any painting as a style: Magenta's arbitrary-style network (Ghiasi et al. 2017), family
``arbitrary_style``, converted by ``deepshop-export pretrained``.

    net = ArbitraryStyle()                         # the converted network in the pretrained folder
    net.set_style("painting.jpg")                  # one predictor run: a 100-number style vector
    net.set_style(["a.jpg", "b.jpg"], [0.7, 0.3])  # a blend: the weighted mean of the vectors
    out = net(photo, strength=0.8)                 # strength moves the vector towards the photo's own

Two graphs (metadata ``deepshop.pipeline``): the style predictor (style image -> vector) and the
transfer network (photo + vector -> painting).  The vector is an aux input that every run of the
transfer network gets (tiles, the harmonize thumbnail, the measuring passes), as MSG-Net's Gram.
``strength`` interpolates the style vector between the photo's own (the predictor run on the photo)
and the painting's, as Magenta does, rather than fading pixels; ``preserve_colors`` keeps the
photo's colours.  The network was trained on photos of a few hundred pixels: run at full size on a
large photo its strokes shrink to nothing, so it runs at a working size by default
(``DEFAULT_WORKING_SIZE``, see pipelines/base.py) and the painting is brought to full size with
the photo's detail.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..core import options
from ..core.errors import ModelError, OptionError
from ..core.paths import PRETRAINED_ENV, made_on_first_use, pretrained_dir
from ..core.session import open_session, tile_options
from . import style_images
from .base import ChosenStylePipeline

FAMILY = "arbitrary_style"
#: The generator's file in the pretrained folder (its predictor beside it).
MODEL_FILE = "arbitrary_style.onnx"
EXPORT_COMMAND = "deepshop-export pretrained"
#: The style images' shorter side before the predictor.  The network was trained on 256 px styles;
#: 384 brings its paintings closer to the painting's own Gram statistics at every output size
#: measured (docs/results/quality.md).
DEFAULT_STYLE_SIZE = 384
#: Longer side the network paints at before guided upsampling to the photo's size (0: full size).
DEFAULT_WORKING_SIZE = 1024


def default_model() -> Path:
    """The converted network, made on first use from the weight package (deepshop-export pretrained)."""
    folder = pretrained_dir()
    return made_on_first_use(folder / MODEL_FILE, ["pretrained", "--out", str(folder)],
                             "pretrained style networks", PRETRAINED_ENV)


class ArbitraryStyle(ChosenStylePipeline):
    """Magenta's arbitrary-style network: ``set_style(images)`` then call on photos (options as
    StylePipeline's; ``style_size``: the style images' shorter side before the predictor).
    Thread-safe for calls; set_style swaps the vector atomically."""

    STYLE = "image"
    DEFAULT_WORKING_SIZE = DEFAULT_WORKING_SIZE
    #: The smallest guided window: the painting's strokes kept, the photo's finest detail added.
    GUIDED_RADIUS = 1
    GUIDED_EPS = 1e-4
    FAMILY_OPTIONS = ("style_size",)

    def __init__(self, model=None, *, style_size: int = DEFAULT_STYLE_SIZE, **engine_options):
        self.style_size = options.check_size("style_size", style_size, lo=style_images.MIN_STYLE_SIDE)
        super().__init__(model, **engine_options)
        self._cache = style_images.StyleCache()
        self._lock = threading.Lock()
        self._vectors: Optional[np.ndarray] = None       # the style's vector (1 x D)
        self.style_names: list = []

    def resolve(self, model) -> Path:
        self.predictor_path, path, pipe = style_images.resolve_pair(
            default_model() if model is None else model, FAMILY, "predictor", "an arbitrary-style", EXPORT_COMMAND)
        self._style_input = str(pipe.get("style_input", "style"))
        self.style_dim = int(pipe.get("style_dim", 0)) or None
        return path

    def open_more(self, precision: str, checked: dict) -> None:
        self._predictor = open_session(self.predictor_path, precision=precision, checked=checked)
        outputs = [t["name"] for t in self._predictor.outputs if t["role"] == "aux"]
        if len(outputs) != 1:
            raise ModelError(f"{self.predictor_path}: an arbitrary-style predictor has one style-vector output")
        self._vector_output = outputs[0]
        self._whole = tile_options(tile=0)

    # --- styles --------------------------------------------------------------------------------
    def _vector(self, pixels: np.ndarray) -> np.ndarray:
        out = self._predictor.run_tiled(spatial={"input": pixels}, tiles=self._whole, outputs=[self._vector_output])
        return np.asarray(out["whole"][self._vector_output][0], dtype=np.float64).reshape(1, -1)

    def style_vector(self, style) -> np.ndarray:
        """The style vector of one style image (path, array, PIL image), cached per style file."""
        def compute():
            pixels, _name = style_images.style_pixels(style, shorter=self.style_size, what="the arbitrary-style network")
            return self._vector(pixels)
        return self._cache.get(style, (self.style_size,), compute)

    def set_style(self, style, weights: Optional[Sequence[float]] = None) -> "ArbitraryStyle":
        """Use one style image, or several blended: the weights' weighted mean of their vectors
        (weights >= 0, not all 0; default equal).  Returns self."""
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise OptionError("style: no style image given")
        w = options.check_blend_weights(len(styles), weights)
        vector = sum(wi * self.style_vector(s) for wi, s in zip(w, styles))
        with self._lock:
            self._vectors = np.asarray(vector, dtype=np.float64)
            self.style_names = [str(s) if isinstance(s, (str, Path)) else f"<{type(s).__name__}>" for s in styles]
        return self

    def style_inputs(self, photo: Optional[np.ndarray] = None, strength: float = 1.0) -> dict:
        v = self._vectors
        if v is None:
            raise OptionError(f"{self.model_path}: no style: call set_style(image) first (the arbitrary-style "
                              "network takes the style image at run time)")
        if strength < 1.0 and photo is not None:
            # Magenta's interpolation: the photo's own style vector, moved towards the painting's.
            own, _ = style_images.style_pixels(photo, shorter=self.style_size, what="the arbitrary-style network")
            v = strength * v + (1.0 - strength) * self._vector(own)
        return {self._style_input: np.ascontiguousarray(v, dtype=np.float32)}

    def run(self, pixels: np.ndarray, *, strength: float = 1.0, preserve_colors: bool = False, progress=None,
            working_size: Optional[int] = None, statistics=None) -> np.ndarray:
        """As StylePipeline.run, with ``strength`` moving the style vector (not the pixels)."""
        strength = options.check_strength(strength)
        aux = self.style_inputs(pixels, strength)
        return self.run_with(pixels, aux, preserve_colors=preserve_colors, progress=progress,
                             working_size=working_size, statistics=statistics)
