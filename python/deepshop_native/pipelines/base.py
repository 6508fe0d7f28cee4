"""The pipeline base: what every family's pipeline has, in one place.

    Pipeline        a model on a device: provider, device_used, precision, fallback_reason,
                    metadata, family, tile and plan(), read from its main engine session.
    StylePipeline   image in, stylized image out, through the engine's image path (tiling,
                    statistics modes, harmonize, strength and preserve-colours are the engine's):
                    the caller's image type in and out (numpy of any depth, PIL, a path, bytes),
                    alpha kept aside and put back, max_side, progress.  A family adds only its
                    style inputs (style_inputs(): the aux arrays its generator takes, e.g. a
                    style's Gram matrix or vector) and how it gets them.
    ChosenStylePipeline  a StylePipeline whose style is chosen at run time with set_style()
                    (arbitrary.py, multistyle.py); its call takes ``style=`` too.

Families: pipelines/stylizer.py (feedforward styles), stylenet.py (MSG-Net), colorize.py, hed.py,
generic.py (models whose roles say all), gatys/ (the loss-and-gradient graphs).  The registry
(deepshop_native.models) maps a model file's family to its class.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .. import _native
from ..core import options
from ..core.paths import resolve_model
from ..core.session import (DEFAULT_HARMONIZE, DEFAULT_OVERLAP, DEFAULT_STATISTICS_SIZE, Progress, check_precision,
                            check_tile, checked_progress, open_session, session_options, tile_options,
                            tiling_errors_as_option_errors)
from ..image import resize_max_side, to_depth, to_rgb_array


class Pipeline:
    """A model on a device.  Subclasses set ``model_path``, ``_session`` (the engine session whose
    provider and metadata stand for the pipeline) and ``_tiles`` (its tile options; None for
    pipelines that run whole)."""

    model_path: Path
    _session: Any
    _tiles: Any = None

    @property
    def provider(self) -> str:
        """The execution provider in use, e.g. "CPUExecutionProvider", or "OpenVINO" for OpenVINO
        called directly (where ONNX Runtime's plugin serves no device)."""
        return self._session.provider

    @property
    def device_used(self) -> str:
        """The device in use, in device= terms: "cpu", "cuda:0", "openvino:CPU"."""
        return self._session.device

    @property
    def precision(self) -> str:
        """The precision the provider computes in: "fp32", "bf16", "fp16" or "int8"."""
        return self._session.precision

    @property
    def precision_reason(self) -> str:
        """Why precision="auto" computes in `precision` here ("" when a precision was named)."""
        return self._session.precision_reason

    @property
    def fallback_reason(self) -> str:
        """Why device="auto" did not use each faster provider, one "PROVIDER: reason" clause each,
        joined by "; " ("" when it took the fastest, or when a device was named)."""
        return self._session.fallback_reason

    @property
    def metadata(self) -> dict:
        return dict(self._session.metadata)

    @property
    def family(self) -> str:
        return self._session.family

    @property
    def tile(self) -> int:
        """The network window in use, pixels per side (0: the whole image)."""
        return 0 if self._tiles is None else self._tiles.tile

    def plan(self, height: int, width: int) -> dict:
        """How an image of this size will be tiled: counts, window, halo, tile starts, and how the
        tiles are normalised: "statistics" (the mode that runs: thumbnail, exact or off),
        "passes" (tiled passes over the image) and "harmonize"."""
        height = options.check_size("height", height, lo=1)
        width = options.check_size("width", width, lo=1)
        with tiling_errors_as_option_errors():
            return dict(self._session.plan(height=height, width=width, tiles=self._tiles))


@dataclass
class ImageIn:
    """A caller's image as the engine takes it, and how to give the result back."""
    pixels: np.ndarray                  # H x W x 3 uint8, uint16 or float32 in [0, 1]
    alpha: Optional[np.ndarray]         # H x W, or None
    float64: bool                       # the caller gave float64: returned as float64
    pil: bool                           # the caller gave a PIL image: returned as one


def image_in(image, max_side: Optional[int] = None) -> ImageIn:
    """Any image the package takes (numpy HxWx3/HxW/HxWx4 of uint8/uint16/float, PIL, a path, bytes,
    a binary file object), alpha set aside, downscaled to ``max_side``."""
    pil = type(image).__module__.startswith("PIL.")
    float64 = isinstance(image, np.ndarray) and image.dtype == np.float64
    pixels, alpha = to_rgb_array(image)
    if max_side is not None:
        pixels = resize_max_side(pixels, max_side)
        alpha = None if alpha is None else resize_max_side(alpha, max_side)
    return ImageIn(pixels, alpha, float64, pil)


def image_out(given: ImageIn, result: np.ndarray):
    """The result in the caller's type: float64 back as float64, alpha put back, PIL as PIL (8-bit)."""
    if given.float64:
        result = result.astype(np.float64)
    if given.alpha is not None:
        result = np.concatenate([result, given.alpha.reshape(*given.alpha.shape[:2], 1).astype(result.dtype)], axis=2)
    if given.pil:
        from PIL import Image
        return Image.fromarray(to_depth(result, 8))
    return result


class StylePipeline(Pipeline):
    """An image-to-image style model on the engine's image path; see the module doc.
    ``STYLE``: what the family's set_style takes, "image" (style images: MSG-Net, arbitrary-style
    networks), "name" (built-in styles) or None (one fixed style).

    tile: network window in pixels per side ("auto": the provider's own, DEFAULT_TILE on the CPU
    provider; 0 or None: the whole image in one run).  halo, overlap, batch, harmonize,
    statistics, statistics_size: the engine's tiling (Stylizer's doc says what each does).
    device, precision, threads, memory_arena and the pixel format of models without metadata:
    as for every pipeline (deepshop_native.core.session)."""

    STYLE: Optional[str] = None
    #: The family's working size (working_size=None): 0 runs the network at full size.
    DEFAULT_WORKING_SIZE = 0
    #: The guided upsampling from the working size (the guided filter's window radius, in pixels
    #: of the working size, and its regulariser eps on 0..1 values): a larger window or eps fits
    #: the painting to the photo's luma over more pixels, which brings more of the photo's
    #: structure into the result; the smallest window keeps the painting's strokes
    #: (docs/results/quality.md measures both).
    GUIDED_RADIUS = 2
    GUIDED_EPS = 1e-3
    #: Options of the family's own (beyond the engine's), e.g. MSG-Net's style_size.
    FAMILY_OPTIONS: tuple = ()

    def __init__(self, model=None, *, device: str = "auto", precision: str = "auto",
                 tile: Union[int, str, None] = "auto", halo: Optional[int] = None, overlap: int = DEFAULT_OVERLAP,
                 batch: int = 1, threads: int = 0, harmonize: int = DEFAULT_HARMONIZE, statistics: str = "auto",
                 statistics_size: Optional[int] = DEFAULT_STATISTICS_SIZE, memory_arena: bool = False,
                 working_size: Optional[int] = None, **pixel_format):
        # Options are checked at this edge first (OptionError naming the option), before the model
        # file is even looked at; the engine checks them again.
        tile_auto = check_tile(tile)
        tiling = dict(halo=halo, overlap=overlap, batch=batch, harmonize=harmonize, statistics=statistics,
                      statistics_size=statistics_size)
        self._tiles = tile_options(tile=0 if tile_auto else tile, **tiling)
        self.working_size = self.check_working_size(working_size)
        precision = check_precision(precision)
        checked = session_options("", device=device, threads=threads, memory_arena=memory_arena, **pixel_format)
        self.model_path = self.resolve(model)
        self._session = open_session(self.model_path, image_path=True, precision=precision, checked=checked)
        self.open_more(precision, checked)
        tiling = self.family_tiling(tiling)
        self._tiles = tile_options(tile=self._tiles.tile, **tiling)
        if tile_auto:
            # The provider's own windows (cpp/engine/image_runner.h): on OpenVINO called directly any
            # shape within an area, and images up to whole_area pixels whole; square ones elsewhere.
            s = self._session
            self._tiles = tile_options(tile=s.default_tile, tile_area=s.default_tile_area, whole_area=s.whole_area,
                                       **tiling)

    def check_working_size(self, working_size) -> int:
        """``working_size`` checked: None is the family's default, 0 full size."""
        if working_size is None:
            return self.DEFAULT_WORKING_SIZE
        return options.check_size("working_size", working_size)

    def resolve(self, model) -> Path:
        """The model file the generator is in (None: the family's default, if it has one)."""
        return resolve_model(model)

    def open_more(self, precision: str, checked: dict) -> None:
        """Open the family's other graphs (a style encoder or predictor), on the same device."""

    def family_tiling(self, tiling: dict) -> dict:
        """The tiling options as the family runs them, given the caller's and the opened graphs."""
        return tiling

    def style_inputs(self) -> dict:
        """The aux inputs the generator takes for the current style ({} for a fixed style)."""
        return {}

    def __call__(self, image, *, strength: float = 1.0, preserve_colors: bool = False,
                 max_side: Optional[int] = None, progress: Optional[Progress] = None,
                 working_size: Optional[int] = None):
        """Stylize an image.  Returns the caller's type: a numpy array of the input's dtype
        (grayscale comes back as RGB, RGBA keeps its alpha), a PIL image for a PIL image, and a
        numpy array for a path.  strength in [0, 1] blends with the input; preserve_colors keeps
        the input's colours and takes only the stylized luminance; max_side downscales first;
        progress(done, total) is called after each batch of tiles (return False to cancel);
        working_size: the network runs on the image downscaled to this longer side and the result
        is brought back to full size with the photo's detail (guided upsampling; 0: full size;
        None: the pipeline's own, ``self.working_size``)."""
        strength = options.check_strength(strength)
        max_side = options.check_max_side(max_side)
        progress = checked_progress(progress)
        given = image_in(image, max_side)
        return image_out(given, self.run(given.pixels, strength=strength, preserve_colors=preserve_colors,
                                         progress=progress, working_size=working_size))

    def run(self, pixels: np.ndarray, *, strength: float = 1.0, preserve_colors: bool = False,
            progress: Optional[Progress] = None, working_size: Optional[int] = None, statistics=None) -> np.ndarray:
        """The engine's image path on H x W x 3 pixels (uint8, uint16 or float32 in [0, 1], no
        alpha); the result has their dtype.  Options as checked by __call__; ``statistics``: for a
        global-statistics graph, (means, variances) to normalise with instead of the image's own
        (e.g. a video shot's: statistics() measures them)."""
        return self.run_with(pixels, self.style_inputs(), strength=strength, preserve_colors=preserve_colors,
                             progress=progress, working_size=working_size, statistics=statistics)

    def run_with(self, pixels: np.ndarray, style_inputs: dict, *, strength: float = 1.0, preserve_colors: bool = False,
                 progress: Optional[Progress] = None, working_size: Optional[int] = None,
                 statistics=None) -> np.ndarray:
        """run() with the generator's style inputs given (the aux arrays)."""
        size = self.working_size if working_size is None else options.check_size("working_size", working_size)
        aux = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in style_inputs.items()}
        h, w = _native.working_shape(height=pixels.shape[0], width=pixels.shape[1], working_size=size)
        if statistics is not None:
            statistics = tuple(np.ascontiguousarray(a, dtype=np.float32).ravel() for a in statistics)
        with tiling_errors_as_option_errors():
            return self._session.run(image=pixels, tiles=self._tiles, strength=float(strength),
                                     preserve_colors=bool(preserve_colors), aux=aux, working_size=size,
                                     guided_radius=self.GUIDED_RADIUS, guided_eps=self.GUIDED_EPS,
                                     statistics=statistics, progress=progress)

    @property
    def has_statistics(self) -> bool:
        """Whether the model is a global-statistics graph (its tiles, or frames, can be normalised
        with statistics other than their own)."""
        return "deepshop.statistics" in self.metadata

    def statistics(self, pixels: np.ndarray, mode: str = "thumbnail") -> tuple:
        """(means, variances) this global-statistics graph normalises the image with: its
        thumbnail's (longer side statistics_size), or "exact": the whole image's, measured over its
        tiles.  ModelError for other graphs."""
        h, w = _native.working_shape(height=pixels.shape[0], width=pixels.shape[1], working_size=self.working_size)
        aux = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in self.style_inputs().items()}
        with tiling_errors_as_option_errors():
            mean, var = self._session.statistics(image=np.ascontiguousarray(pixels), tiles=self._tiles,
                                                 aux=aux, mode=mode)
        return mean, var


class ChosenStylePipeline(StylePipeline):
    """A StylePipeline whose family sets its style with ``set_style(style, weights)``."""

    def __call__(self, image, *, strength: float = 1.0, preserve_colors: bool = False,
                 max_side: Optional[int] = None, progress=None, working_size: Optional[int] = None,
                 style=None, style_weights=None):
        """Paint ``image`` with the current style (or ``style=``), as StylePipeline's call."""
        if style is not None:
            self.set_style(style, style_weights)
        return super().__call__(image, strength=strength, preserve_colors=preserve_colors, max_side=max_side,
                                progress=progress, working_size=working_size)
