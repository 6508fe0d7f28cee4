"""Style at run time: MSG-Net (Zhang & Dana 2017), one model for any style image.

    net = StyleNet("msgnet.onnx")                 # the generator; msgnet.encoder.onnx beside it
    net.set_style("painting.jpg")                 # one encoder pass + one native Gram (cached per file)
    net.set_style(["a.jpg", "b.jpg"], [0.7, 0.3]) # a blend: the weighted mean of the Grams
    out = net(photo)                              # tiled through the engine, any size and aspect
    ds.stylize("photo.jpg", "msgnet.onnx", "out.jpg", style="painting.jpg")
    net.predict([bgr_array, "photo.jpg"], style="painting.jpg")   # PaddleHub's msgnet call

The model is a pipeline of two graphs written by ``deepshop-export msgnet`` (metadata
``deepshop.pipeline``): the encoder (image -> features) and the generator (image + Gram -> image).
Between them the Gram matrix G = F F^T / (C h w) of the style's features is computed by the
native kernel (ds.gram), and handed to every tile of the content image as a non-spatial aux input.
A new style costs one encoder pass and one Gram, not a model reload.  Style images larger than
``style_tile`` (default 1024, after resizing to ``style_size``) go through the encoder window by
window, the Gram summed over the windows' kept spans (ds.GramAccumulator); with an encoder exported
with ``--statistics`` the windows are normalised with the whole image's statistics (one measuring
pass per encoder layer), which makes the Gram the whole image's.

Tiling: instance norm sees each tile's own statistics, so a tiled image differs from a whole-image
run as it does for the feedforward stylizer (docs/design/tiling-and-statistics.md); images up to the tile size (1536 px on
the CPU provider) run whole.  A generator exported with ``--statistics`` runs the tiles of larger
images with a thumbnail's instance-norm statistics instead (thumbnail mode; exact mode would need
33 tiled passes and is not offered).  Otherwise (plain generators, or statistics="off") tiles can be
harmonized as the stylizer's are (``harmonize=N``, off by default for MSG-Net; see StyleNet): each
tile's low-frequency colour is pulled to that of a stylized thumbnail, which the engine runs with
the same style Gram.  All of it is the engine's: the windowed encoder (engine/style_gram.h) and the
image path with the Gram as an aux input (pipelines/base.py).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .. import _native
from ..core import metadata as mm
from ..core import options
from ..core.errors import ModelError, OptionError
from ..core.files import check_not_an_input
from ..core.session import DEFAULT_OVERLAP, open_session
from ..image import to_depth, write_image
from . import style_images
from .base import StylePipeline

FAMILY = "msgnet"
#: Longer side the style image is resized to before the encoder (upstream MSG-Net: 512).
DEFAULT_STYLE_SIZE = 512
#: Style images larger than this (after resizing to style_size) go through the encoder in windows
#: of at most this many pixels a side, and their Gram is summed over the windows' owned spans, so
#: that a large style_size does not need the encoder's activations of the whole image at once.
#: The encoder's instance norm then sees each window's statistics (style_statistics="off": the
#: Gram differs by several per cent) or, with an encoder exported with --statistics, the whole
#: image's ("exact"; docs/results/msgnet.md has the measured errors).
DEFAULT_STYLE_TILE = 1024
EXPORT_COMMAND = "deepshop-export msgnet"


def resolve_pair(model) -> tuple:
    """(encoder path, generator path, generator's pipeline entry) from either file of the pair."""
    return style_images.resolve_pair(model, FAMILY, "encoder", "an MSG-Net", EXPORT_COMMAND)


class StyleNet(StylePipeline):
    """An MSG-Net model: ``set_style`` then call on photos.  Options as for Stylizer (device,
    tile, halo, overlap, batch, threads, memory_arena; precision "auto"/"fp32"); style_size: the
    longer side the style image is resized to (default 512); style_tile: styles larger than this
    (after resizing) run the encoder in windows of at most style_tile px with a halo of the
    encoder's receptive-field radius, the Gram summed over the windows' owned spans ("auto":
    DEFAULT_STYLE_TILE; 0 or None: always whole); style_statistics: how those windows are
    normalised: "exact" (the whole style image's instance-norm statistics, measured over the
    windows in one pass per encoder layer: the Gram is the whole image's; needs an encoder exported
    with --statistics), "off" (each window its own: one pass, the Gram differs by several per cent)
    or "auto" (exact where the encoder allows it).  statistics: for generators exported
    with --statistics, "auto"/"thumbnail" (tiles normalised with the instance-norm statistics of a
    thumbnail whose longer side is statistics_size, default 1024) or "off" (each tile its own);
    harmonize: when tiles run with their own statistics (plain generators, statistics="off"), the
    longer side of the stylized thumbnail whose low-frequency colour every tile is pulled to, as
    Stylizer's; 0 (the default here): off, as measured on MSG-Net it helps only when the thumbnail
    is at least half the image's size (docs/results/msgnet.md).
    Thread-safe for calls; set_style swaps the Gram atomically."""

    STYLE = "image"
    FAMILY_OPTIONS = ("style_size", "style_tile", "style_statistics")

    def __init__(self, model, *, device: str = "auto", precision: str = "auto",
                 tile: Union[int, str, None] = "auto", halo: Optional[int] = None, overlap: int = DEFAULT_OVERLAP,
                 batch: int = 1, threads: int = 0, memory_arena: bool = False,
                 style_size: int = DEFAULT_STYLE_SIZE, style_tile: Union[int, str, None] = "auto",
                 style_statistics: Optional[str] = "auto", harmonize: int = 0, statistics: Optional[str] = "auto",
                 statistics_size: Optional[int] = None, **pixel_format):
        self.style_size = options.check_size("style_size", style_size, lo=style_images.MIN_STYLE_SIDE)
        if isinstance(style_tile, str) and style_tile.lower() == "auto":
            style_tile = DEFAULT_STYLE_TILE
        elif isinstance(style_tile, str):
            raise OptionError(f"style_tile: must be 'auto', a window size in pixels, or 0/None for the whole style "
                              f"image, got {style_tile!r}")
        self.style_tile = 0 if style_tile is None else options.check_size("style_tile", style_tile)
        mode = "auto" if style_statistics is None else str(style_statistics).lower()
        if mode not in ("auto", "exact", "off"):
            raise OptionError(f"style_statistics: must be 'auto', 'exact' or 'off', got {style_statistics!r}")
        self._style_statistics_option = mode
        statistics = "auto" if statistics is None else statistics
        if options.engine_options(statistics=statistics)["statistics"] == "exact":
            raise OptionError("statistics: 'exact' is not available for MSG-Net (32 instance-norm layers: 33 tiled "
                              "passes); use 'thumbnail' or 'off'")
        self._halo_given = halo is not None
        super().__init__(model, device=device, precision=precision, tile=tile, halo=halo, overlap=overlap,
                         batch=batch, threads=threads, harmonize=harmonize, statistics=statistics,
                         statistics_size=statistics_size, memory_arena=memory_arena, **pixel_format)
        self._cache = style_images.StyleCache()
        self._lock = threading.Lock()
        self._gram: Optional[np.ndarray] = None
        self.style_names: list = []

    def resolve(self, model) -> Path:
        self.encoder_path, path, pipe = resolve_pair(model)
        self._gram_input = str(pipe.get("gram_input", "gram"))
        self.channels = int(pipe.get("feature_channels", 0)) or None
        return path

    def open_more(self, precision: str, checked: dict) -> None:
        self._encoder = open_session(self.encoder_path, precision=precision, checked=checked)
        if not any(t["role"] == mm.ROLE_FEATURES for t in self._encoder.outputs):
            raise ModelError(f"{self.encoder_path}: the MSG-Net encoder has no features output")
        # Encoders exported with --statistics are global-statistics graphs: windows of a large style
        # image can be normalised with the whole image's statistics.
        has_statistics = mm.key("statistics") in self._encoder.metadata
        if self._style_statistics_option == "exact" and not has_statistics:
            raise OptionError(f"style_statistics: 'exact' needs an encoder exported with deepshop-export msgnet "
                              f"--statistics; {self.encoder_path} is the plain graph")
        self.style_statistics = "exact" if has_statistics and self._style_statistics_option != "off" else "off"
        halo, stride = _native.style_window_halo(self._encoder), max(1, int(self._encoder.stride_multiple))
        if self.style_tile and self.style_tile - 2 * halo < 4 * stride:
            raise OptionError(f"style_tile: {self.style_tile} px leaves no room inside the encoder's halo of "
                              f"{halo} px on each side; give at least {2 * halo + 4 * stride}, or 0 for the whole "
                              "style image")

    def family_tiling(self, tiling: dict) -> dict:
        """Generators exported with --statistics run tiles with a thumbnail's statistics (unless
        statistics="off"): their kept spans compute the whole-image result only with a halo of the
        receptive field's radius (not the quarter taken otherwise), and they need no harmonize."""
        if mm.key("statistics") not in self.metadata or tiling["statistics"] == "off":
            return tiling
        halo = tiling["halo"] if self._halo_given else (int(self._session.receptive_field) + 1) // 2
        return {**tiling, "halo": halo, "harmonize": 0}

    @property
    def gram(self) -> Optional[np.ndarray]:
        """The current style's Gram matrix (C x C float32), None before set_style."""
        return self._gram

    # --- styles --------------------------------------------------------------------------------
    def style_gram(self, style) -> np.ndarray:
        """The Gram matrix of one style image (path, array, PIL image), cached per style file
        (path, modification time, size, style_size and style_tile)."""
        def compute():
            pixels, _name = style_images.style_pixels(style, longer=self.style_size, multiple=4, what="MSG-Net")
            return _native.style_gram(encoder=self._encoder, style=pixels, window=self.style_tile,
                                      exact=self.style_statistics == "exact")
        return self._cache.get(style, (self.style_size, self.style_tile), compute)

    def set_style(self, style, weights: Optional[Sequence[float]] = None) -> "StyleNet":
        """Use one style image, or several blended: the Gram is the weights' weighted mean of the
        styles' Grams (weights >= 0, not all 0; default equal).  Returns self."""
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise OptionError("style: no style image given")
        w = options.check_blend_weights(len(styles), weights)
        blended = sum(wi * self.style_gram(s).astype(np.float64) for wi, s in zip(w, styles))
        with self._lock:
            self._gram = np.ascontiguousarray(blended[None], dtype=np.float32)
            self.style_names = [os.fspath(s) if isinstance(s, (str, os.PathLike)) else f"<{type(s).__name__}>"
                                for s in styles]
        return self

    def style_inputs(self) -> dict:
        g = self._gram
        if g is None:
            raise OptionError(f"{self.model_path}: no style: call set_style(image) first (MSG-Net takes the style "
                              "image at run time)")
        return {self._gram_input: g}

    def __call__(self, image, *, strength: float = 1.0, preserve_colors: bool = False,
                 max_side: Optional[int] = None, progress=None, style=None, style_weights=None):
        """Stylize ``image`` (as Stylizer: arrays of uint8/uint16/float, PIL images, paths; alpha
        kept; the result in the input's dtype) with the current style (or ``style=``)."""
        if style is not None:
            self.set_style(style, style_weights)
        return super().__call__(image, strength=strength, preserve_colors=preserve_colors, max_side=max_side,
                                progress=progress)

    def predict(self, images: Sequence, style, *, visualization: bool = False, save_path: str = "style_transfer",
                channel_order: str = "BGR", overwrite: bool = False) -> list:
        """PaddleHub's ``msgnet.predict(images, style=path)``: a list of images (paths, or H x W x 3
        uint8 arrays in ``channel_order``, BGR as cv2.imread gives them) -> a list of stylised
        uint8 arrays in the same channel order, each at its own size (no square outputs).
        ``visualization`` writes each result into ``save_path`` as ndarray_N.png / NAME.png."""
        channel_order = options.check_channel_order(channel_order)
        if visualization:   # before any work: no result replaces an image it is made from
            for i, item in enumerate(images):
                check_not_an_input(os.path.join(save_path, self._visualization_name(item, i)), [*images, style])
        self.set_style(style)
        results = []
        for i, item in enumerate(images):
            if isinstance(item, np.ndarray) and channel_order == "BGR" and item.ndim == 3 and item.shape[2] >= 3:
                item = np.ascontiguousarray(np.concatenate([item[..., 2::-1], item[..., 3:]], axis=2))
            out = self(item)
            if out.dtype != np.uint8:
                out = to_depth(out if out.dtype == np.uint16 else out.astype(np.float32), 8)
            if visualization:
                os.makedirs(save_path, exist_ok=True)
                write_image(os.path.join(save_path, self._visualization_name(item, i)), out[..., :3],
                            alpha=out[..., 3] if out.shape[2] == 4 else None, overwrite=overwrite)
            if channel_order == "BGR":
                out = np.ascontiguousarray(np.concatenate([out[..., 2::-1], out[..., 3:]], axis=2))
            results.append(out)
        return results

    @staticmethod
    def _visualization_name(item, i: int) -> str:
        return (Path(os.fspath(item)).stem if isinstance(item, (str, os.PathLike)) else f"ndarray_{i}") + ".png"



def predict(images: Sequence, style, model, **options_) -> list:
    """PaddleHub-style one call: ``ds.predict([img], style="sand.jpg", model="msgnet.onnx")``
    (see StyleNet.predict for visualization, save_path and channel_order)."""
    keys = ("visualization", "save_path", "channel_order", "overwrite")
    call = {k: options_.pop(k) for k in keys if k in options_}
    return StyleNet(model, **options_).predict(images, style, **call)
